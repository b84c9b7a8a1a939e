"""The version matrix the charts' READMEs promise ("Helm 3.8.0 or higher", "Kubernetes 1.26 or higher"): the
conformance suite on each cell of {oldest supported helm, current helm} x {oldest supported Kubernetes, current}.

``python -m chartproof.matrix [--cells HELM:KUBE ...] [--report-dir DIR] [-- PYTEST ARGS]`` (also
``nox -s matrix``) runs ``pytest suites`` once per cell, each with its own report folder
``reports/matrix-<time>/<cell>/<run-id>/``, then writes ``matrix.md`` and ``matrix.json`` beside them: one row per cell
(versions, passed/failed/skipped/errors, wall time) and, for every test whose verdict differs between cells,
on which cells its promise holds and where it fails, with the failure's message. A cell is ``HELM:KUBE``, each
a pinned MAJOR.MINOR (``3.8``, ``1.26``) or ``current``. Exit 0 when every cell ran and none failed, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chartproof.errors import ChartproofError, UsageError
from chartproof.paths import REPO, REPORTS
from chartproof.progress import Progress, fmt_seconds
from chartproof.toolchain import Toolchain
from chartproof.toolchain.pins import ToolPin, load_pins
from chartproof.versions import control_plane_pins, helm_pin

CURRENT = "current"
# The READMEs' oldest supported versions against today's pins.
DEFAULT_CELLS = ("3.8:1.26", "3.8:current", "current:1.26", "current:current")
HOLDS = ("passed",)
FAILS = ("failed", "error")
_PERCENT = re.compile(r"\[\s*(\d+)%\]\s*$")


@dataclass(frozen=True)
class Cell:
    """One combination of versions: ``helm`` and ``kube`` are a MAJOR.MINOR or ``current``."""

    helm: str
    kube: str

    @classmethod
    def parse(cls, text: str) -> Cell:
        helm, sep, kube = text.strip().partition(":")
        if not sep or not helm or not kube:
            raise UsageError(f"bad cell '{text}': expected HELM:KUBE, e.g. 3.8:1.26 or current:current")
        return cls(helm, kube)

    @property
    def id(self) -> str:
        return f"helm-{self.helm}_kube-{self.kube}"

    def pytest_options(self) -> list[str]:
        """The options that choose this cell's versions (none for a current one: the run is the plain one)."""
        out = []
        if self.helm != CURRENT:
            out += ["--chartproof-helm", self.helm]
        if self.kube != CURRENT:
            out += ["--chartproof-kube-version", self.kube]
        return out

    def tools(self, pins: dict[str, ToolPin]) -> list[str]:
        """Every pin this cell runs that may differ from the current ones (built on demand, before the clock)."""
        kube = None if self.kube == CURRENT else self.kube
        return [helm_pin(pins, None if self.helm == CURRENT else self.helm), *control_plane_pins(pins, kube).values()]

    def versions(self, pins: dict[str, ToolPin]) -> dict[str, str]:
        """The pinned releases this cell runs (raises UsageError for a version that is not pinned)."""
        helm = helm_pin(pins, None if self.helm == CURRENT else self.helm)
        kube = control_plane_pins(pins, None if self.kube == CURRENT else self.kube)["kube-apiserver"]
        return {"helm": pins[helm].version, "helm_pin": helm, "kubernetes": pins[kube].version, "kube_pin": kube}


def label(row: dict) -> str:
    """``helm v3.8.2 × Kubernetes v1.26.13``: how a cell is named in the report."""
    return f"helm {row['helm']} × Kubernetes {row['kubernetes']}"


# -- running the cells ----------------------------------------------------------------------------------------
def workers() -> list[str]:
    """pytest-xdist workers as the conformance session chooses them: CHARTPROOF_WORKERS (default auto, two per
    core; 0 is serial)."""
    count = os.environ.get("CHARTPROOF_WORKERS", "auto")
    return ["-n", count] if count and count != "0" else []


