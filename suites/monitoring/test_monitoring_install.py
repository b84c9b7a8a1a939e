"""Installation promises of the `monitoring` chart (one test per scenario) and its [C] behaviours."""

from __future__ import annotations

import json

import pytest

import suites.realcluster as rc
from chartproof.paths import scenario

CHART = "monitoring"
RELEASE = "adaptive-monitoring"
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding"}


def uninstall_and_check_clean(cluster, release, namespace):
    manifest = release.manifest
    created = [(o["kind"], o["metadata"]["name"], None if o["kind"] in CLUSTER_SCOPED else namespace)
               for o in manifest.objects]
    prefixes = [f"{c['metadata']['name']}-{o['metadata']['name']}-"
                for o in manifest.find("StatefulSet") for c in o["spec"].get("volumeClaimTemplates") or []]
    release.uninstall()

    def leftovers():
        left = [f"{k} {n}" for k, n, ns in created if cluster.kubectl.exists(k, n, ns)]
        left += [f"Pod {p['metadata']['name']}" for p in cluster.kubectl.items("pods", namespace=namespace)]
        return left

    cluster.wait_for(lambda: not leftovers(), timeout=180, what="release objects to be deleted")
    for pvc in cluster.kubectl.items("persistentvolumeclaims", namespace=namespace):
        name = pvc["metadata"]["name"]
        assert any(name.startswith(p) for p in prefixes), f"PVC {name} remains but is not from a claim template"


@pytest.mark.cluster
@pytest.mark.exclusive("adaptive-monitoring")
@pytest.mark.parametrize("name", ["defaults-domain", "monitoring-persisted", "persisted-default-class"])
def test_install_scenario(install_chart, cluster, namespace, name):
    rel = install_chart(CHART, [scenario(CHART, name)], release=RELEASE)
    cluster.wait_ready(namespace)
    ing = cluster.kubectl.get_json("ingresses", "grafana", namespace=namespace)
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/monitoring"
    if name != "defaults-domain":
        def bound():
            claims = cluster.kubectl.items("persistentvolumeclaims", namespace=namespace)
            return len(claims) == 3 and all(c.get("status", {}).get("phase") == "Bound" for c in claims)
        cluster.wait_for(bound, timeout=120, what="grafana and loki claims to bind")
    uninstall_and_check_clean(cluster, rel, namespace)
    if name != "defaults-domain":
        left = sorted(c["metadata"]["name"] for c in cluster.kubectl.items("persistentvolumeclaims", namespace=namespace))
        assert left == ["data-loki-0", "db-loki-0"], left


def explore_through_ingress(cluster, curl, domain: str) -> rc.HttpResult:
    """GET <ingress>/monitoring/explore for host `domain`, once the controller has picked the Ingress up."""
    url = f"{rc.ingress_url()}/monitoring/explore"

    def routed():
        r = curl.get(url, headers={"Host": domain}, follow=True)
        return r if r.status == 200 else None

    return cluster.wait_for(routed, timeout=120, what=f"{url} (Host {domain}) to answer 200")


@pytest.mark.cluster
@pytest.mark.exclusive("adaptive-monitoring")
@pytest.mark.real_cluster("needs an ingress controller (CHARTPROOF_INGRESS_URL) and a real Grafana answering HTTP")
def test_mon_route_02_explore_through_ingress(install_chart, cluster, namespace):
    install_chart(CHART, [scenario(CHART, "defaults-domain")], release=RELEASE)
    with rc.curl_pod(cluster, namespace) as curl:
        rc.assert_grafana_explore(explore_through_ingress(cluster, curl, "adaptive.acme.example.com"))


@pytest.mark.cluster
@pytest.mark.exclusive("adaptive-monitoring")
@pytest.mark.real_cluster("certification on the customer's cluster: an ingress controller (CHARTPROOF_INGRESS_URL) "
                          "in front of a running control plane (CHARTPROOF_ADAPTIVE_VALUES) and Grafana on one host")
