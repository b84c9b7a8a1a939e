"""HyperPod contract E, "Defaults and toggles": which components a render holds, and where their objects go.

Objects are attributed to components by what contract D promises (fixed names; the NVIDIA and EFA
DaemonSets by image or accelerator toleration) and, for a toggle, by comparing the render with the flag
flipped to the render without it: never by template file names."""

from __future__ import annotations

import hyperpod_facts as F
import pytest

from chartproof.manifest import Manifest, dig, key, ref
from chartproof.paths import scenario, scenarios

SCENARIOS = [p.stem for p in scenarios("hyperpod")]


def added(with_it: Manifest, without: Manifest) -> list[dict]:
    """Objects of ``with_it`` whose (kind, namespace, name) ``without`` lacks."""
    have = without.keys()
    return [o for o in with_it if key(o) not in have]


def changed(a: Manifest, b: Manifest) -> list[str]:
    """Objects in both renders (same kind, namespace, name) whose content differs, except Namespaces."""
    theirs = {key(o): o for o in b}
    return [ref(o) for o in a if o.get("kind") != "Namespace" and key(o) in theirs and theirs[key(o)] != o]


@pytest.mark.contract("HYP-DEFAULT-01")
def test_hyp_default_01_default_render_is_exactly_the_default_on_components(hp):
    m = hp()
    expected = F.expected_objects()
    absent = {c: F.missing(m, expected[c]) for c in sorted(F.DEFAULT_ON)}
    absent = {c: v for c, v in absent.items() if v}
    assert not absent, f"default-on components lack their objects in the default render: {absent}"
    for component in ("nvidia-device-plugin", "aws-efa-k8s-device-plugin", "health-monitoring-agent"):
        F.daemonset_of(m, component)
    rendered_off = {c: sorted(F.describe(e) for e in expected[c] if e[0] != "Namespace" and F.present(m, e))
                    for c in sorted(F.DEFAULT_OFF)}
    rendered_off = {c: v for c, v in rendered_off.items() if v}
    assert not rendered_off, f"default-off components render objects by default: {rendered_off}"
    team = [ref(o) for o in m if str(dig(o, "metadata.name", "")).startswith("hyperpod-ns-")
            or str(dig(o, "metadata.namespace", "")).startswith("hyperpod-ns-")]
    assert not team, f"team-role objects render without a targetId: {team}"


TOGGLES = [
    # (id, values that flip the key, component, does flipping turn it on?)
    ("trainingOperators", {"trainingOperators.enabled": False}, "training-operators", False),
    ("inferenceOperators", {"inferenceOperators.enabled": True}, "hyperpod-inference-operator", True),
    ("mlflow", {"mlflow.enabled": True}, "mlflow", True),
    ("storage", {"storage.enabled": True}, "storage", True),
    ("cluster-role", {"cluster-role-and-bindings.enabled": True}, "cluster-role-and-bindings", True),
    ("namespaced-role", {"namespaced-role-and-bindings.enabled": True}, "namespaced-role-and-bindings", True),
    ("team-role", {"team-role-and-bindings.enabled": True, "team-role-and-bindings.computeQuotaTarget.targetId": "t"},
     "team-role-and-bindings", True),
    ("deep-health-check", {"deep-health-check.enabled": False}, "deep-health-check", False),
    ("health-monitoring-agent", {"health-monitoring-agent.enabled": False}, "health-monitoring-agent", False),
    ("job-auto-restart", {"job-auto-restart.enabled": False}, "job-auto-restart", False),
    ("mpi-operator", {"mpi-operator.enabled": False}, "mpi-operator", False),
    ("hyperpod-patching", {"hyperpod-patching.enabled": False}, "hyperpod-patching", False),
    ("nvidia", {"nvidia-device-plugin.devicePlugin.enabled": False}, "nvidia-device-plugin", False),
    ("neuron", {"neuron-device-plugin.devicePlugin.enabled": False}, "neuron-device-plugin", False),
    ("efa", {"aws-efa-k8s-device-plugin.devicePlugin.enabled": False}, "aws-efa-k8s-device-plugin", False),
]


@pytest.mark.contract("HYP-TOGGLE-01")
@pytest.mark.parametrize("how", ["set", "values-file"])
@pytest.mark.parametrize("flag,flip,component,on", TOGGLES, ids=[t[0] for t in TOGGLES])
def test_hyp_toggle_01_each_flag_switches_exactly_its_component(hp, flag, flip, component, on, how):
    base_values = [F.inference_values()] if component == "hyperpod-inference-operator" else []
    base = hp(base_values)
    flipped = hp(base_values + [F.nested(flip)]) if how == "values-file" else hp(base_values, flip)
    with_it, without = (flipped, base) if on else (base, flipped)
    own = [o for o in F.owned_objects(with_it, component) if o.get("kind") != "Namespace"]
    assert own, f"{component} renders none of its contract objects when on"
    still = [ref(o) for o in F.owned_objects(without, component) if o.get("kind") != "Namespace"]
    assert not still, f"{component} off: its objects still render: {still}"
    named = [e for e in F.expected_objects()[component] if e[0] != "Namespace"]
    assert not F.missing(with_it, named), f"{component} on: missing {F.missing(with_it, named)}"
    # what the flag adds or removes belongs to no other component, and nothing else changes
    diff = added(with_it, without) + added(without, with_it)
    others = [ref(o) for c in F.DEPENDENCIES if c != component
              for o in F.owned_objects(flipped, c) + F.owned_objects(base, c)
              if o.get("kind") != "Namespace" and any(o is d for d in diff)]
    assert not others, f"flipping {flag} also adds or removes objects of other components: {sorted(set(others))}"
    assert not changed(with_it, without), f"flipping {flag} changes other objects: {changed(with_it, without)}"


