"""The preflight: helm's kubeVersion rules, each check's pass and fail on node facts from the real profiles,
and one live run of gather() + run_checks() on an embedded cluster shaped like a HyperPod cluster."""

from __future__ import annotations

import copy

import pytest
import yaml

from chartproof import preflight
from chartproof.clusters.nodes import HEALTH_LABEL, load_profiles, node_objects, parse_shape
from chartproof.errors import ChartproofError, UsageError
from chartproof.helm import merge_values
from chartproof.kube import wait_for
from chartproof.paths import CHARTS
from chartproof.preflight import (
    Check,
    ClusterFacts,
    VersionError,
    access_key,
    facts_from_shape,
    failed,
    format_table,
    run_checks,
    version_satisfies,
)
from tests.conftest import embedded_cluster

ADAPTIVE_META = yaml.safe_load((CHARTS / "adaptive" / "Chart.yaml").read_text())
ADAPTIVE_DEFAULTS = yaml.safe_load((CHARTS / "adaptive" / "values.yaml").read_text())
MONITORING_DEFAULTS = yaml.safe_load((CHARTS / "monitoring" / "values.yaml").read_text())
CHECK_NAMES = {"kubernetes version", "helm version", "accelerator inventory", "gpu device plugin", "gpu allocatable",
               "storage classes", "crds served", "gpus per replica", "gpu demand", "hyperpod node health", "rbac"}


def facts(shape: str, *, pods: list[dict] | None = None, simulated: bool = False, **changes) -> ClusterFacts:
    """Facts of a cluster with the nodes of ``shape`` (a real cluster unless ``simulated``)."""
    base = facts_from_shape(shape)
    base.pods, base.simulated = pods or [], simulated
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def pod(name: str, node: str, image: str, *, phase: str = "Running", labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": "kube-system", "labels": labels or {},
                         "ownerReferences": [{"kind": "DaemonSet", "name": name.rsplit("-", 1)[0]}]},
            "spec": {"nodeName": node, "containers": [{"name": "plugin", "image": image}]},
            "status": {"phase": phase}}


def adaptive(**user) -> dict:
    return merge_values(ADAPTIVE_DEFAULTS, user)


def one(checks: list[Check], name: str, chart: str | None = None) -> Check:
    found = [c for c in checks if c.name == name and (chart is None or c.chart == chart)]
    assert len(found) == 1, f"{name}: {[c.as_dict() for c in found]}"
    return found[0]


def rows(f: ClusterFacts, values: dict | None = None, *, charts: dict | None = None, **kwargs) -> list[Check]:
    charts = {"adaptive": ADAPTIVE_META} if charts is None else charts
    return run_checks(f, charts=charts, values={"adaptive": adaptive(), **(values or {})}, **kwargs)


# -- kubeVersion as helm reads it --------------------------------------------------------------------------

@pytest.mark.parametrize("version, constraint, expected", [
    ("v1.30.2-eks-1234", ">=1.26.0-0", True),
    ("v1.30.2-eks-1234", ">=1.26.0", False),  # helm: a pre-release only matches a constraint naming one
    ("v1.36.1", ">=1.26.0-0", True),
    ("v1.25.9", ">=1.26.0-0", False),
    ("1.31.4", ">= 1.26.0, < 1.32.0", True),
    ("1.32.0", ">= 1.26.0, < 1.32.0", False),
    ("1.25.0", ">= 1.26.0, < 1.32.0", False),
    ("v1.31.0-gke.100", ">= 1.26.0-0, < 1.32.0", True),  # the -0 opens the whole AND group to pre-releases
    ("1.29.7", "^1.26", True),
    ("2.0.0", "^1.26", False),
    ("1.25.9", "^1.26", False),
    ("0.2.5", "^0.2.3", True),
    ("0.3.0", "^0.2.3", False),
    ("1.26.7", "~1.26.0", True),
    ("1.27.0", "~1.26.0", False),
    ("1.25.0", "<1.24 || >=1.25", True),
    ("1.24.3", "<1.24 || >=1.25", False),
    ("1.28.3", "1.28.x", True),
    ("1.29.0", "1.28.x", False),
    ("1.28.3", "1.x", True),
    ("5.0.0", "*", True),
    ("1.30.0", ">1.29.x", True),
    ("1.29.9", ">1.29.x", False),
    ("1.29.9", "<=1.29", True),
    ("1.30.0", "<=1.29", False),
    ("1.29.0", "!=1.29.0", False),
    ("1.4.5", "1.2 - 1.4.5", True),
    ("1.4.6", "1.2 - 1.4.5", False),
    ("v1.30.2+k3s1", "=1.30.2", True),
])
def test_version_constraints_follow_helm(version, constraint, expected):
    assert version_satisfies(version, constraint) is expected


