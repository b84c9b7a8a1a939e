"""Installation promises of the `adaptive` chart: every scenario installs, becomes ready, and
uninstalls without leaving anything behind except the claims of StatefulSet claim templates.
Also the [C] behaviours of contract adaptive.md (real-cluster-only ones are marked so)."""

from __future__ import annotations

import time

import pytest

import suites.realcluster as rc
from chartproof.manifest import Manifest
from chartproof.paths import scenario

CHART = "adaptive"
RELEASE = "adaptive"
HM = "adaptive-harmony"
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "APIService",
                  "PriorityClass", "StorageClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}

ESO_STUB_CRDS = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.external-secrets.io", "labels": {"app.kubernetes.io/managed-by": "chartproof"}},
        "spec": {
            "group": "external-secrets.io",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }
    for kind, plural in (("SecretStore", "secretstores"), ("ExternalSecret", "externalsecrets"))
]


def created_objects(manifest: Manifest, namespace: str) -> list[tuple[str, str, str | None]]:
    out = []
    for o in manifest.objects:
        kind = o["kind"]
        ns = None if kind in CLUSTER_SCOPED else (o["metadata"].get("namespace") or namespace)
        out.append((kind, o["metadata"]["name"], ns))
    return out


def claim_template_prefixes(manifest: Manifest) -> list[str]:
    prefixes = []
    for o in manifest.find("StatefulSet"):
        for claim in o["spec"].get("volumeClaimTemplates") or []:
            prefixes.append(f"{claim['metadata']['name']}-{o['metadata']['name']}-")
    return prefixes


def uninstall_and_check_clean(cluster, release, namespace: str, extra: list[tuple[str, str, str | None]] = ()):
    """Uninstall and assert that only claim-template PVCs of the release remain."""
    manifest = release.manifest
    created = created_objects(manifest, namespace) + list(extra)
    prefixes = claim_template_prefixes(manifest)
    release.uninstall()

    def leftovers():
        left = []
        for kind, name, ns in created:
            try:
                if cluster.kubectl.exists(kind, name, ns):
                    left.append(f"{kind} {name}")
            except Exception as exc:  # a kind whose CRD went away with the release: its objects went too
                if "the server doesn't have a resource type" not in str(exc) and "no matches" not in str(exc):
                    raise
        pods = cluster.kubectl.items("pods", namespace=namespace, selector=f"app.kubernetes.io/instance={RELEASE}")
        left += [f"Pod {p['metadata']['name']}" for p in pods]
        return left

    cluster.wait_for(lambda: not leftovers(), timeout=180, what="release objects to be deleted")
    for pvc in cluster.kubectl.items("persistentvolumeclaims", namespace=namespace):
        name = pvc["metadata"]["name"]
        assert any(name.startswith(p) for p in prefixes), f"PVC {name} remains but is not from a claim template"
    for kind in ("secrets", "configmaps", "services", "deployments", "statefulsets", "ingresses"):
        for item in cluster.kubectl.items(kind, namespace=namespace, selector=f"app.kubernetes.io/instance={RELEASE}"):
            raise AssertionError(f"{kind} {item['metadata']['name']} remains after uninstall")


def bound(cluster, namespace, prefix):
    claims = [c for c in cluster.kubectl.items("persistentvolumeclaims", namespace=namespace)
              if c["metadata"]["name"].startswith(prefix)]
    return claims and all(c.get("status", {}).get("phase") == "Bound" for c in claims)


# -- one installation per scenario ---------------------------------------------------------------

@pytest.mark.cluster
@pytest.mark.parametrize("name", ["defaults-with-secrets", "autoscaling-off-two-pools", "oidc-two-providers",
                                  "cpu-only"])
def test_install_scenario(install_chart, cluster, namespace, name):
    rel = install_chart(CHART, [scenario(CHART, name)], release=RELEASE)
    cluster.wait_ready(namespace)
    assert cluster.kubectl.exists("statefulset", HM, namespace)
    uninstall_and_check_clean(cluster, rel, namespace)


@pytest.mark.cluster
@pytest.mark.exclusive("keda")
def test_install_autoscaling_on(install_chart, cluster, namespace):
    """ADP-AUTOSCALE-06 (install part): one `helm install` on a cluster without KEDA succeeds."""
    rel = install_chart(CHART, [scenario(CHART, "autoscaling-on")], release=RELEASE)
    cluster.wait_ready(namespace)
    so = cluster.kubectl.get_json("scaledobjects.keda.sh", "adaptive-harmony-dpl-pool-a", namespace=namespace)
    assert so["spec"]["scaleTargetRef"]["name"] == "adaptive-harmony-dpl-pool-a"
    extra = [("scaledobjects.keda.sh", "adaptive-harmony-dpl-pool-a", namespace)]
    uninstall_and_check_clean(cluster, rel, namespace, extra)
    for crd in ("scaledobjects.keda.sh", "scaledjobs.keda.sh"):
        assert not cluster.kubectl.exists("customresourcedefinition", crd)
    assert not cluster.kubectl.exists("apiservice", "v1beta1.external.metrics.k8s.io")


