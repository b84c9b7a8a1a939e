"""Adaptive chart on a cluster: each customer scenario installs, becomes ready, keeps its promises on the live
objects and uninstalls without leftovers (`Release.uninstall()`); and the [C] behaviours of contract
adaptive.md (those that need real containers, GPUs, KEDA or ESO are marked real_cluster and skipped on the
simulated cluster)."""

from __future__ import annotations

import contextlib
import time

import adaptive_facts as F
import pytest

import chartproof.incluster as ic
from chartproof import inpod, manifest, secretkeys
from chartproof.clusters.nodes import node_objects, parse_shape
from chartproof.manifest import Manifest, all_containers, dig, ref
from chartproof.paths import scenario

SMALL = {"limits": {"cpu": 4, "memory": "16Gi"}, "requests": {"cpu": 4, "memory": "16Gi"}}


def install_scenario(render, install_chart, name: str, *extra, **kwargs):
    values = [scenario(F.CHART, name), *extra]
    render.scenario(F.CHART, values, release=F.RELEASE)  # a scenario the build cannot render is reported once
    return install_chart(F.CHART, values, release=F.RELEASE, **kwargs)


def selector_of(workload: dict) -> str:
    labels = dig(workload, "spec.selector.matchLabels", {}) or {}
    assert labels, f"{ref(workload)} has no matchLabels selector"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def one_pool_deployment(manifest: Manifest) -> dict:
    found = F.pool_deployments(manifest)
    assert len(found) == 1, f"expected one pool Deployment, found {[ref(d) for d in found]}"
    return found[0]


def scaled_object_ready(cluster, namespace: str, name: str) -> bool:
    so = cluster.kubectl.get_json("scaledobjects.keda.sh", name, namespace=namespace)
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in dig(so, "status.conditions", []) or [])


def claims(cluster, namespace: str, prefix: str) -> list[dict]:
    return [c for c in cluster.kubectl.items("persistentvolumeclaims", namespace=namespace)
            if str(dig(c, "metadata.name", "")).startswith(prefix)]


def all_bound(cluster, namespace: str, prefix: str) -> bool:
    found = claims(cluster, namespace, prefix)
    return bool(found) and all(dig(c, "status.phase") == "Bound" for c in found)


def dangling_secret_refs(cluster, namespace: str) -> list[str]:
    """secretKeyRefs and envFrom Secrets of the live pods that name no live Secret key."""
    keys = secretkeys.secret_keys(cluster.kubectl.items("secrets", namespace=namespace))
    reads = secretkeys.secret_reads(cluster.kubectl.items("pods", namespace=namespace))
    return [r.describe() for r in secretkeys.dangling(reads, keys)]


# -- one installation per scenario ---------------------------------------------------------------

@pytest.mark.contract("ADP-SECRET-04")
@pytest.mark.cluster
@pytest.mark.parametrize("name", ["defaults-with-secrets", "oidc-two-providers", "cpu-only"])
def test_install_scenario(render, install_chart, cluster, namespace, name):
    """The scenario installs and becomes ready; every secret reference of the live pods resolves to a live
    Secret key; helm uninstall leaves nothing behind."""
    rel = install_scenario(render, install_chart, name)
    rel.wait_ready()
    assert cluster.kubectl.exists("statefulset", F.HM, namespace), f"no live StatefulSet {F.HM}"
    dangling = dangling_secret_refs(cluster, namespace)
    assert not dangling, f"live pods reference Secret keys that do not exist: {dangling}"
    rel.uninstall()


