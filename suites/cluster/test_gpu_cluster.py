"""Promises of the test cluster itself: GPUs are scheduled by the real scheduler, claims bind, workloads
finish, namespaces go away. They hold on the embedded cluster (simulated nodes) and on kind."""

from __future__ import annotations

import re

import pytest

from chartproof.kube import MANAGED_BY, KubectlError
from chartproof.manifest import dig, same_quantity
from chartproof.run import RUN_LABEL


def gpu_pod(name: str, gpus: int, **spec) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "cuda", "image": "nvidia/cuda:12.4.1-base-ubuntu22.04",
                                 "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}], **spec},
    }


def pod(cluster, namespace, name):
    return cluster.get_json("pod", name, namespace=namespace)


def node_of(cluster, namespace, name) -> dict:
    node_name = dig(pod(cluster, namespace, name), "spec.nodeName")
    assert node_name, f"pod {name} is not bound to a node"
    return cluster.get_json("node", node_name)


def not_scheduled(cluster, namespace, name) -> dict | None:
    """The pod's PodScheduled=False condition, once the scheduler gave one."""
    conditions = dig(pod(cluster, namespace, name), "status.conditions", []) or []
    return next((c for c in conditions if c.get("type") == "PodScheduled" and c.get("status") == "False"), None)


def test_pod_asking_for_8_gpus_runs_on_an_8_gpu_node(cluster, namespace):
    cluster.apply(gpu_pod("eight", 8), namespace=namespace)
    cluster.wait_ready(objects=[("Pod", "eight", namespace)], timeout=60)
    node = node_of(cluster, namespace, "eight")
    gpus = dig(node, "status.allocatable", {}).get("nvidia.com/gpu")
    assert gpus == "8", f"node {dig(node, 'metadata.name')}: expected 8 allocatable GPUs, found {gpus!r}"
    kind = dig(node, "metadata.labels", {}).get("node.kubernetes.io/instance-type")
    assert kind == "ml.p5.48xlarge", f"node {dig(node, 'metadata.name')}: expected an ml.p5.48xlarge, found {kind!r}"


def test_pod_asking_for_9_gpus_stays_pending_with_the_schedulers_reason(cluster, namespace):
    cluster.apply(gpu_pod("nine", 9), namespace=namespace)

    cond = cluster.wait_for(lambda: not_scheduled(cluster, namespace, "nine"), timeout=60, what="the scheduler's verdict")
    assert cond.get("reason") == "Unschedulable", f"expected reason Unschedulable, found {cond}"
    assert "Insufficient nvidia.com/gpu" in cond.get("message", ""), f"expected the scheduler's GPU reason, found {cond}"


def test_deployment_replicas_spread_over_gpu_nodes(cluster, namespace):
    replicas = 3
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "trainer"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "trainer"}},
            "template": {"metadata": {"labels": {"app": "trainer"}},
                         "spec": gpu_pod("x", 8)["spec"]},
        },
    }
    cluster.apply(deployment, namespace=namespace)
    cluster.wait_ready(objects=[("Deployment", "trainer", namespace)], timeout=90)
    pods = cluster.kubectl.items("pods", namespace=namespace, selector="app=trainer")
    nodes = {dig(p, "spec.nodeName") for p in pods}
    assert len(pods) == replicas, f"expected {replicas} pods, found {len(pods)}"
    assert len(nodes) == replicas and None not in nodes, f"8-GPU replicas must land on distinct 8-GPU nodes, got {nodes}"
    for name in nodes:
        gpus = dig(cluster.get_json("node", name), "status.allocatable", {}).get("nvidia.com/gpu")
        assert gpus == "8", f"node {name}: expected 8 allocatable GPUs, found {gpus!r}"


def test_pod_without_toleration_avoids_node_under_deep_health_check(cluster, namespace):
    selector = {"sagemaker.amazonaws.com/deep-health-check-status": "InProgress"}
    if not cluster.kubectl.items("nodes", selector="sagemaker.amazonaws.com/deep-health-check-status=InProgress"):
        pytest.skip("this cluster shape has no node under a deep health check")
    cluster.apply(gpu_pod("blocked", 1, nodeSelector=selector), namespace=namespace)
    tolerant = gpu_pod("tolerant", 1, nodeSelector=selector, tolerations=[
        {"key": "sagemaker.amazonaws.com/node-health-status", "operator": "Equal", "value": "Unschedulable",
         "effect": "NoSchedule"}])
    cluster.apply(tolerant, namespace=namespace)
    cluster.wait_ready(objects=[("Pod", "tolerant", namespace)], timeout=60)
    cond = cluster.wait_for(lambda: not_scheduled(cluster, namespace, "blocked"), timeout=60,
                            what="the scheduler's verdict on the intolerant pod")
    assert "untolerated taint" in cond.get("message", ""), f"expected the scheduler's taint reason, found {cond}"