def test_mon_route_03_same_host_as_control_plane(install_chart, cluster, namespace):
    """grafana.proxy.domain = host of controlPlane.rootUrl: /monitoring/explore is Grafana, / is still the
    control plane (the same answer as the control plane's Service gives directly, and not Grafana)."""
    ada = rc.install_running_control_plane(install_chart, cluster, namespace, scenario("adaptive", "defaults-with-secrets"),
                                           {"ingress": {"enabled": True, "className": "nginx"}})
    domain = rc.host_of(rc.root_url(ada.manifest))
    install_chart(CHART, [scenario(CHART, "defaults-domain"), {"grafana": {"proxy": {"domain": domain}}}],
                  release=RELEASE)
    with rc.curl_pod(cluster, namespace) as curl:
        rc.assert_grafana_explore(explore_through_ingress(cluster, curl, domain))
        direct = rc.first_answer(cluster, curl, f"{rc.control_plane_url(ada.manifest)}/")
        via = curl.get(f"{rc.ingress_url()}/", headers={"Host": domain})
    assert via.status, f"no answer for / on {domain} through the ingress: {via}"
    assert rc.GRAFANA_BOOT_MARKER not in via.body, f"/ on {domain} is served by Grafana: {via}"
    assert via.status == direct.status, f"/ through the ingress {via} differs from the control plane's {direct}"
    assert via.header("content-type") == direct.header("content-type"), (via, direct)
    assert via.header("location") == direct.header("location"), (via, direct)


@pytest.mark.cluster
@pytest.mark.real_cluster("needs real Grafana, Loki and Prometheus answering")
def test_mon_ds_01_datasources_answer(install_chart, cluster, namespace):
    install_chart(CHART, [scenario(CHART, "defaults-domain")], release=RELEASE)
    out = cluster.kubectl("exec", "-n", namespace, "deploy/grafana", "--", "wget", "-qO-",
                          "http://localhost:3000/monitoring/api/datasources")
    assert "adaptive-prometheus" in out and "loki" in out


@pytest.mark.cluster
@pytest.mark.exclusive("adaptive-monitoring")
@pytest.mark.real_cluster("needs real containers writing logs on the nodes and promtail shipping them to Loki")
def test_mon_logs_01_logs_queryable(install_chart, cluster, namespace):
    """The output of a pod annotated ingest-adaptive-logs: "true" becomes queryable in Loki under its
    namespace and pod labels; an unannotated pod's output does not. (The harmony job logs that the alloy
    sidecar ships need a running harmony and are not covered here.)"""
    install_chart(CHART, [scenario(CHART, "defaults-domain")], release=RELEASE)
    cluster.wait_ready(namespace)
    shipped, ignored = rc.unique("chartproof-mon-logs-01"), rc.unique("chartproof-mon-logs-01-ignored")
    pods = {}
    for marker, ann in ((shipped, {"ingest-adaptive-logs": "true"}), (ignored, {})):
        manifest = rc.pod(rc.unique("log-marker"), rc.BUSYBOX_IMAGE, ["sh", "-c", f"echo {marker}; exec sleep 3600"],
                          annotations=ann)
        pods[marker] = rc.start_pod(cluster, namespace, manifest)
    with rc.curl_pod(cluster, namespace) as curl:
        query = rc.logql({"namespace": namespace, "pod": pods[shipped]}, shipped)
        cluster.wait_for(lambda: rc.loki_has(curl, query, shipped), timeout=300,
                         what=f"Loki to return the line of pod {pods[shipped]} for {query}")
        unannotated = rc.logql({"namespace": namespace}, ignored)
        assert not rc.loki_has(curl, unannotated, ignored), "logs of a pod without the annotation were shipped"


GRAFANA_PODS = "app=grafana,role=monitoring"
LOKI_PODS = "app=loki,app.kubernetes.io/name=loki"