@pytest.mark.contract("ADP-AUTOSCALE-01", "ADP-POOL-01")
@pytest.mark.cluster
def test_install_two_fixed_pools(render, install_chart, cluster, namespace):
    """Autoscaling off: the live pool Deployments run minReplicaCount replicas and no ScaledObject or HPA exists."""
    rel = install_scenario(render, install_chart, "autoscaling-off-two-pools")
    rel.wait_ready()
    for kebab, expected in (("pool-a", 2), ("pool-b", 1)):
        live = cluster.kubectl.items("deployments", namespace=namespace, selector=f"{F.POOL_LABEL}={kebab}")
        assert len(live) == 1, f"expected one live Deployment labelled {F.POOL_LABEL}={kebab}, found {len(live)}"
        ready = dig(live[0], "status.readyReplicas", 0)
        assert dig(live[0], "spec.replicas") == expected and ready == expected, \
            f"pool {kebab}: expected {expected} ready replicas, found spec {dig(live[0], 'spec.replicas')}, ready {ready}"
    hpas = cluster.kubectl.items("horizontalpodautoscalers", namespace=namespace)
    assert not hpas, f"autoscaling off: expected no HPA, found {[dig(h, 'metadata.name') for h in hpas]}"
    rel.uninstall()


@pytest.mark.contract("ADP-AUTOSCALE-06", "ADP-AUTOSCALE-02")
@pytest.mark.cluster
@pytest.mark.exclusive("keda")
def test_install_autoscaling_on(render, install_chart, cluster, namespace):
    """ADP-AUTOSCALE-06 (install part): one `helm install` on a cluster without KEDA succeeds and the
    ScaledObject of the pool exists, targeting its Deployment; uninstall removes KEDA's CRDs and APIService too."""
    rel = install_scenario(render, install_chart, "autoscaling-on")
    rel.wait_ready()
    name = f"{F.HM}-dpl-pool-a"
    so = cluster.kubectl.get_json("scaledobjects.keda.sh", name, namespace=namespace)
    assert dig(so, "spec.scaleTargetRef.name") == name, f"live ScaledObject {name} targets {dig(so, 'spec.scaleTargetRef')}"
    rel.uninstall()


@pytest.mark.contract("ADP-AUTOSCALE-02")
@pytest.mark.cluster
@pytest.mark.exclusive("keda")
def test_install_autoscaling_on_with_keda_crds_already_on_the_cluster(install_chart, cluster, namespace,
                                                                     keda_crds_installed):
    """keda.crds.install=false: the CRDs are the cluster's (KEDA's real ones, generated from its API types); the
    ScaledObjects are ordinary release objects, so `helm uninstall` removes them and leaves the CRDs alone."""
    values = [F.pools("Pool-A"), {"autoscaling": {"enabled": True}}]
    rel = install_chart(F.CHART, values, {"keda.crds.install": False}, release=F.RELEASE)
    live = rel.manifest
    assert not live.select("CustomResourceDefinition", where=lambda c: str(dig(c, "spec.group", "")).endswith("keda.sh")), \
        "keda.crds.install=false: the release still holds KEDA CRDs"
    assert live.select("ScaledObject", name=f"{F.HM}-dpl-pool-a"), "the ScaledObject must be a release object, not a hook"
    rel.uninstall()
    assert cluster.kubectl.exists("customresourcedefinition", "scaledobjects.keda.sh"), \
        "helm uninstall removed the cluster's own scaledobjects.keda.sh CRD"


@pytest.mark.contract("ADP-TB-06")
@pytest.mark.cluster
def test_install_tensorboard_persisted(render, install_chart, cluster, namespace):
    """ADP-TB-06 (binding part): the gp3 claim of the claim template binds; it stays after uninstall (claims of
    claim templates are not release objects)."""
    rel = install_scenario(render, install_chart, "tensorboard-persisted")
    rel.wait_ready()
    prefix = f"tensorboard-volume-{F.HM}-"
    cluster.wait_for(lambda: all_bound(cluster, namespace, prefix), timeout=120, what="the tensorboard claim to bind")
    pvc = cluster.kubectl.get_json("persistentvolumeclaims", f"{prefix}0", namespace=namespace)
    assert dig(pvc, "spec.storageClassName") == "gp3", f"claim {prefix}0: expected class gp3, found {dig(pvc, 'spec.storageClassName')!r}"
    rel.uninstall()