@pytest.mark.cluster
@pytest.mark.exclusive("keda")
def test_install_autoscaling_on_with_keda_crds_already_on_the_cluster(install_chart, cluster, namespace, render):
    """keda.crds.install=false: the CRDs are the cluster's; the ScaledObjects are ordinary release objects,
    so `helm uninstall` removes them and leaves the CRDs alone."""
    crds = render(CHART, [scenario(CHART, "autoscaling-on")]).find("CustomResourceDefinition")
    assert crds, "the chart ships the keda.sh CRDs by default"
    cluster.apply([{**crd, "metadata": {"name": crd["metadata"]["name"],
                                        "labels": {"app.kubernetes.io/managed-by": "chartproof"}}} for crd in crds])
    try:
        cluster.wait_for(lambda: cluster.kubectl("get", "--raw", "/apis/keda.sh/v1alpha1", check=False),
                         timeout=60, what="keda.sh API served")
        rel = install_chart(CHART, [scenario(CHART, "autoscaling-on")], {"keda.crds.install": False}, release=RELEASE)
        assert not rel.manifest.find("CustomResourceDefinition")
        assert rel.manifest.has("ScaledObject", "adaptive-harmony-dpl-pool-a"), "a managed object, not a hook"
        rel.uninstall()
        cluster.wait_for(lambda: not cluster.kubectl.exists("scaledobjects.keda.sh", "adaptive-harmony-dpl-pool-a",
                                                            namespace), timeout=120, what="ScaledObject removed")
        assert cluster.kubectl.exists("customresourcedefinition", "scaledobjects.keda.sh")
    finally:
        for crd in crds:
            cluster.kubectl("delete", "customresourcedefinition", crd["metadata"]["name"], "--ignore-not-found",
                            check=False)


@pytest.mark.cluster
def test_install_tensorboard_persisted(install_chart, cluster, namespace):
    """Also ADP-TB-06 (binding part): the gp3 claim of the claim template binds."""
    rel = install_chart(CHART, [scenario(CHART, "tensorboard-persisted")], release=RELEASE)
    cluster.wait_ready(namespace)
    cluster.wait_for(lambda: bound(cluster, namespace, f"tensorboard-volume-{HM}-"), timeout=120,
                     what="tensorboard claim to bind")
    pvc = cluster.kubectl.get_json("persistentvolumeclaims", f"tensorboard-volume-{HM}-0", namespace=namespace)
    assert pvc["spec"]["storageClassName"] == "gp3"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    uninstall_and_check_clean(cluster, rel, namespace)
    assert cluster.kubectl.exists("persistentvolumeclaims", f"tensorboard-volume-{HM}-0", namespace)


@pytest.mark.cluster
def test_install_prometheus_persisted(install_chart, cluster, namespace):
    """Also ADP-PROM-05 (binding part): both Prometheus TSDB claims bind on gp3."""
    rel = install_chart(CHART, [scenario(CHART, "prometheus-persisted")], release=RELEASE)
    cluster.wait_ready(namespace)
    cluster.wait_for(lambda: bound(cluster, namespace, "storage-volume-adaptive-prometheus-"), timeout=120,
                     what="prometheus claims to bind")
    claims = [c for c in cluster.kubectl.items("persistentvolumeclaims", namespace=namespace)
              if c["metadata"]["name"].startswith("storage-volume-adaptive-prometheus-")]
    assert len(claims) == 2 and all(c["spec"]["storageClassName"] == "gp3" for c in claims)
    uninstall_and_check_clean(cluster, rel, namespace)