@pytest.mark.contract("HYP-TOGGLE-02")
def test_hyp_toggle_02_training_operator_off_removes_it_and_its_crds_only(hp):
    on, off = hp(), hp(set={"trainingOperators.enabled": False})
    objects = [("Deployment", f"{F.RELEASE}-training-operators", "kubeflow"),
               ("Service", "training-operator", "kubeflow"), ("ServiceAccount", "training-operator", "kubeflow"),
               ("ClusterRole", "training-operator", None), ("ClusterRoleBinding", "training-operator", None),
               ("ClusterRole", "kubeflow-training-admin", None), ("ClusterRole", "kubeflow-training-edit", None),
               ("ClusterRole", "kubeflow-training-view", None)]
    objects += [("CustomResourceDefinition", f"{p}.kubeflow.org", None) for p in F.TRAINING_CRDS]
    assert not F.missing(on, objects), f"training operator on: missing {F.missing(on, objects)}"
    remaining = [F.describe(e) for e in objects if F.present(off, e)]
    assert not remaining, f"trainingOperators.enabled=false (with --include-crds) still renders {remaining}"
    assert off.has("CustomResourceDefinition", "mpijobs.kubeflow.org"), \
        "mpijobs.kubeflow.org must stay while mpi-operator is on; CRDs found: " + F.listing(off, "CustomResourceDefinition")


@pytest.mark.contract("HYP-TOGGLE-03")
def test_hyp_toggle_03_namespaced_roles_render_only_when_enabled(hp):
    entries = F.expected_objects()["namespaced-role-and-bindings"]
    default = hp()
    assert not [F.describe(e) for e in entries if F.present(default, e)], "namespaced roles render by default"
    on = hp(set={"namespaced-role-and-bindings.enabled": True})
    assert not F.missing(on, entries), f"namespaced-role-and-bindings.enabled=true: missing {F.missing(on, entries)}"


NS_CASES = {
    "defaults": {},
    "dhc-off-hma-only": {"deep-health-check.enabled": False, "job-auto-restart.enabled": False},
    "dhc-off-jar-only": {"deep-health-check.enabled": False, "health-monitoring-agent.enabled": False},
    "training-off-mlflow-on": {"trainingOperators.enabled": False, "mlflow.enabled": True},
    "training-off-namespaced-roles-on": {"trainingOperators.enabled": False, "namespaced-role-and-bindings.enabled": True},
    "namespaced-roles-elsewhere": {"namespaced-role-and-bindings.enabled": True,
                                   "namespaced-role-and-bindings.namespace": "research"},
    "mlflow-elsewhere": {"mlflow.enabled": True, "mlflow.mlflow.serviceAccount.namespace": "mlflow"},
}
_CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "PersistentVolume", "StorageClass", "PriorityClass",
                   "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "IngressClass",
                   "RuntimeClass", "CSIDriver"}


def assert_namespaces_exist(m: Manifest) -> None:
    namespaces = [str(dig(o, "metadata.name", "")) for o in m.select("Namespace")]
    twice = sorted({n for n in namespaces if namespaces.count(n) > 1})
    assert not twice, f"Namespace rendered more than once: {twice}"
    assert F.NAMESPACE not in namespaces, "the render creates kube-system, which always exists"
    nowhere = []
    for obj in m:
        kind = str(obj.get("kind", ""))
        if kind in _CLUSTER_SCOPED or kind.startswith("Cluster"):
            continue
        ns = dig(obj, "metadata.namespace") or F.NAMESPACE
        if ns != F.NAMESPACE and not ns.startswith("hyperpod-ns-") and ns not in namespaces:
            nowhere.append(f"{ref(obj)} (in {ns})")
    assert not nowhere, f"objects land in namespaces nothing creates: {nowhere}; Namespaces rendered: {namespaces}"


@pytest.mark.contract("HYP-NS-01")
@pytest.mark.parametrize("case", sorted(NS_CASES))
def test_hyp_ns_01_every_namespace_used_exists_exactly_once(hp, case):
    m = hp(set=NS_CASES[case] or None)
    assert_namespaces_exist(m)
    if case == "dhc-off-hma-only":
        ns = m.one("Namespace", name="aws-hyperpod")
        assert dig(ns, "metadata.labels", {}).get("name") == "aws-hyperpod", \
            f"Namespace aws-hyperpod without deep-health-check: expected label name=aws-hyperpod, found {dig(ns, 'metadata.labels')}"


@pytest.mark.contract("HYP-NS-01")
@pytest.mark.parametrize("name", SCENARIOS)
def test_hyp_ns_01_scenarios_create_every_namespace_they_use(render, name):
    m = render.scenario("hyperpod", [scenario("hyperpod", name)], release=F.RELEASE, namespace=F.NAMESPACE)
    assert_namespaces_exist(m)