@pytest.mark.parametrize("constraint", ["", ">>1.26", "1.26.0.1", "latest", ">= 1.26 ||"])
def test_unparseable_constraints_raise_one_line(constraint):
    with pytest.raises(VersionError) as info:
        version_satisfies("1.30.0", constraint)
    assert isinstance(info.value, ChartproofError) and "\n" not in info.value.one_line()


def test_kubernetes_version_rows_per_chart():
    meta = {"old": {"kubeVersion": "<1.20.0"}, "bad": {"kubeVersion": "~> one"}, "adaptive": ADAPTIVE_META,
            "none": {}}
    checks = run_checks(facts("cpu=1", server_version="v1.36.1"), charts=meta, values={})
    assert one(checks, "kubernetes version", "adaptive").status == "pass"
    old = one(checks, "kubernetes version", "old")
    assert old.status == "fail" and "v1.36.1" in old.evidence and "<1.20.0" in old.evidence
    bad = one(checks, "kubernetes version", "bad")
    assert bad.status == "warn" and "~> one" in bad.evidence
    assert one(checks, "kubernetes version", "none").status == "pass"
    eks = run_checks(facts("cpu=1", server_version="v1.30.2-eks-1234"), charts={"strict": {"kubeVersion": ">=1.26.0"}},
                     values={})
    assert one(eks, "kubernetes version").status == "fail" and "-0" in one(eks, "kubernetes version").evidence
    unknown = rows(facts("cpu=1"))
    assert one(unknown, "kubernetes version").status == "skip"


@pytest.mark.parametrize("helm, status", [("v3.22.0", "pass"), ("v3.8.2", "pass"), ("v3.8.0+g123", "pass"),
                                          ("v3.7.9", "fail"), (None, "skip"), ("devel", "warn")])
def test_helm_version_against_the_readme_minimum(helm, status):
    check = one(rows(facts("cpu=1"), helm_version=helm), "helm version")
    assert check.status == status
    if helm:
        assert helm in check.evidence and "3.8.0" in check.evidence


# -- nodes -------------------------------------------------------------------------------------------------

def test_inventory_groups_by_instance_type_with_a_line_per_node():
    check = one(rows(facts("ml.p5.48xlarge=2,ml.trn1.32xlarge=1,cpu=1")), "accelerator inventory")
    assert check.status == "pass"
    assert "ml.p5.48xlarge: 2 nodes, nvidia.com/gpu 16, vpc.amazonaws.com/efa 64" in check.evidence
    assert "ml.trn1.32xlarge: 1 node, aws.amazon.com/neuron 16" in check.evidence
    assert "m5.4xlarge: 1 node, no accelerators" in check.evidence
    assert len(check.details) == 4 and "ml-p5-48xlarge-1 [ml.p5.48xlarge]: nvidia.com/gpu=8" in check.details[1]


