"""The conformance run's wall time, as CI runs it: ``pytest suites`` with the default workers, with two, serially.

Goals of issue #10: the run with the default worker count (``-n auto``, what ``nox -s conformance`` uses: two
workers per core, see chartproof.clusters.pool) under 2 minutes on this 2-core machine, and ``-n 2`` at least
1.6 times faster than ``CHARTPROOF_WORKERS=0`` (serial). Each run is a fresh pytest process on the repository's
suites with its own report directory; the figure is its wall time, start-up, cluster start and teardown
included, with the verdict counts read from its JUnit file (a run with failures is reported as such: a fast
run that fails is not a result).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from chartproof.bench_render import how_busy, junit_tests, timed
from chartproof.clusters.pool import auto_workers
from chartproof.toolchain import Toolchain

REPO = Path(__file__).resolve().parent.parent
WALL_GOAL_S = 120.0
SPEEDUP_GOAL = 1.6


def conformance_run(workers: int | str, work: Path, *, suites: str = "suites") -> dict:
    """One ``pytest suites`` with ``-n workers`` (a number or ``auto``; 0: serially): wall seconds and verdict
    counts."""
    junit = work / f"conformance-n{workers}.xml"
    cmd = [sys.executable, "-m", "pytest", suites, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
           "--report-dir", str(work / f"reports-n{workers}")]
    cmd += ["-n", str(workers)] if workers else ["-p", "no:xdist"]
    proc, clock = timed(cmd, env=dict(os.environ), cwd=REPO, title="bench conformance",
                        what=f"pytest {suites} {'-n ' + str(workers) if workers else 'serially'}", every=30)
    counts = junit_tests(junit) if junit.is_file() else {"tests": 0, "failed": 0, "skipped": 0, "seconds": 0.0}
    return {"workers": workers, "wall_s": round(clock["wall_s"], 1), "exit": proc.returncode,
            **{k: clock[k] for k in ("load_before", "settled_s", "busy_before")},
            **{k: counts[k] for k in ("tests", "failed", "skipped")},
            "tail": proc.stdout.strip().splitlines()[-1:] if proc.returncode else []}


def measure_conformance(*, workers: int | str = "auto", serial: bool = True, suites: str = "suites") -> dict:
    """The run with ``workers`` (the default), then with two workers and serially (``serial``), for the speed-up."""
    Toolchain().install()  # every pinned tool first (the suites obtain some when first used): never time a build
    with tempfile.TemporaryDirectory(prefix="chartproof-bench-conformance-") as tmp:
        parallel = conformance_run(workers, Path(tmp), suites=suites)
        if workers == "auto":
            parallel["workers"] = f"auto ({auto_workers()})"
        result: dict = {"parallel": parallel, "wall_goal_s": WALL_GOAL_S,
                        "wall_goal_met": parallel["wall_s"] < WALL_GOAL_S and parallel["exit"] == 0}
        if serial:
            two = parallel if str(workers) == "2" else conformance_run(2, Path(tmp), suites=suites)
            alone = conformance_run(0, Path(tmp), suites=suites)
            result["two"] = two
            result["serial"] = alone
            result["speedup"] = round(alone["wall_s"] / two["wall_s"], 2) if two["wall_s"] else None
            result["speedup_goal_met"] = bool(result["speedup"] and result["speedup"] >= SPEEDUP_GOAL
                                              and alone["exit"] == 0 and two["exit"] == 0)
    return result


def summary(result: dict) -> list[str]:
    lines = ["conformance run (pytest suites; load average and CPUs busy before each run in brackets):"]
    for key, label in (("parallel", f"-n {result['parallel']['workers']}"), ("two", "-n 2"), ("serial", "serial")):
        run = result.get(key)
        if run and not (key == "two" and run is result["parallel"]):
            lines.append(f"  {label:12} {run['wall_s']:7.1f} s wall; {run['tests']} tests, {run['failed']} failed, "
                         f"{run['skipped']} skipped, exit {run['exit']} [{how_busy(run)}]")
    lines.append(f"  goal: under {WALL_GOAL_S:.0f} s with the default workers: "
                 f"{'met' if result['wall_goal_met'] else 'NOT met'}")
    if "speedup" in result:
        lines.append(f"  serial / -n 2: {result['speedup']} (goal >= {SPEEDUP_GOAL}: "
                     f"{'met' if result['speedup_goal_met'] else 'NOT met'})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m chartproof.bench_conformance", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default=os.environ.get("CHARTPROOF_WORKERS", "auto") or "auto",
                        help="the default run's workers: a number or auto (two per core, the default)")
    parser.add_argument("--no-serial", action="store_true", help="skip the serial run (no speed-up figure)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure_conformance(workers=args.workers, serial=not args.no_serial)
    print("\n".join(summary(result)))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if result["wall_goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
