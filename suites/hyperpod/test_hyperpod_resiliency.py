"""HyperPod contract E, "Resiliency components": deep-health-check, health monitoring agent (C.4 images),
job-auto-restart, hyperpod-patching, MLflow service account."""

from __future__ import annotations

import hyperpod_facts as F
import pytest

from chartproof.manifest import (
    container_running,
    dig,
    env_map,
    images,
    mounts,
    pod_spec,
    same_quantity,
    volumes,
)
from chartproof.placement import instance_type_values

HMA = "health-monitoring-agent"


@pytest.mark.contract("HYP-DHC-01")
def test_hyp_dhc_01_deep_health_check_namespace_and_rbac(hp):
    # only deep-health-check uses aws-hyperpod here, so the Namespace is its own
    m = hp(set={"health-monitoring-agent.enabled": False, "job-auto-restart.enabled": False})
    ns = m.get("Namespace", "aws-hyperpod")
    assert dig(ns, "metadata.labels", {}).get("name") == "aws-hyperpod", \
        f"Namespace aws-hyperpod: expected label name=aws-hyperpod, found {dig(ns, 'metadata.labels')}"
    m.get("ServiceAccount", "deep-health-check-service-account", "aws-hyperpod")
    cr = m.get("ClusterRole", "deep-health-check-service-account-role")
    lacking = F.denied(cr, [("", "nodes", "get"), ("", "nodes", "list"), ("", "pods", "get"), ("", "pods", "list"),
                            ("", "pods", "patch")])
    assert not lacking, f"deep-health-check ClusterRole lacks {lacking}; rules {F.rules(cr)}"
    crb = m.get("ClusterRoleBinding", "deep-health-check-service-account-role-binding")
    assert F.role_ref(crb) == ("ClusterRole", "deep-health-check-service-account-role"), f"roleRef: {F.role_ref(crb)}"
    sa = ("ServiceAccount", "deep-health-check-service-account", "aws-hyperpod")
    assert sa in F.subjects(crb), f"subjects: expected {sa}, found {F.subjects(crb)}"


