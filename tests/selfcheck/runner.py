"""Inner pytest sessions of the suites against a variant or mutant build, and what their report says."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chartproof.reports import result_note
from tests.selfcheck.charttree import REPO
from tests.selfcheck.contract_names import id_from_test_name

RENDER_TIER = ("-m", "not cluster")
LIVE_TIER = ("-m", "cluster")
# pytest's exit codes that still mean "the run judged what it selected": 0 all passed, 1 some failed,
# 5 nothing selected.
JUDGED = (0, 1, 5)
VERDICT_FAILURE = "failed"   # the test stopped on an assertion, a helm refusal or a timed-out wait
SUITE_ERROR = "error"        # the test crashed: a defect of the suite, not a verdict on the chart


class InnerRunError(RuntimeError):
    """The inner session did not run to a report (bad options, toolchain, cluster): not a verdict."""


def entry_contracts(entry: dict) -> list[str]:
    """The contract ids a ``results.json`` entry names; from its test name when the report has none."""
    ids = [c for c in entry.get("contracts") or [] if c]
    if not ids and entry.get("contract"):
        ids = [c for c in str(entry["contract"]).split(",") if c]
    if not ids:
        cid = id_from_test_name(str(entry.get("test", "")))
        ids = [cid] if cid else []
    return ids


@dataclass
class InnerRun:
    command: list[str]
    returncode: int
    seconds: float
    results: list[dict] = field(default_factory=list)
    output: str = ""

    def with_outcome(self, *outcomes: str) -> list[dict]:
        return [r for r in self.results if r.get("outcome") in outcomes]

    @property
    def ran(self) -> list[dict]:
        return self.with_outcome("passed", VERDICT_FAILURE, SUITE_ERROR)

    def naming(self, cid: str) -> list[dict]:
        return [r for r in self.results if cid in entry_contracts(r)]

    def summary(self, entries: list[dict], limit: int = 8) -> list[str]:
        lines = []
        for r in entries[:limit]:
            note = result_note(r)
            lines.append(f"{r.get('outcome')}: {r.get('test')}" + (f" -- {note[:200]}" if note else ""))
        if len(entries) > limit:
            lines.append(f"... and {len(entries) - limit} more")
        return lines


def _results_file(report_dir: Path) -> Path | None:
    found = [p for p in report_dir.rglob("results.json") if "latest" not in p.parts]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def run_suites(charts: dict[str, Path], args: list[str] | tuple[str, ...], *, timeout: float = 600) -> InnerRun:
    """``python -m pytest suites --chart NAME=DIR ... ARGS`` in its own report directory; its ``results.json``."""
    with tempfile.TemporaryDirectory(prefix="chartproof-selfcheck-run-") as tmp:
        report_dir = Path(tmp) / "reports"
        command = [sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider",
                   "-p", "tests.selfcheck.contract_names", "--report-dir", str(report_dir)]
        for name, directory in sorted(charts.items()):
            command += ["--chart", f"{name}={directory}"]
        command += list(args)
        # The inner session is a pytest run of its own: nothing of the outer one (xdist worker ids) leaks in.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CHARTPROOF_WORKERS"))}
        started = time.monotonic()
        try:
            proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise InnerRunError(f"the inner run took more than {timeout:.0f} s: {' '.join(command)}") from err
        seconds = time.monotonic() - started
        output = (proc.stdout + proc.stderr)[-6000:]
        if proc.returncode not in JUDGED:
            raise InnerRunError(f"the inner run ended with exit code {proc.returncode} before judging anything:\n"
                                f"{' '.join(command)}\n{output[-3000:]}")
        path = _results_file(report_dir)
        if path is None and proc.returncode != 5:
            raise InnerRunError(f"the inner run wrote no results.json:\n{' '.join(command)}\n{output[-3000:]}")
        results = json.loads(path.read_text()).get("results", []) if path else []
        return InnerRun(command, proc.returncode, seconds, results, output)


_LIVE_LOCK = Path(tempfile.gettempdir()) / f"chartproof-selfcheck-live-{os.getuid()}.lock"


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def one_live_run_at_a_time() -> Iterator[None]:
    """Inner live runs each start an embedded cluster; two at once on a small machine starve each other
    (timeouts would then read as verdicts), so they take turns, across xdist workers too."""
    with exclusive(_LIVE_LOCK):
        yield


def failing_on_stock_charts(cache: Path, args: list[str]) -> list[dict]:
    """The tests that fail or crash on our unmodified charts with these arguments: a mutant is caught only by
    a test that passes without it. Computed once per self-check run, shared by the xdist workers."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(cache.with_suffix(".lock")):
        if cache.is_file():
            return json.loads(cache.read_text())
        run = run_suites({}, args)
        failing = run.with_outcome(VERDICT_FAILURE, SUITE_ERROR)
        cache.write_text(json.dumps(failing))
        return failing
