"""Facts of the HyperPod contract (chartproof/contracts/hyperpod.md) the hyperpod suite checks against:
dependency table (B), instance-type lists (C.3), regional agent images (C.4), objects per component (D),
and how to find each component's objects by what D promises (fixed names; the NVIDIA and EFA DaemonSets,
whose names the contract leaves open, by image and by the accelerator taint they tolerate).

Scheduling rules (affinity, tolerations, taints) are engine code: ``chartproof.placement``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chartproof import yamlio
from chartproof.manifest import Manifest, containers, images, key, ref
from chartproof.placement import declares_toleration, has_taint

RELEASE = "dependencies"
NAMESPACE = "kube-system"
HEALTH_TAINT = {"key": "sagemaker.amazonaws.com/node-health-status", "operator": "Equal",
                "value": "Unschedulable", "effect": "NoSchedule"}

# -- B. dependencies: name -> (version, local directory under charts/ or None for a remote chart, condition) -----
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
LISTS = {"nvidia-device-plugin": NVIDIA_TYPES, "aws-efa-k8s-device-plugin": EFA_TYPES,
         "neuron-device-plugin": NEURON_TYPES, "health-monitoring-agent": HMA_TYPES}

_NVIDIA_FAMILIES = ("g5", "g6", "g6e", "gr6", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200")
_NEURON_FAMILIES = ("inf1", "inf2", "trn1", "trn1n", "trn2")


def _family(instance_type: str) -> tuple[str, str]:
    family, _, size = instance_type.removeprefix("ml.").partition(".")
    return family, size


def efa_interfaces(instance_type: str) -> int:
    """F.2: EFA interfaces of a HyperPod instance type (0 = not EFA-capable)."""
    family, size = _family(instance_type)
    table = {"p4d": 4, "p4de": 4, "p5": 32, "p5e": 32, "p5en": 16, "p6-b200": 8, "trn1n": 16, "trn2": 16, "c5n": 1}
    if family == "trn1":
        return 8 if size == "32xlarge" else 0
    if family in ("g5", "g6", "gr6"):
        return 1 if size in ("8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge") else 0
    if family == "g6e":
        return {"8xlarge": 1, "12xlarge": 1, "16xlarge": 1, "24xlarge": 2, "48xlarge": 4}.get(size, 0)
    if family in ("m7i", "r7i"):
        return 1 if size == "48xlarge" else 0
    if family == "i3en":
        return 1 if size in ("12xlarge", "24xlarge") else 0
    return table.get(family, 0)


def is_nvidia(instance_type: str) -> bool:
    return _family(instance_type)[0] in _NVIDIA_FAMILIES


def is_neuron(instance_type: str) -> bool:
    return _family(instance_type)[0] in _NEURON_FAMILIES


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


# -- D. objects per component: (kind, name, namespace or None when the contract leaves it open) -------------------
TRAINING_CRDS = ("pytorchjobs", "tfjobs", "mxjobs", "xgboostjobs", "paddlejobs")
TRAINING_SCHEMES = ("pytorchjob", "tfjob", "mxjob", "xgboostjob", "paddlejob")
INFERENCE_CRDS = ("inferenceendpointconfigs", "jumpstartmodels", "sagemakerendpointregistrations")
SERVICE_LINKED_ROLE = "hyperpod-service-linked-role"


def team_objects(team_id: str) -> set:
    n = f"hyperpod-ns-{team_id}"
    return {("ClusterRole", f"{n}-cluster-role", None), ("ClusterRoleBinding", f"{n}-cluster-role-binding", None),
            ("Role", f"{n}-namespace-role", n), ("RoleBinding", f"{n}-namespace-role-binding", n)}


def expected_objects(release: str = RELEASE, namespace: str = NAMESPACE, team_id: str = "t") -> dict[str, set]:
    """D's named objects per component. The NVIDIA and EFA DaemonSets are not named by the contract: they
    are found by ``daemonset_of``."""
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
        "nvidia-device-plugin": set(),
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
                                          for p in INFERENCE_CRDS},
    }


def matches(entry: tuple, obj: dict) -> bool:
    kind, name, ns = entry
    k, o_ns, n = key(obj)
    return kind == k and name == n and (ns is None or ns == o_ns)


def present(manifest: Manifest, entry: tuple) -> bool:
    return any(matches(entry, o) for o in manifest)


def describe(entry: tuple) -> str:
    kind, name, ns = entry
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


def missing(manifest: Manifest, entries) -> list[str]:
    """The contract's objects (entries) the render lacks, readable."""
    return sorted(describe(e) for e in entries if not present(manifest, e))


def listing(manifest: Manifest, kind: str) -> str:
    return ", ".join(ref(o) for o in manifest.select(kind)) or "none"


# -- finding the DaemonSets ----------------------------------------------------------------------------------------
_NAMED_DAEMONSETS = {"neuron-device-plugin": "neuron-device-plugin-daemonset",
                     "health-monitoring-agent": "health-monitoring-agent"}
# The NVIDIA and EFA DaemonSets: the contract fixes neither name; recognised by their image or by the
# accelerator taint the plugin tolerates by name (C.2), never by name or template file.
_RECOGNISE = {
    "nvidia-device-plugin": (lambda img: "nvidia" in img and "device-plugin" in img, "nvidia.com/gpu"),
    "aws-efa-k8s-device-plugin": (lambda img: "efa" in img and "device-plugin" in img, "aws.amazon.com/efa"),
}
# Helper daemons the NVIDIA chart can add with the same image (not the device plugin itself).
_HELPER_COMMANDS = ("gpu-feature-discovery", "mps-control-daemon", "config-manager")