@pytest.mark.cluster
def test_install_azure_s3proxy(install_chart, cluster, namespace):
    """Also ADP-S3-04 (endpoint part): the proxy Service has ready endpoints."""
    rel = install_chart(CHART, [scenario(CHART, "azure-s3proxy")], release=RELEASE)
    cluster.wait_ready(namespace)

    def ready_endpoints():
        slices = cluster.kubectl.items("endpointslices", namespace=namespace,
                                       selector="kubernetes.io/service-name=adaptive-s3proxy")
        return [e for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")]

    cluster.wait_for(ready_endpoints, timeout=120, what="s3proxy endpoints")
    uninstall_and_check_clean(cluster, rel, namespace)


@pytest.mark.cluster
@pytest.mark.exclusive("external-secrets-crds")
def test_install_external_secrets(install_chart, cluster, namespace):
    """ESO mode installs where the external-secrets.io/v1 API exists. The simulated cluster has no
    ESO: stub CRDs are served for the test and the two Secrets ESO would write are created by hand."""
    had_crds = cluster.kubectl.exists("customresourcedefinition", "externalsecrets.external-secrets.io")
    if not had_crds:
        cluster.kubectl.apply(ESO_STUB_CRDS)
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        "crd/externalsecrets.external-secrets.io", "crd/secretstores.external-secrets.io")
    try:
        if cluster.simulated:
            for name in ("adaptive-control-plane-config-secret", "adaptive-harmony-config-secret"):
                cluster.kubectl("create", "secret", "generic", name, "-n", namespace, "--from-literal=placeholder=1")
        rel = install_chart(CHART, [scenario(CHART, "external-secrets")], release=RELEASE)
        cluster.wait_ready(namespace)
        assert cluster.kubectl.exists("externalsecrets.external-secrets.io", "adaptive-harmony-ext-secret", namespace)
        uninstall_and_check_clean(cluster, rel, namespace)
    finally:
        if not had_crds:
            cluster.kubectl("delete", "crd", "externalsecrets.external-secrets.io", "secretstores.external-secrets.io",
                            "--ignore-not-found", "--wait=false", check=False)


# -- [C] behaviours --------------------------------------------------------------------------------

def _gpu_nodes(cluster):
    nodes = []
    for node in cluster.nodes():
        alloc = node.get("status", {}).get("allocatable", {})
        if int(alloc.get("nvidia.com/gpu", "0")) >= 8 and not node["spec"].get("taints") \
                and not node["spec"].get("unschedulable"):
            nodes.append(node["metadata"]["name"])
    return nodes


def _gpus_in_use(cluster, node):
    pods = cluster.kubectl.items("pods", all_namespaces=True)
    used = 0
    for p in pods:
        if p["spec"].get("nodeName") != node or p.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for c in p["spec"].get("containers", []):
            used += int(((c.get("resources") or {}).get("requests") or {}).get("nvidia.com/gpu", 0))
    return used


SMALL = {"harmony": {"resources": {"limits": {"cpu": 4, "memory": "16Gi"}, "requests": {"cpu": 4, "memory": "16Gi"}}},
         "mlflow": {"enabled": False}}


@pytest.mark.cluster
@pytest.mark.exclusive("gpu-node-packing")
def test_adp_gpu_04_gpus_per_node(install_chart, cluster, namespace):
    """N dividing G: G/N harmony pods fit on one node; N > G: Pending on insufficient nvidia.com/gpu."""
    nodes = [n for n in _gpu_nodes(cluster) if _gpus_in_use(cluster, n) == 0]
    if not nodes:
        pytest.skip("no idle 8-GPU node in this cluster")
    node = nodes[0]
    pin = {"harmony": {"nodeSelector": {"kubernetes.io/hostname": node}, "gpusPerReplica": 4, "replicaCount": 2}}
    rel = install_chart(CHART, [SMALL, pin], release=RELEASE)
    cluster.wait_ready(namespace)
    pods = cluster.kubectl.items("pods", namespace=namespace, selector="app.kubernetes.io/component=harmony")
    assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} == {node}
    rel.uninstall()
    cluster.wait_for(lambda: not cluster.kubectl.items("pods", namespace=namespace,
                                                       selector="app.kubernetes.io/component=harmony"),
                     timeout=120, what="harmony pods to go")
    big = {"harmony": {"gpusPerReplica": 16, "replicaCount": 1}}
    install_chart(CHART, [SMALL, big], release=RELEASE, wait=False)

    def insufficient():
        events = cluster.kubectl.items("events", namespace=namespace)
        return [e for e in events if e.get("reason") == "FailedScheduling"
                and "nvidia.com/gpu" in e.get("message", "") and e["involvedObject"]["name"] == f"{HM}-0"]

    cluster.wait_for(insufficient, timeout=120, what="FailedScheduling on nvidia.com/gpu")
    pod = cluster.kubectl.get_json("pods", f"{HM}-0", namespace=namespace)
    assert pod["status"]["phase"] == "Pending"


