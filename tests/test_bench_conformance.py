"""The conformance bench reads a run's wall time and verdicts, and a failing run meets no goal."""

from __future__ import annotations

from chartproof import bench_conformance
from chartproof.paths import REPO


def test_a_run_reports_its_verdicts_and_a_failing_one_meets_no_goal(tmp_path):
    suite = tmp_path / "test_tiny.py"
    chart = f"{REPO / 'charts' / 'adaptive' / 'Chart.yaml'}"
    holds = f"def test_holds():\n    assert 'name: adaptive' in open({chart!r}).read()\n"
    breaks = f"def test_breaks():\n    assert 'kubeVersion' not in open({chart!r}).read()\n"  # the chart declares one
    suite.write_text(holds + "\n" + breaks)
    run = bench_conformance.conformance_run(0, tmp_path, suites=str(suite))
    assert (run["tests"], run["failed"], run["exit"]) == (2, 1, 1), run
    assert run["wall_s"] > 0
    suite.write_text(holds)
    result = bench_conformance.measure_conformance(workers="auto", serial=True, suites=str(suite))
    assert result["parallel"]["exit"] == 0 and result["serial"]["tests"] == 1, result
    assert result["parallel"]["workers"].startswith("auto (") and result["two"]["workers"] == 2, result
    assert result["wall_goal_met"], "a two-second run of one passing test is under the goal"
    lines = bench_conformance.summary(result)
    assert any("serial / -n 2" in line for line in lines) and any("-n auto (" in line for line in lines), lines
    result["parallel"]["exit"] = 1
    assert "NOT met" in bench_conformance.summary({**result, "wall_goal_met": False})[-2]


def test_a_timed_run_waits_for_an_idle_machine_and_says_how_busy_it_was(monkeypatch):
    from chartproof import bench_render

    measured = bench_render.cpu_busy(0.2)
    assert measured is None or 0.0 <= measured <= 1.0, measured
    busy = iter([0.9, 0.6, 0.05])
    monkeypatch.setattr(bench_render, "cpu_busy", lambda window=1.0: next(busy))
    monkeypatch.setattr(bench_render, "SETTLE_LIMIT", 30)
    waited, last = bench_render.settle()
    assert last == 0.05 and waited < 30, "it waits until the machine is idle, and no longer"
    monkeypatch.setattr(bench_render, "cpu_busy", lambda window=1.0: 0.9)
    waited, last = bench_render.settle(limit=0.2)
    assert last == 0.9 and waited >= 0.2, "a machine that never settles is timed anyway, past the limit"
    line = bench_render.how_busy({"load_before": 0.5, "busy_before": 0.04, "settled_s": 12.0})
    assert line == "0.5 load, 4% busy, after 12 s settling", line


class _Timed(Exception):
    """What the stand-in for the bench's timer raises: the first timed command was reached."""


def test_the_benches_obtain_every_pinned_tool_before_they_time_anything(monkeypatch, tmp_path):
    # A bench run from a cold cache once timed a promtool build inside the render tier's first test.
    from chartproof import bench_render
    from chartproof.toolchain import Toolchain

    events: list[str] = []
    monkeypatch.setattr(Toolchain, "install", lambda self, tools=None, **kw: events.append(f"install {tools}") or [])
    monkeypatch.setattr(Toolchain, "path", lambda self, tool: tmp_path / tool)

    def timed(cmd, **kwargs):
        events.append("timed")
        raise _Timed

    for module in (bench_render, bench_conformance):
        monkeypatch.setattr(module, "timed", timed)
    for measure in (bench_render.measure_render_tier, bench_conformance.measure_conformance):
        events.clear()
        try:
            measure()
        except _Timed:
            pass
        assert events[:2] == ["install None", "timed"], f"{measure.__name__}: {events}"
