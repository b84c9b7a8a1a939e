"""HyperPod contract E, "Device plugins: tolerations and affinity" (C.2, C.3, D).

The NVIDIA and EFA DaemonSets are found by image or accelerator toleration (the contract does not fix their
names); the Neuron and agent DaemonSets by their D names. The README promises required instance-type
affinity over HyperPod types; the exact C.3 lists are our chart's defaults, checked as extensions."""

from __future__ import annotations

import hyperpod_facts as F
import pytest

from chartproof.manifest import dig, fragment, images, pod_spec
from chartproof.placement import (
    INSTANCE_TYPE,
    affinity_values,
    instance_type_values,
    required_expressions,
    tolerates,
)

PLUGINS = ("nvidia-device-plugin", "aws-efa-k8s-device-plugin", "neuron-device-plugin")


def tolerations(obj: dict) -> list[dict]:
    return pod_spec(obj).get("tolerations") or []


def instance_type_affinity(ds: dict, component: str) -> set[str]:
    """The instance types a DaemonSet's required affinity admits; fails unless it is `instance-type In [...]`."""
    values = instance_type_values(ds)
    assert values, f"{component}: expected required node affinity on {INSTANCE_TYPE} In [...], found:\n" \
                   f"{fragment(dig(pod_spec(ds), 'affinity', {}))}"
    return values


@pytest.mark.contract("HYP-TOL-01")
def test_hyp_tol_01_plugins_and_mpi_operator_tolerate_the_health_taint(hp):
    m = hp()
    for component in PLUGINS:
        ds = F.daemonset_of(m, component)
        assert tolerates(tolerations(ds), F.HEALTH_TAINT), \
            f"{component} does not tolerate {F.HEALTH_TAINT}; tolerations: {tolerations(ds)}"
    mpi = m.get("Deployment", f"{F.RELEASE}-mpi-operator", F.NAMESPACE)
    assert tolerates(tolerations(mpi), F.HEALTH_TAINT), f"mpi-operator tolerations: {tolerations(mpi)}"


@pytest.mark.contract("HYP-TOL-02")
def test_hyp_tol_02_health_agent_tolerates_every_noschedule_and_noexecute_taint(hp):
    ds = F.daemonset_of(hp(), "health-monitoring-agent")
    tols = tolerations(ds)
    for effect in ("NoSchedule", "NoExecute"):
        for taint in ({"key": "anything.example.com/x", "value": "y", "effect": effect},
                      {"key": F.HEALTH_TAINT["key"], "value": "UnschedulablePendingReplacement", "effect": effect}):
            assert tolerates(tols, taint), f"the agent does not tolerate {taint}; tolerations: {tols}"


@pytest.mark.contract("HYP-AFF-01")
def test_hyp_aff_01_nvidia_and_neuron_have_instance_type_affinity(hp):
    m = hp()
    nvidia = instance_type_affinity(F.daemonset_of(m, "nvidia-device-plugin"), "nvidia-device-plugin")
    neuron = instance_type_affinity(F.daemonset_of(m, "neuron-device-plugin"), "neuron-device-plugin")
    assert any(F.is_nvidia(t) for t in nvidia) and not [t for t in nvidia if F.is_neuron(t)], \
        f"NVIDIA plugin affinity must list NVIDIA HyperPod types only, found {sorted(nvidia)}"
    assert any(F.is_neuron(t) for t in neuron) and not [t for t in neuron if F.is_nvidia(t)], \
        f"Neuron plugin affinity must list Neuron types only, found {sorted(neuron)}"