@pytest.mark.cluster
@pytest.mark.exclusive("keda")
@pytest.mark.real_cluster("needs the KEDA operator actually running to report ScaledObjects Ready")
def test_adp_autoscale_06_scaledobjects_ready(install_chart, cluster, namespace):
    install_chart(CHART, [scenario(CHART, "autoscaling-on")], release=RELEASE)

    def ready():
        so = cluster.kubectl.get_json("scaledobjects.keda.sh", "adaptive-harmony-dpl-pool-a", namespace=namespace)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in so.get("status", {}).get("conditions", []))

    cluster.wait_for(ready, timeout=300, what="ScaledObject Ready")


def _pool_deployment(manifest: Manifest) -> dict:
    pools = [d for d in manifest.find("Deployment")
             if d["metadata"]["labels"].get("app.kubernetes.io/component") == "harmony-dpl"]
    assert len(pools) == 1, [d["metadata"]["name"] for d in pools]
    return pools[0]


COOLDOWN = 30          # autoscaling.coolDownPeriodSeconds of ADP-AUTOSCALE-07
RATE_WINDOW = 300      # the ScaledObject query's rate(...[5m])
HPA_SCALE_DOWN = 300   # Kubernetes' default scale-down stabilization window of the HPA KEDA creates


@pytest.mark.cluster
@pytest.mark.exclusive("keda")
@pytest.mark.real_cluster("needs KEDA and the bundled Prometheus running and scraping a real exporter pod; "
                          "scale-in takes up to 15 minutes")
def test_adp_autoscale_07_scale_out_and_in(install_chart, cluster, namespace):
    """A TTFT-timeout ratio above the threshold scales the pool out to max; a zero ratio brings it back to
    min after the cooldown; pool pods that do not fit stay Pending on nvidia.com/gpu. A synthetic
    exporter pod serves the harmony counters for the pool (the pool's own pods need not run)."""
    pool = rc.unique("Scale")      # raw pool name: group name and metric label, unique on the cluster
    ratio, threshold = 0.5, 0.05
    small = {"limits": {"cpu": 1, "memory": "2Gi"}, "requests": {"cpu": 1, "memory": "2Gi"}}  # only GPUs constrain
    values = {"harmony": {"replicaCount": 0,
                          "computePool": [{"name": pool, "minReplicaCount": 1, "maxReplicaCount": 2,
                                           "gpusPerReplica": 2, "resources": small}]},
              "autoscaling": {"enabled": True, "coolDownPeriodSeconds": COOLDOWN, "ttftTimeoutThreshold": threshold},
              "mlflow": {"enabled": False}}
    rel = install_chart(CHART, [scenario(CHART, "autoscaling-on"), values], release=RELEASE, wait=False)
    rc.rollout(cluster, namespace, "statefulset/adaptive-prometheus", "deployment/keda-operator",
               "deployment/keda-operator-metrics-apiserver")
    dpl = _pool_deployment(rel.manifest)
    name = dpl["metadata"]["name"]
    selector = ",".join(f"{k}={v}" for k, v in dpl["spec"]["selector"]["matchLabels"].items())
    so = cluster.kubectl.get_json("scaledobjects.keda.sh", name, namespace=namespace)
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"], so["spec"]["cooldownPeriod"]) == (1, 2, COOLDOWN)
    assert f'pool="{pool}"' in so["spec"]["triggers"][0]["metadata"]["query"]

    def replicas() -> int:
        return cluster.kubectl.get_json("deployments", name, namespace=namespace)["spec"]["replicas"]

    def so_ready():
        conds = cluster.kubectl.get_json("scaledobjects.keda.sh", name, namespace=namespace).get("status", {})
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds.get("conditions", []))

    cluster.wait_for(so_ready, timeout=300, what=f"ScaledObject {name} Ready")
    assert replicas() == 1, "the pool must start at minReplicaCount"

    exporter = rc.start_pod(cluster, namespace, rc.exporter_pod(rc.unique("ttft-exporter"), pool, ratio))
    cluster.wait_for(lambda: replicas() >= 2, timeout=600,
                     what=f"pool {name} to scale out to max 2 (exporter ratio {ratio} > threshold {threshold})")
    assert replicas() == 2, "never above maxReplicaCount"
    for message in rc.unschedulable_messages(cluster, namespace, selector):
        assert "nvidia.com/gpu" in message, f"pool pod Pending for another reason than GPUs: {message}"

    cluster.kubectl("exec", "-n", namespace, exporter, "--", "sh", "-c", "echo 0 > /tmp/ratio")
    assert cluster.kubectl("exec", "-n", namespace, exporter, "--", "cat", "/tmp/ratio").strip() == "0"
    switched = time.monotonic()
    cluster.wait_for(lambda: replicas() == 1, timeout=COOLDOWN + RATE_WINDOW + HPA_SCALE_DOWN + 270,
                     what=f"pool {name} to scale back in to min 1 after the timeouts stopped")
    assert time.monotonic() - switched >= COOLDOWN, "scaled in before the cooldown period"
    assert replicas() == 1


