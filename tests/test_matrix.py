"""The version matrix: choosing older pinned releases (versions.py), combining cells' reports (matrix.py), and one
real cell, helm 3.8.2 on a Kubernetes 1.26 control plane, run end to end on a tiny selection of the suites."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from chartproof import matrix
from chartproof.clusters.embedded import EmbeddedProvider
from chartproof.crdgen import load_crds
from chartproof.errors import UsageError
from chartproof.operators import crds_refused_by, external_secrets_crds
from chartproof.run import Run, RunOptions
from chartproof.toolchain import Toolchain
from chartproof.toolchain.pins import ToolPin, load_pins
from chartproof.versions import control_plane_pins, helm_pin, pin_for_release, pinned_minors
from tests.conftest import REPO


def _pin(name: str, version: str) -> ToolPin:
    return ToolPin(name=name, version=version, module="example.org/x", package="example.org/x")


PINS = {p.name: p for p in [
    _pin("helm", "v3.22.0"), _pin("helm-3.8", "v3.8.2"),
    _pin("kube-apiserver", "v1.36.1"), _pin("kube-controller-manager", "v1.36.1"), _pin("kube-scheduler", "v1.36.1"),
    _pin("etcd", "v3.6.10"), _pin("kubectl", "v1.36.1"),
    _pin("kube-apiserver-1.26", "v1.26.13"), _pin("kube-controller-manager-1.26", "v1.26.13"),
    _pin("kube-scheduler-1.26", "v1.26.13"), _pin("etcd-1.26", "v3.5.21"),
    _pin("kube-apiserver-1.25", "v1.25.16"),  # an incomplete control plane: no controller manager, no scheduler
]}


# -- choosing versions -----------------------------------------------------------------------------------------
def test_helm_minor_selects_its_pin_and_the_current_minor_the_current_pin():
    assert helm_pin(PINS, None) == "helm"
    assert helm_pin(PINS, "3.8") == "helm-3.8"
    assert helm_pin(PINS, "v3.8.2") == "helm-3.8"
    assert helm_pin(PINS, "3.22") == "helm"
    assert pinned_minors(PINS, "helm") == ["3.8", "3.22"]


def test_unpinned_helm_is_refused_with_the_pinned_choices():
    with pytest.raises(UsageError, match=r"no helm 3\.9 is pinned.*3\.8, 3\.22"):
        helm_pin(PINS, "3.9")
    assert pin_for_release(PINS, "helm", "3.8.1") is None, "a whole version must be the pinned release"


def test_kube_minor_selects_every_component_of_that_minor_and_etcd_of_that_kubernetes():
    chosen = control_plane_pins(PINS, "1.26")
    assert chosen == {"kube-apiserver": "kube-apiserver-1.26", "kube-controller-manager": "kube-controller-manager-1.26",
                      "kube-scheduler": "kube-scheduler-1.26", "etcd": "etcd-1.26", "kubectl": "kubectl"}
    assert control_plane_pins(PINS, "1.36") == control_plane_pins(PINS, None)
    assert set(control_plane_pins(PINS, None).values()) == set(control_plane_pins(PINS, None))


def test_incomplete_or_unpinned_control_plane_is_refused():
    with pytest.raises(UsageError, match="kube-controller-manager-1.25 is missing"):
        control_plane_pins(PINS, "1.25")
    with pytest.raises(UsageError, match=r"takes one of: 1\.25, 1\.26, 1\.36"):
        control_plane_pins(PINS, "1.19")
    with pytest.raises(UsageError, match="not a version"):
        control_plane_pins(PINS, "latest")


def test_embedded_provider_gives_kwokctl_the_chosen_binaries_and_version(tmp_path):
    """The kwokctl configuration names the 1.26 binaries and kubeVersion v1.26.x (explicit paths stand in for
    binaries: only the configuration is checked here; the real cell below starts one)."""
    pins = load_pins()
    if "kube-apiserver-1.26" not in pins:
        pytest.fail("the pins of the Kubernetes 1.26 control plane are missing from pins.toml")
    tools = [*control_plane_pins(pins, "1.26").values(), "kwok", "kwokctl"]
    explicit = {}
    for tool in tools:
        path = tmp_path / tool
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        explicit[tool] = str(path)
    provider = EmbeddedProvider(Toolchain(explicit=explicit), kube_version="1.26")
    options = next(yaml.safe_load_all(provider.kwokctl_config()))["options"]
    assert options["kubeVersion"] == pins["kube-apiserver-1.26"].version
    assert options["kubeApiserverBinary"] == explicit["kube-apiserver-1.26"]
    assert options["kubeSchedulerBinary"] == explicit["kube-scheduler-1.26"]
    assert options["kubeControllerManagerBinary"] == explicit["kube-controller-manager-1.26"]
    current = EmbeddedProvider(Toolchain(explicit={t.removesuffix("-1.26"): p for t, p in explicit.items()}))
    assert current.kube_release() == pins["kube-apiserver"].version


def test_run_with_helm_3_8_calls_the_helm_3_8_binary_for_renders_too(tmp_path):
    run = Run(RunOptions(helm_version="3.8", report_dir=str(tmp_path)), run_dir=tmp_path / "run")
    assert run.helm.binary == Toolchain().path("helm-3.8")
    printed = run.helm.run("version", "--short").stdout
    assert printed.startswith(load_pins()["helm-3.8"].version), f"expected helm 3.8.2, it says {printed!r}"
    assert not run.helm.use_renderer, "chartproof-render links the current helm: helm 3.8 must render itself"
    assert Run(RunOptions(report_dir=str(tmp_path)), run_dir=tmp_path / "run3").helm.use_renderer, \
        "the current helm renders through chartproof-render (and choosing 3.8 in one run changes no other run)"
    with pytest.raises(UsageError, match="no helm 2.17"):
        Run(RunOptions(helm_version="2.17", report_dir=str(tmp_path)), run_dir=tmp_path / "run2").validate()


def test_kube_version_on_an_existing_cluster_is_refused(tmp_path):
    run = Run(RunOptions(cluster="existing", kube_version="1.26", kubeconfig=str(tmp_path / "none"),
                         report_dir=str(tmp_path)), run_dir=tmp_path / "run")
    with pytest.raises(UsageError, match="chooses the embedded control plane"):
        run.validate()


# -- combining cells -------------------------------------------------------------------------------------------
def _summary(directory: Path, tests: dict[str, tuple[str, str]], server: str) -> Path:
    """A cell's summary.json as reports.py writes it, with only the fields the matrix reads."""
    directory = directory / "run-1"  # <cell>/<run id>/, as pytest writes it under --chartproof-report-dir <cell>
    directory.mkdir(parents=True)
    (directory.parent / "latest").symlink_to("run-1")  # reports.py's link: the same run, not another one
    entries = [{"nodeid": nodeid, "outcome": outcome, "contracts": ["ADP-X-01"] if "adaptive" in nodeid else [],
                "message": message} for nodeid, (outcome, message) in tests.items()]
    totals = {k: sum(1 for e in entries if e["outcome"] == k) for k in ("passed", "failed", "skipped", "error")}
    (directory / "summary.json").write_text(json.dumps({"tests": entries, "totals": totals,
                                                        "cluster": {"kubernetes": server}}))
    return directory


