"""HyperPod dependencies chart on a cluster ([C] behaviours of shared/contracts/hyperpod.md): the release
`dependencies` goes to `kube-system` as the README installs it. Cluster-scoped names are fixed, so every
test here holds the `hyperpod` exclusive lock. On the embedded cluster nodes and pods are simulated
(pods become Running without running), the API server, scheduler and controllers are real."""

from __future__ import annotations

import hyperpod_facts as F
import pytest
import yaml

from chartproof.kube import MANAGED_BY
from chartproof.manifest import Manifest
from chartproof.paths import scenario, scenarios

CHART = "hyperpod"
SCENARIOS = [p.stem for p in scenarios("hyperpod")]
pytestmark = [pytest.mark.cluster, pytest.mark.exclusive("hyperpod")]

DEVICE_PLUGINS = ("nvidia-device-plugin", "aws-efa-k8s-device-plugin", "neuron-device-plugin")


# -- helpers -------------------------------------------------------------------------------------------------------
@pytest.fixture
def team_namespaces(cluster):
    """Creates the hyperpod-ns-<id> namespaces a values set needs (HyperPod task governance makes them on a
    real cluster) and removes them afterwards."""
    created: list[str] = []

    def ensure(manifest: Manifest) -> None:
        for obj in manifest:
            ns = obj["metadata"].get("namespace") or ""
            if ns.startswith("hyperpod-ns-") and ns not in created and not cluster.kubectl.exists("namespace", ns):
                cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(MANAGED_BY)}})
                created.append(ns)

    yield ensure
    for ns in created:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def install(install_chart, values=(), set=None, chart=CHART, **kwargs):
    return install_chart(chart, values, set, release=F.RELEASE, namespace=F.NAMESPACE, timeout=300, **kwargs)


def pods_of(cluster, ds: dict) -> list[dict]:
    labels = ds["spec"]["selector"]["matchLabels"]
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return [p for p in cluster.kubectl.items("pods", namespace=ds["metadata"]["namespace"], selector=selector)
            if not p["metadata"].get("deletionTimestamp")]


def placement(cluster, ds: dict) -> set[str]:
    return {p["spec"].get("nodeName") for p in pods_of(cluster, ds)}


def allowed_nodes(nodes: list[dict], ds: dict) -> set[str]:
    return {n["metadata"]["name"] for n in nodes if F.schedulable_on(ds, n)}


def node_type(node: dict) -> str:
    return (node["metadata"].get("labels") or {}).get(F.INSTANCE_TYPE, "")


def wait_placement(cluster, ds: dict, expected: set[str]) -> set[str]:
    """DaemonSet pods settle on their nodes shortly after the DaemonSet reports ready."""
    try:
        cluster.wait_for(lambda: placement(cluster, ds) == expected, timeout=60, what=f"{ds['metadata']['name']} pods")
    except Exception:  # noqa: BLE001 - the assertion below reports the difference
        pass
    return placement(cluster, ds)


def gone(cluster, obj: dict) -> bool:
    kind, name, ns = F.key(obj)
    return not cluster.kubectl.exists(kind, name, ns or None)


def assert_nothing_remains(cluster, manifest: Manifest) -> None:
    def leftovers():
        return [F.key(o) for o in manifest if not gone(cluster, o)]

    try:
        cluster.wait_for(lambda: not leftovers(), timeout=180, what="the release's objects to go away")
    except Exception:  # noqa: BLE001
        pass
    assert leftovers() == [], "objects left after uninstall"


def rendered(helm, values=(), set=None) -> Manifest:
    return helm.template(CHART, values, set, release=F.RELEASE, namespace=F.NAMESPACE)