@pytest.mark.contract("ADP-PROM-05")
@pytest.mark.cluster
def test_install_prometheus_persisted(render, install_chart, cluster, namespace):
    """ADP-PROM-05 (binding part): both Prometheus TSDB claims bind on gp3."""
    rel = install_scenario(render, install_chart, "prometheus-persisted")
    rel.wait_ready()
    prefix = f"storage-volume-{F.PROMETHEUS}-"
    cluster.wait_for(lambda: all_bound(cluster, namespace, prefix), timeout=120, what="the Prometheus claims to bind")
    found = [(dig(c, "metadata.name"), dig(c, "spec.storageClassName")) for c in claims(cluster, namespace, prefix)]
    assert len(found) == 2 and all(cls == "gp3" for _, cls in found), f"expected 2 gp3 claims, found {found}"
    rel.uninstall()


@pytest.mark.contract("ADP-S3-04")
@pytest.mark.cluster
def test_install_azure_s3proxy(render, install_chart, cluster, namespace):
    """ADP-S3-04 (endpoint part): the proxy Service has ready endpoints."""
    rel = install_scenario(render, install_chart, "azure-s3proxy")
    rel.wait_ready()

    def ready_endpoints():
        slices = cluster.kubectl.items("endpointslices", namespace=namespace,
                                       selector=f"kubernetes.io/service-name={F.S3PROXY}")
        return [e for s in slices for e in s.get("endpoints") or [] if dig(e, "conditions.ready")]

    cluster.wait_for(ready_endpoints, timeout=120, what=f"ready endpoints of Service {F.S3PROXY}")
    rel.uninstall()


@pytest.mark.contract("ADP-ESO-01")
@pytest.mark.cluster
def test_install_external_secrets(render, install_chart, cluster, namespace, external_secrets):
    """ESO mode installs where the external-secrets.io/v1 API exists: the real CRDs of the pinned External
    Secrets release (generated from its API types) accept the scenario's SecretStore and both ExternalSecrets,
    and its controller takes them up (it reports their state)."""
    rel = install_scenario(render, install_chart, "external-secrets")
    rel.wait_ready()
    for kind, name in (("externalsecrets.external-secrets.io", F.CP_EXT), ("externalsecrets.external-secrets.io", F.HM_EXT),
                       ("secretstores.external-secrets.io", F.STORE)):
        assert cluster.kubectl.exists(kind, name, namespace), f"no live {kind} {name}"
    cluster.wait_for(lambda: dig(cluster.kubectl.get_json("secretstores.external-secrets.io", F.STORE, namespace=namespace),
                                 "status.conditions"), timeout=60,
                     what=f"the External Secrets controller's status on SecretStore {F.STORE}")
    rel.uninstall()


# -- [C] behaviours --------------------------------------------------------------------------------

PRIVATE_TAINT = "chartproof.dev/adp-private-node"


@contextlib.contextmanager
def private_gpu_node(cluster, namespace: str, *, gpu_taint: bool):
    """A simulated 8-GPU node for one test, optionally tainted nvidia.com/gpu:NoSchedule, deleted afterwards.
    Its label lets the test pin its pods there; a PreferNoSchedule taint of its own steers other tests' pods
    away (a soft taint: the test's pinned pods need no toleration for it, so they keep the chart's defaults).
    Yields the nodeSelector."""
    (node,) = node_objects(parse_shape("ml.p5.48xlarge=1"), simulated=True, name_prefix=f"adp-{namespace}"[:61].rstrip("-"))
    name = node["metadata"]["name"]
    node["metadata"]["labels"].update({PRIVATE_TAINT: namespace, "node.kubernetes.io/instance-type": "chartproof-private-gpu"})
    taints = [{"key": PRIVATE_TAINT, "value": namespace, "effect": "PreferNoSchedule"}]
    if gpu_taint:
        taints.append({"key": "nvidia.com/gpu", "effect": "NoSchedule"})
    node["spec"] = {"taints": taints}
    cluster.apply(node)
    try:
        cluster.wait_for(lambda: any(c.get("type") == "Ready" and c.get("status") == "True" for c in dig(
            cluster.kubectl.get_json("nodes", name), "status.conditions", []) or []), timeout=60, what=f"node {name} Ready")
        yield {PRIVATE_TAINT: namespace}
    finally:
        cluster.kubectl("delete", "node", name, "--ignore-not-found", "--wait=false", check=False)


