"""Monitoring chart on a cluster (contract adaptive.md, "Monitoring chart"): each customer scenario installs,
becomes ready, does what its promise says on the live objects, and uninstalls without leftovers; and the
[C] behaviours that need real Grafana, Loki and an ingress controller (skipped on simulated clusters).

The chart has fixed cluster-scoped names (promtail's ClusterRole and binding), so it is installed once per
cluster at a time: every test here holds the `adaptive-monitoring` lock.
"""

from __future__ import annotations

import json

import monitoring_facts as F
import pytest

import chartproof.incluster as ic
from chartproof.manifest import dig
from chartproof.paths import scenario

EXCLUSIVE = pytest.mark.exclusive("adaptive-monitoring")
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def selector_of(workload: dict) -> str:
    labels = dig(workload, "spec.selector.matchLabels", {}) or {}
    assert labels, f"{workload.get('kind')} {dig(workload, 'metadata.name')} has no matchLabels selector"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def live_claims_of(cluster, namespace: str, kind: str, name: str, image_repo: str, paths) -> dict[str, dict]:
    """{path: live PVC} for the data paths of the pods of a live workload."""
    workload = cluster.get_json(kind, name, namespace=namespace)
    pods = cluster.kubectl.items("pods", namespace=namespace, selector=selector_of(workload))
    assert pods, f"{kind} {name} has no pod"
    claims = F.live(cluster.kubectl.items("persistentvolumeclaims", namespace=namespace))
    pod = F.live(pods).objects[0]
    item = F.container_running(pod, image_repo)
    out = {}
    for path in paths:
        store, claim = F.backing(claims, pod, item, path)
        assert store == "claim", f"{kind} {name}: {path} is on {store}, expected a claim: {claim}"
        out[path] = claim
    return out


def assert_bound(claims: dict[str, dict], storage_class: str) -> None:
    for path, claim in claims.items():
        phase = dig(claim, "status.phase")
        assert phase == "Bound", f"{path}: claim {dig(claim, 'metadata.name')} is {phase}, expected Bound"
        found = dig(claim, "spec.storageClassName")
        assert found == storage_class, f"{path}: claim {dig(claim, 'metadata.name')} has class {found!r}, expected {storage_class!r}"


