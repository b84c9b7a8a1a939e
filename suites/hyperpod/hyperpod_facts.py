"""Facts of the HyperPod chart contract (shared/contracts/hyperpod.md) used by the hyperpod suite:
dependency table, instance-type lists, regional agent images, objects per component, and small
helpers to attribute rendered objects to components and to evaluate node affinity."""

from __future__ import annotations

import itertools
import re
from typing import Any

from chartproof.manifest import Manifest, pod_spec

RELEASE = "dependencies"
NAMESPACE = "kube-system"
HEALTH_TAINT = {"key": "sagemaker.amazonaws.com/node-health-status", "operator": "Equal",
                "value": "Unschedulable", "effect": "NoSchedule"}
INSTANCE_TYPE = "node.kubernetes.io/instance-type"

# -- B. dependencies: name -> (version, repository dir or None for a remote chart, condition) --------------
DEPENDENCIES = {
    "training-operators": ("0.1.0", "training-operators", "trainingOperators.enabled"),
    "mlflow": ("0.1.0", "mlflow", "mlflow.enabled"),
    "nvidia-device-plugin": ("0.16.1", None, "nvidia-device-plugin.devicePlugin.enabled"),
    "aws-efa-k8s-device-plugin": ("0.5.3", None, "aws-efa-k8s-device-plugin.devicePlugin.enabled"),
    "neuron-device-plugin": ("0.1.0", "neuron-device-plugin", "neuron-device-plugin.devicePlugin.enabled"),
    "storage": ("0.1.0", "storage", "storage.enabled"),
    "health-monitoring-agent": ("0.1.0", "health-monitoring-agent", "health-monitoring-agent.enabled"),
    "mpi-operator": ("0.1.0", "mpi-operator", "mpi-operator.enabled"),
    "deep-health-check": ("0.1.0", "deep-health-check", "deep-health-check.enabled"),
    "job-auto-restart": ("0.1.0", "job-auto-restart", "job-auto-restart.enabled"),
    "cluster-role-and-bindings": ("0.1.0", "cluster-role-and-bindings", "cluster-role-and-bindings.enabled"),
    "namespaced-role-and-bindings": ("0.1.0", "namespaced-role-and-bindings", "namespaced-role-and-bindings.enabled"),
    "team-role-and-bindings": ("0.1.0", "team-role-and-bindings", "team-role-and-bindings.enabled"),
    "hyperpod-inference-operator": ("0.1.0", "inference-operator", "inferenceOperators.enabled"),
    "hyperpod-patching": ("0.1.0", "hyperpod-patching", "hyperpod-patching.enabled"),
}
REMOTE_REPOSITORIES = {
    "nvidia-device-plugin": "https://nvidia.github.io/k8s-device-plugin",
    "aws-efa-k8s-device-plugin": "https://aws.github.io/eks-charts/",
}
DEFAULT_ON = {"training-operators", "nvidia-device-plugin", "aws-efa-k8s-device-plugin", "neuron-device-plugin",
              "health-monitoring-agent", "mpi-operator", "deep-health-check", "job-auto-restart", "hyperpod-patching"}
DEFAULT_OFF = set(DEPENDENCIES) - DEFAULT_ON

# -- C.3 instance-type lists ------------------------------------------------------------------------------------
_SIZES8 = ["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"]
_P = ["ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.48xlarge", "ml.p5e.48xlarge", "ml.p5en.48xlarge",
      "ml.p6-b200.48xlarge"]