# == Installation per scenario ================================================================================================
@pytest.mark.parametrize("name", SCENARIOS)
def test_hyp_install_01_scenario_installs_places_daemonsets_and_uninstalls_cleanly(
        helm, cluster, install_chart, team_namespaces, name):
    values = [scenario("hyperpod", name)]
    team_namespaces(rendered(helm, values))
    dry = helm.install(CHART, F.RELEASE, F.NAMESPACE, values, args=("--dry-run",))
    assert dry.ok, dry.error
    assert not [r for r in helm.releases(F.NAMESPACE) if r["name"] == F.RELEASE], "--dry-run must not install"

    rel = install(install_chart, values)
    manifest = rel.manifest
    assert sorted(F.key(o) for o in manifest) == sorted(F.key(o) for o in rendered(helm, values))
    nodes = cluster.nodes()
    daemonsets = manifest.find("DaemonSet")
    assert daemonsets
    for ds in daemonsets:
        expected = allowed_nodes(nodes, ds)
        actual = wait_placement(cluster, ds, expected)
        assert actual == expected, (f"{ds['metadata']['name']}: pods on {sorted(actual)}, "
                                    f"affinity and tolerations allow {sorted(expected)}")
        listed = F.instance_type_values(ds)
        for node in nodes:
            if F.health_tainted(node) and node_type(node) in listed:
                assert node["metadata"]["name"] in actual, \
                    f"{ds['metadata']['name']} skips {node['metadata']['name']}, tainted node-health-status=Unschedulable"

    rel.uninstall()
    assert_nothing_remains(cluster, manifest)
    assert not [r for r in helm.releases(F.NAMESPACE) if r["name"] == F.RELEASE]


def test_hyp_install_02_existing_unmanaged_service_account_blocks_install(helm, cluster):
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": "neuron-device-plugin", "namespace": F.NAMESPACE, "labels": dict(MANAGED_BY)}}
    assert not cluster.kubectl.exists("serviceaccount", "neuron-device-plugin", F.NAMESPACE), "left over from elsewhere"
    cluster.apply(sa)
    try:
        result = helm.install(CHART, F.RELEASE, F.NAMESPACE, timeout=120)
        assert not result.ok, "install must fail while an unmanaged neuron-device-plugin ServiceAccount exists"
        assert 'ServiceAccount "neuron-device-plugin" in namespace "kube-system" exists and cannot be imported ' \
               'into the current release' in result.output, result.output
        releases = [r for r in helm.releases(F.NAMESPACE) if r["name"] == F.RELEASE]
        assert all(r.get("status") != "deployed" for r in releases)
        for kind, name, ns in (("DaemonSet", "health-monitoring-agent", "aws-hyperpod"),
                               ("ClusterRole", "hyperpod-patching", None), ("Namespace", "aws-hyperpod", None),
                               ("Deployment", f"{F.RELEASE}-mpi-operator", F.NAMESPACE)):
            assert not cluster.kubectl.exists(kind, name, ns), f"the failed install created {kind} {name}"
        live = cluster.get_json("serviceaccount", "neuron-device-plugin", namespace=F.NAMESPACE)
        assert "meta.helm.sh/release-name" not in (live["metadata"].get("annotations") or {})
    finally:
        if [r for r in helm.releases(F.NAMESPACE) if r["name"] == F.RELEASE]:
            helm.uninstall(F.RELEASE, F.NAMESPACE, wait=True)
        cluster.kubectl("delete", "serviceaccount", "neuron-device-plugin", "-n", F.NAMESPACE, "--ignore-not-found")