@pytest.mark.contract("ADP-GPU-04")
@pytest.mark.cluster
def test_gpus_per_node_packing(install_chart, cluster, namespace):
    """N dividing G: G/N harmony pods fit on one node; N > G: Pending on insufficient nvidia.com/gpu."""
    if not cluster.simulated:
        pytest.skip("needs a node of its own (created on the simulated cluster only)")
    with private_gpu_node(cluster, namespace, gpu_taint=False) as selector:
        base = {"harmony": {"resources": SMALL, "nodeSelector": selector},
                "mlflow": {"enabled": False}}
        rel = install_chart(F.CHART, [base, {"harmony": {"gpusPerReplica": 4, "replicaCount": 2}}], release=F.RELEASE)
        rel.wait_ready()
        pods = cluster.kubectl.items("pods", namespace=namespace, selector=f"{F.COMPONENT}=harmony")
        placed = sorted({str(dig(p, "spec.nodeName")) for p in pods})
        assert len(pods) == 2 and len(placed) == 1 and placed[0].startswith("adp-"), \
            f"2 harmony pods of 4 GPUs must both fit on the one 8-GPU node, found {len(pods)} pods on {placed}"
        rel.uninstall()
        install_chart(F.CHART, [base, {"harmony": {"gpusPerReplica": 16, "replicaCount": 1}}], release=F.RELEASE,
                      wait=False)

        def insufficient():
            return [e for e in cluster.kubectl.items("events", namespace=namespace) if e.get("reason") == "FailedScheduling"
                    and "nvidia.com/gpu" in str(e.get("message", "")) and dig(e, "involvedObject.name") == f"{F.HM}-0"]

        cluster.wait_for(insufficient, timeout=120, what=f"FailedScheduling of {F.HM}-0 on nvidia.com/gpu")
        phase = dig(cluster.kubectl.get_json("pods", f"{F.HM}-0", namespace=namespace), "status.phase")
        assert phase == "Pending", f"pod {F.HM}-0 asking 16 GPUs: expected Pending, found {phase}"


@pytest.mark.contract("ADP-GPU-05")
@pytest.mark.cluster
def test_default_pods_run_on_gpu_nodes_tainted_nvidia_gpu(install_chart, cluster, namespace):
    """On a GPU node tainted nvidia.com/gpu:NoSchedule, the harmony StatefulSet and a pool are placed and Running
    with the default toleration. The simulated cluster gets a node of its own for this test (its pods also
    keep their default tolerations); an existing cluster is used as it is."""
    values = {"harmony": {"resources": SMALL, "gpusPerReplica": 4, "computePool": [{"name": "p", "gpusPerReplica": 4}]},
              "mlflow": {"enabled": False}}
    if cluster.simulated:
        node = private_gpu_node(cluster, namespace, gpu_taint=True)
    else:
        tainted = [n for n in cluster.nodes() if any(t.get("key") == "nvidia.com/gpu" and t.get("effect") == "NoSchedule"
                                                     for t in dig(n, "spec.taints", []) or [])]
        if not tainted:
            pytest.skip("no GPU node of this cluster carries the nvidia.com/gpu:NoSchedule taint")
        node = contextlib.nullcontext({"kubernetes.io/hostname": dig(tainted[0], "metadata.name")})
    with node as selector:
        values["harmony"]["nodeSelector"] = selector
        rel = install_chart(F.CHART, [values], release=F.RELEASE, wait=False)
        rel.wait_ready(timeout=120)  # the simulated pods start in seconds once placed
        pods = [p for p in cluster.kubectl.items("pods", namespace=namespace)
                if (dig(p, "metadata.labels", {}) or {}).get(F.COMPONENT) in ("harmony", "harmony-dpl")]
        running = {(dig(p, "metadata.labels", {}) or {}).get(F.COMPONENT) for p in pods if dig(p, "status.phase") == "Running"}
        assert running == {"harmony", "harmony-dpl"}, \
            f"expected harmony and pool pods Running on the tainted GPU node, found " \
            f"{[(dig(p, 'metadata.name'), dig(p, 'spec.nodeName'), dig(p, 'status.phase')) for p in pods]}"
        rel.uninstall()


