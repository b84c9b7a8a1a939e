"""`chartproof certify` against an embedded cluster shaped like a HyperPod cluster, reached as a cluster
Chartproof did not create (`--kubeconfig`): the read-only preflight passes on a healthy one and changes
nothing, names exactly the unhealthy nodes when two are under or failed a deep health check, and the smoke
certification installs, tests and removes only what it created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chartproof.clusters.nodes import DHC_LABEL, HEALTH_LABEL
from chartproof.kube import wait_for
from chartproof.run import RUN_LABEL
from tests.conftest import embedded_cluster, run_cli

SHAPE = "ml.p5.48xlarge=2,ml.p5.48xlarge:mislabelled=1,ml.trn1.32xlarge=1,cpu=1"
MISLABELLED = "ml-p5-48xlarge-mislabelled-0"  # says p5 (8 GPUs), has 4
UNHEALTHY = {"ml-p5-48xlarge-1": ("Unschedulable", "InProgress", True),
             "ml-trn1-32xlarge-0": ("UnschedulablePendingReplacement", "Failed", True)}


def device_plugin(name: str, image: str) -> dict:
    """A stand-in for the device plugin DaemonSet (no GPU exists here, so no real plugin can run): the
    preflight looks for a Running plugin pod on every accelerator node, and kwok runs this one there."""
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "device-plugins"},
            "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                "tolerations": [{"operator": "Exists"}], "containers": [{"name": "plugin", "image": image}]}}}}


@pytest.fixture(scope="module")
def hyperpod_cluster():
    with embedded_cluster("certify", SHAPE) as cluster:
        cluster.kubectl("create", "namespace", "device-plugins")
        cluster.apply([device_plugin("nvidia-device-plugin", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"),
                       device_plugin("neuron-device-plugin", "public.ecr.aws/neuron/neuron-device-plugin:2.22.4.0")])
        wait_for(lambda: sum(1 for p in cluster.kubectl.items("pods", namespace="device-plugins")
                             if (p.get("status") or {}).get("phase") == "Running") >= 10,
                 timeout=120, what="device plugin stand-ins Running on every node")
        yield cluster


def certify(cluster, tmp_path: Path, *args: str):
    reports = tmp_path / "reports"
    proc = run_cli("certify", "--kubeconfig", str(cluster.kubeconfig), "--report-dir", str(reports), *args, timeout=900)
    summaries = sorted(reports.glob("*/summary.json"))
    summary = json.loads(summaries[-1].read_text()) if summaries else {}
    return proc, summary


def rows(summary: dict) -> dict[str, dict]:
    """Preflight rows by check name, and by ``name/chart`` for the checks made per chart."""
    out = {}
    for r in summary["field"]["preflight"]:
        out.setdefault(r["name"], r)
        if r.get("chart"):
            out[f"{r['name']}/{r['chart']}"] = r
    return out


def state(cluster) -> dict:
    """What certify must not change: every namespace, and every object of the kinds a smoke install makes."""
    out = {}
    for kind in ("namespaces", "deployments", "daemonsets", "statefulsets", "secrets", "configmaps", "nodes"):
        out[kind] = sorted((o["metadata"].get("namespace", ""), o["metadata"]["name"], o["metadata"]["resourceVersion"])
                           for o in cluster.kubectl.items(kind, all_namespaces=kind not in ("namespaces", "nodes")))
    out["nodes"] = [(ns, name) for ns, name, _ in out["nodes"]]  # kwok renews node status; names must stay
    return out


def test_read_only_preflight_on_a_healthy_hyperpod_cluster_passes_and_changes_nothing(hyperpod_cluster, tmp_path):
    before = state(hyperpod_cluster)
    proc, summary = certify(hyperpod_cluster, tmp_path, "--read-only", "--chart", "hyperpod=charts/hyperpod")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = rows(summary)
    failing = {k: r["evidence"] for k, r in found.items() if r["status"] == "fail"}
    assert not failing, f"a healthy cluster failed preflight checks: {failing}"
    for check in ("hyperpod node health", "gpu device plugin", "rbac", "kubernetes version/hyperpod"):
        assert found[check]["status"] == "pass", f"{check}: expected pass, found {found[check]}"
    mismatch = found["gpu allocatable"]
    assert mismatch["status"] == "warn" and MISLABELLED in mismatch["evidence"], \
        f"a GPU node whose GPUs differ from its instance type's must be a named warning: {mismatch}"
    assert "ml-p5-48xlarge-0" not in mismatch["evidence"], mismatch
    # The same cluster for the Adaptive chart: 8 GPUs per replica do not divide the mislabelled node's 4.
    proc, summary = certify(hyperpod_cluster, tmp_path / "adaptive", "--read-only", "--chart", "adaptive=charts/adaptive")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failing = [r for r in summary["field"]["preflight"] if r["status"] == "fail"]
    assert [r["name"] for r in failing] == ["gpus per replica"] and MISLABELLED in failing[0]["evidence"], failing
    assert state(hyperpod_cluster) == before, "a read-only certify changed the cluster"
    assert summary["tests"] == [], "a read-only certify ran tests"


def test_two_unhealthy_nodes_fail_the_preflight_naming_both_and_only_them(hyperpod_cluster, tmp_path):
    kubectl = hyperpod_cluster.kubectl
    try:
        for node, (health, dhc, taint) in UNHEALTHY.items():
            kubectl("label", "node", node, "--overwrite", f"{HEALTH_LABEL}={health}", f"{DHC_LABEL}={dhc}")
            if taint:
                kubectl("taint", "node", node, f"{HEALTH_LABEL}=Unschedulable:NoSchedule", "--overwrite")
        proc, summary = certify(hyperpod_cluster, tmp_path, "--read-only", "--chart", "hyperpod=charts/hyperpod")
    finally:
        for node in UNHEALTHY:
            kubectl("label", "node", node, "--overwrite", f"{HEALTH_LABEL}=Schedulable", f"{DHC_LABEL}=Passed")
            kubectl("taint", "node", node, f"{HEALTH_LABEL}-", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failing = [r for r in summary["field"]["preflight"] if r["status"] == "fail"]
    assert [r["name"] for r in failing] == ["hyperpod node health"], f"expected only the health check to fail: {failing}"
    evidence = failing[0]["evidence"]
    for node, (health, dhc, _) in UNHEALTHY.items():
        assert node in evidence and dhc in evidence and health in evidence, f"{node} not named with its state: {evidence}"
    for healthy in ("ml-p5-48xlarge-0", "cpu-0"):
        assert healthy not in evidence, f"healthy node {healthy} named as unhealthy: {evidence}"
    assert f"{HEALTH_LABEL}=Unschedulable:NoSchedule" in evidence, f"the taint is not shown: {evidence}"
    terminal = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert len(terminal) == 1 and "ml-p5-48xlarge-1" in terminal[0] and "ml-trn1-32xlarge-0" in terminal[0], proc.stdout


def test_smoke_certification_installs_tests_and_removes_only_what_it_created(hyperpod_cluster, tmp_path):
    before = state(hyperpod_cluster)
    # The release to certify keeps harmony off the mislabelled 4-GPU node, so the preflight passes.
    values = tmp_path / "prod.yaml"
    values.write_text("harmony:\n  nodeSelector:\n    kubernetes.io/hostname: ml-p5-48xlarge-0\n")
    proc, summary = certify(hyperpod_cluster, tmp_path, "--chart", "adaptive=charts/adaptive", "--values",
                            f"adaptive={values}", "--chart", "hyperpod=charts/hyperpod", "--", "-k",
                            "test_install_two_fixed_pools or test_each_gpu_instance_type or test_hyp_aff_04")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    outcomes = {t["nodeid"].split("::")[-1]: (t["outcome"], t.get("message", "")) for t in summary["tests"]}
    assert outcomes["test_install_two_fixed_pools"][0] == "passed", outcomes
    smoke = outcomes["test_each_gpu_instance_type_runs_a_pod_that_sees_its_gpu"]
    assert smoke[0] == "skipped" and "simulated" in smoke[1], f"the in-pod GPU check must skip on kwok nodes: {smoke}"
    kube_system = outcomes["test_hyp_aff_04_device_plugins_run_only_on_listed_instance_types"]
    assert kube_system[0] == "skipped" and "--allow-kube-system" in kube_system[1], kube_system
    assert summary["field"]["kind"] == "certify" and summary["field"]["preflight"], "the report lacks the preflight"
    labelled = hyperpod_cluster.kubectl("get", "namespaces", "-l", RUN_LABEL, "-o", "name").split()
    after = state(hyperpod_cluster)
    after["namespaces"] = [n for n in after["namespaces"] if n[1] not in {x.split("/")[-1] for x in labelled}]
    gone = set(before["deployments"]) - set(after["deployments"])
    assert not gone, f"certify removed objects it did not create: {gone}"
    added = [o for kind in ("deployments", "daemonsets", "statefulsets") for o in set(after[kind]) - set(before[kind])]
    assert not added, f"certify left workloads behind: {added}"
