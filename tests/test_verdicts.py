"""Verdicts: contract markers, promise statements in failures, suite errors apart from failures, selection
by contract id, coverage, and an uninstall that leaves nothing for the next test to trip on."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from chartproof.contracts import CONTRACTS_DIR, catalog, lookup
from tests.conftest import run_pytest


def results(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())


MIXED = """
import pytest

@pytest.mark.contract("ADP-POOL-02")
def test_breaks_a_promise():
    assert {"GPU_COUNT": "4"} == {"GPU_COUNT": "8"}, "pool B: expected GPU_COUNT 8"

@pytest.mark.contract("ADP-POOL-01")
def test_crashes():
    {}["spec"]

@pytest.mark.contract("ADP-NAME-02")
def test_wholly_inferred_passes():
    pass

@pytest.mark.contract("ADP-TB-05", extension=True)
def test_inferred_part_fails():
    assert False, "claim size: expected 10Gi, found 5Gi"
"""


def test_failures_quote_the_promise_and_crashes_are_suite_errors(tmp_path):
    proc = run_pytest(tmp_path, MIXED)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    pool = lookup("ADP-POOL-02")
    assert f"ADP-POOL-02 [promise]: {pool.quote()[:60]}" in out, out
    assert "ADP-TB-05 [extension (inferred, not a README promise)]" in out, out
    assert "suite error: the test ended in an unexpected KeyError" in out, out
    assert "2 failed, 1 passed, 1 error" in out, out
    data = results(tmp_path)
    assert data["counts"] == {"failed": 2, "error": 1, "passed": 1}
    by_test = {r["test"].split("::")[-1]: r for r in data["results"]}
    assert by_test["test_crashes"]["outcome"] == "error"
    assert by_test["test_breaks_a_promise"]["contracts"] == ["ADP-POOL-02"]
    verdicts = data["contracts"]
    assert set(verdicts) == set(catalog())
    assert verdicts["ADP-POOL-02"]["promise"] == "failed"
    assert verdicts["ADP-POOL-01"]["promise"] == "error"
    assert verdicts["ADP-NAME-02"] == {"promise": "not-covered", "extension": "passed", "inferred": True}
    assert verdicts["ADP-TB-05"]["extension"] == "failed" and verdicts["ADP-TB-05"]["promise"] == "not-covered"
    assert verdicts["HYP-TOL-01"]["promise"] == "not-covered"
    report = (tmp_path / "reports" / "latest" / "report.md").read_text()
    assert "| ADP-TB-05 | not-covered | failed |" in report


def test_junit_carries_the_contract_ids(tmp_path):
    proc = run_pytest(tmp_path, MIXED, "--junitxml", str(tmp_path / "junit.xml"))
    assert proc.returncode == 1
    junit = (tmp_path / "junit.xml").read_text()
    assert '<property name="contracts" value="ADP-POOL-02"' in junit, junit[:2000]


def test_contract_option_selects_the_tests_of_those_ids(tmp_path):
    proc = run_pytest(tmp_path, MIXED, "--contract", "adp-pool-02,ADP-NAME-02")
    assert "1 failed, 1 passed, 2 deselected" in proc.stdout, proc.stdout


def test_contract_coverage_names_unknown_ids_and_ids_without_tests(tmp_path):
    proc = run_pytest(tmp_path, """
import pytest
@pytest.mark.contract("ADP-POOL-99")
def test_x(): pass
""", "--collect-only", "--contract-coverage")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "names unknown contract id 'ADP-POOL-99'" in out
    assert "ADP-POOL-02 has no test" in out and "HYP-TOL-01 has no test" in out


def test_catalog_is_complete_and_quotes_statements():
    ids = catalog()
    assert len(ids) == 113
    assert {c.chart for c in ids.values()} == {"adaptive", "monitoring", "hyperpod"}
    assert "ADP-S3-02" in ids and ids["ADP-S3-02"].tiers == "R"  # ids with digits in the middle part
    assert ids["MON-01"].section == "Monitoring chart"
    assert ids["HYP-HMA-03"].inferred and not ids["HYP-HMA-02"].inferred


def test_shipped_contracts_match_the_project_contracts():
    shared = Path(__file__).resolve().parents[2] / "shared" / "contracts"
    if not shared.is_dir():
        pytest.skip(f"no project contracts at {shared} to compare with")
    for path in shared.glob("*.md"):
        assert (CONTRACTS_DIR / path.name).read_text() == path.read_text(), f"{path.name} differs from the shipped copy"


def test_uninstall_leftovers_are_reported_and_removed_so_the_next_install_works(tmp_path):
    """A release whose objects cannot go away (finalizers nobody runs) fails the test that uninstalled it,
    and the suite removes them: installing the same chart again (the next test) still works."""
    name = f"cp-stuck-{secrets.token_hex(3)}"
    chart = tmp_path / "stuck"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: stuck\nversion: 0.1.0\n")
    (chart / "templates" / "objects.yaml").write_text(
        f"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\n"
        "  finalizers: [chartproof.dev/never]\nrules: []\n---\n"
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  finalizers: [chartproof.dev/never]\n")
    proc = run_pytest(tmp_path, f"""
import pytest
from chartproof.errors import RenderError

def install_and_uninstall(install_chart, cluster):
    rel = install_chart({str(chart)!r}, release="stuck")
    with pytest.raises((AssertionError, RenderError), match="left .* behind") as info:
        rel.uninstall(timeout=5)
    assert "ClusterRole {name}" in str(info.value), str(info.value)
    cluster.wait_for(lambda: not cluster.kubectl.exists("clusterrole", {name!r}), timeout=30, what="cleanup")

def test_first(install_chart, cluster):
    install_and_uninstall(install_chart, cluster)

def test_second_install_of_the_same_chart_is_not_poisoned(install_chart, cluster):
    install_and_uninstall(install_chart, cluster)
""")
    assert "2 passed" in proc.stdout, proc.stdout + proc.stderr


def test_crds_uninstalled_right_after_their_install_go_at_once(tmp_path):
    """A release's CRDs deleted before the API server serves them keep their cleanup finalizer for minutes
    ("storage is (re)initializing", retried with backoff); the uninstall first waits until they are listable,
    so they go within the uninstall's own short timeout and nothing is reported left behind."""
    group = f"cp{secrets.token_hex(3)}.chartproof.dev"
    chart = tmp_path / "crds"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: crds\nversion: 0.1.0\n")
    (chart / "templates" / "crds.yaml").write_text("".join(
        f"---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: kind{i}s.{group}\n"
        f"spec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: kind{i}s, singular: kind{i}, kind: Kind{i}}}\n"
        "  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n"
        for i in range(6)))
    proc = run_pytest(tmp_path, f"""
def test_install_then_uninstall(install_chart, cluster):
    rel = install_chart({str(chart)!r}, release="crds")
    assert rel.uninstall(timeout=20) == []
    assert not [n for n in cluster.kubectl("get", "crd", "-o", "name").split() if n.endswith({group!r})]
""")
    assert "1 passed" in proc.stdout, proc.stdout + proc.stderr