@pytest.mark.contract("ADP-AUTOSCALE-06")
@pytest.mark.cluster
@pytest.mark.exclusive("keda")
@pytest.mark.real_cluster("needs the KEDA operator actually running to report ScaledObjects Ready")
def test_scaled_objects_become_ready(install_chart, cluster, namespace):
    install_chart(F.CHART, [F.pools("Pool-A"), {"autoscaling": {"enabled": True}}], release=F.RELEASE)
    name = f"{F.HM}-dpl-pool-a"
    cluster.wait_for(lambda: scaled_object_ready(cluster, namespace, name), timeout=300, what=f"ScaledObject {name} Ready")


COOLDOWN = 30          # autoscaling.coolDownPeriodSeconds of ADP-AUTOSCALE-07
RATE_WINDOW = 300      # the ScaledObject query's rate(...[5m])
HPA_SCALE_DOWN = 300   # Kubernetes' default scale-down stabilization window of the HPA KEDA creates


@pytest.mark.contract("ADP-AUTOSCALE-07")
@pytest.mark.cluster
@pytest.mark.exclusive("keda")
@pytest.mark.real_cluster("needs KEDA and the bundled Prometheus running and scraping a real exporter pod; "
                          "scale-in takes up to 15 minutes")
def test_adp_autoscale_07_scale_out_and_in(install_chart, cluster, namespace):
    """A TTFT-timeout ratio above the threshold scales the pool out to max; a zero ratio brings it back to
    min after the cooldown; pool pods that do not fit stay Pending on nvidia.com/gpu. A synthetic
    exporter pod serves the harmony counters for the pool (the pool's own pods need not run)."""
    pool = ic.unique("Scale")      # raw pool name: group name and metric label, unique on the cluster
    ratio, threshold = 0.5, 0.05
    small = {"limits": {"cpu": 1, "memory": "2Gi"}, "requests": {"cpu": 1, "memory": "2Gi"}}  # only GPUs constrain
    values = {"harmony": {"replicaCount": 0,
                          "computePool": [{"name": pool, "minReplicaCount": 1, "maxReplicaCount": 2,
                                           "gpusPerReplica": 2, "resources": small}]},
              "autoscaling": {"enabled": True, "coolDownPeriodSeconds": COOLDOWN, "ttftTimeoutThreshold": threshold},
              "mlflow": {"enabled": False}}
    rel = install_chart(F.CHART, [values], release=F.RELEASE, wait=False)
    keda = [f"{dig(o, 'kind').lower()}/{dig(o, 'metadata.name')}" for o in rel.manifest.with_image("kedacore/")]
    ic.rollout(cluster, namespace, f"statefulset/{F.PROMETHEUS}", *keda)
    dpl = one_pool_deployment(rel.manifest)
    name = dig(dpl, "metadata.name")
    selector = selector_of(dpl)
    so = cluster.kubectl.get_json("scaledobjects.keda.sh", name, namespace=namespace)
    bounds = (dig(so, "spec.minReplicaCount"), dig(so, "spec.maxReplicaCount"), dig(so, "spec.cooldownPeriod"))
    assert bounds == (1, 2, COOLDOWN), f"live ScaledObject {name}: expected (min, max, cooldown) (1, 2, {COOLDOWN}), found {bounds}"

    def replicas() -> int:
        return dig(cluster.kubectl.get_json("deployments", name, namespace=namespace), "spec.replicas", 1)

    cluster.wait_for(lambda: scaled_object_ready(cluster, namespace, name), timeout=300, what=f"ScaledObject {name} Ready")
    assert replicas() == 1, "the pool must start at minReplicaCount"

    exporter = ic.start_pod(cluster, namespace, ic.exporter_pod(ic.unique("ttft-exporter"), pool, ratio))
    cluster.wait_for(lambda: replicas() >= 2, timeout=600,
                     what=f"pool {name} to scale out to max 2 (exporter ratio {ratio} > threshold {threshold})")
    assert replicas() == 2, "never above maxReplicaCount"
    for message in ic.unschedulable_messages(cluster, namespace, selector):
        assert "nvidia.com/gpu" in message, f"pool pod Pending for another reason than GPUs: {message}"

    cluster.kubectl("exec", "-n", namespace, exporter, "--", "sh", "-c", "echo 0 > /tmp/ratio")
    assert cluster.kubectl("exec", "-n", namespace, exporter, "--", "cat", "/tmp/ratio").strip() == "0"
    switched = time.monotonic()
    cluster.wait_for(lambda: replicas() == 1, timeout=COOLDOWN + RATE_WINDOW + HPA_SCALE_DOWN + 270,
                     what=f"pool {name} to scale back in to min 1 after the timeouts stopped")
    assert time.monotonic() - switched >= COOLDOWN, "scaled in before the cooldown period"
    assert replicas() == 1