NVIDIA_TYPES = {f"ml.{f}.{s}" for f in ("g5", "g6", "g6e") for s in _SIZES8} | {"ml.gr6.4xlarge", "ml.gr6.8xlarge"} | set(_P)
EFA_TYPES = ({"ml.c5n.9xlarge", "ml.c5n.18xlarge", "ml.gr6.8xlarge"}
             | {f"ml.{f}.{s}" for f in ("g5", "g6", "g6e") for s in ("8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")}
             | {f"ml.i3en.{s}" for s in ("large", "xlarge", "2xlarge", "3xlarge", "6xlarge", "12xlarge", "24xlarge")}
             | {f"ml.{f}.{s}" for f in ("m7i", "r7i")
                for s in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")}
             | set(_P) | {"ml.trn1.32xlarge", "ml.trn1n.32xlarge", "ml.trn2.48xlarge"})
NEURON_TYPES = ({f"inf1.{s}" for s in ("xlarge", "2xlarge", "6xlarge", "24xlarge")}
                | {f"inf2.{s}" for s in ("xlarge", "8xlarge", "24xlarge", "48xlarge")}
                | {"trn1.2xlarge", "trn1.32xlarge", "trn1n.32xlarge"}
                | {f"ml.inf2.{s}" for s in ("xlarge", "8xlarge", "24xlarge", "48xlarge")}
                | {"ml.trn1.2xlarge", "ml.trn1.32xlarge", "ml.trn1n.32xlarge", "ml.trn2.48xlarge"})
HMA_TYPES = (set(_P) | {f"ml.{f}.{s}" for f in ("g5", "g6", "g6e") for s in _SIZES8}
             | {"ml.gr6.4xlarge", "ml.gr6.8xlarge"} | {f"ml.inf2.{s}" for s in ("xlarge", "8xlarge", "24xlarge", "48xlarge")}
             | {"ml.trn1.32xlarge", "ml.trn1n.32xlarge", "ml.trn2.48xlarge"})
assert (len(NVIDIA_TYPES), len(EFA_TYPES), len(NEURON_TYPES), len(HMA_TYPES)) == (32, 52, 19, 39)


def efa_interfaces(instance_type: str) -> int:
    """F.2: EFA interfaces of a HyperPod instance type (0 = not EFA-capable)."""
    family, _, size = instance_type.removeprefix("ml.").partition(".")
    table = {"p4d": 4, "p4de": 4, "p5": 32, "p5e": 32, "p5en": 16, "p6-b200": 8, "trn1n": 16, "trn2": 16, "c5n": 1}
    if family == "trn1":
        return 8 if size == "32xlarge" else 0
    if family in ("g5", "g6", "gr6"):
        return 1 if size in ("8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge") else 0
    if family == "g6e":
        return {"8xlarge": 1, "12xlarge": 1, "16xlarge": 1, "24xlarge": 2, "48xlarge": 4}.get(size, 0)
    if family == "inf2":
        return 0
    if family in ("m7i", "r7i", "i3en"):
        return 1 if size in ("12xlarge", "24xlarge", "48xlarge") else 0
    return table.get(family, 0)


def is_nvidia(instance_type: str) -> bool:
    return instance_type.removeprefix("ml.").split(".")[0] in ("g5", "g6", "g6e", "gr6", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200")


def is_neuron(instance_type: str) -> bool:
    return instance_type.removeprefix("ml.").split(".")[0] in ("inf1", "inf2", "trn1", "trn1n", "trn2")


# -- C.4 health monitoring agent images -----------------------------------------------------------------------
HMA_TAG = "1.0.643.0_1.0.192.0"
HMA_ACCOUNTS = {
    "us-east-1": "767398015722", "us-west-2": "905418368575", "us-east-2": "851725546812",
    "us-west-1": "011528288828", "eu-central-1": "211125453373", "eu-north-1": "654654141839",
    "eu-west-1": "533267293120", "eu-west-2": "011528288831", "ap-northeast-1": "533267052152",
    "ap-south-1": "011528288864", "ap-southeast-1": "905418428165", "ap-southeast-2": "851725636348",
    "sa-east-1": "025066253954",
}


def hma_image(region: str) -> str:
    return f"{HMA_ACCOUNTS[region]}.dkr.ecr.{region}.amazonaws.com/hyperpod-health-monitoring-agent:{HMA_TAG}"


# -- D. objects per component (kind, name, namespace or None when the contract leaves it open) --------------
def expected_objects(release: str = RELEASE, namespace: str = NAMESPACE, team_id: str = "t") -> dict[str, set]:
    r, ns = release, namespace
    return {
        "training-operators": {("Namespace", "kubeflow", None), ("ClusterRole", "kubeflow-training-admin", None),
                               ("ClusterRole", "kubeflow-training-edit", None), ("ClusterRole", "kubeflow-training-view", None),
                               ("ClusterRole", "training-operator", None), ("ClusterRoleBinding", "training-operator", None),
                               ("ServiceAccount", "training-operator", "kubeflow"),
                               ("Deployment", f"{r}-training-operators", "kubeflow"),
                               ("Service", "training-operator", "kubeflow")}
                              | {("CustomResourceDefinition", f"{p}.kubeflow.org", None) for p in TRAINING_CRDS},
        "mpi-operator": {("Namespace", "mpi-operator", None), ("ServiceAccount", f"{r}-mpi-operator", ns),
                         ("Deployment", f"{r}-mpi-operator", ns), ("ClusterRole", f"{r}-mpi-operator", None),
                         ("ClusterRole", f"{r}-kubeflow-mpijobs-admin", None), ("ClusterRole", f"{r}-kubeflow-mpijobs-edit", None),
                         ("ClusterRole", f"{r}-kubeflow-mpijobs-view", None), ("ClusterRoleBinding", f"{r}-mpi-operator", None),
                         ("CustomResourceDefinition", "mpijobs.kubeflow.org", None)},
        "nvidia-device-plugin": set(),  # a DaemonSet the NVIDIA chart names; found by image (device_plugin_daemonset)
        "aws-efa-k8s-device-plugin": set(),
        "neuron-device-plugin": {("ClusterRole", "neuron-device-plugin", None), ("ClusterRoleBinding", "neuron-device-plugin", None),
                                 ("ServiceAccount", "neuron-device-plugin", "kube-system"),
                                 ("DaemonSet", "neuron-device-plugin-daemonset", "kube-system")},
        "deep-health-check": {("Namespace", "aws-hyperpod", None),
                              ("ServiceAccount", "deep-health-check-service-account", "aws-hyperpod"),
                              ("ClusterRole", "deep-health-check-service-account-role", None),
                              ("ClusterRoleBinding", "deep-health-check-service-account-role-binding", None)},
        "health-monitoring-agent": {("ClusterRole", "health-monitoring-agent", None),
                                    ("ClusterRoleBinding", "health-monitoring-agent", None),
                                    ("ServiceAccount", "health-monitoring-agent", "aws-hyperpod"),
                                    ("DaemonSet", "health-monitoring-agent", "aws-hyperpod")},
        "job-auto-restart": {("ClusterRole", "job-auto-restart", None), ("ClusterRoleBinding", "job-auto-restart", None),
                             ("ServiceAccount", "job-auto-restart", "aws-hyperpod")},
        "hyperpod-patching": {("ClusterRole", "hyperpod-patching", None), ("ClusterRoleBinding", "hyperpod-patching", None)},
        "cluster-role-and-bindings": {("ClusterRole", "hyperpod-scientist-user-cluster-role", None),
                                      ("ClusterRoleBinding", "hyperpod-scientist-user-cluster-role-binding", None)},
        "namespaced-role-and-bindings": {("Role", "hyperpod-scientist-user-namespace-level-role", "kubeflow"),
                                         ("RoleBinding", "hyperpod-scientist-user-namespace-level-role-binding", "kubeflow")},
        "team-role-and-bindings": team_objects(team_id),
        "mlflow": {("ServiceAccount", "mlflow-service-account1", "kubeflow")},
        "storage": {("PersistentVolume", "fsx-pv", None), ("PersistentVolumeClaim", "fsx-claim", ns)},
        "hyperpod-inference-operator": {("Namespace", "hyperpod-inference-system", None),
                                        ("ServiceAccount", "hyperpod-inference-operator-controller-manager", None),
                                        ("Deployment", "hyperpod-inference-operator-controller-manager", None),
                                        ("PersistentVolume", "s3-pv", None), ("PersistentVolumeClaim", "s3-claim", None)}
                                       | {("CustomResourceDefinition", f"{p}.inference.sagemaker.aws.amazon.com", None)
                                          for p in ("inferenceendpointconfigs", "jumpstartmodels", "sagemakerendpointregistrations")},
    }


TRAINING_CRDS = ("pytorchjobs", "tfjobs", "mxjobs", "xgboostjobs", "paddlejobs")


def team_objects(team_id: str) -> set:
    n = f"hyperpod-ns-{team_id}"
    return {("ClusterRole", f"{n}-cluster-role", None), ("ClusterRoleBinding", f"{n}-cluster-role-binding", None),
            ("Role", f"{n}-namespace-role", n), ("RoleBinding", f"{n}-namespace-role-binding", n)}


# Required values of the inference operator (paths under `hyperpod-inference-operator`).
INFERENCE_REQUIRED = {
    "region": "us-west-2",
    "eksClusterName": "chartproof-eks",
    "executionRoleArn": "arn:aws:iam::111122223333:role/exec",
    "tlsCertificateS3Bucket": "s3://chartproof-tls",
    "s3.serviceAccountRoleArn": "arn:aws:iam::111122223333:role/s3",
    "keda.podIdentity.aws.irsa.roleArn": "arn:aws:iam::111122223333:role/keda",
    "alb.vpcId": "vpc-0123456789abcdef0",
    "alb.serviceAccount.roleArn": "arn:aws:iam::111122223333:role/alb",
}


def nested(flat: dict[str, Any]) -> dict:
    """{"a.b": 1} -> {"a": {"b": 1}} (keys containing dashes stay whole)."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def inference_values(prefix: str = "hyperpod-inference-operator", drop: str | None = None) -> dict:
    flat = {k: v for k, v in INFERENCE_REQUIRED.items() if k != drop}
    values = nested(flat)
    return {prefix: values} if prefix else values


# -- attribution ---------------------------------------------------------------------------------------------
_SOURCE = re.compile(r"/charts/([^/]+)/(templates|crds)/")


def key(obj: dict) -> tuple[str, str, str]:
    meta = obj.get("metadata", {})
    return obj.get("kind"), meta.get("name"), meta.get("namespace") or ""


def matches(entry: tuple, obj: dict) -> bool:
    kind, name, ns = entry
    k, n, o_ns = key(obj)
    return kind == k and name == n and (ns is None or ns == o_ns)


DEVICE_PLUGIN_IMAGES = {
    "nvidia-device-plugin": "k8s-device-plugin",
    "aws-efa-k8s-device-plugin": "aws-efa-k8s-device-plugin",
    "neuron-device-plugin": "neuron-device-plugin",
    "health-monitoring-agent": "hyperpod-health-monitoring-agent",
}


def images(obj: dict) -> list[str]:
    try:
        spec = pod_spec(obj)
    except Exception:  # noqa: BLE001 - not a workload
        return []
    return [c.get("image", "") for c in spec.get("containers", []) + spec.get("initContainers", [])]


def daemonset_of(manifest: Manifest, component: str) -> dict:
    """The DaemonSet of a device plugin / the agent, recognised by its image."""
    if component == "health-monitoring-agent":  # named by the contract; its image may be user-set
        return manifest.get("DaemonSet", "health-monitoring-agent")
    marker = DEVICE_PLUGIN_IMAGES[component]
    found = [o for o in manifest.find("DaemonSet")
             if any(marker in img and (component != "nvidia-device-plugin" or "nvidia" in img) for img in images(o))]
    assert len(found) == 1, f"expected one {component} DaemonSet, found {[key(o) for o in found]}"
    return found[0]


def component_of(manifest: Manifest, obj: dict, team_id: str = "t") -> str:
    """The component an object belongs to: by its template source (charts/<subchart>/...), else by the
    contract's object names; Namespaces not attributable that way are 'namespace', others 'umbrella'."""
    match = _SOURCE.search(manifest.source_of(obj) or "")
    if match:
        return match.group(1)
    for component, entries in expected_objects(team_id=team_id).items():
        if any(matches(e, obj) for e in entries):
            return component
    if obj.get("kind") == "DaemonSet":
        for component in ("aws-efa-k8s-device-plugin", "neuron-device-plugin", "health-monitoring-agent",
                          "nvidia-device-plugin"):
            if any(DEVICE_PLUGIN_IMAGES[component] in i for i in images(obj)):
                return component
    return "namespace" if obj.get("kind") == "Namespace" else "umbrella"


# -- scheduling --------------------------------------------------------------------------------------------------
def required_terms(obj: dict) -> list[dict]:
    aff = (pod_spec(obj).get("affinity") or {}).get("nodeAffinity") or {}
    return (aff.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []


def instance_type_values(obj: dict) -> set[str]:
    """Union of the `node.kubernetes.io/instance-type In [...]` values of the required affinity."""
    values: set[str] = set()
    for term in required_terms(obj):
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") == INSTANCE_TYPE and expr.get("operator") == "In":
                values |= set(expr.get("values") or [])
    return values


def _expr_ok(expr: dict, labels: dict) -> bool:
    op, k, vals = expr.get("operator"), expr.get("key"), expr.get("values") or []
    if op == "In":
        return k in labels and labels[k] in vals
    if op == "NotIn":
        return k not in labels or labels[k] not in vals
    if op == "Exists":
        return k in labels
    if op == "DoesNotExist":
        return k not in labels
    if op in ("Gt", "Lt"):
        try:
            return k in labels and (int(labels[k]) > int(vals[0]) if op == "Gt" else int(labels[k]) < int(vals[0]))
        except ValueError:
            return False
    raise AssertionError(f"unknown operator {op}")


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for tol in tolerations or []:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        op = tol.get("operator", "Equal")
        if not tol.get("key"):
            if op == "Exists":
                return True
            continue
        if tol["key"] != taint.get("key"):
            continue
        if op == "Exists" or tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def schedulable_on(obj: dict, node: dict) -> bool:
    """Whether the pods of a workload may run on a node: nodeSelector, required node affinity and the
    node's NoSchedule/NoExecute taints (the scheduler's and the DaemonSet controller's rules)."""
    spec = pod_spec(obj)
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    terms = required_terms(obj)
    if terms and not any(all(_expr_ok(e, labels) for e in t.get("matchExpressions") or []) for t in terms):
        return False
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(spec.get("tolerations"), taint):
            return False
    return True


def health_tainted(node: dict) -> bool:
    return any(t.get("key") == HEALTH_TAINT["key"] and t.get("effect") == "NoSchedule"
               for t in (node.get("spec") or {}).get("taints") or [])


def pairs(*lists):
    return list(itertools.product(*lists))
