"""Monitoring chart, default render (contract adaptive.md D.9 and MON-01; chart metadata ADP-META-01/02 for
`monitoring`): the objects D.9 names, wired as it says, from the chart's defaults alone."""

from __future__ import annotations

import json
import re

import monitoring_facts as F
import pytest

from chartproof.manifest import dig, fragment, pod_spec, ref


def default_render(render):
    """The chart's default render, made in the test's own call: when helm refuses it (helm 3.8 renders as
    Kubernetes 1.23, below the chart's kubeVersion), that refusal is the promise's failure, not a setup error."""
    return render(F.CHART, release=F.RELEASE)


def target_reaches(service_port: dict, item: dict, number: int) -> bool:
    """The Service port's targetPort is the container's port ``number`` (by number or by its name)."""
    target = service_port.get("targetPort", service_port.get("port"))
    declared = F.container_port(item, number)
    if isinstance(target, int) or str(target).isdigit():
        return int(target) == number
    return declared is not None and declared.get("name") == target


@pytest.mark.contract("ADP-META-01")
def test_lint_of_defaults_has_no_error_or_warning(helm):
    result = helm.lint(F.CHART)
    findings = [line for line in result.output.splitlines() if "[ERROR]" in line or "[WARNING]" in line]
    assert result.ok and not findings, f"helm lint of monitoring's defaults: expected no finding, found:\n{result.output[-2000:]}"


@pytest.mark.contract("ADP-META-02")
def test_template_of_defaults_succeeds_and_kube_version_is_checked(render):
    assert render(F.CHART, kube_version="1.26.0").select("Deployment", name=F.GRAFANA), \
        "with --kube-version 1.26.0 the default render has no Deployment grafana"
    message = render.error(F.CHART, kube_version="1.25.0")
    assert "kubeVersion" in message, \
        f"--kube-version 1.25.0: expected helm's kubeVersion refusal, found: {message}"


@pytest.mark.contract("MON-01")
def test_mon_01_datasources_are_loki_and_the_adaptive_prometheus(render):
    default = default_render(render)
    cm = default.get("ConfigMap", F.GRAFANA_CONFIGMAP)
    sources = [ds for doc in F.yaml_documents_in(cm) if isinstance(doc, dict)
               for ds in doc.get("datasources") or [] if isinstance(ds, dict)]
    assert sources, f"ConfigMap {F.GRAFANA_CONFIGMAP} provisions no datasource:\n{fragment(cm)}"
    by_type: dict[str, list[dict]] = {}
    for ds in sources:
        by_type.setdefault(str(ds.get("type", "")).lower(), []).append(ds)

    lokis = [str(ds.get("url", "")).rstrip("/") for ds in by_type.get("loki", [])]
    assert "http://loki:3100" in lokis, f"expected a Loki datasource at http://loki:3100, found Loki urls {lokis}"
    proms = [(ds.get("uid"), str(ds.get("url", "")).rstrip("/")) for ds in by_type.get("prometheus", [])]
    assert ("adaptive-prometheus", "http://adaptive-prometheus") in proms, \
        f"expected a Prometheus datasource uid adaptive-prometheus at http://adaptive-prometheus, found (uid, url) {proms}"


@pytest.mark.contract("MON-01")
def test_mon_01_the_three_dashboards_are_in_the_grafana_configmap(render):
    default = default_render(render)
    data = default.get("ConfigMap", F.GRAFANA_CONFIGMAP).get("data") or {}
    missing = [name for name in F.DASHBOARDS if name not in data]
    assert not missing, f"ConfigMap {F.GRAFANA_CONFIGMAP}: expected dashboards {list(F.DASHBOARDS)}, missing {missing}; keys {sorted(data)}"
    for name in F.DASHBOARDS:
        try:
            board = json.loads(str(data[name]))
        except ValueError as exc:
            raise AssertionError(f"dashboard {name} is not JSON: {exc}") from None
        assert isinstance(board, dict) and board, f"dashboard {name}: expected a dashboard object, found {str(data[name])[:200]!r}"


@pytest.mark.contract("MON-01")
def test_mon_01_root_url_defaults_to_the_placeholder_domain(render):
    default = default_render(render)
    _, grafana = F.grafana(default)
    env = F.effective_env(default, grafana)
    assert env.get("GF_SERVER_ROOT_URL") == f"https://{F.DEFAULT_DOMAIN}/monitoring/", \
        f"GF_SERVER_ROOT_URL: expected 'https://{F.DEFAULT_DOMAIN}/monitoring/', found {env.get('GF_SERVER_ROOT_URL')!r}"
    assert env.get("GF_SERVER_DOMAIN") == F.DEFAULT_DOMAIN, \
        f"GF_SERVER_DOMAIN: expected {F.DEFAULT_DOMAIN!r}, found {env.get('GF_SERVER_DOMAIN')!r}"