def default_class(cluster) -> str:
    names = [dig(c, "metadata.name") for c in cluster.kubectl.items("storageclasses")
             if (dig(c, "metadata.annotations", {}) or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"]
    if len(names) != 1:
        pytest.skip(f"this cluster has {len(names)} default storage classes ({names}); MON-PERSIST-03 needs one")
    return names[0]


def install_scenario(render, install_chart, name: str):
    values = [scenario(F.CHART, name)]
    render.scenario(F.CHART, values, release=F.RELEASE)  # a scenario the build cannot render is reported once
    return install_chart(F.CHART, values, release=F.RELEASE)


@pytest.mark.contract("MON-01", "MON-ROUTE-01")
@EXCLUSIVE
def test_install_defaults_domain(render, install_chart, cluster, namespace):
    """The README's addon install: Grafana, Loki and promtail become ready; the live Ingress routes
    /monitoring on the customer's host to grafana:3000; promtail may discover the pods of every node."""
    rel = install_scenario(render, install_chart, "defaults-domain")
    ingresses = F.live(cluster.kubectl.items("ingresses", namespace=namespace))
    host = "adaptive.acme.example.com"
    found = F.routes(ingresses, host)
    assert found and any(F.backend_is_grafana_3000(ingresses, p) for _, p in found), \
        f"live Ingresses: expected {host}/monitoring to grafana:3000, found {F.all_routes(ingresses) or 'none'}"
    account = f"system:serviceaccount:{namespace}:{F.PROMTAIL_SA}"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    for verb in ("list", "watch"):
        assert cluster.can(verb, "pods", user=account, groups=groups), \
            f"the API server does not let {F.PROMTAIL_SA} {verb} pods cluster-wide (promtail's pod discovery)"
    rel.uninstall()


@pytest.mark.contract("MON-PERSIST-02")
@EXCLUSIVE
def test_install_monitoring_persisted(render, install_chart, cluster, namespace):
    """gp3 claims: Grafana's data and Loki's /data and /db are on Bound claims of class gp3."""
    rel = install_scenario(render, install_chart, "monitoring-persisted")
    assert_bound(live_claims_of(cluster, namespace, "deployment", F.GRAFANA, "grafana/grafana", [F.GRAFANA_DATA]), "gp3")
    assert_bound(live_claims_of(cluster, namespace, "statefulset", F.LOKI, "grafana/loki", F.LOKI_DATA), "gp3")
    rel.uninstall()


@pytest.mark.contract("MON-PERSIST-03")
@EXCLUSIVE
def test_install_persisted_default_class(render, install_chart, cluster, namespace):
    """No class named: the API server gives every claim the cluster's default class, and they bind."""
    expected = default_class(cluster)
    rel = install_scenario(render, install_chart, "persisted-default-class")
    assert_bound(live_claims_of(cluster, namespace, "deployment", F.GRAFANA, "grafana/grafana", [F.GRAFANA_DATA]), expected)
    assert_bound(live_claims_of(cluster, namespace, "statefulset", F.LOKI, "grafana/loki", F.LOKI_DATA), expected)
    rel.uninstall()


# -- [C] behaviours that need real containers ------------------------------------------------------------

def explore_through_ingress(cluster, curl, domain: str) -> ic.HttpResult:
    """GET <ingress>/monitoring/explore for host `domain`, once the controller has picked the Ingress up."""
    url = f"{ic.ingress_url()}/monitoring/explore"

    def routed():
        r = curl.get(url, headers={"Host": domain}, follow=True)
        return r if r.status == 200 else None

    return cluster.wait_for(routed, timeout=120, what=f"{url} (Host {domain}) to answer 200")


@pytest.mark.contract("MON-ROUTE-02")
@EXCLUSIVE
@pytest.mark.real_cluster("needs an ingress controller (CHARTPROOF_INGRESS_URL) and a real Grafana answering HTTP")
def test_mon_route_02_explore_through_ingress(render, install_chart, cluster, namespace):
    install_scenario(render, install_chart, "defaults-domain")
    with ic.curl_pod(cluster, namespace) as curl:
        ic.assert_grafana_explore(explore_through_ingress(cluster, curl, "adaptive.acme.example.com"))


@pytest.mark.contract("MON-ROUTE-03")
@EXCLUSIVE
@pytest.mark.real_cluster("certification on the customer's cluster: an ingress controller (CHARTPROOF_INGRESS_URL) "
                          "in front of a running control plane (CHARTPROOF_ADAPTIVE_VALUES) and Grafana on one host")
def test_mon_route_03_same_host_as_control_plane(render, install_chart, cluster, namespace):
    """grafana.proxy.domain = host of controlPlane.rootUrl: /monitoring/explore is Grafana, / is still the
    control plane (the same answer as the control plane's Service gives directly, and not Grafana)."""
    ada = ic.install_running_control_plane(install_chart, cluster, namespace, scenario("adaptive", "defaults-with-secrets"),
                                           {"ingress": {"enabled": True, "className": "nginx"}})
    domain = ic.host_of(ic.root_url(ada.manifest))
    install_chart(F.CHART, [scenario(F.CHART, "defaults-domain"), {"grafana": {"proxy": {"domain": domain}}}],
                  release=F.RELEASE)
    with ic.curl_pod(cluster, namespace) as curl:
        ic.assert_grafana_explore(explore_through_ingress(cluster, curl, domain))
        direct = ic.first_answer(cluster, curl, f"{ic.control_plane_url(ada.manifest)}/")
        via = curl.get(f"{ic.ingress_url()}/", headers={"Host": domain})
    assert via.status, f"no answer for / on {domain} through the ingress: {via}"
    assert ic.GRAFANA_BOOT_MARKER not in via.body, f"/ on {domain} is served by Grafana: {via}"
    assert via.status == direct.status, f"/ through the ingress {via} differs from the control plane's {direct}"
    assert via.header("content-type") == direct.header("content-type"), f"content-type: through the ingress {via}, direct {direct}"
    assert via.header("location") == direct.header("location"), f"location: through the ingress {via}, direct {direct}"


@pytest.mark.contract("MON-DS-01")
@EXCLUSIVE
@pytest.mark.real_cluster("needs real Grafana, Loki and the adaptive release's Prometheus answering")
def test_mon_ds_01_datasources_answer_and_dashboards_are_provisioned(render, install_chart, cluster, namespace):
    install_chart("adaptive", [scenario("adaptive", "defaults-with-secrets"), *ic.adaptive_values(),
                               {"harmony": {"replicaCount": 0}}], release="adaptive", wait=False)
    rel = install_scenario(render, install_chart, "defaults-domain")
    board_titles = set()
    for name in F.DASHBOARDS:
        text = (rel.manifest.get("ConfigMap", F.GRAFANA_CONFIGMAP).get("data") or {}).get(name)
        assert text, f"ConfigMap {F.GRAFANA_CONFIGMAP} has no dashboard {name}"
        try:
            board_titles.add(json.loads(text).get("title"))
        except (ValueError, AttributeError):
            raise AssertionError(f"dashboard {name} is not a JSON dashboard object") from None
    with ic.curl_pod(cluster, namespace) as curl:
        listed = ic.first_answer(cluster, curl, f"{ic.GRAFANA_URL}/api/datasources")
        assert listed.status == 200, f"Grafana's datasource list: {listed}"
        sources = {ds.get("uid"): ds for ds in listed.json()}
        loki = [uid for uid, ds in sources.items() if ds.get("type") == "loki"]
        assert "adaptive-prometheus" in sources and loki, f"expected Loki and adaptive-prometheus, found {sorted(sources)}"
        for uid in ("adaptive-prometheus", loki[0]):
            def healthy(uid=uid):
                r = curl.get(f"{ic.GRAFANA_URL}/api/datasources/uid/{uid}/health")
                return r if r.status == 200 and str(r.json().get("status", "")).upper() == "OK" else None
            cluster.wait_for(healthy, timeout=300, what=f"datasource {uid} to answer Grafana's health check")
        found = curl.get(f"{ic.GRAFANA_URL}/api/search?type=dash-db")
        assert found.status == 200, f"Grafana's dashboard search: {found}"
        titles = {d.get("title") for d in found.json()}
        assert board_titles <= titles, f"expected dashboards {sorted(board_titles)} provisioned, Grafana has {sorted(titles)}"


@pytest.mark.contract("MON-LOGS-01")
@EXCLUSIVE
@pytest.mark.real_cluster("needs real containers writing logs on the nodes and promtail shipping them to Loki",
                          needs="containers")
def test_mon_logs_01_logs_of_annotated_pods_are_queryable(render, install_chart, cluster, namespace):
    """The output of a pod annotated ingest-adaptive-logs: "true" becomes queryable in Loki under its
    namespace and pod labels; an unannotated pod's output does not. (The harmony job logs that the alloy
    sidecar ships need a running harmony and are not covered here.)"""
    install_scenario(render, install_chart, "defaults-domain")
    shipped, ignored = ic.unique("chartproof-mon-logs-01"), ic.unique("chartproof-mon-logs-01-ignored")
    pods = {}
    for marker, ann in ((shipped, {"ingest-adaptive-logs": "true"}), (ignored, {})):
        manifest = ic.pod(ic.unique("log-marker"), ic.BUSYBOX_IMAGE, ["sh", "-c", f"echo {marker}; exec sleep 3600"],
                          annotations=ann)
        pods[marker] = ic.start_pod(cluster, namespace, manifest)
    with ic.curl_pod(cluster, namespace) as curl:
        query = ic.logql({"namespace": namespace, "pod": pods[shipped]}, shipped)
        cluster.wait_for(lambda: ic.loki_has(curl, query, shipped), timeout=300,
                         what=f"Loki to return the line of pod {pods[shipped]} for {query}")
        unannotated = ic.logql({"namespace": namespace}, ignored)
        assert not ic.loki_has(curl, unannotated, ignored), f"logs of a pod without the annotation were shipped ({unannotated})"


@pytest.mark.contract("MON-PERSIST-04")
@EXCLUSIVE
@pytest.mark.real_cluster("needs real Grafana/Loki writing data to gp3 claims (monitoring-persisted)")
def test_mon_persist_04_data_survives_pod_deletion(render, install_chart, cluster, namespace):
    """A dashboard and org preferences saved through Grafana's API and a line pushed to Loki are still
    there after the Grafana and Loki pods are deleted and replaced."""
    install_scenario(render, install_chart, "monitoring-persisted")
    grafana_pods = selector_of(cluster.get_json("deployment", F.GRAFANA, namespace=namespace))
    loki_pods = selector_of(cluster.get_json("statefulset", F.LOKI, namespace=namespace))
    uid, marker = ic.unique("chartproof"), ic.unique("chartproof-mon-persist-04")
    title = f"Chartproof MON-PERSIST-04 {uid}"
    json_headers = {"Content-Type": "application/json"}
    stream = {"job": "chartproof", "test": "mon-persist-04"}
    query = ic.logql(stream, marker)
    with ic.curl_pod(cluster, namespace) as curl:
        saved = curl.request(f"{ic.GRAFANA_URL}/api/dashboards/db", method="POST", headers=json_headers,
                             data=json.dumps({"dashboard": {"uid": uid, "title": title, "panels": [],
                                                            "tags": ["chartproof"]}, "overwrite": True}))
        assert saved.status == 200 and saved.json().get("uid") == uid, f"dashboard not saved: {saved}"
        prefs = curl.request(f"{ic.GRAFANA_URL}/api/org/preferences", method="PUT", headers=json_headers,
                             data=json.dumps({"theme": "light", "timezone": "utc"}))
        assert prefs.status == 200, f"preferences not saved: {prefs}"
        pushed = curl.request(f"{ic.LOKI_URL}/loki/api/v1/push", method="POST", headers=json_headers,
                              data=ic.loki_push_body(stream, f"{marker} kept across restarts", curl.now_ns()))
        assert pushed.status == 204, f"Loki refused the push: {pushed}"
        cluster.wait_for(lambda: ic.loki_has(curl, query, marker), timeout=60, what=f"Loki to return {query}")

        ic.replace_pods(cluster, namespace, grafana_pods, loki_pods)

        cluster.wait_for(lambda: curl.get(f"{ic.GRAFANA_URL}/api/health").status == 200, timeout=120,
                         what="Grafana's API to answer after the restart")
        dashboard = curl.get(f"{ic.GRAFANA_URL}/api/dashboards/uid/{uid}")
        assert dashboard.status == 200, f"dashboard {uid} lost with the Grafana pod: {dashboard}"
        kept_title = dig(dashboard.json(), "dashboard.title")
        assert kept_title == title, f"dashboard {uid}: expected title {title!r}, found {kept_title!r}"
        prefs = curl.get(f"{ic.GRAFANA_URL}/api/org/preferences")
        kept = (prefs.json().get("theme"), prefs.json().get("timezone")) if prefs.status == 200 else None
        assert kept == ("light", "utc"), f"org preferences lost with the Grafana pod: {prefs}"
        cluster.wait_for(lambda: ic.loki_has(curl, query, marker), timeout=120,
                         what=f"Loki to return the pushed line {marker} after its pod was replaced")

