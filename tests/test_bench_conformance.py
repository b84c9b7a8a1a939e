"""The conformance bench reads a run's wall time and verdicts, and a failing run meets no goal."""

from __future__ import annotations

from chartproof import bench_conformance


def test_a_run_reports_its_verdicts_and_a_failing_one_meets_no_goal(tmp_path):
    suite = tmp_path / "test_tiny.py"
    suite.write_text("def test_holds():\n    assert True\n\ndef test_breaks():\n    assert 1 == 2\n")
    run = bench_conformance.conformance_run(0, tmp_path, suites=str(suite))
    assert (run["tests"], run["failed"], run["exit"]) == (2, 1, 1), run
    assert run["wall_s"] > 0
    suite.write_text("def test_holds():\n    assert True\n")
    result = bench_conformance.measure_conformance(workers=2, serial=True, suites=str(suite))
    assert result["parallel"]["exit"] == 0 and result["serial"]["tests"] == 1, result
    assert result["wall_goal_met"], "a two-second run of one passing test is under the goal"
    lines = bench_conformance.summary(result)
    assert any("serial / parallel" in line for line in lines), lines
    result["parallel"]["exit"] = 1
    assert "NOT met" in bench_conformance.summary({**result, "wall_goal_met": False})[-2]