def run_cell(cell: Cell, pins: dict[str, ToolPin], directory: Path, suites: list[str], pytest_args: list[str],
             *, index: int = 1, total: int = 1) -> dict:
    """Run the suites on one cell; its report lands in ``directory/<cell id>/<run id>/``. Returns the cell's row."""
    row = {"cell": cell.id, **cell.versions(pins)}
    cmd = [sys.executable, "-m", "pytest", *suites, "-q", "-p", "no:cacheprovider",
           "--chartproof-report-dir", str(directory / cell.id),
           *cell.pytest_options(), *workers(), *pytest_args]
    log_path = directory / f"{cell.id}.log"
    started = time.monotonic()
    with open(log_path, "w") as log, Progress(f"matrix {index}/{total}", label(row), every=30) as progress:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                done = _PERCENT.search(line)
                if done:
                    progress.update(f"{done[1]}% of the tests done")
            row["exit_code"] = proc.wait()
        except BaseException:
            _stop(proc)  # the run tears its cluster down on SIGTERM as on Ctrl-C
            raise
    row["seconds"] = round(time.monotonic() - started, 1)
    row["log"] = str(log_path)
    return {**row, **read_cell(directory / cell.id)}


def _stop(proc: subprocess.Popen, grace: float = 180) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_cell(cell_dir: Path) -> dict:
    """What a cell's run reported (``cell_dir/<run id>/summary.json``): totals, server version, per-test verdicts."""
    found = sorted(p for p in Path(cell_dir).glob("*/summary.json") if p.parent.name != "latest")
    if not found:
        return {"report": None, "totals": None, "tests": {}, "server": None}
    path = found[-1]
    summary = json.loads(path.read_text())
    tests = {t["nodeid"]: {"outcome": t["outcome"], "contracts": t.get("contracts") or [],
                           "message": t.get("message") or ""} for t in summary.get("tests") or []}
    return {"report": str(path.parent), "totals": summary.get("totals"), "tests": tests,
            "server": (summary.get("cluster") or {}).get("kubernetes")}


# -- combining them -------------------------------------------------------------------------------------------
def differences(rows: list[dict]) -> list[dict]:
    """Every test whose verdict is not the same on every cell that reported (a test absent from a cell's run
    counts as 'absent' there): on which cells its promise holds, fails, is skipped, with each cell's message."""
    reported = [row for row in rows if row.get("totals") is not None]
    out = []
    for test in sorted({t for row in reported for t in row["tests"]}):
        verdicts = {label(row): row["tests"].get(test, {"outcome": "absent"}) for row in reported}
        if len({v["outcome"] for v in verdicts.values()}) < 2:
            continue
        contracts = sorted({c for v in verdicts.values() for c in v.get("contracts", [])})
        out.append({
            "test": test, "contracts": contracts,
            "outcomes": {cell: v["outcome"] for cell, v in verdicts.items()},
            "holds_on": [cell for cell, v in verdicts.items() if v["outcome"] in HOLDS],
            "fails_on": [cell for cell, v in verdicts.items() if v["outcome"] in FAILS],
            "skipped_on": [cell for cell, v in verdicts.items() if v["outcome"] == "skipped"],
            "absent_on": [cell for cell, v in verdicts.items() if v["outcome"] == "absent"],
            "messages": {cell: v["message"] for cell, v in verdicts.items()
                         if v["outcome"] not in HOLDS and v.get("message")},
        })
    return out


def difference_line(diff: dict) -> str:
    """One sentence: ``ID test: holds on A, B; fails on C (message); skipped on D (reason)``."""
    parts = []
    for key, word in (("holds_on", "holds on"), ("fails_on", "fails on"), ("skipped_on", "skipped on"),
                      ("absent_on", "not run on")):
        cells = diff[key]
        if not cells:
            continue
        text = ", ".join(f"{c} ({_one_line(diff['messages'][c])})" if c in diff["messages"] else c for c in cells)
        parts.append(f"{word} {text}")
    contracts = f"{', '.join(diff['contracts'])} " if diff["contracts"] else ""
    return f"{contracts}{diff['test']}: " + "; ".join(parts)


