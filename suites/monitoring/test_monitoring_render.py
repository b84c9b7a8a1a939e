"""Render-time promises of the `monitoring` chart (contract adaptive.md, MON-* behaviours marked [R])."""

from __future__ import annotations

import json

import pytest
import yaml

from chartproof.manifest import container, env_map, pod_spec
from chartproof.paths import scenario

CHART = "monitoring"


def grafana_env(m):
    return env_map(container(m.get("Deployment", "grafana"), "grafana"))


def test_mon_meta_lint_clean_defaults(helm):
    result = helm.lint(CHART, strict=True)
    assert result.ok and "[WARNING]" not in result.output, result.output


@pytest.mark.parametrize("name", ["monitoring-persisted", "defaults-domain", "persisted-default-class"])
def test_mon_meta_lint_clean_scenario(helm, name):
    result = helm.lint(CHART, [scenario(CHART, name)], strict=True)
    assert result.ok and "[WARNING]" not in result.output, result.output


def test_mon_01_default_objects(render):
    m = render(CHART)
    cm = m.get("ConfigMap", "grafana-configmap")
    ds = yaml.safe_load(cm["data"]["datasources.yaml"])["datasources"]
    by_type = {d["type"]: d for d in ds}
    assert by_type["loki"]["url"] == "http://loki:3100"
    assert by_type["prometheus"]["uid"] == "adaptive-prometheus"
    assert by_type["prometheus"]["url"] == "http://adaptive-prometheus"
    for board in ("adaptive_engine_health.json", "control_plane_kpis.json", "harmony_metrics.json"):
        assert json.loads(cm["data"][board])["panels"], board
    dep = m.get("Deployment", "grafana")
    spec = pod_spec(dep)
    assert spec["securityContext"]["runAsUser"] == 472 and spec["securityContext"]["fsGroup"] == 472
    c = container(dep, "grafana")
    assert c["image"] == "grafana/grafana:11.5.0"
    assert any(p["containerPort"] == 3000 and p["name"] == "grafana-port" for p in c["ports"])
    env = env_map(c)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Admin"
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
    assert env["GF_SERVER_DOMAIN"] == "www.your-adaptive-domain.com"
    assert env["GF_SERVER_ROOT_URL"] == "https://www.your-adaptive-domain.com/monitoring/"
    mounts = {vm["mountPath"] for vm in c["volumeMounts"]}
    assert "/var/lib/grafana" in mounts
    assert any(p.startswith("/etc/grafana/provisioning/") for p in mounts)
    labels = {"app": "grafana", "role": "monitoring", "app.kubernetes.io/component": "web"}
    assert dep["spec"]["selector"]["matchLabels"] == labels
    svc = m.get("Service", "grafana")
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP" and svc["spec"]["ports"][0]["port"] == 3000
    assert svc["spec"]["selector"] == labels
    m.get("Ingress", "grafana")
    loki = m.get("StatefulSet", "loki")
    lc = container(loki, "loki")
    assert lc["image"] == "grafana/loki:2.9.11"
    assert any(p["name"] == "http-metrics" and p["containerPort"] == 3100 for p in lc["ports"])
    assert pod_spec(loki)["securityContext"]["runAsUser"] == 10001
    assert lc["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert {vm["mountPath"] for vm in lc["volumeMounts"]} >= {"/data", "/db"}
    m.get("ConfigMap", "loki")
    assert m.get("Service", "loki")["spec"]["ports"][0]["port"] == 3100
    assert m.get("Service", "loki-headless")["spec"]["clusterIP"] == "None"
    ds_obj = m.get("DaemonSet", "promtail-daemonset")
    assert container(ds_obj, "promtail")["image"] == "grafana/promtail:3.3.2"
    assert pod_spec(ds_obj)["serviceAccountName"] == "promtail-serviceaccount"
    cfg = m.get("ConfigMap", "promtail-config")["data"]["promtail.yaml"]
    assert "http://loki:3100/loki/api/v1/push" in cfg
    assert "__meta_kubernetes_pod_annotation_ingest_adaptive_logs" in cfg
    m.get("ServiceAccount", "promtail-serviceaccount")
    m.get("ClusterRole", "promtail-clusterrole")
    m.get("ClusterRoleBinding", "promtail-clusterrolebinding")
    assert not m.find("PersistentVolumeClaim")


@pytest.mark.parametrize("domain, scheme", [("adaptive.acme.example.com", "https"), ("ml.internal", "http")])
def test_mon_route_01_monitoring_path(render, domain, scheme):
    m = render(CHART, set={"grafana.proxy.domain": domain, "grafana.proxy.scheme": scheme})
    ing = m.get("Ingress", "grafana")
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == domain
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/monitoring" and path["pathType"] == "Prefix"
    backend = path["backend"]["service"]
    assert backend["name"] == "grafana"
    assert backend["port"].get("number") == 3000 or backend["port"].get("name") == "grafana-port"
    env = grafana_env(m)
    assert env["GF_SERVER_ROOT_URL"] == f"{scheme}://{domain}/monitoring/"
    assert env["GF_SERVER_DOMAIN"] == domain
    assert env["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"


def test_mon_persist_01_off_by_default(render):
    m = render(CHART)
    assert not m.find("PersistentVolumeClaim")
    grafana = pod_spec(m.get("Deployment", "grafana"))
    data = next(vm["name"] for vm in container(m.get("Deployment", "grafana"), "grafana")["volumeMounts"]
                if vm["mountPath"] == "/var/lib/grafana")
    assert "emptyDir" in next(v for v in grafana["volumes"] if v["name"] == data)
    loki = m.get("StatefulSet", "loki")
    assert not loki["spec"].get("volumeClaimTemplates")
    lvols = {v["name"]: v for v in pod_spec(loki)["volumes"]}
    for vm in container(loki, "loki")["volumeMounts"]:
        if vm["mountPath"] in ("/data", "/db"):
            assert "emptyDir" in lvols[vm["name"]]


def test_mon_persist_02_persisted(render):
    m = render(CHART, [scenario(CHART, "monitoring-persisted")])
    pvc = m.get("PersistentVolumeClaim", "grafana")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert pvc["spec"]["storageClassName"] == "gp3"
    dep = m.get("Deployment", "grafana")
    data = next(vm["name"] for vm in container(dep, "grafana")["volumeMounts"] if vm["mountPath"] == "/var/lib/grafana")
    vol = next(v for v in pod_spec(dep)["volumes"] if v["name"] == data)
    assert vol["persistentVolumeClaim"]["claimName"] == "grafana"
    loki = m.get("StatefulSet", "loki")
    claims = {c["metadata"]["name"]: c for c in loki["spec"]["volumeClaimTemplates"]}
    mounts = {vm["mountPath"]: vm["name"] for vm in container(loki, "loki")["volumeMounts"]}
    for path in ("/data", "/db"):
        claim = claims[mounts[path]]
        assert claim["spec"]["storageClassName"] == "gp3"
        assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    sized = render(CHART, set={"grafana.enablePersistence": True, "grafana.pvc.size": "5Gi"})
    assert sized.get("PersistentVolumeClaim", "grafana")["spec"]["resources"]["requests"]["storage"] == "5Gi"
    default_size = {c["metadata"]["name"]: c for c in sized.get("StatefulSet", "loki")["spec"]["volumeClaimTemplates"]}
    assert all(c["spec"]["resources"]["requests"]["storage"] == "10Gi" for c in default_size.values())


def test_mon_persist_03_default_class(render):
    m = render(CHART, [scenario(CHART, "persisted-default-class")])
    assert "storageClassName" not in m.get("PersistentVolumeClaim", "grafana")["spec"]
    for claim in m.get("StatefulSet", "loki")["spec"]["volumeClaimTemplates"]:
        assert "storageClassName" not in claim["spec"]
    # both the claim and the pod that mounts it are well formed
    dep = m.get("Deployment", "grafana")
    names = {v["name"] for v in pod_spec(dep)["volumes"]}
    assert all(vm["name"] in names for vm in container(dep, "grafana")["volumeMounts"])


@pytest.mark.parametrize("bad", [{"grafana.enablePersistence": "yes"}, {"grafana.replicas": "two"},
                                 {"grafanna.enablePersistence": True}])
def test_mon_schema_rejects_typos_and_types(render, bad):
    render.error(CHART, set=bad)