def test_neuron_pod_runs_on_a_neuron_node(cluster, namespace):
    if not cluster.kubectl.items("nodes", selector="aws.amazon.com/neuron.present=true"):
        pytest.skip("this cluster shape has no Neuron node")
    neuron = gpu_pod("neuron", 0)
    neuron["spec"]["containers"][0]["resources"] = {"limits": {"aws.amazon.com/neuron": "16"}}
    cluster.apply(neuron, namespace=namespace)
    cluster.wait_ready(objects=[("Pod", "neuron", namespace)], timeout=60)
    kind = dig(node_of(cluster, namespace, "neuron"), "metadata.labels", {}).get("node.kubernetes.io/instance-type")
    assert kind == "ml.trn1.32xlarge", f"the Neuron pod runs on {kind!r}, expected an ml.trn1.32xlarge"


@pytest.mark.parametrize("storage_class", ["gp3", "standard"])
def test_claim_binds_to_a_volume_of_its_class_and_size(cluster, namespace, storage_class):
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "7Gi"}}}}
    consumer = gpu_pod("consumer", 0)
    consumer["spec"]["containers"][0]["resources"] = {}
    consumer["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    cluster.apply([claim, consumer], namespace=namespace)
    cluster.wait_ready(objects=[("PersistentVolumeClaim", "data", namespace), ("Pod", "consumer", namespace)], timeout=60)
    bound = cluster.get_json("pvc", "data", namespace=namespace)
    assert dig(bound, "spec.volumeName"), f"claim data names no volume: {bound.get('status')}"
    volume = cluster.get_json("pv", dig(bound, "spec.volumeName"))
    assert dig(volume, "spec.storageClassName") == storage_class, \
        f"volume class: expected {storage_class}, found {dig(volume, 'spec.storageClassName')!r}"
    size = dig(volume, "spec.capacity.storage")
    assert size is not None and same_quantity(size, "7Gi"), f"volume size: expected 7Gi, found {size!r}"
    claim = (dig(volume, "spec.claimRef.namespace"), dig(volume, "spec.claimRef.name"))
    assert claim == (namespace, "data"), f"volume bound to {claim}, expected ({namespace!r}, 'data')"


def test_job_completes(cluster, namespace):
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}
    cluster.apply(job, namespace=namespace)
    cluster.wait_ready(objects=[("Job", "once", namespace)], timeout=60)
    succeeded = dig(cluster.get_json("job", "once", namespace=namespace), "status.succeeded")
    assert succeeded == 1, f"Job once: expected 1 succeeded pod, found {succeeded!r}"


def test_helm_test_hook_pod_completes(cluster, namespace, helm, tmp_path):
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "test.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: probe-test\n  annotations:\n    helm.sh/hook: test\n"
        "spec:\n  restartPolicy: Never\n  containers:\n  - name: t\n    image: busybox\n    command: [\"true\"]\n")
    installed = helm.install(chart, "probe", namespace)
    assert installed.ok, f"helm install of the probe chart failed: {installed.error}"
    try:
        result = helm.run("test", "probe", "--namespace", namespace, "--timeout", "60s")
        assert result.ok, f"helm test failed: {result.error}"
        assert re.search(r"^TEST SUITE:\s+probe-test$", result.stdout, re.M) and \
            re.search(r"^Phase:\s+Succeeded$", result.stdout, re.M), f"helm test did not report probe-test Succeeded:\n{result.stdout}"
        phase = dig(pod(cluster, namespace, "probe-test"), "status.phase")
        assert phase == "Succeeded", f"the test hook pod is {phase!r}, expected Succeeded"
    finally:
        helm.uninstall("probe", namespace)


def test_namespace_with_workloads_terminates(cluster, chartproof_run):
    name = "cp-terminates-" + chartproof_run.run_id[-4:]
    cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": {**MANAGED_BY, RUN_LABEL: chartproof_run.run_id}}})
    cluster.apply(gpu_pod("busy", 1), namespace=name)
    cluster.wait_ready(objects=[("Pod", "busy", name)], timeout=60)
    cluster.kubectl("delete", "namespace", name, "--wait=false")

    def gone():
        try:
            cluster.get_json("namespace", name)
        except KubectlError as exc:
            return exc.not_found
        return False

    cluster.wait_for(gone, timeout=90, what=f"namespace {name} to terminate")


def test_access_reviews_answer_from_the_real_authorizer(cluster):
    assert cluster.can("list", "pods", user="system:kube-scheduler")
    assert not cluster.can("delete", "nodes", user="nobody", namespace=None)
    assert not cluster.can("get", "clusterqueues.kueue.x-k8s.io/q1", user="nobody")