# == Scheduling on HyperPod nodes =====================================================================================
def test_hyp_tol_03_daemonsets_run_on_nodes_under_deep_health_check(cluster, install_chart, namespace):
    tainted = [n for n in cluster.nodes() if F.health_tainted(n)]
    if not tainted:
        pytest.skip("this cluster shape has no node tainted node-health-status=Unschedulable")
    rel = install(install_chart)
    manifest = rel.manifest
    checked = 0
    for component in DEVICE_PLUGINS + ("health-monitoring-agent",):
        ds = F.daemonset_of(manifest, component)
        listed = F.instance_type_values(ds)
        for node in tainted:
            if node_type(node) in listed:
                on = wait_placement(cluster, ds, allowed_nodes(cluster.nodes(), ds))
                assert node["metadata"]["name"] in on, f"{component} has no pod on tainted {node['metadata']['name']}"
                checked += 1
    assert checked, "no tainted node of a listed instance type in this cluster shape"
    node = tainted[0]["metadata"]["name"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ordinary"},
           "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}
    cluster.apply(pod, namespace=namespace)

    def verdict():
        conds = (cluster.get_json("pod", "ordinary", namespace=namespace).get("status") or {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    cond = cluster.wait_for(verdict, timeout=60, what="the scheduler's verdict on a pod without the toleration")
    assert "untolerated taint" in cond["message"] or "taint" in cond["message"], cond
    assert not cluster.get_json("pod", "ordinary", namespace=namespace)["spec"].get("nodeName")


def test_hyp_aff_04_device_plugins_run_only_on_listed_instance_types(cluster, install_chart):
    nodes = {n["metadata"]["name"]: n for n in cluster.nodes()}
    unlisted = {name for name, n in nodes.items()
                if node_type(n) not in F.NVIDIA_TYPES | F.NEURON_TYPES | F.EFA_TYPES}
    if not unlisted:
        pytest.skip("no node outside the instance-type lists in this cluster shape")
    rel = install(install_chart)
    manifest = rel.manifest
    for component in DEVICE_PLUGINS:
        ds = F.daemonset_of(manifest, component)
        listed = F.instance_type_values(ds)
        on = wait_placement(cluster, ds, allowed_nodes(list(nodes.values()), ds))
        assert on == {name for name, n in nodes.items() if node_type(n) in listed}, component
        assert not on & unlisted, f"{component} runs on unlisted nodes {sorted(on & unlisted)}"


def test_hyp_hma_04_agent_runs_on_every_listed_node_and_nowhere_else(cluster, install_chart):
    rel = install(install_chart)
    ds = rel.manifest.get("DaemonSet", "health-monitoring-agent", "aws-hyperpod")
    nodes = cluster.nodes()
    expected = {n["metadata"]["name"] for n in nodes if node_type(n) in F.HMA_TYPES}
    assert expected, "no node of an HMA-listed instance type in this cluster shape"
    on = wait_placement(cluster, ds, expected)
    assert on == expected
    pods = pods_of(cluster, ds)
    assert len(pods) == len(expected), "one agent pod per listed node"
    assert all(p["metadata"]["namespace"] == "aws-hyperpod" for p in pods)


# == Task governance, storage, sub-charts, upgrades ==========================================================================
def test_hyp_team_05_team_group_permissions(cluster, install_chart, team_namespaces, helm):
    team = "cp-team"
    team_namespaces(rendered(helm, set={"computeQuotaTarget.targetId": team}))
    install(install_chart, set={"computeQuotaTarget.targetId": team})
    group_name = f"hyperpod-ns-{team}-namespace-level-group"

    def can(verb: str, resource: str, ns: str | None = None) -> bool:
        return cluster.can(verb, resource, user="scientist", groups=[group_name], namespace=ns)

    home = f"hyperpod-ns-{team}"
    assert can("create", "pytorchjobs.kubeflow.org", home)
    assert can("create", "jobs.batch", home)
    assert not can("create", "pytorchjobs.kubeflow.org", "default")
    assert not can("create", "jobs.batch", "default")
    assert can("get", f"clusterqueues.kueue.x-k8s.io/hyperpod-ns-{team}-clusterqueue")
    assert not can("get", "clusterqueues.kueue.x-k8s.io/hyperpod-ns-other-clusterqueue")


def test_hyp_stor_03_fsx_claim_binds_to_its_volume(cluster, install_chart):
    install(install_chart, set={"storage.enabled": True})

    def bound():
        pvc = cluster.get_json("persistentvolumeclaim", "fsx-claim", namespace=F.NAMESPACE)
        return pvc if (pvc.get("status") or {}).get("phase") == "Bound" else None

    pvc = cluster.wait_for(bound, timeout=120, what="fsx-claim to be Bound")
    assert pvc["spec"]["volumeName"] == "fsx-pv"
    assert cluster.get_json("persistentvolume", "fsx-pv")["status"]["phase"] == "Bound"


@pytest.mark.real_cluster("needs a real FSx for Lustre file system and the FSx CSI driver")
def test_hyp_stor_03_pod_can_write_to_the_fsx_volume(cluster, install_chart, namespace):
    install(install_chart, set={"storage.enabled": True})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fsx-writer"},
           "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "w", "image": "busybox:1.36",
                                    "command": ["sh", "-c", "echo ok > /fsx/chartproof-probe && cat /fsx/chartproof-probe"],
                                    "volumeMounts": [{"name": "fsx", "mountPath": "/fsx"}]}],
                    "volumes": [{"name": "fsx", "persistentVolumeClaim": {"claimName": "fsx-claim"}}]}}
    cluster.apply(pod, namespace=F.NAMESPACE)
    try:
        cluster.wait_for(lambda: (cluster.get_json("pod", "fsx-writer", namespace=F.NAMESPACE).get("status") or {})
                         .get("phase") == "Succeeded", timeout=300, what="the writer pod")
        assert cluster.kubectl("logs", "fsx-writer", "-n", F.NAMESPACE).strip() == "ok"
    finally:
        cluster.kubectl("delete", "pod", "fsx-writer", "-n", F.NAMESPACE, "--ignore-not-found", check=False)