@pytest.mark.contract("ADP-TB-06")
@pytest.mark.cluster
@pytest.mark.real_cluster("writes a file in /logdir of the real tensorboard container (testinfra)", needs="containers")
def test_tensorboard_logs_survive_pod_deletion(install_chart, cluster, namespace):
    """A file in /logdir survives the deletion of pod <hm>-0: the log directory is on the pod's claim (the
    cluster's default storage class), checked inside the container with testinfra."""
    values = {"tensorboard": {"enabled": True, "persistentVolume": {"enabled": True}}}
    install_chart(F.CHART, [values], release=F.RELEASE)
    pod = f"{F.HM}-0"
    before = inpod.pod_host(cluster, namespace, pod, "tensorboard")
    assert before.run("echo keep > /logdir/chartproof-marker").rc == 0, "cannot write in /logdir of tensorboard"
    cluster.kubectl("delete", "pod", "-n", namespace, pod)
    cluster.wait_ready(namespace)
    marker = inpod.pod_host(cluster, namespace, pod, "tensorboard").file("/logdir/chartproof-marker")
    found = marker.content_string.strip() if marker.exists else "no file"
    assert found == "keep", f"/logdir/chartproof-marker after deleting pod {pod}: expected 'keep', found {found!r}"


@pytest.mark.contract("ADP-PROM-05", "ADP-PROM-03")
@pytest.mark.cluster
@pytest.mark.real_cluster("reads the mounts of the real Prometheus container (testinfra)", needs="containers")
def test_prometheus_data_directory_is_on_its_claim(install_chart, cluster, namespace):
    """With persistence on, Prometheus' data directory (its --storage.tsdb.path) is a mount of claim
    storage-volume, not the container's own filesystem, and its data survive the pod's deletion."""
    rel = install_chart(F.CHART, [{"prometheus": {"server": {"persistentVolume": {"enabled": True}}}}],
                        release=F.RELEASE)
    server = next(w for w in rel.manifest.workloads()
                  if any("prometheus/prometheus" in str(c.get("image", "")) for c in all_containers(w)))
    name = dig(server, "metadata.name")
    item = manifest.container_running(server, "prometheus/prometheus")
    flags = [str(a) for a in [*(item.get("command") or []), *(item.get("args") or [])]]
    data = next((f.split("=", 1)[1] for f in flags if f.startswith("--storage.tsdb.path=")), "/prometheus")
    mount = next((m for m in item.get("volumeMounts") or [] if m.get("mountPath") == data), None)
    assert mount and mount.get("name") == "storage-volume", \
        f"{name}: expected the data directory {data} mounted from storage-volume, found {mount}"
    pod = f"{name}-0"
    host = inpod.pod_host(cluster, namespace, pod, item["name"])
    point = host.mount_point(data)
    found = f"a {point.filesystem} mount" if point.exists else "no mount (the container's own filesystem)"
    assert point.exists and point.filesystem != "overlay", f"pod {pod}: {data} must be a mount of its claim, found {found}"
    assert host.run(f"echo keep > {data}/chartproof-marker").rc == 0, f"cannot write in {data} of pod {pod}"
    cluster.kubectl("delete", "pod", "-n", namespace, pod)
    cluster.wait_ready(namespace)
    marker = inpod.pod_host(cluster, namespace, pod, item["name"]).file(f"{data}/chartproof-marker")
    assert marker.exists, f"{data}/chartproof-marker did not survive the deletion of pod {pod}"