def replace_pods(cluster, namespace: str, *selectors: str) -> None:
    """Delete the pods of each selector and wait until new pods (other uids) are Ready in their place."""
    old = {}
    for selector in selectors:
        old[selector] = {p["metadata"]["uid"] for p in cluster.kubectl.items("pods", namespace=namespace, selector=selector)}
        assert old[selector], f"no pod matches {selector}"
        cluster.kubectl("delete", "pods", "-n", namespace, "-l", selector, "--wait=false")
    for selector in selectors:
        def replaced(selector=selector):
            pods = cluster.kubectl.items("pods", namespace=namespace, selector=selector)
            return pods and all(p["metadata"]["uid"] not in old[selector] and rc.pod_ready(p) for p in pods)
        cluster.wait_for(replaced, timeout=300, what=f"new Ready pods for {selector}")


@pytest.mark.cluster
@pytest.mark.exclusive("adaptive-monitoring")
@pytest.mark.real_cluster("needs real Grafana/Loki writing data to gp3 claims (monitoring-persisted)")
def test_mon_persist_04_data_survives_pod_deletion(install_chart, cluster, namespace):
    """A dashboard and org preferences saved through Grafana's API and a line pushed to Loki are still
    there after the Grafana and Loki pods are deleted and replaced."""
    install_chart(CHART, [scenario(CHART, "monitoring-persisted")], release=RELEASE)
    cluster.wait_ready(namespace)
    uid, marker = rc.unique("chartproof"), rc.unique("chartproof-mon-persist-04")
    title = f"Chartproof MON-PERSIST-04 {uid}"
    json_headers = {"Content-Type": "application/json"}
    stream = {"job": "chartproof", "test": "mon-persist-04"}
    query = rc.logql(stream, marker)
    with rc.curl_pod(cluster, namespace) as curl:
        saved = curl.request(f"{rc.GRAFANA_URL}/api/dashboards/db", method="POST", headers=json_headers,
                             data=json.dumps({"dashboard": {"uid": uid, "title": title, "panels": [],
                                                            "tags": ["chartproof"]}, "overwrite": True}))
        assert saved.status == 200 and saved.json().get("uid") == uid, f"dashboard not saved: {saved}"
        prefs = curl.request(f"{rc.GRAFANA_URL}/api/org/preferences", method="PUT", headers=json_headers,
                             data=json.dumps({"theme": "light", "timezone": "utc"}))
        assert prefs.status == 200, f"preferences not saved: {prefs}"
        pushed = curl.request(f"{rc.LOKI_URL}/loki/api/v1/push", method="POST", headers=json_headers,
                              data=rc.loki_push_body(stream, f"{marker} kept across restarts", curl.now_ns()))
        assert pushed.status == 204, f"Loki refused the push: {pushed}"
        cluster.wait_for(lambda: rc.loki_has(curl, query, marker), timeout=60, what=f"Loki to return {query}")

        replace_pods(cluster, namespace, GRAFANA_PODS, LOKI_PODS)

        cluster.wait_for(lambda: curl.get(f"{rc.GRAFANA_URL}/api/health").status == 200, timeout=120,
                         what="Grafana's API to answer after the restart")
        dashboard = curl.get(f"{rc.GRAFANA_URL}/api/dashboards/uid/{uid}")
        assert dashboard.status == 200, f"dashboard {uid} lost with the Grafana pod: {dashboard}"
        assert dashboard.json()["dashboard"]["title"] == title
        prefs = curl.get(f"{rc.GRAFANA_URL}/api/org/preferences")
        assert prefs.status == 200 and (prefs.json().get("theme"), prefs.json().get("timezone")) == ("light", "utc"), \
            f"org preferences lost with the Grafana pod: {prefs}"
        cluster.wait_for(lambda: rc.loki_has(curl, query, marker), timeout=120,
                         what=f"Loki to return the pushed line {marker} after its pod was replaced")
