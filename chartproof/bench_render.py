"""The render tier against the fastest peer, timed per test on one chart.

(a) ``pytest suites/adaptive -m "not cluster"`` (the render tier: every test that needs no cluster) with the
long-lived renderer, (b) the same with ``CHARTPROOF_RENDERER=helm`` (a helm process per render), and
(c) helm-unittest running ``tests/bench/helm-unittest/adaptive`` (assertions that mirror the render tier)
against the same chart. Each figure is given three ways: the tests' own durations as the tool reports them
in its JUnit file (what a test costs once the tool runs), the CPU seconds of the whole command, and its wall
time (start-up and collection included), each divided by the number of tests. The goal of issue #10 is
ours/helm-unittest <= 1 per test; run it on an otherwise idle machine (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from chartproof.progress import Progress
from chartproof.render_server import CHOICE_ENV, TOOL
from chartproof.toolchain import Toolchain

REPO = Path(__file__).resolve().parent.parent
PEER_SUITES = REPO / "tests" / "bench" / "helm-unittest" / "adaptive"
MIRROR = REPO / "tests" / "bench" / "chartproof" / "adaptive_mirror.py"  # helm-unittest's twenty checks, as our tests


def junit_tests(path: Path) -> dict:
    """Counts and summed durations of the test cases of a JUnit file (pytest's or helm-unittest's)."""
    counts = {"tests": 0, "failed": 0, "skipped": 0, "seconds": 0.0}
    for case in ET.parse(path).getroot().iter("testcase"):
        counts["tests"] += 1
        counts["seconds"] += float(case.get("time") or 0)
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
    return counts


SETTLE_LIMIT = 60.0  # seconds a timed run waits at most for the machine to be idle first
SETTLED_BELOW = 0.15  # the share of all CPUs busy under which the machine counts as idle


def cpu_busy(window: float = 1.0) -> float | None:
    """The share of all CPUs that was busy over the next ``window`` seconds (``/proc/stat``); None without it."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:9]]  # user .. steal (guest time is inside user)
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    try:
        total, idle = sample()
        time.sleep(window)
        total2, idle2 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (idle2 - idle) / (total2 - total) if total2 > total else 0.0


def settle(limit: float | None = None) -> tuple[float, float | None]:
    """Wait, ``limit`` seconds at most (``SETTLE_LIMIT``), until under ``SETTLED_BELOW`` of the CPUs are busy:
    what a step before left running (a cluster going down, xdist workers ending) is not timed as part of the
    next one. The seconds waited and the last busy share (None where it cannot be read)."""
    limit = SETTLE_LIMIT if limit is None else limit
    started = time.monotonic()
    if limit <= 0:
        return 0.0, None
    busy = cpu_busy()
    while busy is not None and busy >= SETTLED_BELOW and time.monotonic() - started < limit:
        busy = cpu_busy()
    return time.monotonic() - started, busy