def _row(tmp_path: Path, cell: str, helm: str, kube: str, tests: dict[str, tuple[str, str]]) -> dict:
    if tests is not None:
        _summary(tmp_path / cell, tests, kube)
    return {"cell": cell, "helm": helm, "kubernetes": kube, "seconds": 12.5, "exit_code": 0,
            **matrix.read_cell(tmp_path / cell)}


def _rows(tmp_path):
    same = ("passed", "")
    return [
        _row(tmp_path, "a", "v3.8.2", "v1.26.13", {"t::same": same, "t::adaptive_api": ("failed", "no such kind\nX"),
                                                   "t::msg": ("failed", "first wording"), "t::only_new": same}),
        _row(tmp_path, "b", "v3.22.0", "v1.36.1", {"t::same": same, "t::adaptive_api": same,
                                                   "t::msg": ("failed", "second wording"), "t::only_new": same}),
        _row(tmp_path, "c", "v3.22.0", "v1.26.13", {"t::same": same, "t::adaptive_api": ("skipped", "needs 1.27"),
                                                    "t::msg": ("failed", "x")}),
    ]


def test_differences_name_where_each_promise_holds_and_where_it_fails(tmp_path):
    diffs = matrix.differences(_rows(tmp_path))
    assert [d["test"] for d in diffs] == ["t::adaptive_api", "t::only_new"], "same outcome everywhere is no difference"
    api = diffs[0]
    assert api["holds_on"] == ["helm v3.22.0 × Kubernetes v1.36.1"]
    assert api["fails_on"] == ["helm v3.8.2 × Kubernetes v1.26.13"]
    assert api["skipped_on"] == ["helm v3.22.0 × Kubernetes v1.26.13"]
    assert api["contracts"] == ["ADP-X-01"]
    line = matrix.difference_line(api)
    assert line.startswith("ADP-X-01 t::adaptive_api: holds on helm v3.22.0 × Kubernetes v1.36.1; fails on "
                           "helm v3.8.2 × Kubernetes v1.26.13 (no such kind X); skipped on "), line
    assert diffs[1]["absent_on"] == ["helm v3.22.0 × Kubernetes v1.26.13"]