@pytest.mark.cluster
@pytest.mark.real_cluster("needs a real container to write files in /logdir")
def test_adp_tb_06_logs_survive_pod_deletion(install_chart, cluster, namespace):
    install_chart(CHART, [scenario(CHART, "tensorboard-persisted")], release=RELEASE)
    cluster.kubectl("exec", "-n", namespace, f"{HM}-0", "-c", "tensorboard", "--", "sh", "-c",
                    "echo keep > /logdir/chartproof-marker")
    cluster.kubectl("delete", "pod", "-n", namespace, f"{HM}-0")
    cluster.wait_ready(namespace)
    out = cluster.kubectl("exec", "-n", namespace, f"{HM}-0", "-c", "tensorboard", "--", "cat",
                          "/logdir/chartproof-marker")
    assert out.strip() == "keep"


@pytest.mark.cluster
@pytest.mark.real_cluster("needs real Prometheus scraping real control-plane and harmony pods")
def test_adp_prom_05_scrape_targets(install_chart, cluster, namespace):
    install_chart(CHART, [scenario(CHART, "autoscaling-off-two-pools")], release=RELEASE)
    out = cluster.kubectl("exec", "-n", namespace, "adaptive-prometheus-0", "--", "wget", "-qO-",
                          "http://localhost:9090/api/v1/targets?state=active")
    for component in ("control-plane", "harmony", "harmony-dpl"):
        assert component in out


@pytest.mark.cluster
@pytest.mark.real_cluster("needs DNS resolution from real containers")
def test_adp_s3_04_proxy_resolves_from_clients(install_chart, cluster, namespace):
    install_chart(CHART, [scenario(CHART, "azure-s3proxy")], release=RELEASE)
    for workload in ("deploy/adaptive-control-plane", f"statefulset/{HM}", "deploy/adaptive-harmony-dpl-pool-a"):
        cluster.kubectl("exec", "-n", namespace, workload, "--", "getent", "hosts", "adaptive-s3proxy")


@pytest.mark.cluster
@pytest.mark.real_cluster("needs the External Secrets Operator and a store holding the keys")
def test_adp_eso_05_secrets_materialise(install_chart, cluster, namespace):
    install_chart(CHART, [scenario(CHART, "external-secrets")], release=RELEASE)
    for name in ("adaptive-control-plane-config-secret", "adaptive-harmony-config-secret"):
        secret = cluster.kubectl.get_json("secrets", name, namespace=namespace)
        owners = secret["metadata"].get("ownerReferences", [])
        assert any(o["kind"] == "ExternalSecret" for o in owners)


@pytest.mark.cluster
@pytest.mark.real_cluster("needs a running control plane (real images and database through CHARTPROOF_ADAPTIVE_VALUES) "
                          "that reaches the identity provider (CHARTPROOF_OIDC_ISSUER, default Google)")
def test_adp_oidc_03_callback_reaches_control_plane(install_chart, cluster, namespace):
    """Login with provider key k redirects to the provider with redirect_uri = <rootUrl>/api/v1/auth/login/k/callback."""
    issuer, client_id = rc.oidc_provider()
    key, root = "chartproof", "https://adaptive.chartproof.example.com"
    provider = {"name": "Chartproof", "key": key, "issuer_url": issuer, "client_id": client_id,
                "scopes": ["openid", "email", "profile"], "pkce": True, "allow_sign_up": False}
    rel = rc.install_running_control_plane(
        install_chart, cluster, namespace, scenario(CHART, "defaults-with-secrets"),
        {"controlPlane": {"rootUrl": root}, "secrets": {"auth": {"oidc": {"providers": [provider]}}}})
    assert rc.root_url(rel.manifest) == root
    login = f"{rc.control_plane_url(rel.manifest)}/api/v1/auth/login/{key}"
    with rc.curl_pod(cluster, namespace) as curl:
        discovery = curl.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration", follow=True)
        auth_endpoint = discovery.json().get("authorization_endpoint") if discovery.status == 200 else None
        answer = rc.first_answer(cluster, curl, login, timeout=180)
    assert 300 <= answer.status < 400, f"login must redirect to the identity provider: {answer}"
    location = answer.header("location") or ""
    assert rc.points_to_provider(location, issuer, auth_endpoint), \
        f"redirect does not go to {issuer} (authorization endpoint {auth_endpoint}): {location}"
    assert rc.query_param(location, "redirect_uri") == rc.callback_url(root, key), location
    assert rc.query_param(location, "client_id") == client_id, location