def timed(cmd: list[str], *, env: dict[str, str], cwd: Path, what: str, title: str = "bench render",
          every: float = 15) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``cmd`` to the end, once the machine is idle (``settle``); its wall seconds, the CPU seconds of it and
    its descendants, the load average and the busy share of the CPUs before it."""
    with Progress(title, f"waiting for an idle machine before: {what}", every=every):
        waited, busy = settle()
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with Progress(title, what, every=every):
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, {"wall_s": wall, "cpu_s": cpu, "load_before": round(load, 2), "settled_s": round(waited, 1),
                  "busy_before": None if busy is None else round(busy, 2)}


def per_test(counts: dict, clock: dict, command: list[str]) -> dict:
    tests = max(counts["tests"], 1)
    return {**counts, **clock, "command": " ".join(command),
            "per_test_s": counts["seconds"] / tests, "cpu_per_test_s": clock["cpu_s"] / tests,
            "wall_per_test_s": clock["wall_s"] / tests}


def render_tier(renderer: str, work: Path, *, suite: str = "suites/adaptive", label: str = "") -> dict:
    """The render tier of ``suite`` under pytest, serially, with ``CHARTPROOF_RENDERER=renderer``."""
    label = label or renderer
    junit = work / f"pytest-{label}.xml"
    cmd = [sys.executable, "-m", "pytest", suite, "-m", "not cluster", "-q", "-p", "no:cacheprovider",
           "-p", "no:xdist", f"--junitxml={junit}", "--report-dir", str(work / f"reports-{label}")]
    env = {**os.environ, CHOICE_ENV: renderer}
    proc, clock = timed(cmd, env=env, cwd=REPO, what=f"pytest {suite} -m 'not cluster' with {renderer}")
    if not junit.is_file():
        raise RuntimeError(f"pytest wrote no JUnit file (exit {proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return per_test(junit_tests(junit), clock, [f"{CHOICE_ENV}={renderer}", *cmd[1:]])


def helm_unittest_tier(binary: Path, work: Path, *, chart: Path = REPO / "charts" / "adaptive",
                       suites: Path = PEER_SUITES) -> dict:
    """helm-unittest on ``chart`` with the suites in ``suites`` (given to it with -f, not copied into the chart)."""
    junit = work / "helm-unittest.xml"
    files = sorted(suites.glob("*_test.yaml"))
    if not files:
        raise RuntimeError(f"no helm-unittest suites (*_test.yaml) in {suites}")
    # An absolute -f is one file (helm-unittest globs only relative ones); the suites are for this chart, not
    # for each of its subcharts too.
    cmd = [str(binary), "--with-subchart=false", *[arg for path in files for arg in ("-f", str(path))],
           "-o", str(junit), "-t", "JUnit", str(chart)]
    proc, clock = timed(cmd, env=dict(os.environ), cwd=REPO, what=f"helm-unittest on {chart.name}")
    if not junit.is_file():
        raise RuntimeError(f"helm-unittest wrote no JUnit file (exit {proc.returncode}): {proc.stdout[-1500:]}")
    counts = junit_tests(junit)
    if proc.returncode != 0 and not counts["failed"]:
        counts["failed"] = 1  # a suite that did not load fails the run without a failed test case
    return {**per_test(counts, clock, cmd), "output": proc.stdout[-1500:] if proc.returncode else ""}


def measure_render_tier(*, repeat: int = 1, suite: str = "suites/adaptive", chart: Path = REPO / "charts" / "adaptive",
                        peer_suites: Path = PEER_SUITES, toolchain: Toolchain | None = None) -> dict:
    """Time (a) the render tier with our renderer, (b) with helm template, (c) helm-unittest on the same chart.

    Each is run ``repeat`` times and the run with the median per-test duration is kept. Returns the figures
    (``renderer``, ``helm``, ``helm_unittest``, and ``mirror``: helm-unittest's own twenty checks written as
    Chartproof tests, run with our renderer) and the ratios of ours to helm-unittest per test: ``ratio`` (the
    whole render tier, the tests' own durations, the goal: <= 1), ``cpu_ratio``, ``wall_ratio``, and
    ``mirror_ratio`` (the same checks in both tools)."""
    toolchain = toolchain or Toolchain()
    toolchain.install()  # every pinned tool first (promtool too): what is timed is rendering, never a build
    peer = toolchain.path("helm-unittest")
    figures: dict[str, list[dict]] = {"renderer": [], "helm": [], "helm_unittest": [], "mirror": []}
    with tempfile.TemporaryDirectory(prefix="chartproof-bench-render-") as tmp:
        for index in range(repeat):
            work = Path(tmp) / f"run-{index}"
            work.mkdir()
            figures["renderer"].append(render_tier(TOOL, work, suite=suite))
            figures["helm"].append(render_tier("helm", work, suite=suite))
            figures["helm_unittest"].append(helm_unittest_tier(peer, work, chart=chart, suites=peer_suites))
            if suite == "suites/adaptive" and peer_suites == PEER_SUITES:
                figures["mirror"].append(render_tier(TOOL, work, suite=str(MIRROR), label="mirror"))
    figures = {name: runs for name, runs in figures.items() if runs}
    result: dict = {"cores": os.cpu_count(), "repeat": repeat}
    for name, runs in figures.items():
        middle = statistics.median_low([r["per_test_s"] for r in runs])
        result[name] = next(r for r in runs if r["per_test_s"] == middle)
    ours, theirs = result["renderer"], result["helm_unittest"]
    for name, prefix in (("renderer", ""), ("helm", "helm_"), ("mirror", "mirror_")):
        if name in result:
            for key, field in (("ratio", "per_test_s"), ("cpu_ratio", "cpu_per_test_s"), ("wall_ratio", "wall_per_test_s")):
                result[prefix + key] = result[name][field] / theirs[field] if theirs[field] else float("inf")
    result["goal_met"] = result["ratio"] <= 1 and not (ours["failed"] or theirs["failed"])
    return result


def how_busy(run: dict) -> str:
    """How loaded the machine was as a run started: "0.91 load, 4% busy" (and the wait for it, if any)."""
    busy = run.get("busy_before")
    text = f"{run['load_before']} load" + ("" if busy is None else f", {busy:.0%} busy")
    return text + (f", after {run['settled_s']:.0f} s settling" if run.get("settled_s", 0) >= 2 else "")


def summary(result: dict) -> list[str]:
    """The figures as lines for a terminal (what ``nox -s bench`` prints)."""
    lines = [f"render tier, per test ({result['cores']} cores; load average and CPUs busy before each run in brackets):"]
    for name, label in (("renderer", f"pytest, {TOOL}"), ("helm", "pytest, helm template"),
                        ("helm_unittest", "helm-unittest"), ("mirror", "its checks as our tests")):
        if name not in result:
            continue
        r = result[name]
        lines.append(f"  {label:24} {r['per_test_s'] * 1000:7.1f} ms in-test, {r['cpu_per_test_s'] * 1000:7.1f} ms CPU, "
                     f"{r['wall_per_test_s'] * 1000:7.1f} ms wall; {r['tests']} tests, {r['failed']} failed, "
                     f"{r['skipped']} skipped [{how_busy(r)}]")
    lines.append(f"  ours / helm-unittest: {result['ratio']:.2f} in-test (goal <= 1: "
                 f"{'met' if result['goal_met'] else 'NOT met'}), {result['cpu_ratio']:.2f} CPU, "
                 f"{result['wall_ratio']:.2f} wall; helm template / helm-unittest: {result['helm_ratio']:.2f} in-test")
    if "mirror_ratio" in result:
        lines.append(f"  the same twenty checks, ours / helm-unittest: {result['mirror_ratio']:.2f} in-test, "
                     f"{result['mirror_cpu_ratio']:.2f} CPU, {result['mirror_wall_ratio']:.2f} wall")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m chartproof.bench_render", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each to take the median of")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    result = measure_render_tier(repeat=args.repeat)
    print("\n".join(summary(result)))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