def test_device_plugin_must_run_on_every_accelerator_node():
    shape = "ml.p5.48xlarge=2,ml.trn1.32xlarge=1,cpu=1"
    nvidia = [pod("nvidia-device-plugin-ds-a", "ml-p5-48xlarge-0", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0")]
    check = one(rows(facts(shape, pods=nvidia)), "gpu device plugin")
    assert check.status == "fail"
    assert "1 of 2 GPU nodes: ml-p5-48xlarge-1" in check.evidence
    assert "1 of 1 Neuron node: ml-trn1-32xlarge-0" in check.evidence and "ml-p5-48xlarge-0" not in check.evidence
    everywhere = nvidia + [
        pod("gpu-operator-plugin-b", "ml-p5-48xlarge-1", "nvcr.io/nvidia/gpu-operator/validator:v24",
            labels={"app": "nvidia-device-plugin-daemonset"}),
        pod("neuron-device-plugin-c", "ml-trn1-32xlarge-0", "public.ecr.aws/neuron/neuron-device-plugin:2.22")]
    check = one(rows(facts(shape, pods=everywhere)), "gpu device plugin")
    assert check.status == "pass" and "all 2 GPU nodes" in check.evidence and "all 1 Neuron node" in check.evidence
    pending = [pod("nvidia-device-plugin-ds-a", "ml-p5-48xlarge-0", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
                   phase="Pending")]
    assert "2 of 2 GPU nodes" in one(rows(facts("ml.p5.48xlarge=2", pods=pending)), "gpu device plugin").evidence


def test_device_plugin_skips_without_accelerators_or_on_plugin_less_simulated_nodes():
    assert one(rows(facts("cpu=2")), "gpu device plugin").status == "skip"
    simulated = one(rows(facts("ml.p5.48xlarge=1", simulated=True)), "gpu device plugin")
    assert simulated.status == "skip" and "simulated" in simulated.evidence
    assert one(rows(facts("ml.p5.48xlarge=1")), "gpu device plugin").status == "fail"


def test_profile_states_override_allocatable_and_capacity():
    unallocatable, mislabelled = node_objects(parse_shape("ml.p5.48xlarge:gpus-unallocatable=1,"
                                                          "ml.p5.48xlarge:mislabelled=1"))
    assert unallocatable["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert unallocatable["status"]["allocatable"]["nvidia.com/gpu"] == "0"
    assert unallocatable["status"]["allocatable"]["cpu"] == "192"
    assert mislabelled["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "ml.p5.48xlarge"
    assert mislabelled["metadata"]["labels"]["nvidia.com/gpu.count"] == "4"
    assert mislabelled["status"]["capacity"]["nvidia.com/gpu"] == mislabelled["status"]["allocatable"]["nvidia.com/gpu"] == "4"


def test_a_profile_state_with_an_unknown_key_is_refused(tmp_path):
    (tmp_path / "odd.yaml").write_text("capacity: {cpu: '1'}\nstates:\n  broken:\n    capcity: {cpu: '2'}\n")
    with pytest.raises(UsageError, match="state 'broken' may only set labels, taints, capacity, allocatable"):
        load_profiles(tmp_path)


def test_gpu_allocatable_fails_on_unallocatable_gpus_and_warns_on_a_mismatched_instance_type():
    check = one(rows(facts("ml.p5.48xlarge=1,ml.p5.48xlarge:gpus-unallocatable=1")), "gpu allocatable")
    assert check.status == "fail" and "ml-p5-48xlarge-gpus-unallocatable-0 (capacity 8, allocatable 0)" in check.evidence
    assert "ml-p5-48xlarge-0" not in check.evidence
    check = one(rows(facts("ml.p5.48xlarge=1,ml.p5.48xlarge:mislabelled=1")), "gpu allocatable")
    assert check.status == "warn" and "mismatched instance type" in check.evidence
    assert "ml-p5-48xlarge-mislabelled-0 (allocatable 4, but instance type ml.p5.48xlarge has 8)" in check.evidence
    relabelled = facts("ml.p5.48xlarge=1")
    relabelled.nodes[0]["metadata"]["labels"]["nvidia.com/gpu.count"] = "6"
    check = one(rows(relabelled), "gpu allocatable")
    assert check.status == "warn" and "label nvidia.com/gpu.count says 6" in check.evidence
    healthy = one(rows(facts("ml.p5.48xlarge=2,ml.g5.xlarge=1,cpu=1")), "gpu allocatable")
    assert healthy.status == "pass" and "3 GPU nodes" in healthy.evidence
    assert one(rows(facts("cpu=1,ml.trn1.32xlarge=1")), "gpu allocatable").status == "skip"


def test_hyperpod_health_names_exactly_the_unhealthy_nodes():
    shape = "ml.p5.48xlarge=2,ml.p5.48xlarge:deep-health-check=1,ml.p5.48xlarge:failed=1,ml.trn1.32xlarge=1,cpu=1"
    check = one(rows(facts(shape)), "hyperpod node health")
    assert check.status == "fail" and check.evidence.startswith("2 of 5 HyperPod accelerator nodes")
    assert [d.split(" ")[0] for d in check.details] == ["ml-p5-48xlarge-deep-health-check-0", "ml-p5-48xlarge-failed-0"]
    assert "deep-health-check-status=InProgress" in check.details[0]
    assert "node-health-status=UnschedulablePendingReplacement, deep-health-check-status=Failed" in check.details[1]
    assert "taint sagemaker.amazonaws.com/node-health-status=Unschedulable:NoSchedule" in check.details[1]
    assert "ml-p5-48xlarge-0" not in check.evidence
    assert one(rows(facts("ml.p5.48xlarge=2,ml.c5n.18xlarge=1")), "hyperpod node health").status == "pass"


def test_hyperpod_health_scope():
    tainted = facts("ml.p5.48xlarge=1")
    tainted.nodes[0]["spec"]["taints"] = [{"key": HEALTH_LABEL, "value": "Unschedulable", "effect": "NoSchedule"}]
    assert one(rows(tainted), "hyperpod node health").status == "fail"
    assert one(rows(facts("cpu=2")), "hyperpod node health").status == "skip"
    hyperpod = {"hyperpod": {"name": "hyperpod-helm-chart"}}
    asked = one(rows(facts("cpu=2"), charts=hyperpod), "hyperpod node health")
    assert asked.status == "warn" and asked.chart == "hyperpod"
    efa_only = one(rows(facts("ml.c5n.18xlarge=1,cpu=1"), charts=hyperpod), "hyperpod node health")
    assert efa_only.status == "pass" and "1 HyperPod node" in efa_only.evidence


# -- values against the nodes ------------------------------------------------------------------------------

def test_gpus_per_replica_must_divide_the_gpus_of_every_node_it_can_land_on():
    shape = "ml.p5.48xlarge=2,ml.g5.xlarge=1,ml.p5.48xlarge:failed=1"
    good = one(rows(facts(shape), {"adaptive": adaptive(harmony={"nodeSelector": {
        "node.kubernetes.io/instance-type": "ml.p5.48xlarge"}})}), "gpus per replica")
    assert good.status == "pass" and "harmony: 8 divides the GPUs (8) of all 2 nodes" in good.evidence  # failed-0 tainted
    anywhere = one(rows(facts(shape)), "gpus per replica")
    assert anywhere.status == "fail" and "1 of the 3 nodes it can land on (ml-g5-xlarge-0: 1)" in anywhere.evidence
    pools = adaptive(harmony={"gpusPerReplica": 4, "computePool": [
        {"name": "Pool-A", "gpusPerReplica": 3},
        {"name": "Pool-B", "nodeSelector": {"node.kubernetes.io/instance-type": "ml.p4d.24xlarge"}},
        {"name": "Pool-C", "tolerations": []}]})
    check = one(rows(facts("ml.p5.48xlarge=2"), {"adaptive": pools}), "gpus per replica")
    assert check.status == "fail"
    assert "pool Pool-A: gpusPerReplica 3 does not divide the GPU count of 2 of the 2 nodes" in check.evidence
    assert "pool Pool-B (4 GPUs per replica): no node can take it: 2 GPU nodes, excluded 2 by nodeSelector" in check.evidence
    assert "Pool-C" not in check.evidence  # the p5 nodes are not tainted: no toleration is needed
    tainted = facts("ml.p5.48xlarge=1")
    tainted.nodes[0]["spec"]["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    check = one(rows(tainted, {"adaptive": pools}), "gpus per replica")
    assert "pool Pool-C (4 GPUs per replica): no node can take it: 1 GPU node, excluded 1 by taints" in check.evidence
    cpu_only = one(rows(facts("ml.p5.48xlarge=1"), {"adaptive": adaptive(harmony={"gpusPerReplica": None})}),
                   "gpus per replica")
    assert cpu_only.status == "skip"


def test_gpu_demand_at_min_and_max_replica_count():
    two = facts("ml.p5.48xlarge=2,ml.p5.48xlarge:deep-health-check=1")
    fits = adaptive(harmony={"computePool": [{"name": "Pool-A", "minReplicaCount": 1, "maxReplicaCount": 4}]})
    check = one(rows(two, {"adaptive": fits}), "gpu demand")
    assert check.status == "pass" and "16 GPUs at minReplicaCount (harmony 1x8, pool Pool-A 1x8)" in check.evidence
    assert "16 allocatable GPUs of the 2 nodes" in check.evidence  # the node in deep health check is tainted
    too_many = adaptive(harmony={"computePool": [{"name": "Pool-A", "minReplicaCount": 2, "gpusPerReplica": 4},
                                                 {"name": "Pool-B", "minReplicaCount": 1}]})
    check = one(rows(two, {"adaptive": too_many}), "gpu demand")
    assert check.status == "fail" and "16 allocatable GPUs of the 2 nodes" in check.evidence
    assert check.evidence.endswith(": pool Pool-A (2 of 2 replicas unplaced)")  # first fit: the 8-GPU replicas go first
    scaling = copy.deepcopy(fits)
    scaling["autoscaling"]["enabled"] = True
    check = one(rows(two, {"adaptive": scaling}), "gpu demand")
    assert check.status == "warn" and "pool Pool-A (3 of 4 replicas unplaced)" in check.evidence
    assert "Cluster Autoscaler" in check.evidence and "40 GPUs at maxReplicaCount" in check.evidence
    scaling["harmony"]["computePool"][0]["maxReplicaCount"] = 1
    assert one(rows(two, {"adaptive": scaling}), "gpu demand").status == "pass"


def test_storage_classes_named_by_the_values_must_exist():
    base = facts("cpu=1")
    prometheus = adaptive(prometheus={"server": {"persistentVolume": {"enabled": True, "storageClass": "io2"}}})
    check = one(rows(base, {"adaptive": prometheus}), "storage classes")
    assert check.status == "fail" and "prometheus.server.persistentVolume.storageClass 'io2' does not exist" in check.evidence
    assert "default class: standard" in check.evidence
    default = adaptive(prometheus={"server": {"persistentVolume": {"enabled": True}}},
                       tensorboard={"enabled": True, "persistentVolume": {"enabled": True, "storageClass": "gp3"}})
    check = one(rows(base, {"adaptive": default}), "storage classes")
    assert check.status == "pass" and "prometheus.server.storageClass '' (the default class, standard)" in check.evidence
    assert "tensorboard.persistentVolume.storageClass 'gp3'" in check.evidence
    no_default = facts("cpu=1", storage_classes=[c for c in base.storage_classes if c["metadata"]["name"] != "standard"])
    check = one(rows(no_default, {"adaptive": default}), "storage classes")
    assert check.status == "fail" and "no class is marked default" in check.evidence
    assert one(rows(base), "storage classes").status == "skip"  # chart defaults: no persistence


def test_monitoring_storage_classes_and_any_enabled_persistence_block():
    monitoring = merge_values(MONITORING_DEFAULTS, {"grafana": {"enablePersistence": True, "storageClass": "gp3"},
                                                    "loki": {"persistence": {"enabled": True,
                                                                             "storageClassName": "fast-nvme"}},
                                                    "cache": {"persistence": {"enabled": False,
                                                                              "storageClass": "absent"}}})
    checks = run_checks(facts("cpu=1"), charts={"monitoring": {"name": "monitoring"}}, values={"monitoring": monitoring})
    check = one(checks, "storage classes", "monitoring")
    assert check.status == "fail" and "loki.persistence.storageClassName 'fast-nvme' does not exist" in check.evidence
    assert "absent" not in check.evidence and "grafana.storageClass 'gp3'" in check.details[0]


def test_crds_the_chart_does_not_bring_must_be_served():
    served = {"v1", "apps/v1"}
    eso = adaptive(externalSecret={"enabled": True})
    check = one(rows(facts("cpu=1", api_versions=served), {"adaptive": eso}), "crds served")
    assert check.status == "fail" and "external-secrets.io/v1" in check.evidence
    assert one(rows(facts("cpu=1", api_versions=served | {"external-secrets.io/v1"}), {"adaptive": eso}),
               "crds served").status == "pass"
    keda = adaptive(autoscaling={"enabled": True}, keda={"crds": {"install": False}})
    check = one(rows(facts("cpu=1", api_versions=served), {"adaptive": keda}), "crds served")
    assert check.status == "fail" and "keda.sh/v1alpha1" in check.evidence
    bundled = adaptive(autoscaling={"enabled": True})
    assert one(rows(facts("cpu=1", api_versions=served), {"adaptive": bundled}), "crds served").status == "skip"


def test_rbac_names_what_is_denied():
    allowed = {access_key("create", "namespaces"): True, access_key("list", "nodes"): True}
    denied = {**allowed, access_key("create", "deployments.apps", "team-a"): False,
              access_key("get", "pods/log", "team-a"): False}
    check = one(rows(facts("cpu=1", access=denied)), "rbac")
    assert check.status == "fail"
    assert "cannot create deployments.apps in ns team-a; cannot get pods/log in ns team-a" in check.evidence
    assert one(rows(facts("cpu=1", access=allowed)), "rbac").status == "pass"
    assert one(rows(facts("cpu=1")), "rbac").status == "skip"
    refused = one(rows(facts("cpu=1", problems={"rbac": "kubectl create failed (1): forbidden"})), "rbac")
    assert refused.status == "warn" and "forbidden" in refused.evidence


# -- the whole table ---------------------------------------------------------------------------------------

def test_merge_values_like_helm():
    merged = merge_values({"a": {"b": 1, "c": [1, 2], "d": "x"}, "e": 1}, {"a": {"c": [3], "d": None}, "f": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "e": 1, "f": 2}


def test_reproduce_shape_gives_every_check_and_a_table():
    checks = rows(facts_from_shape("ml.p5.48xlarge=2,ml.p5.48xlarge:failed=1,cpu=1"), helm_version="v3.22.0")
    assert {c.name for c in checks} == CHECK_NAMES
    assert [c.name for c in failed(checks)] == ["hyperpod node health"]
    table = format_table(checks).splitlines()
    assert table[0].split() == ["STATUS", "CHECK", "CHART", "EVIDENCE"]
    assert len(table) == len(checks) + 1 and any(line.startswith("FAIL    hyperpod node health") for line in table)
    assert table[1].index("kubernetes version") == table[0].index("CHECK")
    detailed = format_table(checks, details=True)
    assert "- ml-p5-48xlarge-failed-0 (node-health-status=UnschedulablePendingReplacement" in detailed
    assert one(checks, "hyperpod node health").as_dict()["status"] == "fail"
    with pytest.raises(ValueError, match="status"):
        Check("rbac", "ok", "")


# -- live --------------------------------------------------------------------------------------------------

HYPERPOD_SHAPE = ("ml.p5.48xlarge=2,ml.p5.48xlarge:deep-health-check=1,ml.p5.48xlarge:failed=1,"
                  "ml.p5.48xlarge:gpus-unallocatable=1,ml.trn1.32xlarge=1,cpu=1")


def stand_in_plugin(name: str, image: str, selector: dict) -> dict:
    """A device plugin stand-in: no GPU or Neuron device exists here, so this DaemonSet only puts a pod with
    the real plugin's image on the accelerator nodes (kwok makes it Running); it tolerates every taint."""
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "preflight"},
            "spec": {"selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeSelector": selector, "tolerations": [{"operator": "Exists"}],
                         "containers": [{"name": "plugin", "image": image}]}}}}


def running_on(kubectl, app: str) -> set[str]:
    return {p["spec"].get("nodeName") for p in kubectl.items("pods", namespace="preflight", selector=f"app={app}")
            if p.get("status", {}).get("phase") == "Running"}


@pytest.fixture(scope="module")
def hyperpod_cluster():
    with embedded_cluster("preflight", HYPERPOD_SHAPE) as cluster:
        yield cluster


@pytest.mark.cluster
def test_live_preflight_on_a_hyperpod_shaped_cluster(hyperpod_cluster):
    kubectl = hyperpod_cluster.kubectl
    gpu_nodes = {"ml-p5-48xlarge-0", "ml-p5-48xlarge-1", "ml-p5-48xlarge-deep-health-check-0",
                 "ml-p5-48xlarge-failed-0", "ml-p5-48xlarge-gpus-unallocatable-0"}
    node = kubectl.get_json("node", "ml-p5-48xlarge-gpus-unallocatable-0")  # kwok keeps the profile's allocatable
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "8" and node["status"]["allocatable"]["nvidia.com/gpu"] == "0"
    kubectl("create", "namespace", "preflight")
    kubectl.apply(stand_in_plugin("nvidia-device-plugin", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
                                  {"nvidia.com/gpu.present": "true"}))
    wait_for(lambda: running_on(kubectl, "nvidia-device-plugin") == gpu_nodes, timeout=30,
             what="an NVIDIA device plugin stand-in pod Running on every GPU node")

    charts, values = {"adaptive": ADAPTIVE_META}, {"adaptive": adaptive()}
    checks = run_checks(preflight.gather(kubectl, namespace="preflight"), charts=charts, values=values)
    plugin = one(checks, "gpu device plugin")
    assert plugin.status == "fail" and "all 5 GPU nodes" in plugin.evidence
    assert "no Running Neuron device plugin pod on 1 of 1 Neuron node: ml-trn1-32xlarge-0" in plugin.evidence

    kubectl.apply(stand_in_plugin("neuron-device-plugin", "public.ecr.aws/neuron/neuron-device-plugin:2.22.4.0",
                                  {"aws.amazon.com/neuron.present": "true"}))
    wait_for(lambda: running_on(kubectl, "neuron-device-plugin") == {"ml-trn1-32xlarge-0"}, timeout=30,
             what="a Neuron device plugin stand-in pod Running")
    facts = preflight.gather(kubectl, namespace="preflight")
    assert facts.simulated and facts.server_version.startswith("v1.")
    checks = run_checks(facts, charts=charts, values=values, helm_version="v3.22.0")
    assert {c.name for c in checks} == CHECK_NAMES

    health = one(checks, "hyperpod node health")
    assert health.status == "fail"
    assert [d.split(" ")[0] for d in health.details] == ["ml-p5-48xlarge-deep-health-check-0", "ml-p5-48xlarge-failed-0"]
    plugin = one(checks, "gpu device plugin")
    assert plugin.status == "pass" and "all 5 GPU nodes" in plugin.evidence and "preflight/nvidia-device-plugin" in plugin.evidence
    rbac = one(checks, "rbac")
    assert rbac.status == "pass" and len(facts.access) == len(preflight.SMOKE_ACCESS)
    assert facts.access[access_key("create", "deployments.apps", "preflight")] is True
    assert one(checks, "kubernetes version", "adaptive").status == "pass"
    allocatable = one(checks, "gpu allocatable")
    assert allocatable.status == "fail" and "ml-p5-48xlarge-gpus-unallocatable-0" in allocatable.evidence
    assert {"v1", "apps/v1", "authorization.k8s.io/v1"} <= facts.api_versions
    assert one(checks, "storage classes").status == "skip"
