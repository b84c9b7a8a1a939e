"""Are the verdicts reproducible? Run the suites N times and compare every test's outcome.

``python -m chartproof.stability --runs 10 [-- PYTEST ARGS]`` (also ``nox -s stability -- ...``) runs
``pytest suites`` N times, each with its own report directory (kept under ``reports/stability-<time>/``,
so a flake's failure can be read afterwards), and prints which tests changed outcome between runs
(flakes). Exit 0 when every run gave the same verdict for every test, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from chartproof.paths import REPO


def run_once(index: int, directory: Path, pytest_args: list[str]) -> tuple[dict[str, str], float]:
    report_dir = directory / f"run-{index}"
    cmd = [sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider", "--chartproof-report-dir", str(report_dir),
           *pytest_args]
    started = time.monotonic()
    subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    files = sorted(report_dir.glob("*/results.json"))
    if not files:
        return {}, seconds
    data = json.loads(files[-1].read_text())
    return {r["test"]: r["outcome"] for r in data["results"]}, seconds


def compare(runs: list[dict[str, str]]) -> dict[str, list[str]]:
    """Tests whose outcome is not the same in every run (missing from a run counts as 'absent')."""
    tests = sorted({t for run in runs for t in run})
    return {t: [run.get(t, "absent") for run in runs] for t in tests if len({run.get(t, "absent") for run in runs}) > 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chartproof.stability", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--report-dir", help="where the runs' reports go (default reports/stability-<time>/)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: arguments for pytest")
    args = parser.parse_args(argv)
    pytest_args = [a for a in args.pytest_args if a != "--"]
    runs: list[dict[str, str]] = []
    directory = Path(args.report_dir) if args.report_dir else REPO / "reports" / time.strftime("stability-%Y%m%d-%H%M%S")
    directory.mkdir(parents=True, exist_ok=True)
    print(f"stability: {args.runs} runs of pytest suites {' '.join(pytest_args)}; reports under {directory}", flush=True)
    for index in range(1, args.runs + 1):
        outcomes, seconds = run_once(index, directory, pytest_args)
        counts: dict[str, int] = {}
        for outcome in outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        print(f"run {index}/{args.runs}: {seconds:.0f} s, "
              + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no results"), flush=True)
        for test, outcome in sorted(outcomes.items()):
            if outcome in ("failed", "error"):
                print(f"  {outcome}: {test}", flush=True)
        runs.append(outcomes)
    flakes = compare(runs)
    if not all(runs):
        print("stability: a run produced no results")
        return 1
    if flakes:
        print(f"stability: {len(flakes)} test(s) changed verdict across {args.runs} runs:")
        for test, outcomes in flakes.items():
            print(f"  {test}: {' '.join(outcomes)}")
        return 1
    print(f"stability: {args.runs} runs, {len(runs[0])} tests, identical verdicts (0 flakes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