def _one_line(message: str, limit: int = 300) -> str:
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown(rows: list[dict], diffs: list[dict], directory: Path) -> str:
    lines = [f"# Version matrix ({directory.name})", "",
             "| Cell | helm | Kubernetes (server) | passed | failed | skipped | errors | wall | report |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        totals = row.get("totals") or {}
        report = (os.path.relpath(Path(row["report"]) / "report.html", directory) if row.get("report")
                  else f"no report (exit {row.get('exit_code')})")
        counts = " | ".join(str(totals.get(k, "-")) for k in ("passed", "failed", "skipped", "error"))
        lines.append(f"| {row['cell']} | {row['helm']} | {row['kubernetes']} ({row.get('server') or '-'}) | {counts} "
                     f"| {fmt_seconds(row.get('seconds', 0))} | {report} |")
    lines += ["", "## Promises whose verdict differs between cells", ""]
    lines += [f"- {difference_line(d)}" for d in diffs] or ["Every test has the same verdict on every cell."]
    missing = [row["cell"] for row in rows if row.get("totals") is None]
    if missing:
        lines += ["", f"Cells that produced no results (see their logs): {', '.join(missing)}"]
    return "\n".join(lines) + "\n"


def write(rows: list[dict], directory: Path) -> tuple[Path, list[dict]]:
    """``matrix.json`` and ``matrix.md`` in ``directory``; returns the markdown's path and the differences."""
    diffs = differences(rows)
    directory.mkdir(parents=True, exist_ok=True)
    public = [{k: v for k, v in row.items() if k != "tests"} for row in rows]
    (directory / "matrix.json").write_text(json.dumps({"cells": public, "differences": diffs}, indent=2) + "\n")
    path = directory / "matrix.md"
    path.write_text(markdown(rows, diffs, directory))
    return path, diffs


def ok(rows: list[dict]) -> bool:
    return all(row.get("totals") is not None and not any(row["totals"].get(k) for k in FAILS) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chartproof.matrix", description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=list(DEFAULT_CELLS), metavar="HELM:KUBE",
                        help=f"the cells to run (default: {' '.join(DEFAULT_CELLS)})")
    parser.add_argument("--suites", nargs="+", default=["suites"], metavar="PATH", help="what pytest runs (default suites)")
    parser.add_argument("--report-dir", help="where the matrix goes (default reports/matrix-<time>/)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: arguments for every cell's pytest")
    args = parser.parse_args(argv)
    pytest_args = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        cells = [Cell.parse(text) for text in args.cells]
        pins = load_pins()
        for cell in cells:
            cell.versions(pins)  # a version that is not pinned stops the matrix before any cell runs
    except ChartproofError as err:
        print(err.one_line(), file=sys.stderr)
        return err.exit_code
    try:  # an older control plane is built on first use (on_demand pins): here, not inside a cell's timing
        Toolchain().install(sorted({tool for cell in cells for tool in cell.tools(pins)}))
    except ChartproofError as err:
        print(err.one_line(), file=sys.stderr)
        return err.exit_code
    directory = Path(args.report_dir) if args.report_dir else REPORTS / time.strftime("matrix-%Y%m%d-%H%M%S")
    directory.mkdir(parents=True, exist_ok=True)
    print(f"matrix: {len(cells)} cells of pytest {' '.join(args.suites + pytest_args)}; reports under {directory}",
          flush=True)
    rows = []
    try:
        for index, cell in enumerate(cells, 1):
            row = run_cell(cell, pins, directory, args.suites, pytest_args, index=index, total=len(cells))
            totals = row.get("totals")
            print(f"{label(row)}: " + (", ".join(f"{n} {k}" for k, n in totals.items()) if totals else
                                       f"no results (exit {row['exit_code']}, log {row['log']})")
                  + f", server {row.get('server') or '-'}, {fmt_seconds(row['seconds'])}", flush=True)
            rows.append(row)
    except KeyboardInterrupt:
        if rows:
            write(rows, directory)
        print(f"matrix: interrupted after {len(rows)} of {len(cells)} cells", file=sys.stderr)
        return 130
    path, diffs = write(rows, directory)
    print(f"matrix: {len(diffs)} test(s) with a verdict that differs between cells")
    for diff in diffs:
        print(f"  {difference_line(diff)}")
    print(f"matrix report: {path}")
    return 0 if ok(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
