"""Adaptive contract, E "Pools and autoscaling" (ADP-POOL-*, ADP-AUTOSCALE-01..05; D.5 inference pools and
their ScaledObjects): one Deployment per pool, found by its `inference-pool` label, computed from harmony's
values merged with that pool's entry only; KEDA and one ScaledObject per pool when autoscaling is on."""

from __future__ import annotations

import re

import adaptive_facts as F
import pytest

from chartproof.manifest import (
    container,
    containers,
    dig,
    fragment,
    images,
    pod_spec,
    ref,
    template_annotations,
    template_labels,
)

AUTOSCALING = {"autoscaling": {"enabled": True}}


@pytest.mark.contract("ADP-POOL-01")
def test_no_pool_no_pool_deployment(render):
    found = [ref(o) for o in F.pool_deployments(render(F.CHART))]
    assert not found, f"no computePool: expected no pool Deployment, found {found}"


@pytest.mark.contract("ADP-POOL-01")
def test_one_deployment_per_pool_named_and_labelled_as_d5(render):
    m = render(F.CHART, [F.pools("Pool-A", "pool_b")])
    found = sorted(dig(o, "metadata.name") for o in F.pool_deployments(m))
    assert found == [f"{F.HM}-dpl-pool-a", f"{F.HM}-dpl-pool-b"], \
        f"expected pool Deployments {F.HM}-dpl-pool-a and -pool-b, found {found}"
    for kebab in ("pool-a", "pool-b"):
        d = F.pool(m, kebab)
        assert dig(d, "metadata.name") == f"{F.HM}-dpl-{kebab}", f"{ref(d)}: expected name {F.HM}-dpl-{kebab}"
        expected = {"app.kubernetes.io/name": "adaptive", "app.kubernetes.io/instance": F.RELEASE,
                    F.COMPONENT: "harmony-dpl", F.POOL_LABEL: kebab}
        selector = dig(d, "spec.selector.matchLabels", {}) or {}
        for where, labels in (("selector", selector), ("pod labels", template_labels(d))):
            wrong = {k: labels.get(k) for k, v in expected.items() if labels.get(k) != v}
            assert not wrong, f"{ref(d)} {where}: expected {expected}, found {labels}"
        assert dig(d, "spec.strategy.type", "RollingUpdate") == "RollingUpdate", \
            f"{ref(d)}: expected strategy RollingUpdate, found {dig(d, 'spec.strategy')}"


@pytest.mark.contract("ADP-POOL-01")
def test_pool_env_is_d5(render):
    m = render(F.CHART, [F.pools("Pool-A")])
    d = F.pool(m, "pool-a")
    h = container(d, "harmony")
    env = F.effective_env(m, h)
    F.expect_env(env, {"GROUP": "Pool-A", "GROUP_CAPABILITIES": "INFERENCE", "ORDINAL": "0", "MASTER_ADDR": "127.0.0.1",
                       "PARTITION_KEY": "$(MY_POD_NAME)", "SERVICE_URL": "http://$(MY_POD_IP):50053",
                       "CONTROL_PLANE_URL": f"http://{F.CP_SVC}:9009", "MASTER_PORT": "7777", "QUEUE_PORT": "50052",
                       "JOB_LOG_DIR": "/opt/adaptive/working_dir/job_logs", "ADAPTIVE_LOGGING_LEVEL": "info",
                       "ADAPTIVE_MODE": "PROD", "IMAGE_TAG": "harmony:latest",
                       "GPU_COUNT": str(F.DEFAULT_GPUS), "WORLD_SIZE": str(F.DEFAULT_GPUS)}, f"{ref(d)} harmony")
    for var, path in (("MY_POD_NAME", "metadata.name"), ("MY_POD_IP", "status.podIP")):
        assert dig(env.get(var) or {}, "fieldRef.fieldPath") == path, f"{var}: expected fieldRef {path}, found {env.get(var)!r}"
    assert F.HM_SECRET in F.env_from_secrets(h), f"{ref(d)}: expected envFrom Secret {F.HM_SECRET}, found {h.get('envFrom')}"


@pytest.mark.contract("ADP-POOL-01")
def test_pool_pod_spec_is_harmonys_without_sidecars(render):
    d = F.pool(render(F.CHART, [F.pools("p")]), "p")
    names = [c.get("name") for c in containers(d)]
    assert "harmony" in names and not {"job-log-exporter", "tensorboard"} & set(names), \
        f"{ref(d)}: expected container harmony and no alloy/tensorboard sidecar, found {names}"
    inits = [c.get("name") for c in containers(d, init=True)]
    assert "init-permissions" in inits, f"{ref(d)}: expected init container init-permissions, found {inits}"
    vols = {v.get("name") for v in pod_spec(d).get("volumes") or []}
    missing = {"workdir-volume", "cloud-cache-volume", "harmony-settings-volume", "dshm"} - vols
    assert not missing, f"{ref(d)}: missing volumes {sorted(missing)}, has {sorted(vols)}"


