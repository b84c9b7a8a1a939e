"""HyperPod contract E, "Storage" (FSx volume and claim) and "Sub-charts and upgrades" (render side:
subcharts on their own, the inference operator)."""

from __future__ import annotations

import hyperpod_facts as F
import pytest

from chartproof.manifest import dig, fragment, images, key, quantity, same_quantity, template_labels

CRDS = ("--include-crds",)


# == Storage ========================================================================================================
@pytest.mark.contract("HYP-STOR-01")
@pytest.mark.parametrize("release_ns", [F.NAMESPACE, "storage-test"])
def test_hyp_stor_01_fsx_volume_and_claim(hp, release_ns):
    m = hp(set={"storage.enabled": True}, namespace=release_ns)
    pv = m.get("PersistentVolume", "fsx-pv")
    spec = pv.get("spec") or {}
    csi = spec.get("csi") or {}
    assert csi.get("driver") == "fsx.csi.aws.com" and csi.get("volumeHandle"), f"PV csi:\n{fragment(csi)}"
    attrs = csi.get("volumeAttributes") or {}
    assert attrs.get("dnsname") and attrs.get("mountname") == "fsx", f"PV volumeAttributes: {attrs}"
    assert set(spec.get("accessModes") or []) == {"ReadWriteMany"}, f"PV accessModes: {spec.get('accessModes')}"
    assert "flock" in (spec.get("mountOptions") or []), f"PV mountOptions: {spec.get('mountOptions')}"
    assert spec.get("persistentVolumeReclaimPolicy") == "Retain", f"reclaim policy: {spec.get('persistentVolumeReclaimPolicy')}"
    assert same_quantity(dig(spec, "capacity.storage"), "1200Gi"), f"capacity: {dig(spec, 'capacity.storage')}"
    assert spec.get("volumeMode", "Filesystem") == "Filesystem", f"volumeMode: {spec.get('volumeMode')}"
    pvc = m.get("PersistentVolumeClaim", "fsx-claim", release_ns)
    pspec = pvc.get("spec") or {}
    assert set(pspec.get("accessModes") or []) == {"ReadWriteMany"}, f"PVC accessModes: {pspec.get('accessModes')}"
    assert same_quantity(dig(pspec, "resources.requests.storage"), "1200Gi"), f"PVC request: {dig(pspec, 'resources')}"
    assert pspec.get("storageClassName") == "fsx-sc", f"PVC storageClassName: {pspec.get('storageClassName')!r}"


@pytest.mark.contract("HYP-STOR-02")
def test_hyp_stor_02_claim_is_bindable_to_the_volume(hp):
    m = hp(set={"storage.enabled": True})
    pv, pvc = m.get("PersistentVolume", "fsx-pv"), m.get("PersistentVolumeClaim", "fsx-claim", F.NAMESPACE)
    assert dig(pvc, "spec.volumeName") == "fsx-pv", f"PVC volumeName: expected fsx-pv, found {dig(pvc, 'spec.volumeName')!r}"
    classes = (dig(pv, "spec.storageClassName", ""), dig(pvc, "spec.storageClassName", ""))
    assert classes[0] == classes[1], f"storageClassName of PV and PVC differ: {classes}"
    modes = (set(dig(pvc, "spec.accessModes", []) or []), set(dig(pv, "spec.accessModes", []) or []))
    assert modes[0] and modes[0] <= modes[1], f"PVC access modes {modes[0]} not offered by the PV {modes[1]}"
    request, capacity = dig(pvc, "spec.resources.requests.storage"), dig(pv, "spec.capacity.storage")
    assert request is not None and capacity is not None and quantity(request) <= quantity(capacity), \
        f"PVC requests {request}, PV capacity {capacity}"
    assert dig(pvc, "spec.volumeMode", "Filesystem") == dig(pv, "spec.volumeMode", "Filesystem")
    claim = dig(pv, "spec.claimRef")
    if claim:
        assert (claim.get("name"), claim.get("namespace")) == ("fsx-claim", F.NAMESPACE), f"PV claimRef: {claim}"


# == Sub-charts ======================================================================================================
@pytest.mark.contract("HYP-SUB-01")
def test_hyp_sub_01_team_subchart_alone_renders_exactly_the_team_objects(render, chart_dir):
    sub = F.subchart_dir(chart_dir, "team-role-and-bindings")
    m = render(sub, set={"computeQuotaTarget.targetId": "solo"}, release=F.RELEASE, namespace="default")
    want = sorted((k, ns or "", n) for k, n, ns in F.team_objects("solo"))
    assert sorted(key(o) for o in m) == want, f"the team subchart alone: expected exactly {want}, found {sorted(key(o) for o in m)}"
    message = render.error(sub, release=F.RELEASE, namespace="default")
    assert "computeQuotaTarget.targetId" in message, f"without a targetId the refusal must name it: {message}"