def test_hyp_sub_01_team_subchart_installs_exactly_the_team_objects(charts, install_chart, team_namespaces, helm, cluster):
    sub = charts.local_dir(CHART) / "charts" / "team-role-and-bindings"
    team = "cp-solo"
    team_namespaces(helm.template(sub, set={"computeQuotaTarget.targetId": team}, release=F.RELEASE))
    rel = install_chart(sub, set={"computeQuotaTarget.targetId": team}, release=F.RELEASE)
    assert sorted(F.key(o) for o in rel.manifest) == sorted((k, n, ns or "") for k, n, ns in F.team_objects(team))
    for kind, name, ns in F.team_objects(team):
        assert cluster.kubectl.exists(kind, name, ns)


def _manifest_state(rel) -> list:
    return sorted((F.key(o), repr(o)) for o in rel.manifest)


def test_hyp_upg_01_reuse_values_keeps_the_configuration(install_chart, team_namespaces, helm):
    sets = {"storage.enabled": True, "trainingOperators.enabled": False, "computeQuotaTarget.targetId": "t1"}
    team_namespaces(rendered(helm, set=sets))
    rel = install(install_chart, set=sets)
    before = _manifest_state(rel)
    assert rel.manifest.has("PersistentVolumeClaim", "fsx-claim")
    assert not rel.manifest.has("Deployment", f"{F.RELEASE}-training-operators")
    assert rel.manifest.has("Role", "hyperpod-ns-t1-namespace-role")
    rel.upgrade(reuse_values=True)
    assert _manifest_state(rel) == before


def test_hyp_upg_02_plain_upgrade_of_a_default_install_changes_nothing(install_chart):
    rel = install(install_chart)
    before = _manifest_state(rel)
    rel.upgrade()
    assert _manifest_state(rel) == before
    assert [r for r in rel.helm.releases(F.NAMESPACE) if r["name"] == F.RELEASE][0]["status"] == "deployed"


@pytest.mark.real_cluster("the training and MPI operators must really run to reconcile jobs")
def test_hyp_train_03_pytorchjob_and_mpijob_are_reconciled_by_their_operators(cluster, install_chart, namespace):
    install(install_chart)
    container = {"name": "pytorch", "image": "busybox:1.36", "command": ["sh", "-c", "echo done"]}
    cluster.apply({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "ptj"},
                   "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "restartPolicy": "Never",
                                                               "template": {"spec": {"containers": [container]}}}}}},
                  namespace=namespace)
    cluster.apply({"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "metadata": {"name": "mpij"},
                   "spec": {"slotsPerWorker": 1, "mpiReplicaSpecs": {
                       "Launcher": {"replicas": 1, "template": {"spec": {"containers": [{**container, "name": "launcher"}]}}},
                       "Worker": {"replicas": 1, "template": {"spec": {"containers": [{**container, "name": "worker"}]}}}}}},
                  namespace=namespace)
    cluster.wait_for(lambda: (cluster.get_json("pytorchjob", "ptj", namespace=namespace).get("status") or {}).get("conditions"),
                     timeout=300, what="the training operator to report on the PyTorchJob")
    cluster.wait_for(lambda: (cluster.get_json("mpijob", "mpij", namespace=namespace).get("status") or {}).get("conditions"),
                     timeout=300, what="the MPI operator to report on the MPIJob")
    pods = cluster.kubectl.items("pods", namespace=namespace)
    assert any(p["metadata"]["name"].startswith("ptj-") for p in pods)
    assert any(p["metadata"]["name"].startswith("mpij-") for p in pods)


def test_hyp_install_01_every_crd_is_accepted_by_the_api_server(cluster, helm):
    """Every CRD the chart ships (templates and crds/) is accepted by a real kube-apiserver, and its
    schema admits a minimal object of its kind."""
    m = helm.template(CHART, [F.inference_values()], {"inferenceOperators.enabled": True},
                      release=F.RELEASE, namespace=F.NAMESPACE, args=("--include-crds",))
    crds = m.find("CustomResourceDefinition")
    assert len(crds) == 9
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-",
                          input="\n---\n".join(yaml.safe_dump(c) for c in crds))
    assert out.count("customresourcedefinition") == 9, out
