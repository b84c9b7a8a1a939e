"""Where things are: the repository's fixtures and charts, and the cache outside the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
CHARTS = REPO / "charts"
REPORTS = REPO / "reports"


def cache_dir() -> Path:
    """The tool and cluster cache: ``$CHARTPROOF_CACHE``, else ``$XDG_CACHE_HOME/chartproof``, else ``~/.cache/chartproof``."""
    explicit = os.environ.get("CHARTPROOF_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chartproof"


# chart-testing's convention: a chart keeps its own CI scenarios in <chart dir>/ci/*-values.yaml.
CI_VALUES_GLOB = "*-values.yaml"


def ci_scenarios(chart_dir: Path | None) -> list[Path]:
    """The ``ci/*-values.yaml`` files of a chart directory, sorted by name (none without a directory)."""
    return sorted((Path(chart_dir) / "ci").glob(CI_VALUES_GLOB)) if chart_dir else []


def _default_dir(chart: str, chart_dir: Path | None) -> Path:
    return Path(chart_dir) if chart_dir else CHARTS / chart


def scenario_id(chart: str, path: Path) -> str:
    """``<chart>-<stem>`` for ``fixtures/<chart>/<stem>.yaml``, ``<chart>-ci-<stem>`` for a chart's ``ci/<stem>.yaml``."""
    return f"{chart}-ci-{path.stem}" if path.parent.name == "ci" and path.parent.parent != FIXTURES else f"{chart}-{path.stem}"


def scenario(chart: str, name: str, chart_dir: Path | None = None) -> Path:
    """The scenario ``name`` of a chart: ``fixtures/<chart>/<name>.yaml``, else the chart directory's
    ``ci/<name>.yaml`` (``name`` may also be written ``ci-<name>``, as in its id). It must exist."""
    path = FIXTURES / chart / f"{name}.yaml"
    if path.is_file():
        return path
    for ci in ci_scenarios(_default_dir(chart, chart_dir)):
        if name in (ci.stem, f"ci-{ci.stem}"):
            return ci
    known = [p.stem for p in sorted((FIXTURES / chart).glob("*.yaml"))]
    known += [f"ci-{p.stem}" for p in ci_scenarios(_default_dir(chart, chart_dir))]
    raise FileNotFoundError(f"no scenario {chart}/{name}; known: {', '.join(known) or 'none'}")


def scenarios(chart: str, chart_dir: Path | None = None) -> list[Path]:
    """Every scenario values file of a chart: ``fixtures/<chart>/*.yaml``, then the ``ci/*-values.yaml`` of the
    chart directory under test (default ``charts/<chart>``), each group sorted by name."""
    return sorted((FIXTURES / chart).glob("*.yaml")) + ci_scenarios(_default_dir(chart, chart_dir))