@pytest.mark.contract("MON-01")
def test_mon_01_grafana_is_anonymous_admin_without_login_form(render):
    default = default_render(render)
    _, grafana = F.grafana(default)
    env = F.effective_env(default, grafana)
    expected = {"GF_AUTH_ANONYMOUS_ENABLED": "true", "GF_AUTH_ANONYMOUS_ORG_ROLE": "Admin",
                "GF_AUTH_DISABLE_LOGIN_FORM": "true"}
    found = {k: env.get(k) for k in expected}
    assert found == expected, f"Grafana auth env: expected {expected}, found {found}"


@pytest.mark.contract("MON-01")
def test_mon_01_grafana_runs_as_472_and_serves_port_3000(render):
    default = default_render(render)
    dep, grafana = F.grafana(default)
    assert F.same_image(grafana.get("image", ""), F.GRAFANA_IMAGE), \
        f"Grafana image: expected {F.GRAFANA_IMAGE}, found {grafana.get('image')!r}"
    assert F.uid(dep, grafana) == 472, f"Grafana's user: expected uid 472, found {F.uid(dep, grafana)!r}"
    fs_group = dig(pod_spec(dep), "securityContext.fsGroup")
    assert fs_group == 472, f"Grafana's pod fsGroup: expected 472, found {fs_group!r}"
    assert F.container_port(grafana, 3000) is not None, \
        f"the Grafana container declares no port 3000; ports: {grafana.get('ports')}"


@pytest.mark.contract("MON-01")
def test_mon_01_grafana_provisioning_and_data_paths(render):
    default = default_render(render)
    dep, grafana = F.grafana(default)
    mounts = grafana.get("volumeMounts") or []
    config_volumes = {v.get("name") for v in pod_spec(dep).get("volumes") or []
                      if dig(v, "configMap.name") == F.GRAFANA_CONFIGMAP
                      or any(dig(s, "configMap.name") == F.GRAFANA_CONFIGMAP for s in dig(v, "projected.sources", []) or [])}
    provisioning = [m.get("mountPath") for m in mounts
                    if str(m.get("mountPath", "")).startswith(F.PROVISIONING) and m.get("name") in config_volumes]
    assert provisioning, (f"expected ConfigMap {F.GRAFANA_CONFIGMAP} mounted under {F.PROVISIONING}; "
                          f"mounts {[(m.get('name'), m.get('mountPath')) for m in mounts]}, its volumes {sorted(config_volumes)}")
    F.backing(default, dep, grafana, F.GRAFANA_DATA)  # something is mounted at the data path


@pytest.mark.contract("MON-01")
def test_mon_01_grafana_service_is_clusterip_3000_to_grafana(render):
    default = default_render(render)
    dep, grafana = F.grafana(default)
    svc = default.get("Service", F.GRAFANA)
    kind = dig(svc, "spec.type", "ClusterIP")
    assert kind == "ClusterIP", f"Service grafana: expected type ClusterIP, found {kind}"
    ports = [p for p in dig(svc, "spec.ports", []) or [] if p.get("port") == 3000]
    assert ports, f"Service grafana has no port 3000:\n{fragment(svc)}"
    assert any(target_reaches(p, grafana, 3000) for p in ports), \
        f"Service grafana port 3000 does not target the Grafana container's port 3000:\n{fragment(svc)}"
    assert F.selects(svc, dep), f"Service grafana does not select the pods of Deployment grafana:\n{fragment(svc)}"


@pytest.mark.contract("MON-01")
def test_mon_01_loki_statefulset(render):
    default = default_render(render)
    sts, loki = F.loki(default)
    assert F.same_image(loki.get("image", ""), F.LOKI_IMAGE), f"Loki image: expected {F.LOKI_IMAGE}, found {loki.get('image')!r}"
    port = F.container_port(loki, 3100)
    assert port is not None and port.get("name") == "http-metrics", \
        f"Loki: expected port http-metrics 3100, found ports {loki.get('ports')}"
    assert F.uid(sts, loki) == 10001, f"Loki's user: expected uid 10001, found {F.uid(sts, loki)!r}"
    probe = dig(loki, "readinessProbe.httpGet", {}) or {}
    assert probe.get("path") == "/ready" and probe.get("port") in (3100, "http-metrics"), \
        f"Loki readiness probe: expected GET /ready on 3100, found {loki.get('readinessProbe')}"
    for path in F.LOKI_DATA:
        F.backing(default, sts, loki, path)
    assert F.uses_configmap(sts, F.LOKI), f"StatefulSet loki does not read ConfigMap loki:\n{fragment(pod_spec(sts))}"
    default.get("ConfigMap", F.LOKI)


@pytest.mark.contract("MON-01")
def test_mon_01_loki_services(render):
    default = default_render(render)
    sts, loki = F.loki(default)
    svc = default.get("Service", F.LOKI)
    ports = [p for p in dig(svc, "spec.ports", []) or [] if p.get("port") == 3100]
    assert ports and any(target_reaches(p, loki, 3100) for p in ports), \
        f"Service loki: expected port 3100 to Loki's http-metrics 3100:\n{fragment(svc)}"
    assert F.selects(svc, sts), f"Service loki does not select the Loki pods:\n{fragment(svc)}"
    headless = default.get("Service", F.LOKI_HEADLESS)
    assert dig(headless, "spec.clusterIP") == "None", f"Service loki-headless is not headless:\n{fragment(headless)}"
    assert F.selects(headless, sts), f"Service loki-headless does not select the Loki pods:\n{fragment(headless)}"