def test_a_cell_without_results_is_reported_not_compared(tmp_path):
    rows = _rows(tmp_path)[:2] + [_row(tmp_path, "d", "v3.8.2", "v1.36.1", None)]
    assert rows[2]["totals"] is None
    assert [d["test"] for d in matrix.differences(rows)] == ["t::adaptive_api"], "an empty cell makes no test differ"
    assert not matrix.ok(rows)
    path, _ = matrix.write(rows, tmp_path / "out")
    assert "Cells that produced no results (see their logs): d" in path.read_text()


def test_written_matrix_has_a_row_per_cell_and_a_line_per_difference(tmp_path):
    rows = _rows(tmp_path)
    path, diffs = matrix.write(rows, tmp_path)
    text = path.read_text()
    assert "| a | v3.8.2 | v1.26.13 (v1.26.13) | 2 | 2 | 0 | 0 | 12s | a/run-1/report.html |" in text, text
    assert sum(line.startswith("- ") for line in text.splitlines()) == len(diffs) == 2
    data = json.loads((tmp_path / "matrix.json").read_text())
    assert [c["cell"] for c in data["cells"]] == ["a", "b", "c"] and "tests" not in data["cells"][0]
    assert data["differences"] == diffs
    assert not matrix.ok(rows), "cells with failures make the matrix fail"


def test_a_cell_names_the_pins_it_runs_so_they_are_built_before_its_clock_starts():
    assert set(matrix.Cell("3.8", "1.26").tools(PINS)) == {
        "helm-3.8", "kube-apiserver-1.26", "kube-controller-manager-1.26", "kube-scheduler-1.26", "etcd-1.26", "kubectl"}
    assert matrix.Cell("current", "current").tools(PINS)[0] == "helm"
    assert matrix.Cell.parse("current:1.26").pytest_options() == ["--chartproof-kube-version", "1.26"]
    assert matrix.Cell.parse("current:current").pytest_options() == [], "a current cell is the plain run"


def test_bad_cells_stop_the_matrix_before_any_run(tmp_path, capsys):
    assert matrix.main(["--cells", "3.8", "--report-dir", str(tmp_path)]) == 2
    assert "bad cell '3.8'" in capsys.readouterr().err
    assert matrix.main(["--cells", "3.9:current", "--report-dir", str(tmp_path)]) == 2
    assert "no helm 3.9 is pinned" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# -- one real cell ---------------------------------------------------------------------------------------------