def _runs_helper(obj: dict) -> bool:
    words = " ".join(str(w) for c in containers(obj) for w in (c.get("command") or []) + (c.get("args") or []))
    return any(h in words for h in _HELPER_COMMANDS)


def daemonset_candidates(manifest: Manifest, component: str) -> list[dict]:
    if component in _NAMED_DAEMONSETS:
        return manifest.select("DaemonSet", name=_NAMED_DAEMONSETS[component])
    image_ok, taint_key = _RECOGNISE[component]
    named = set(_NAMED_DAEMONSETS.values())
    found = [o for o in manifest.select("DaemonSet", where=lambda o: key(o)[2] not in named)
             if any(image_ok(i) for i in images(o)) or declares_toleration(o, taint_key)]
    if len(found) > 1:
        found = [o for o in found if not _runs_helper(o)] or found
    return found


def daemonset_of(manifest: Manifest, component: str) -> dict:
    """The DaemonSet of a device plugin or the agent: by the name D fixes (Neuron, HMA), else by image or the
    accelerator taint it tolerates (NVIDIA, EFA). Exactly one, else an AssertionError listing the DaemonSets."""
    found = daemonset_candidates(manifest, component)
    if len(found) != 1:
        how = f"named {_NAMED_DAEMONSETS[component]}" if component in _NAMED_DAEMONSETS else \
            "recognised by its image or its accelerator toleration"
        raise AssertionError(f"expected one {component} DaemonSet ({how}), found {len(found)}; "
                             f"DaemonSets of the render: {listing(manifest, 'DaemonSet')}")
    return found[0]


def owned_objects(manifest: Manifest, component: str, team_id: str = "t") -> list[dict]:
    """The objects of a render that the contract attributes to ``component``: D's named objects, plus the
    NVIDIA/EFA DaemonSets found by ``daemonset_candidates``."""
    entries = expected_objects(team_id=team_id)[component]
    out = [o for o in manifest if any(matches(e, o) for e in entries)]
    if component in _RECOGNISE:
        out += [o for o in daemonset_candidates(manifest, component) if o not in out]
    return out


def health_tainted(node: dict) -> bool:
    return has_taint(node, HEALTH_TAINT["key"], HEALTH_TAINT["effect"])


# -- RBAC, as the contract states rules ------------------------------------------------------------------------
def rules(obj: dict) -> list[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples of a Role/ClusterRole (resourceNames ignored)."""
    out = []
    for rule in obj.get("rules") or []:
        for group in rule.get("apiGroups") or [""]:
            for res in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    out.append((group, res, verb))
    return out


def allows(obj: dict, group: str, resource: str, verb: str) -> bool:
    return any((g == group or g == "*") and (r == resource or r == "*") and (v == verb or v == "*")
               for g, r, v in rules(obj))


def denied(obj: dict, checks) -> list[tuple[str, str, str]]:
    """The (group, resource, verb) checks a role does not allow."""
    return [c for c in checks if not allows(obj, *c)]


def subjects(binding: dict) -> set[tuple[str, str, str]]:
    """(kind, name, namespace) of a binding's subjects."""
    return {(s.get("kind", ""), s.get("name", ""), s.get("namespace") or "") for s in binding.get("subjects") or []
            if isinstance(s, dict)}


def role_ref(binding: dict) -> tuple[str, str]:
    r = binding.get("roleRef") or {}
    return r.get("kind", ""), r.get("name", "")


# -- values ------------------------------------------------------------------------------------------------------
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
    for dotted, value in flat.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def inference_values(prefix: str = "hyperpod-inference-operator", drop: str | None = None) -> dict:
    flat = {k: v for k, v in INFERENCE_REQUIRED.items() if k != drop}
    values = nested(flat)
    return {prefix: values} if prefix else values


# -- the build under test: its Chart.yaml and local subcharts ----------------------------------------------
def chart_meta(chart_dir: Path) -> dict:
    path = chart_dir / "Chart.yaml"
    assert path.is_file(), f"{chart_dir} has no Chart.yaml"
    meta = yamlio.load(path.read_text()) or {}
    assert isinstance(meta, dict), "Chart.yaml is not a mapping"
    return meta


def dependency_entries(chart_dir: Path) -> dict[str, dict]:
    return {str(d.get("name")): d for d in chart_meta(chart_dir).get("dependencies") or [] if isinstance(d, dict)}


def remote_dependencies(chart_dir: Path) -> dict[str, str]:
    """name -> repository of every dependency Chart.yaml fetches from a remote repository."""
    return {name: str(d.get("repository", "")) for name, d in dependency_entries(chart_dir).items()
            if not str(d.get("repository", "")).startswith("file://")}


def subchart_dir(chart_dir: Path, name: str) -> Path:
    """The unpacked directory of dependency ``name``: its ``file://`` path, else ``charts/<name>``; skips when
    this build ships it only as an archive or fetches it remotely (nothing local to render on its own)."""
    dep = dependency_entries(chart_dir).get(name)
    repo = str((dep or {}).get("repository", ""))
    candidates = [chart_dir / repo[len("file://"):]] if repo.startswith("file://") else []
    candidates.append(chart_dir / "charts" / name)
    for path in candidates:
        if (path / "Chart.yaml").is_file():
            return path
    pytest.skip(f"{name} is not shipped as an unpacked local subchart in this build (repository {repo or 'unset'})")