POOL_A = {"name": "A", "gpusPerReplica": 4, "nodeSelector": {"pool": "a"}, "tolerations": [],
          "extraEnvVars": {"X": "a"}, "resources": {"limits": {"cpu": 10}}, "podAnnotations": {"note": "a"}}
POOL_ORDERS = {"A-then-B": [POOL_A, {"name": "B"}], "B-A-C": [{"name": "B"}, POOL_A, {"name": "C"}]}
HARMONY_NODES = {"node.kubernetes.io/instance-type": "ml.p5.48xlarge"}
HARMONY_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                       {"key": "team", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]


@pytest.mark.contract("ADP-POOL-02")
@pytest.mark.parametrize("order", sorted(POOL_ORDERS))
@pytest.mark.parametrize("autoscaling", [False, True], ids=["autoscaling-off", "autoscaling-on"])
def test_pools_are_independent(render, order, autoscaling):
    entries = POOL_ORDERS[order]
    values = {**F.pools(*entries, nodeSelector=HARMONY_NODES, tolerations=HARMONY_TOLERATIONS,
                        extraEnvVars={"H": "h"}),
              "autoscaling": {"enabled": autoscaling}}
    m = render(F.CHART, [values])
    a = F.pool(m, "a")
    ha = container(a, "harmony")
    env_a = F.effective_env(m, ha)
    assert F.has_gpus(ha, 4) and env_a.get("GPU_COUNT") == "4", \
        f"pool A: expected its own 4 GPUs, found {ha.get('resources')}, GPU_COUNT {env_a.get('GPU_COUNT')!r}"
    assert pod_spec(a).get("nodeSelector") == {**HARMONY_NODES, "pool": "a"}, \
        f"pool A nodeSelector: expected harmony's merged with its own, found {pod_spec(a).get('nodeSelector')}"
    assert F.resource_is(ha, "limits", "cpu", 10) and F.resource_is(ha, "limits", "memory", "500Gi"), \
        f"pool A limits: expected its cpu 10 merged with harmony's memory 500Gi, found {ha.get('resources')}"
    assert not pod_spec(a).get("tolerations"), f"pool A: tolerations [] replaces harmony's, found {pod_spec(a).get('tolerations')}"
    F.expect_env(env_a, {"X": "a", "H": "h"}, "pool A")
    for other in (e["name"].lower() for e in entries if e["name"] != "A"):
        d = F.pool(m, other)
        h = container(d, "harmony")
        env = F.effective_env(m, h)
        where = f"pool {other.upper()} (sets nothing)"
        assert F.has_gpus(h, F.DEFAULT_GPUS), f"{where}: expected harmony's 8 GPUs, found {h.get('resources')}"
        F.expect_env(env, {"GPU_COUNT": "8", "WORLD_SIZE": "8", "H": "h"}, where)
        assert "X" not in env, f"{where}: pool A's extraEnvVars X leaked into it"
        assert pod_spec(d).get("nodeSelector") == HARMONY_NODES, \
            f"{where} nodeSelector: expected harmony's {HARMONY_NODES}, found {pod_spec(d).get('nodeSelector')}"
        assert F.toleration_set(pod_spec(d).get("tolerations")) == F.toleration_set(HARMONY_TOLERATIONS), \
            f"{where}: expected harmony's tolerations {HARMONY_TOLERATIONS}, found {pod_spec(d).get('tolerations')}"
        assert F.resource_is(h, "limits", "cpu", 30), f"{where}: expected harmony's cpu limit 30, found {h.get('resources')}"
        assert "note" not in template_annotations(d), f"{where}: pool A's podAnnotations leaked: {template_annotations(d)}"


@pytest.mark.contract("ADP-POOL-03")
def test_pool_overrides_do_not_change_the_statefulset(render):
    base = F.harmony(render(F.CHART))
    with_pools = F.harmony(render(F.CHART, [F.pools(POOL_A, {"name": "B", "image": {"tag": "other"},
                                                               "podLabels": {"team": "b"}, "replicaCount": 5})]))
    assert dig(base, "spec") == dig(with_pools, "spec"), \
        f"pool overrides changed the harmony StatefulSet:\nwithout pools:\n{fragment(base)}\nwith pools:\n{fragment(with_pools)}"