@pytest.mark.contract("MON-01")
def test_mon_01_promtail_runs_with_its_service_account(render):
    default = default_render(render)
    ds, promtail = F.promtail(default)
    assert F.same_image(promtail.get("image", ""), F.PROMTAIL_IMAGE), \
        f"promtail image: expected {F.PROMTAIL_IMAGE}, found {promtail.get('image')!r}"
    account = dig(pod_spec(ds), "serviceAccountName") or dig(pod_spec(ds), "serviceAccount")
    assert account == F.PROMTAIL_SA, f"promtail's service account: expected {F.PROMTAIL_SA}, found {account!r}"
    default.get("ServiceAccount", F.PROMTAIL_SA)
    default.get("ClusterRole", F.PROMTAIL_CLUSTERROLE)
    binding = default.get("ClusterRoleBinding", F.PROMTAIL_BINDING)
    role = dig(binding, "roleRef", {}) or {}
    assert (role.get("kind"), role.get("name")) == ("ClusterRole", F.PROMTAIL_CLUSTERROLE), \
        f"{ref(binding)}: expected roleRef ClusterRole {F.PROMTAIL_CLUSTERROLE}, found {role}"
    subjects = [(s.get("kind"), s.get("name")) for s in binding.get("subjects") or []]
    assert ("ServiceAccount", F.PROMTAIL_SA) in subjects, \
        f"{ref(binding)}: expected subject ServiceAccount {F.PROMTAIL_SA}, found {subjects}"


@pytest.mark.contract("MON-01")
def test_mon_01_promtail_reads_the_nodes_pod_logs(render):
    default = default_render(render)
    ds, promtail = F.promtail(default)
    mounted = {m.get("name") for m in promtail.get("volumeMounts") or []}
    host_paths = [dig(v, "hostPath.path") for v in pod_spec(ds).get("volumes") or []
                  if v.get("name") in mounted and dig(v, "hostPath.path")]
    assert any(F.covers(str(path), "/var/log/pods") for path in host_paths), \
        f"promtail: expected the node's /var/log/pods mounted from the host, found host paths {host_paths}"
    assert F.uses_configmap(ds, F.PROMTAIL_CONFIG), \
        f"DaemonSet promtail-daemonset does not read ConfigMap {F.PROMTAIL_CONFIG}:\n{fragment(pod_spec(ds))}"


def promtail_configs(m) -> list[dict]:
    cm = m.get("ConfigMap", F.PROMTAIL_CONFIG)
    configs = [d for d in F.yaml_documents_in(cm) if isinstance(d, dict) and ("clients" in d or "scrape_configs" in d)]
    assert configs, f"ConfigMap {F.PROMTAIL_CONFIG} holds no promtail configuration:\n{fragment(cm)}"
    return configs


@pytest.mark.contract("MON-01")
def test_mon_01_promtail_pushes_to_loki(render):
    default = default_render(render)
    urls = [str(c.get("url", "")).rstrip("/") for cfg in promtail_configs(default) for c in cfg.get("clients") or []
            if isinstance(c, dict)]
    assert "http://loki:3100/loki/api/v1/push" in urls, \
        f"promtail clients: expected http://loki:3100/loki/api/v1/push, found {urls}"


def keeps_only_annotated(relabel_configs: list) -> bool:
    label = "__meta_kubernetes_pod_annotation_ingest_adaptive_logs"
    for rule in relabel_configs or []:
        if not isinstance(rule, dict) or str(rule.get("action", "replace")).lower() != "keep":
            continue
        sources = rule.get("source_labels") or []
        if sources != [label]:
            continue
        regex = str(rule.get("regex", "(.*)"))
        try:
            return bool(re.fullmatch(regex, "true")) and not re.fullmatch(regex, "") and not re.fullmatch(regex, "false")
        except re.error:
            return False
    return False


@pytest.mark.contract("MON-01")
def test_mon_01_promtail_keeps_only_pods_annotated_for_ingestion(render):
    default = default_render(render)
    jobs = [job for cfg in promtail_configs(default) for job in cfg.get("scrape_configs") or [] if isinstance(job, dict)]
    assert jobs, "promtail has no scrape_configs"
    pod_jobs = [job for job in jobs if any(sd.get("role") == "pod" for sd in job.get("kubernetes_sd_configs") or [])]
    assert pod_jobs, f"no promtail job discovers pods; jobs: {[j.get('job_name') for j in jobs]}"
    leaking = [job.get("job_name") for job in pod_jobs if not keeps_only_annotated(job.get("relabel_configs"))]
    assert not leaking, ('expected every pod job to keep only pods annotated ingest-adaptive-logs: "true" '
                         f"(a keep rule on __meta_kubernetes_pod_annotation_ingest_adaptive_logs matching true); "
                         f"jobs without it: {leaking}")
