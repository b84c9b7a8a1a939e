"""The report files of a run: summary.json's shape and verdict rules, results.json kept for tools,
JUnit defaulted into the report directory (and left where the user put it), the same redactor over all."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from _pytest.reports import TestReport

from chartproof.contracts import catalog
from chartproof.redaction import MASK, Redactor
from chartproof.report_html import render_html
from chartproof.reports import ReportWriter, gpu_inventory, result_note
from tests.conftest import run_pytest

SECRET = "Zq8-report-secret-41c9e7"


def report(nodeid: str, outcome: str, when: str = "call", contracts: str = "", *, extension: bool = False,
           error: bool = False, message: str = "", duration: float = 0.5) -> TestReport:
    props = [("contracts", contracts)] if contracts else []
    if extension:
        props.append(("extension", "true"))
    if error:
        props.append(("chartproof_outcome", "error"))
    longrepr = None
    if outcome == "skipped":
        longrepr = ("t.py", 1, f"Skipped: {message}")
    elif outcome == "failed":
        longrepr = f"E   AssertionError: {message}"
    return TestReport(nodeid, ("t.py", 1, nodeid), {}, outcome, longrepr, when, user_properties=props, duration=duration)


def writer_with(tmp_path: Path, reports: list[TestReport], redactor: Redactor | None = None) -> ReportWriter:
    writer = ReportWriter(tmp_path / "reports" / "run-1", redactor=redactor or Redactor())
    for r in reports:
        writer.add(r)
    return writer


CLUSTER = {"name": "cp-1", "provider": "embedded", "simulated": True, "server_version": "v1.36.1",
           "nodes": [{"node": "n1", "instance-type": "ml.p5.48xlarge", "nvidia.com/gpu": "8", "vpc.amazonaws.com/efa": "32"},
                     {"node": "n2", "instance-type": "ml.p5.48xlarge", "nvidia.com/gpu": "8", "vpc.amazonaws.com/efa": "32"},
                     {"node": "n3", "instance-type": "m5.4xlarge", "nvidia.com/gpu": "0"}]}
CHARTS = [{"name": "adaptive", "reference": "charts/adaptive", "kind": "dir", "chart": "adaptive", "version": "0.6.2"}]


def test_summary_shape_and_verdicts(tmp_path):
    writer = writer_with(tmp_path, [
        report("t.py::a", "passed", contracts="ADP-META-01"),
        report("t.py::b", "failed", contracts="ADP-META-01", message="expected x, found y"),  # failed beats passed
        report("t.py::c", "failed", contracts="ADP-META-02", error=True, message="KeyError"),  # a suite error
        report("t.py::d", "skipped", contracts="ADP-NAME-01", message="not here"),
        report("t.py::e", "passed", contracts="ADP-NAME-03"),
        report("t.py::e", "failed", when="teardown", contracts="ADP-NAME-03", message="cleanup"),  # error in teardown
        report("t.py::f", "passed", contracts="ADP-NAME-02", extension=True),
        report("t.py::g", "passed", contracts="ADP-CP-01"),
        report("t.py::h", "skipped", contracts="ADP-CP-01"),
    ])
    writer.write(run_id="run-1", options={}, charts=CHARTS, cluster=CLUSTER, notes=["a note"])
    out = tmp_path / "reports" / "run-1"
    summary = json.loads((out / "summary.json").read_text())
    assert {"duration_s", "cluster", "charts", "tests", "contracts", "totals"} <= set(summary)
    assert summary["cluster"]["provider"] == "embedded" and summary["cluster"]["kubernetes"] == "v1.36.1"
    assert len(summary["cluster"]["nodes"]) == 3
    assert summary["charts"] == {"adaptive": {"ref": "charts/adaptive", "version": "0.6.2", "chart": "adaptive",
                                              "appVersion": None}}
    assert set(summary["contracts"]) == set(catalog())
    assert summary["contracts"]["ADP-META-01"] == "failed"
    assert summary["contracts"]["ADP-META-02"] == "error"
    assert summary["contracts"]["ADP-NAME-01"] == "skipped"
    assert summary["contracts"]["ADP-NAME-03"] == "error"
    assert summary["contracts"]["ADP-CP-01"] == "passed"
    assert summary["contracts"]["ADP-NAME-02"] == "not-covered" and summary["extensions"]["ADP-NAME-02"] == "passed"
    assert summary["contracts"]["ADP-OIDC-01"] == "not-covered"
    assert set(summary["contracts"].values()) <= {"passed", "failed", "error", "skipped", "not-covered"}
    tests = {t["nodeid"]: t for t in summary["tests"]}
    assert len(summary["tests"]) == 8, "one entry per test, its phases merged"
    assert tests["t.py::e"]["outcome"] == "error" and tests["t.py::e"]["duration_s"] == 1.0
    assert tests["t.py::b"]["message"] == "AssertionError: expected x, found y"  # what was raised, without pytest's E
    assert tests["t.py::d"]["message"] == "Skipped: not here"
    for test in summary["tests"]:
        assert {"nodeid", "outcome", "contracts", "duration_s", "message"} <= set(test)
    assert summary["totals"] == {"passed": 3, "failed": 1, "skipped": 2, "error": 2}
    # results.json keeps what tools read
    results = json.loads((out / "results.json").read_text())
    assert {"test", "contracts", "outcome"} <= set(results["results"][0]) and results["counts"]["passed"] == 4
    assert (tmp_path / "reports" / "latest").resolve() == out.resolve()
    assert "report.html" in (out / "report.md").read_text()


def test_a_results_note_is_the_exception_not_the_line_it_was_raised_on(tmp_path):
    traceback = ("    def test_x():\n>       install()\nE       chartproof.errors.RenderError: helm install failed: "
                 "no matches for kind \"ScaledObject\"\n\nsuites/adaptive/test_x.py:12: RenderError")
    crashed = TestReport("t.py::x", ("t.py", 1, "x"), {}, "failed", traceback, "call")
    entry = writer_with(tmp_path, [crashed]).results[0]
    assert result_note(entry) == "chartproof.errors.RenderError: helm install failed: no matches for kind \"ScaledObject\""
    assert result_note({"reason": "a\nsuites/x.py:3: KeyError"}) == "suites/x.py:3: KeyError"  # no E line: the last
    assert result_note({"outcome": "passed"}) == ""


def test_gpu_inventory_groups_by_instance_type():
    groups = gpu_inventory(CLUSTER["nodes"])
    assert groups[0] == {"instance-type": "ml.p5.48xlarge", "nodes": 2,
                         "per-node": {"nvidia.com/gpu": 8, "vpc.amazonaws.com/efa": 32},
                         "total": {"nvidia.com/gpu": 16, "vpc.amazonaws.com/efa": 64}}
    assert groups[1] == {"instance-type": "m5.4xlarge", "nodes": 1, "per-node": {}, "total": {}}


def test_every_output_goes_through_the_same_redactor(tmp_path):
    redactor = Redactor()
    redactor.add_values({"secrets": {"cookiesSecret": SECRET}})
    writer = writer_with(tmp_path, [report("t.py::leaky", "failed", contracts="ADP-SECRET-02",
                                           message=f"found {SECRET[:-3]}...")], redactor)
    writer.write(run_id="run-1", options={"values": SECRET}, charts=CHARTS, cluster=CLUSTER, notes=[f"note {SECRET}"])
    out = tmp_path / "reports" / "run-1"
    for name in ("summary.json", "results.json", "report.md", "report.html"):
        text = (out / name).read_text()
        assert SECRET[:12] not in text and SECRET[-12:-3] not in text, name
    assert MASK in (out / "report.html").read_text()


def test_the_html_is_self_contained_and_escaped(tmp_path):
    writer = writer_with(tmp_path, [report("t.py::x[<script>alert(1)</script>]", "failed", contracts="ADP-META-01",
                                           message="expected <b>, found &")])
    writer.write(run_id="run-1", options={}, charts=CHARTS, cluster=CLUSTER, notes=[])
    page = (tmp_path / "reports" / "run-1" / "report.html").read_text()
    assert "<script" not in page and "&lt;script&gt;" in page and "expected &lt;b&gt;, found &amp;" in page
    assert not re.search(r"""(src|href|srcset)\s*=\s*["']?\s*(https?:)?//""", page) and "<link" not in page
    assert "url(" not in page and "@import" not in page
    assert "default-src 'none'" in page
    summary = json.loads((tmp_path / "reports" / "run-1" / "summary.json").read_text())
    assert render_html(summary, redactor=Redactor()) == page


def test_junit_is_written_into_the_report_dir_with_contract_properties(tmp_path):
    proc = run_pytest(tmp_path, """
import pytest
@pytest.mark.contract("ADP-META-01", "ADP-META-02")
def test_one():
    assert 1 == 2, "expected one thing, found another"
def test_two():
    pass
""")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    latest = tmp_path / "reports" / "latest"
    for name in ("junit.xml", "summary.json", "report.html", "report.md", "results.json"):
        assert (latest / name).is_file(), name
    suite = ET.parse(latest / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_one"].iter("property")}
    assert props["contracts"] == "ADP-META-01,ADP-META-02"
    assert cases["test_one"].find("failure") is not None


def test_a_junitxml_the_user_gave_is_left_where_it_is(tmp_path):
    mine = tmp_path / "ci" / "results.xml"
    proc = run_pytest(tmp_path, "def test_ok(): pass\n", f"--junitxml={mine}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert mine.is_file() and not (tmp_path / "reports" / "latest" / "junit.xml").exists()
    assert (tmp_path / "reports" / "latest" / "summary.json").is_file()
