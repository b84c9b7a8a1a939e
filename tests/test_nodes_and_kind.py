"""Node profiles, shapes, and the kind provider's configuration and command lines."""

from __future__ import annotations

import json

import pytest

from chartproof.clusters import kind
from chartproof.clusters.nodes import DHC_LABEL, HEALTH_LABEL, describe_shape, node_objects, parse_shape
from chartproof.errors import ProviderUnavailableError, UsageError


def test_default_shape_covers_every_accelerator():
    nodes = node_objects(parse_shape(None))
    assert len(nodes) == 10
    resources = set()
    for node in nodes:
        resources |= set(node["status"]["allocatable"])
    assert {"nvidia.com/gpu", "aws.amazon.com/neuron", "vpc.amazonaws.com/efa"} <= resources
    assert any(not set(n["status"]["allocatable"]) - {"cpu", "memory", "pods", "ephemeral-storage"} for n in nodes)


def test_shape_spec_counts_and_names():
    groups = parse_shape("ml.p5.48xlarge=2,cpu=1")
    assert describe_shape(groups) == "ml.p5.48xlarge=2,cpu=1"
    names = [n["metadata"]["name"] for n in node_objects(groups)]
    assert names == ["ml-p5-48xlarge-0", "ml-p5-48xlarge-1", "cpu-0"]


def test_hyperpod_nodes_carry_health_labels_and_states_add_the_taint():
    healthy, checking = node_objects(parse_shape("ml.p5.48xlarge=1,ml.p5.48xlarge:deep-health-check=1"))
    assert healthy["metadata"]["labels"][HEALTH_LABEL] == "Schedulable"
    assert healthy["metadata"]["labels"][DHC_LABEL] == "Passed"
    assert "taints" not in healthy["spec"]
    assert checking["metadata"]["labels"][HEALTH_LABEL] == "Unschedulable"
    assert checking["metadata"]["labels"][DHC_LABEL] == "InProgress"
    assert checking["spec"]["taints"] == [{"key": HEALTH_LABEL, "value": "Unschedulable", "effect": "NoSchedule"}]


def test_plain_cpu_nodes_have_no_hyperpod_labels():
    (cpu,) = node_objects(parse_shape("cpu=1"))
    assert HEALTH_LABEL not in cpu["metadata"]["labels"]
    assert cpu["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"


def test_a_simulated_node_registers_ready_as_a_kubelet_does_and_a_kind_node_leaves_status_to_its_kubelet():
    simulated = node_objects(parse_shape("ml.p5.48xlarge=3"))
    for node in simulated:
        status = node["status"]
        assert {c["type"]: c["status"] for c in status["conditions"]} == {
            "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}
        assert {"type": "Hostname", "address": node["metadata"]["name"]} in status["addresses"]
        assert status["nodeInfo"]["operatingSystem"] == "linux"
        assert status["capacity"]["nvidia.com/gpu"] == "8"
    addresses = [next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP") for n in simulated]
    assert len(set(addresses)) == 3 and all(a.startswith("10.") for a in addresses)
    (real,) = node_objects(parse_shape("ml.p5.48xlarge=1"), simulated=False)
    assert set(real["status"]) == {"capacity", "allocatable"}


def test_a_name_prefix_names_the_nodes_and_their_hostnames():
    nodes = node_objects(parse_shape("cpu=2"), name_prefix="adp-ns")
    assert [n["metadata"]["name"] for n in nodes] == ["adp-ns-0", "adp-ns-1"]
    assert [n["metadata"]["labels"]["kubernetes.io/hostname"] for n in nodes] == ["adp-ns-0", "adp-ns-1"]


@pytest.mark.parametrize("spec, message", [
    ("ml.p9.48xlarge=1", "unknown node profile 'ml.p9.48xlarge'"),
    ("ml.p5.48xlarge", "expected PROFILE[:STATE]=COUNT"),
    ("ml.p5.48xlarge:sleepy=1", "has no state 'sleepy'"),
    ("cpu=0", "asks for no nodes"),
])
def test_bad_shapes_are_refused_in_one_line(spec, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        parse_shape(spec)
    assert "\n" not in info.value.one_line()


def test_kind_config_has_a_worker_per_node():
    groups = parse_shape("ml.p5.48xlarge=2,cpu=1")
    config = kind.kind_config(groups)
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker", "worker"]
    assert kind.worker_names("cp", 3) == ["cp-worker", "cp-worker2", "cp-worker3"]


def test_kind_command_lines(tmp_path):
    create = kind.create_command(tmp_path / "kind", "cp", tmp_path / "kind.yaml", tmp_path / "kubeconfig")
    assert create[1:5] == ["create", "cluster", "--name", "cp"]
    assert "--config" in create and "--kubeconfig" in create and "--wait" in create
    assert kind.delete_command(tmp_path / "kind", "cp", tmp_path / "kc")[1:5] == ["delete", "cluster", "--name", "cp"]


def test_kind_workers_get_labels_taints_and_extended_resources():
    groups = parse_shape("ml.p5.48xlarge:deep-health-check=1,cpu=1")
    commands = kind.node_commands(groups, ["cp-worker", "cp-worker2"])
    label, taint, patch, cpu_label = commands
    assert label[:3] == ["label", "node", "cp-worker"] and "node.kubernetes.io/instance-type=ml.p5.48xlarge" in label
    assert taint[-1] == "sagemaker.amazonaws.com/node-health-status=Unschedulable:NoSchedule"
    ops = json.loads(patch[-1])
    assert {"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": "8"} in ops
    assert patch[3] == "--subresource=status"
    assert cpu_label[2] == "cp-worker2"


def test_kind_without_docker_is_unavailable_with_one_line():
    reason = kind.docker_unavailable_reason()
    if reason is None:
        pytest.skip("this machine has a Docker engine")
    assert "Docker" in reason and "\n" not in reason
    with pytest.raises(ProviderUnavailableError):
        kind.KindProvider().up(None, None)


@pytest.mark.kind
def test_kind_cluster_schedules_gpu_pods():
    """Runs where Docker exists: a kind cluster whose workers advertise nvidia.com/gpu."""
    reason = kind.docker_unavailable_reason()
    if reason:
        pytest.skip(reason)
    provider = kind.KindProvider()
    cluster = provider.up(None, "ml.p5.48xlarge=1")
    try:
        worker = cluster.get_json("node", f"{cluster.name}-worker")
        assert worker["status"]["capacity"]["nvidia.com/gpu"] == "8"
    finally:
        provider.down(cluster.name)