@pytest.mark.contract("ADP-POOL-04")
def test_pools_inherit_harmony_annotations_and_carry_their_labels(render):
    m = render(F.CHART, [F.pools({"name": "inherit", "podLabels": {"team": "x"}},
                                 {"name": "override", "podAnnotations": {"prometheus.io/port": "9999", "extra": "1"}})])
    inherit = F.pool(m, "inherit")
    found = template_annotations(inherit)
    wrong = {k: found.get(k) for k, v in F.HARMONY_ANNOTATIONS.items() if str(found.get(k)) != v}
    assert not wrong, f"pool inherit: expected harmony's annotations {F.HARMONY_ANNOTATIONS}, found {found}"
    assert template_labels(inherit).get("team") == "x", f"pool inherit: expected pod label team=x, found {template_labels(inherit)}"
    override = template_annotations(F.pool(m, "override"))
    expected = {**F.HARMONY_ANNOTATIONS, "prometheus.io/port": "9999", "extra": "1"}
    wrong = {k: override.get(k) for k, v in expected.items() if str(override.get(k)) != v}
    assert not wrong, f"pool override: expected annotations {expected} (maps deep-merge), found {override}"
    assert "team" not in template_labels(F.pool(m, "override")), \
        f"pool inherit's podLabels leaked into pool override: {template_labels(F.pool(m, 'override'))}"


def keda_objects(m) -> list[str]:
    kinds = {"ScaledObject", "ScaledJob", "TriggerAuthentication", "ClusterTriggerAuthentication",
             "HorizontalPodAutoscaler", "APIService"}
    found = [o for o in m if o.get("kind") in kinds]
    found += [o for o in m.select("CustomResourceDefinition") if dig(o, "spec.group") == "keda.sh"]
    found += m.with_image("kedacore/")
    return [ref(o) for o in found]


@pytest.mark.contract("ADP-AUTOSCALE-01")
def test_autoscaling_off_pools_have_min_replicas_and_no_keda(render):
    m = render(F.CHART, [F.pools({"name": "two", "minReplicaCount": 2, "maxReplicaCount": 4},
                                 {"name": "dflt", "maxReplicaCount": 9})])
    for kebab, expected in (("two", 2), ("dflt", 1)):
        found = dig(F.pool(m, kebab), "spec.replicas", 1)
        assert found == expected, f"pool {kebab}: expected {expected} replicas (minReplicaCount; max ignored), found {found}"
    assert not keda_objects(m), f"autoscaling off: expected no KEDA object, ScaledObject or HPA, found {keda_objects(m)}"


@pytest.mark.contract("ADP-AUTOSCALE-02")
def test_autoscaling_on_renders_keda_and_one_scaled_object_per_pool(render):
    m = render(F.CHART, [F.pools("Pool-A", "pool_b"), AUTOSCALING])
    crds = {dig(o, "metadata.name") for o in m.select("CustomResourceDefinition")}
    assert "scaledobjects.keda.sh" in crds, f"expected the KEDA CRD scaledobjects.keda.sh, found CRDs {sorted(crds)}"
    assert m.select("APIService", name="v1beta1.external.metrics.k8s.io"), \
        f"expected APIService v1beta1.external.metrics.k8s.io, found {m.names('APIService')}"
    for image in ("kedacore/keda:", "kedacore/keda-metrics-apiserver:"):
        assert m.with_image(image), f"expected a KEDA workload running {image}…, found images " \
                                    f"{sorted({i for o in m.workloads() for i in images(o)})}"
    sos = m.select("ScaledObject")
    names = sorted(dig(o, "metadata.name") for o in sos)
    assert names == [f"{F.HM}-dpl-pool-a", f"{F.HM}-dpl-pool-b"], f"expected one ScaledObject per pool, found {names}"
    for so in sos:
        assert so.get("apiVersion") == "keda.sh/v1alpha1", f"{ref(so)}: expected keda.sh/v1alpha1, found {so.get('apiVersion')}"
        target = dig(so, "spec.scaleTargetRef", {}) or {}
        assert target.get("name") == dig(so, "metadata.name") and target.get("kind", "Deployment") == "Deployment", \
            f"{ref(so)}: expected to target Deployment {dig(so, 'metadata.name')}, found {target}"
        assert m.select("Deployment", name=target.get("name"), labels={F.COMPONENT: "harmony-dpl"}), \
            f"{ref(so)} targets {target.get('name')}, which is not a pool Deployment of the render"


@pytest.mark.contract("ADP-AUTOSCALE-02")
def test_keda_crds_can_be_left_to_the_cluster(render):
    m = render(F.CHART, [F.pools("a"), AUTOSCALING], set={"keda.crds.install": False})
    crds = [dig(o, "metadata.name") for o in m.select("CustomResourceDefinition") if dig(o, "spec.group") == "keda.sh"]
    assert not crds, f"keda.crds.install=false: expected no keda.sh CRD, found {crds}"
    assert m.select("ScaledObject", name=f"{F.HM}-dpl-a"), f"expected ScaledObject {F.HM}-dpl-a still, found {m.names('ScaledObject')}"