@pytest.mark.contract("HYP-HMA-01")
def test_hyp_hma_01_health_monitoring_agent_objects_and_wiring(hp):
    m = hp()
    absent = F.missing(m, F.expected_objects()[HMA])
    assert not absent, f"agent objects missing: {absent}"
    cr = m.get("ClusterRole", HMA)
    checks = [("", "nodes", "get"), ("", "nodes", "patch"), ("", "nodes/status", "patch")]
    checks += [(g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch", "update")]
    assert not F.denied(cr, checks), f"agent ClusterRole lacks {F.denied(cr, checks)}"
    crb = m.get("ClusterRoleBinding", HMA)
    assert ("ServiceAccount", HMA, "aws-hyperpod") in F.subjects(crb), f"binding subjects: {F.subjects(crb)}"
    ds = m.get("DaemonSet", HMA, "aws-hyperpod")
    selector = dig(ds, "spec.selector.matchLabels", {}) or {}
    assert selector.get("app") == HMA, f"DaemonSet selector: expected app={HMA}, found {selector}"
    spec = pod_spec(ds)
    assert spec.get("serviceAccountName") == HMA, f"serviceAccountName: {spec.get('serviceAccountName')!r}"
    assert instance_type_values(ds), f"the agent has no required instance-type affinity: {dig(spec, 'affinity')}"
    ctr = container_running(ds, "health-monitoring-agent")
    want_args = {"--enable-k8s-exporter=false", "--config.system-log-monitor=/config/system-message-monitor.json"}
    args = {str(a) for a in (ctr.get("command") or []) + (ctr.get("args") or [])}
    assert want_args <= args, f"agent args: missing {sorted(want_args - args)}"
    for part in ("requests", "limits"):
        res = dig(ctr, f"resources.{part}", {}) or {}
        assert same_quantity(res.get("cpu"), "500m") and same_quantity(res.get("memory"), "512Mi"), \
            f"resources.{part}: expected cpu 500m, memory 512Mi, found {res}"
    sc, psc = ctr.get("securityContext") or {}, spec.get("securityContext") or {}
    ids = (sc.get("runAsUser", psc.get("runAsUser")), sc.get("runAsGroup", psc.get("runAsGroup")))
    assert ids == (1000, 2000), f"runAsUser/runAsGroup: expected (1000, 2000), found {ids}"
    env = env_map(ctr)
    assert dig(env.get("NODE_NAME"), "fieldRef.fieldPath") == "spec.nodeName", f"NODE_NAME: {env.get('NODE_NAME')}"
    assert dig(env.get("NODE_IP"), "fieldRef.fieldPath") == "status.hostIP", f"NODE_IP: {env.get('NODE_IP')}"
    vols = volumes(ds)
    found = {path.rstrip("/") or "/": (str(dig(vols.get(mnt.get("name")), "hostPath.path", "")).rstrip("/"),
                                        bool(mnt.get("readOnly")))
             for path, mnt in mounts(ctr).items() if path}
    assert found.get("/var/log", ("",))[0] == "/var/log", f"/var/log mount: expected hostPath /var/log/, found {found}"
    for path in ("/dev/kmsg", "/etc/localtime"):
        assert found.get(path) == (path, True), f"{path}: expected a read-only hostPath mount, found {found.get(path)}"
    tols = spec.get("tolerations") or []
    for effect in ("NoSchedule", "NoExecute"):
        keyless = [t for t in tols if not t.get("key") and t.get("operator") == "Exists" and t.get("effect") in (effect, None)]
        assert keyless, f"the agent needs a key-less Exists toleration for {effect}; tolerations {tols}"


@pytest.mark.contract("HYP-HMA-02")
def test_hyp_hma_02_default_image_is_us_west_2(hp):
    ds = F.daemonset_of(hp(), HMA)
    assert images(ds) == [F.hma_image("us-west-2")], f"agent image: expected {F.hma_image('us-west-2')}, found {images(ds)}"


def agent_images(hp, sets: dict) -> list[str]:
    return images(F.daemonset_of(hp(set=sets), HMA))


@pytest.mark.contract("HYP-HMA-03", extension=True)
@pytest.mark.parametrize("region", sorted(F.HMA_ACCOUNTS))
@pytest.mark.parametrize("how", ["health-monitoring-agent.region", "global.region"])
def test_hyp_hma_03_region_selects_the_regional_image(hp, region, how):
    found = agent_images(hp, {how: region})
    assert found == [F.hma_image(region)], f"{how}={region}: expected {F.hma_image(region)}, found {found}"


@pytest.mark.contract("HYP-HMA-03", extension=True)
def test_hyp_hma_03_agent_region_wins_over_global_region(hp):
    found = agent_images(hp, {"health-monitoring-agent.region": "ap-south-1", "global.region": "eu-west-1"})
    assert found == [F.hma_image("ap-south-1")], f"both set: expected the agent's region ap-south-1, found {found}"


@pytest.mark.contract("HYP-HMA-03", extension=True)
@pytest.mark.parametrize("sets", [{}, {"health-monitoring-agent.region": "eu-west-1"}], ids=["no-region", "with-region"])
def test_hyp_hma_03_hmaimage_is_used_verbatim(hp, sets):
    custom = "registry.example.com/hma:custom"
    found = agent_images(hp, {**sets, "health-monitoring-agent.hmaimage": custom})
    assert found == [custom], f"hmaimage={custom}: expected it verbatim, found {found}"


@pytest.mark.contract("HYP-HMA-03", extension=True)
def test_hyp_hma_03_unknown_region_fails_listing_the_known_ones(hp):
    message = hp.error(set={"health-monitoring-agent.region": "mars-north-7"})
    unlisted = [r for r in F.HMA_ACCOUNTS if r not in message]
    assert "mars-north-7" in message and not unlisted, \
        f"the refusal must name mars-north-7 and list the supported regions; missing {unlisted}: {message}"


@pytest.mark.contract("HYP-JAR-01")
def test_hyp_jar_01_job_auto_restart_rbac(hp):
    m = hp()
    m.get("ServiceAccount", "job-auto-restart", "aws-hyperpod")
    cr = m.get("ClusterRole", "job-auto-restart")
    checks = [("", r, v) for r in ("nodes", "nodes/status", "pods", "pods/status") for v in ("get", "list", "watch")]
    checks += [("", "pods", "delete"), ("", "pods", "deletecollection"), ("", "nodes", "patch"),
               ("", "nodes/status", "patch"), ("", "events", "create")]
    checks += [("kubeflow.org", r, v) for r in ("pytorchjobs", "pytorchjobs/status")
               for v in ("get", "list", "watch", "delete", "patch", "update")]
    checks += [("coordination.k8s.io", "leases", v) for v in ("get", "create", "update", "delete")]
    assert not F.denied(cr, checks), f"job-auto-restart ClusterRole lacks {F.denied(cr, checks)}"
    crb = m.get("ClusterRoleBinding", "job-auto-restart")
    assert F.role_ref(crb) == ("ClusterRole", "job-auto-restart"), f"roleRef: {F.role_ref(crb)}"
    users = {(k, n) for k, n, _ in F.subjects(crb)}
    assert ("User", F.SERVICE_LINKED_ROLE) in users, f"subjects: expected User {F.SERVICE_LINKED_ROLE}, found {F.subjects(crb)}"


@pytest.mark.contract("HYP-PATCH-01")
def test_hyp_patch_01_patching_rbac(hp):
    m = hp()
    cr = m.get("ClusterRole", "hyperpod-patching")
    checks = [("", "pods", "list"), ("", "pods/eviction", "create"), ("", "nodes", "get"), ("", "nodes", "list"),
              ("", "nodes", "watch")]
    assert not F.denied(cr, checks), f"hyperpod-patching ClusterRole lacks {F.denied(cr, checks)}"
    crb = m.get("ClusterRoleBinding", "hyperpod-patching")
    assert F.role_ref(crb) == ("ClusterRole", "hyperpod-patching"), f"roleRef: {F.role_ref(crb)}"
    users = {(k, n) for k, n, _ in F.subjects(crb)}
    assert ("User", F.SERVICE_LINKED_ROLE) in users, f"subjects: expected User {F.SERVICE_LINKED_ROLE}, found {F.subjects(crb)}"


ROLE_ARN = "eks.amazonaws.com/role-arn"


@pytest.mark.contract("HYP-MLFLOW-01")
def test_hyp_mlflow_01_service_account_with_role_annotation(hp):
    sa = hp(set={"mlflow.enabled": True}).get("ServiceAccount", "mlflow-service-account1", "kubeflow")
    default_arn = "arn:aws:iam::555555555555:role/hyperpod-mlflow-role"
    found = dig(sa, "metadata.annotations", {}).get(ROLE_ARN)
    assert found == default_arn, f"{ROLE_ARN}: expected {default_arn}, found {found!r}"
    arn = "arn:aws:iam::111122223333:role/other"
    sa = hp(set={"mlflow.enabled": True, "mlflow.mlflow.serviceAccount.roleARN": arn}).get(
        "ServiceAccount", "mlflow-service-account1", "kubeflow")
    found = dig(sa, "metadata.annotations", {}).get(ROLE_ARN)
    assert found == arn, f"roleARN={arn}: annotation {ROLE_ARN} found {found!r}"
