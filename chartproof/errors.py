"""Errors a user can cause, each with its own exit code and a one-line message."""

from __future__ import annotations


class ChartproofError(Exception):
    """Base class: ``str(err)`` is the one line shown to the user, ``exit_code`` what the process returns."""

    exit_code = 1
    label = "error"

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = f"chartproof: {self.label}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return " ".join(text.split())


class UsageError(ChartproofError):
    exit_code = 2
    label = "usage"


class BadValuesError(ChartproofError):
    """A values file that does not parse, or a malformed ``--set``."""

    exit_code = 3
    label = "bad values"


class ChartNotFoundError(ChartproofError):
    exit_code = 4
    label = "unknown chart"


class ClusterUnreachableError(ChartproofError):
    exit_code = 5
    label = "cluster unreachable"


class WrongContextError(ChartproofError):
    exit_code = 6
    label = "wrong context"


class ToolchainError(ChartproofError):
    """A binary that is missing, or could not be downloaded or built."""

    exit_code = 7
    label = "toolchain"


class ClusterError(ChartproofError):
    """A cluster that could not be created, listed or deleted."""

    exit_code = 8
    label = "cluster"


class ProviderUnavailableError(ChartproofError):
    """The provider cannot run on this machine (kind without Docker)."""

    exit_code = 9
    label = "provider unavailable"


class RenderError(ChartproofError):
    """helm refused to render or install a chart; ``message`` is helm's own error line."""

    exit_code = 10
    label = "helm"


class WaitTimeout(ChartproofError):
    exit_code = 11
    label = "timeout"


INTERRUPTED_EXIT_CODE = 130

EXIT_CODES = {
    cls.__name__: cls.exit_code
    for cls in (
        UsageError,
        BadValuesError,
        ChartNotFoundError,
        ClusterUnreachableError,
        WrongContextError,
        ToolchainError,
        ClusterError,
        ProviderUnavailableError,
        RenderError,
        WaitTimeout,
    )
}