@pytest.mark.contract("ADP-AUTOSCALE-03")
def test_scaled_object_bounds_cooldown_and_polling(render):
    m = render(F.CHART, [F.pools("d", {"name": "e", "minReplicaCount": 3, "maxReplicaCount": 7}), AUTOSCALING])
    d = dig(m.get("ScaledObject", f"{F.HM}-dpl-d"), "spec", {})
    found = (d.get("minReplicaCount"), d.get("maxReplicaCount"), d.get("cooldownPeriod"), d.get("pollingInterval", 30))
    assert found == (1, 2, 180, 30), f"pool d defaults: expected (min, max, cooldown, polling) (1, 2, 180, 30), found {found}"
    e = dig(m.get("ScaledObject", f"{F.HM}-dpl-e"), "spec", {})
    assert (e.get("minReplicaCount"), e.get("maxReplicaCount")) == (3, 7), \
        f"pool e: expected min 3, max 7, found {e.get('minReplicaCount')}, {e.get('maxReplicaCount')}"
    m2 = render(F.CHART, [F.pools("e"), AUTOSCALING], set={"autoscaling.coolDownPeriodSeconds": 45})
    found = dig(m2.get("ScaledObject", f"{F.HM}-dpl-e"), "spec.cooldownPeriod")
    assert found == 45, f"coolDownPeriodSeconds 45: expected cooldownPeriod 45, found {found!r}"


@pytest.mark.contract("ADP-AUTOSCALE-03", extension=True)
def test_scaled_object_initial_cooldown_is_zero(render):
    spec = dig(render(F.CHART, [F.pools("d"), AUTOSCALING]).get("ScaledObject", f"{F.HM}-dpl-d"), "spec", {})
    assert spec.get("initialCooldownPeriod", 0) == 0, f"initialCooldownPeriod: expected 0, found {spec.get('initialCooldownPeriod')}"


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])", text)]


@pytest.mark.contract("ADP-AUTOSCALE-04")
def test_single_prometheus_trigger_on_the_raw_pool_name(render):
    m = render(F.CHART, [F.pools("Pool-A"), {"autoscaling": {"enabled": True, "ttftTimeoutThreshold": 0.05}}])
    so = m.get("ScaledObject", f"{F.HM}-dpl-pool-a")
    triggers = dig(so, "spec.triggers", []) or []
    assert len(triggers) == 1 and triggers[0].get("type") == "prometheus", \
        f"{ref(so)}: expected a single prometheus trigger, found {triggers}"
    md = triggers[0].get("metadata") or {}
    assert str(md.get("serverAddress", "")).rstrip("/") in ("http://adaptive-prometheus", "http://adaptive-prometheus:80"), \
        f"serverAddress: expected the bundled Prometheus http://adaptive-prometheus, found {md.get('serverAddress')!r}"
    threshold = md.get("threshold")
    assert isinstance(threshold, str) and float(threshold) == 0.05, f"threshold: expected the string '0.05', found {threshold!r}"
    assert str(md.get("activationThreshold")) == "0", f"activationThreshold: expected '0', found {md.get('activationThreshold')!r}"
    query = "".join(str(md.get("query", "")).split())
    for metric in ("harmony_ttft_timeout_count", "harmony_generation_requests_count"):
        assert re.search(rf'rate\({metric}\{{[^}}]*pool="Pool-A"[^}}]*\}}\[5m\]\)', query), \
            f"query: expected a 5-minute rate of {metric} filtered on pool=\"Pool-A\", found {query}"
    assert query.count("sum(") >= 2 and "/" in query, f"query: expected summed rates divided, found {query}"
    assert "clamp_min(" in query and 1e-5 in numbers(query), f"query: expected the denominator clamped to >= 1e-5, found {query}"
    capped = query.replace("clamp_min(", "")
    assert ("clamp_max(" in capped or re.search(r"(?<![\w])min\(", capped)) and 1.0 in numbers(query), \
        f"query: expected the ratio capped at 1, found {query}"
    default = render(F.CHART, [F.pools("p"), AUTOSCALING]).get("ScaledObject", f"{F.HM}-dpl-p")
    found = dig(default, "spec.triggers", [{}])[0].get("metadata", {}).get("threshold") if dig(default, "spec.triggers") else None
    assert found is not None and float(found) == 0.1, f"default ttftTimeoutThreshold: expected threshold '0.1', found {found!r}"


@pytest.mark.contract("ADP-AUTOSCALE-05")
def test_autoscaling_without_pools_renders_keda_and_no_scaled_object(render):
    m = render(F.CHART, [AUTOSCALING])
    assert m.select("CustomResourceDefinition", name="scaledobjects.keda.sh") and m.with_image("kedacore/keda:"), \
        f"autoscaling on, no pool: expected KEDA (CRDs and operator), found {keda_objects(m)}"
    assert not m.select("ScaledObject"), f"no pool: expected no ScaledObject, found {m.names('ScaledObject')}"
