"""Progress lines for anything that takes more than a few seconds (builds, downloads, cluster start)."""

from __future__ import annotations

import sys
import threading
import time


def fmt_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Prints ``[what] step (detail) elapsed`` to stderr when a step starts, then every ``every`` seconds.

    Use as a context manager around a step; ``update(detail)`` changes the detail the ticker shows.
    """

    def __init__(self, what: str, step: str, *, every: float = 15.0, stream=None):
        self.what = what
        self.step = step
        self.detail = ""
        self.every = every
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._started = 0.0
        self._thread: threading.Thread | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def say(self, text: str) -> None:
        print(f"[{self.what}] {text}", file=self.stream, flush=True)

    def update(self, detail: str) -> None:
        self.detail = detail

    def _line(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.step}{detail}, {fmt_seconds(self.elapsed)} elapsed"

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            self.say(self._line())

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        self.say(f"{self.step} ...")
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=1)
        outcome = "failed" if exc_type else "done"
        self.say(f"{self.step} {outcome} in {fmt_seconds(self.elapsed)}")