@pytest.mark.contract("ADP-PROM-05")
@pytest.mark.cluster
@pytest.mark.real_cluster("needs real Prometheus scraping real control-plane and harmony pods")
def test_app_pods_are_scrape_targets(install_chart, cluster, namespace):
    install_chart(F.CHART, [F.pools("Pool-A")], release=F.RELEASE)
    out = cluster.kubectl("exec", "-n", namespace, f"{F.PROMETHEUS}-0", "--", "wget", "-qO-",
                          "http://localhost:9090/api/v1/targets?state=active")
    missing = [c for c in ("control-plane", "harmony", "harmony-dpl") if c not in out]
    assert not missing, f"Prometheus active targets: no target of components {missing}"


@pytest.mark.contract("ADP-S3-04")
@pytest.mark.cluster
@pytest.mark.real_cluster("needs DNS resolution from real containers", needs="containers")
def test_proxy_resolves_from_storage_clients(install_chart, cluster, namespace):
    install_chart(F.CHART, [{"s3proxy": {"enabled": True}}, F.pools("Pool-A")], release=F.RELEASE)
    for workload in (f"deploy/{F.CP}", f"statefulset/{F.HM}", f"deploy/{F.HM}-dpl-pool-a"):
        cluster.kubectl("exec", "-n", namespace, workload, "--", "getent", "hosts", F.S3PROXY)


@pytest.mark.contract("ADP-ESO-05")
@pytest.mark.cluster
@pytest.mark.real_cluster("needs the External Secrets Operator and a store holding the keys")
def test_external_secrets_materialise(render, install_chart, cluster, namespace):
    install_scenario(render, install_chart, "external-secrets")
    for name in (F.CP_SECRET, F.HM_SECRET):
        owners = dig(cluster.kubectl.get_json("secrets", name, namespace=namespace), "metadata.ownerReferences", []) or []
        assert any(o.get("kind") == "ExternalSecret" for o in owners), f"Secret {name}: expected owned by its ExternalSecret, owners {owners}"


@pytest.mark.contract("ADP-OIDC-03")
@pytest.mark.cluster
@pytest.mark.real_cluster("needs a running control plane (real images and database through CHARTPROOF_ADAPTIVE_VALUES) "
                          "that reaches the identity provider (CHARTPROOF_OIDC_ISSUER, default Google)")
def test_callback_reaches_control_plane(install_chart, cluster, namespace):
    """Login with provider key k redirects to the provider with redirect_uri = <rootUrl>/api/v1/auth/login/k/callback."""
    issuer, client_id = ic.oidc_provider()
    key, root = "chartproof", "https://adaptive.chartproof.example.com"
    provider = {"name": "Chartproof", "key": key, "issuer_url": issuer, "client_id": client_id,
                "scopes": ["openid", "email", "profile"], "pkce": True, "allow_sign_up": False}
    rel = ic.install_running_control_plane(
        install_chart, cluster, namespace, scenario(F.CHART, "defaults-with-secrets"),
        {"controlPlane": {"rootUrl": root}, "secrets": {"auth": {"oidc": {"providers": [provider]}}}})
    assert ic.root_url(rel.manifest) == root
    login = f"{ic.control_plane_url(rel.manifest)}/api/v1/auth/login/{key}"
    with ic.curl_pod(cluster, namespace) as curl:
        discovery = curl.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration", follow=True)
        auth_endpoint = discovery.json().get("authorization_endpoint") if discovery.status == 200 else None
        answer = ic.first_answer(cluster, curl, login, timeout=180)
    assert 300 <= answer.status < 400, f"login must redirect to the identity provider: {answer}"
    location = answer.header("location") or ""
    assert ic.points_to_provider(location, issuer, auth_endpoint), \
        f"redirect does not go to {issuer} (authorization endpoint {auth_endpoint}): {location}"
    assert ic.query_param(location, "redirect_uri") == ic.callback_url(root, key), location
    assert ic.query_param(location, "client_id") == client_id, location