@pytest.mark.contract("HYP-AFF-01")
def test_hyp_aff_01_nvidia_affinity_value_replaces_the_list(hp):
    custom = {"nvidia-device-plugin": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": INSTANCE_TYPE, "operator": "In", "values": ["ml.g5.xlarge"]}]}]}}}}}
    replaced = F.daemonset_of(hp([custom]), "nvidia-device-plugin")
    assert instance_type_values(replaced) == {"ml.g5.xlarge"}, \
        f"nvidia-device-plugin.affinity=[ml.g5.xlarge]: found {sorted(instance_type_values(replaced))}"


@pytest.mark.contract("HYP-AFF-01", "HYP-HMA-01", extension=True)
@pytest.mark.parametrize("component", ["nvidia-device-plugin", "neuron-device-plugin", "health-monitoring-agent"])
def test_hyp_aff_01_default_lists_are_exactly_those_of_c3(hp, component):
    values = instance_type_affinity(F.daemonset_of(hp(), component), component)
    want = F.LISTS[component]
    assert values == want, f"{component} affinity: missing {sorted(want - values)}, extra {sorted(values - want)}"


@pytest.mark.contract("HYP-AFF-02")
def test_hyp_aff_02_efa_affinity_uses_supported_instance_labels(hp):
    ds = F.daemonset_of(hp(), "aws-efa-k8s-device-plugin")
    values = instance_type_affinity(ds, "aws-efa-k8s-device-plugin")
    user = {"aws-efa-k8s-device-plugin": {"supportedInstanceLabels": {"keys": ["example.com/type"],
                                                                      "values": ["ml.p5.48xlarge", "ml.trn2.48xlarge"]}}}
    replaced = F.daemonset_of(hp([user]), "aws-efa-k8s-device-plugin")
    got = affinity_values(replaced, "example.com/type")
    assert got == {"ml.p5.48xlarge", "ml.trn2.48xlarge"}, \
        f"supportedInstanceLabels keys=[example.com/type] values=[ml.p5.48xlarge, ml.trn2.48xlarge]: affinity found {sorted(got)}"
    leftover = [e for e in required_expressions(replaced) if set(e.get("values") or []) & (values - got)]
    assert not leftover, f"the default EFA list is still in the affinity after a user list replaced it: {leftover}"


@pytest.mark.contract("HYP-AFF-02", extension=True)
def test_hyp_aff_02_default_efa_list_is_that_of_c3(hp):
    values = instance_type_affinity(F.daemonset_of(hp(), "aws-efa-k8s-device-plugin"), "aws-efa-k8s-device-plugin")
    assert values == F.EFA_TYPES, f"EFA affinity: missing {sorted(F.EFA_TYPES - values)}, extra {sorted(values - F.EFA_TYPES)}"


@pytest.mark.contract("HYP-AFF-03")
def test_hyp_aff_03_instance_type_lists_are_consistent(hp):
    """The chart's own lists agree with each other (whatever types a build lists)."""
    m = hp()
    lists = {c: instance_type_affinity(F.daemonset_of(m, c), c) for c in PLUGINS + ("health-monitoring-agent",)}
    hma = lists["health-monitoring-agent"]
    gaps = {
        "NVIDIA types of the agent list missing from the NVIDIA list": {t for t in hma if F.is_nvidia(t)} - lists["nvidia-device-plugin"],
        "Neuron types of the agent list missing from the Neuron list": {t for t in hma if F.is_neuron(t)} - lists["neuron-device-plugin"],
        "EFA-capable types of the agent list missing from the EFA list":
            {t for t in hma if F.efa_interfaces(t) > 0} - lists["aws-efa-k8s-device-plugin"],
    }
    gaps = {k: sorted(v) for k, v in gaps.items() if v}
    assert not gaps, f"instance-type lists are inconsistent: {gaps}"


@pytest.mark.contract("HYP-DP-01")
@pytest.mark.parametrize("release_ns", [F.NAMESPACE, "hyperpod-deps"])
def test_hyp_dp_01_plugin_namespaces_image_sa_and_priority(hp, release_ns):
    m = hp(namespace=release_ns)
    absent = F.missing(m, F.expected_objects()["neuron-device-plugin"])
    assert not absent, f"release in {release_ns}: Neuron objects missing (all in kube-system): {absent}; " \
                       f"DaemonSets: {F.listing(m, 'DaemonSet')}"
    ds = m.get("DaemonSet", "neuron-device-plugin-daemonset", "kube-system")
    spec = pod_spec(ds)
    assert "public.ecr.aws/neuron/neuron-device-plugin:2.19.16.0" in images(ds), f"Neuron images: {images(ds)}"
    assert spec.get("serviceAccountName") == "neuron-device-plugin", f"serviceAccountName: {spec.get('serviceAccountName')!r}"
    assert spec.get("priorityClassName") == "system-node-critical", f"priorityClassName: {spec.get('priorityClassName')!r}"
    paths = {str(dig(v, "hostPath.path", "")).rstrip("/") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    assert {"/var/lib/kubelet/device-plugins", "/run"} <= paths, f"Neuron hostPaths: found {sorted(p for p in paths if p)}"
    nvidia = F.daemonset_of(m, "nvidia-device-plugin")
    assert dig(nvidia, "metadata.namespace") == "kube-system", \
        f"release in {release_ns}: the NVIDIA DaemonSet must be in kube-system, found {dig(nvidia, 'metadata.namespace')!r}"