@pytest.mark.cluster
def test_one_real_cell_helm_3_8_on_kubernetes_1_26(tmp_path):
    """A tiny selection of the cluster suite on the cell helm 3.8.2 x Kubernetes 1.26: the cell's own report says
    its API server was v1.26.13 and its run chose helm 3.8, and the promises hold there (the helm binary that
    choice runs is checked above)."""
    pins = load_pins()
    row = matrix.run_cell(matrix.Cell("3.8", "1.26"), pins, tmp_path, ["suites/cluster/test_gpu_cluster.py"],
                          ["-k", "8_gpus or claim_binds", "-n", "0"])
    log = Path(row["log"]).read_text()
    assert row["totals"] is not None, f"the cell wrote no summary.json; its log ends: {log[-2000:]}"
    assert row["helm"] == pins["helm-3.8"].version and row["kubernetes"] == pins["kube-apiserver-1.26"].version
    assert row["server"] == pins["kube-apiserver-1.26"].version, f"the cell's API server said {row['server']}"
    totals = row["totals"]
    assert totals["passed"] >= 2 and totals["failed"] == totals["error"] == 0, f"{totals}: {log[-3000:]}"
    options = json.loads((Path(row["report"]) / "results.json").read_text())["options"]
    assert (options["helm_version"], options["kube_version"]) == ("3.8", "1.26")


# -- suite defects of the older cells --------------------------------------------------------------------------
def test_eso_crds_are_refused_below_kubernetes_1_30_and_served_from_it():
    """The pinned ESO release's generated CRDs use selectableFields: a 1.26 API server refuses them (so the ESO
    tests skip there, saying so), 1.30 and later serve them."""
    crds = load_crds(external_secrets_crds(Toolchain()))
    refused = crds_refused_by(crds, "v1.26.13")
    assert refused and all("selectableFields (Kubernetes 1.30+)" in line for line in refused), refused
    assert any(line.startswith("externalsecrets.external-secrets.io ") for line in refused), refused
    for served in ("v1.30.0", "v1.36.1", "unknown"):
        assert crds_refused_by(crds, served) == [], f"{served}: {crds_refused_by(crds, served)}"


HELM_38_FIXTURE_FILES = ("suites/adaptive/test_adaptive_harmony_gpus.py", "suites/monitoring/test_monitoring_render_objects.py")


def test_helm_3_8_refusing_the_default_render_fails_the_promises_not_their_setup(tmp_path):
    """helm 3.8.2 renders as Kubernetes 1.23 and the charts ask for >=1.26: the tests built on the default render
    must fail with helm's refusal (a verdict), none may error in setup (a suite defect)."""
    junit = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
                           "--chartproof-helm", "3.8", "--report-dir", str(tmp_path / "reports"),
                           f"--junitxml={junit}", *HELM_38_FIXTURE_FILES],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    out = proc.stdout + proc.stderr
    assert junit.is_file(), out[-3000:]
    cases = ET.parse(junit).getroot().iter("testcase")
    errors, failures = [], []
    for case in cases:
        name = f"{case.get('classname')}::{case.get('name')}"
        errors += [name for _ in case.iter("error")]
        failures += [(name, f.get("message") or "") for f in case.iter("failure")]
    assert not errors, f"tests that errored in setup on helm 3.8 (a suite defect): {errors}\n{out[-3000:]}"
    assert len(failures) >= 20, f"expected the default-render promises to fail on helm 3.8, found {len(failures)}"
    wrong = [name for name, message in failures if "kubeVersion" not in message]
    assert not wrong, f"failures that do not carry helm's kubeVersion refusal: {wrong}"


@pytest.mark.cluster
def test_external_secrets_tests_skip_on_a_kubernetes_1_26_server(tmp_path):
    """On the 1.26 cell the ESO tests skip, with the reason read from the cluster's API server, instead of
    erroring when it refuses the CRDs."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-rs", "-q",
                           "--chartproof-kube-version", "1.26", "--report-dir", str(tmp_path / "reports"),
                           "suites/adaptive/test_adaptive_external_secrets_live.py"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("1 skipped in "), f"expected the one ESO test to skip, the run says {summary!r}"
    assert "its API server (v1.26.13) refuses the release's CRDs" in out and "selectableFields" in out, out[-3000:]