@pytest.mark.contract("HYP-SUB-02")
@pytest.mark.parametrize("name", sorted(F.DEPENDENCIES))
def test_hyp_sub_02_every_local_subchart_renders_on_its_own(render, chart_dir, name):
    sub = F.subchart_dir(chart_dir, name)
    values, sets = [], None
    if name == "team-role-and-bindings":
        sets = {"computeQuotaTarget.targetId": "solo"}
    if name == "hyperpod-inference-operator":
        values = [F.inference_values(prefix="")]
    m = render(sub, values, sets, release=F.RELEASE, namespace=F.NAMESPACE, args=CRDS)
    absent = F.missing(m, F.expected_objects(team_id="solo")[name])
    assert not absent, f"{name} rendered alone lacks {absent}"
    if name in ("nvidia-device-plugin", "aws-efa-k8s-device-plugin"):
        F.daemonset_of(m, name)


# == Inference operator ===============================================================================================
@pytest.mark.contract("HYP-INF-01")
def test_hyp_inf_01_inference_operator_objects_with_required_values(hp):
    base = hp([F.inference_values()])
    m = hp([F.inference_values()], {"inferenceOperators.enabled": True})
    absent = F.missing(m, F.expected_objects()["hyperpod-inference-operator"])
    assert not absent, f"inference operator objects missing: {absent}"
    name = "hyperpod-inference-operator-controller-manager"
    dep = m.one("Deployment", name=name)
    wanted = [i for i in images(dep) if i.endswith("/hyperpod-inference-operator:v1.0.0")]
    assert wanted and all("us-west-2" in i for i in wanted), \
        f"operator image: expected <repositoryDomainMap[us-west-2]>/hyperpod-inference-operator:v1.0.0, found {images(dep)}"
    sa = m.one("ServiceAccount", name=name)
    arn = dig(sa, "metadata.annotations", {}).get("eks.amazonaws.com/role-arn")
    assert arn == F.INFERENCE_REQUIRED["executionRoleArn"], f"SA role-arn: expected executionRoleArn, found {arn!r}"
    pods = template_labels(dep)
    metrics = [s for s in m.select("Service") if (sel := dig(s, "spec.selector", {}) or {})
               and all(pods.get(k) == v for k, v in sel.items())
               and any(p.get("port") == 8443 for p in dig(s, "spec.ports", []) or [])]
    assert metrics, f"no Service on 8443 selecting the operator's pods; Services: {F.listing(m, 'Service')}"
    new_kinds = {o.get("kind") for o in m if key(o) not in base.keys()}
    assert {"ClusterRole", "Role"} <= new_kinds, f"inferenceOperators.enabled adds no ClusterRoles/Role: {sorted(new_kinds)}"
    crds = m.select("CustomResourceDefinition", where=lambda o: dig(o, "spec.group") == "inference.sagemaker.aws.amazon.com")
    versions = {dig(c, "metadata.name"): [v.get("name") for v in dig(c, "spec.versions", []) or []] for c in crds}
    assert len(crds) == 3 and all(v == ["v1alpha1"] for v in versions.values()), \
        f"inference CRDs: expected 3 at v1alpha1, found {versions}"


def _names_it(message: str, path: str) -> bool:
    """The message names a value by its full path, its last two segments (``serviceAccount.roleArn``), or its
    last segment when no other required value ends the same way."""
    parts = path.split(".")
    if any(".".join(parts[i:]) in message for i in range(max(0, len(parts) - 2) + 1)):
        return True
    leaves = [k.split(".")[-1] for k in F.INFERENCE_REQUIRED]
    return leaves.count(parts[-1]) == 1 and parts[-1] in message


@pytest.mark.contract("HYP-INF-01")
@pytest.mark.parametrize("missing", sorted(F.INFERENCE_REQUIRED))
def test_hyp_inf_01_each_missing_required_value_fails_naming_it(hp, missing):
    message = hp.error([F.inference_values(drop=missing)], {"inferenceOperators.enabled": True})
    assert _names_it(message, missing), f"without {missing}, the refusal must name it: {message}"
