"""HyperPod contract E, [C] behaviours: the release `dependencies` goes to `kube-system` as the README
installs it. Cluster-scoped names are fixed, so every test here holds the `hyperpod` exclusive lock, and
every uninstall goes through ``Release.uninstall()``, which removes (and reports) whatever a build leaves
behind, so one defect never fails a later install. On the embedded cluster nodes and pods are simulated
(pods become Running without running); the API server, scheduler and controllers are real."""

from __future__ import annotations

import hyperpod_facts as F
import pytest

from chartproof import yamlio
from chartproof.kube import MANAGED_BY
from chartproof.manifest import Manifest, dig, key, ref
from chartproof.paths import scenario, scenarios
from chartproof.placement import INSTANCE_TYPE, instance_type_values, node_labels, schedulable_on
from chartproof.releases import Release

CHART = "hyperpod"
SCENARIOS = [p.stem for p in scenarios("hyperpod")]
pytestmark = [pytest.mark.cluster, pytest.mark.exclusive("hyperpod")]

DEVICE_PLUGINS = ("nvidia-device-plugin", "aws-efa-k8s-device-plugin", "neuron-device-plugin")


# -- helpers -------------------------------------------------------------------------------------------------------
def install(install_chart, values=(), set=None, chart=CHART, **kwargs):
    return install_chart(chart, values, set, release=F.RELEASE, namespace=F.NAMESPACE, timeout=300, **kwargs)


def name_of(obj: dict) -> str:
    return str(dig(obj, "metadata.name", ""))


def pods_of(cluster, ds: dict) -> list[dict]:
    labels = dig(ds, "spec.selector.matchLabels", {}) or {}
    assert labels, f"{ref(ds)} has no selector.matchLabels"
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return [p for p in cluster.kubectl.items("pods", namespace=dig(ds, "metadata.namespace") or F.NAMESPACE,
                                             selector=selector)
            if not dig(p, "metadata.deletionTimestamp")]


def placement(cluster, ds: dict) -> set[str]:
    return {dig(p, "spec.nodeName") for p in pods_of(cluster, ds) if dig(p, "spec.nodeName")}


def allowed_nodes(nodes: list[dict], ds: dict) -> set[str]:
    return {name_of(n) for n in nodes if schedulable_on(ds, n)}


def node_type(node: dict) -> str:
    return str(node_labels(node).get(INSTANCE_TYPE, ""))


def wait_placement(cluster, ds: dict, expected: set[str]) -> set[str]:
    """DaemonSet pods settle on their nodes shortly after the DaemonSet reports ready."""
    try:
        cluster.wait_for(lambda: placement(cluster, ds) == expected, timeout=60, what=f"{name_of(ds)} pods")
    except Exception:  # noqa: BLE001 - the assertion that follows reports the difference
        pass
    return placement(cluster, ds)


def rendered(helm, values=(), set=None) -> Manifest:
    return helm.template(CHART, values, set, release=F.RELEASE, namespace=F.NAMESPACE)


def our_release(helm) -> list[dict]:
    return [r for r in helm.releases(F.NAMESPACE) if r.get("name") == F.RELEASE]


# == Installation per scenario ================================================================================================
@pytest.mark.contract("HYP-INSTALL-01")
@pytest.mark.parametrize("name", SCENARIOS)
def test_hyp_install_01_scenario_installs_places_daemonsets_and_uninstalls_cleanly(
        helm, cluster, install_chart, team_namespaces, name):
    values = [scenario("hyperpod", name)]
    team_namespaces(rendered(helm, values))
    dry = helm.install(CHART, F.RELEASE, F.NAMESPACE, values, args=("--dry-run",))
    assert dry.ok, f"helm install --dry-run failed: {dry.error}"
    assert not our_release(helm), "--dry-run must not install"

    rel = install(install_chart, values)
    manifest = rel.manifest
    want = sorted(key(o) for o in rendered(helm, values))
    assert sorted(key(o) for o in manifest) == want, "the installed manifest differs from the render"
    nodes = cluster.nodes()
    for ds in manifest.select("DaemonSet"):
        expected = allowed_nodes(nodes, ds)
        actual = wait_placement(cluster, ds, expected)
        assert actual == expected, f"{ref(ds)}: pods on {sorted(actual)}, affinity and tolerations allow {sorted(expected)}"
        listed = instance_type_values(ds)
        skipped = [name_of(n) for n in nodes if F.health_tainted(n) and node_type(n) in listed and name_of(n) not in actual]
        assert not skipped, f"{ref(ds)} skips {skipped}, tainted node-health-status=Unschedulable"
    rel.uninstall()


@pytest.mark.contract("HYP-INSTALL-01")
def test_hyp_install_01_every_crd_is_accepted_by_the_api_server(cluster, helm):
    """Every CRD the chart ships (templates and crds/, all components on) is accepted by a real kube-apiserver."""
    m = helm.template(CHART, [F.inference_values()], {"inferenceOperators.enabled": True},
                      release=F.RELEASE, namespace=F.NAMESPACE, args=("--include-crds",))
    want = {f"{p}.kubeflow.org" for p in F.TRAINING_CRDS} | {"mpijobs.kubeflow.org"} | \
        {f"{p}.inference.sagemaker.aws.amazon.com" for p in F.INFERENCE_CRDS}
    crds = m.select("CustomResourceDefinition")
    names = {name_of(c) for c in crds}
    assert want <= names, f"CRDs missing from the render: {sorted(want - names)}"
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input="\n---\n".join(yamlio.dump(c) for c in crds))
    accepted = [n for n in names if f"customresourcedefinition.apiextensions.k8s.io/{n}" in out]
    assert sorted(accepted) == sorted(names), f"the API server did not accept {sorted(names - set(accepted))}: {out}"


@pytest.mark.contract("HYP-INSTALL-02")
def test_hyp_install_02_existing_unmanaged_service_account_blocks_install(helm, cluster):
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": "neuron-device-plugin", "namespace": F.NAMESPACE, "labels": dict(MANAGED_BY)}}
    if cluster.kubectl.exists("serviceaccount", "neuron-device-plugin", F.NAMESPACE):
        pytest.skip("a ServiceAccount neuron-device-plugin already exists in kube-system (not created by this test)")
    cluster.apply(sa)
    try:
        result = helm.install(CHART, F.RELEASE, F.NAMESPACE, timeout=120)
        assert not result.ok, "install must fail while an unmanaged neuron-device-plugin ServiceAccount exists"
        assert "exists and cannot be imported" in result.output and "neuron-device-plugin" in result.output, \
            f"expected helm's 'exists and cannot be imported' error naming neuron-device-plugin, found: {result.output}"
        assert all(r.get("status") != "deployed" for r in our_release(helm)), "a failed install left a deployed release"
        created = [f"{kind} {name}" for kind, name, ns in (
            ("DaemonSet", "health-monitoring-agent", "aws-hyperpod"), ("ClusterRole", "hyperpod-patching", None),
            ("Namespace", "aws-hyperpod", None), ("Deployment", f"{F.RELEASE}-mpi-operator", F.NAMESPACE))
            if cluster.kubectl.exists(kind, name, ns)]
        assert not created, f"the failed install created {created}"
        live = cluster.get_json("serviceaccount", "neuron-device-plugin", namespace=F.NAMESPACE)
        annotations = dig(live, "metadata.annotations", {}) or {}
        assert "meta.helm.sh/release-name" not in annotations, f"the failed install adopted the ServiceAccount: {annotations}"
    finally:
        if our_release(helm):
            Release(helm, cluster, CHART, F.RELEASE, F.NAMESPACE).uninstall(check=False)
        cluster.kubectl("delete", "serviceaccount", "neuron-device-plugin", "-n", F.NAMESPACE, "--ignore-not-found",
                        check=False)


# == Scheduling on HyperPod nodes =====================================================================================
@pytest.mark.contract("HYP-TOL-03")
def test_hyp_tol_03_daemonsets_run_on_nodes_under_deep_health_check(cluster, install_chart, namespace):
    tainted = [n for n in cluster.nodes() if F.health_tainted(n)]
    if not tainted:
        pytest.skip("this cluster shape has no node tainted node-health-status=Unschedulable")
    rel = install(install_chart)
    manifest = rel.manifest
    nodes = cluster.nodes()
    checked, missing = 0, []
    for component in DEVICE_PLUGINS + ("health-monitoring-agent",):
        ds = F.daemonset_of(manifest, component)
        listed = instance_type_values(ds)
        mine = [name_of(n) for n in tainted if node_type(n) in listed]
        if not mine:
            continue
        on = wait_placement(cluster, ds, allowed_nodes(nodes, ds))
        missing += [f"{component} on {n}" for n in mine if n not in on]
        checked += len(mine)
    if not checked:
        pytest.skip("no tainted node of an instance type a DaemonSet targets in this cluster shape")
    assert not missing, f"no pod on nodes tainted node-health-status=Unschedulable: {missing}"
    node = name_of(tainted[0])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ordinary"},
           "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}
    cluster.apply(pod, namespace=namespace)

    def verdict():
        conds = dig(cluster.get_json("pod", "ordinary", namespace=namespace), "status.conditions", []) or []
        return next((c for c in conds if c.get("type") == "PodScheduled" and c.get("status") == "False"), None)

    cond = cluster.wait_for(verdict, timeout=60, what="the scheduler's verdict on a pod without the toleration")
    message = str(cond.get("message", ""))
    # the pod's nodeSelector admits only the tainted node, so an untolerated taint is that node's health taint
    assert "untolerated taint" in message, f"the ordinary pod must be refused for the untolerated taint, found: {message}"
    assert not dig(cluster.get_json("pod", "ordinary", namespace=namespace), "spec.nodeName"), \
        f"the ordinary pod was placed on {node}"


@pytest.mark.contract("HYP-AFF-04")
def test_hyp_aff_04_device_plugins_run_only_on_listed_instance_types(cluster, install_chart):
    """Expected nodes come from the contract's C.3 lists (not from the rendered DaemonSet): each plugin's
    pods run on nodes of its listed types only, and a CPU-only node outside every list gets none."""
    nodes = {name_of(n): n for n in cluster.nodes()}
    everything = F.NVIDIA_TYPES | F.NEURON_TYPES | F.EFA_TYPES
    unlisted = {name for name, n in nodes.items() if node_type(n) not in everything}
    if not unlisted:
        pytest.skip("no node outside the instance-type lists in this cluster shape")
    rel = install(install_chart)
    manifest = rel.manifest
    problems = []
    for component in DEVICE_PLUGINS:
        ds = F.daemonset_of(manifest, component)
        listed = {name for name, n in nodes.items() if node_type(n) in F.LISTS[component]}
        on = wait_placement(cluster, ds, allowed_nodes(list(nodes.values()), ds) & listed)
        if on - listed:
            problems.append(f"{component} runs on nodes of unlisted types: "
                            f"{sorted(f'{n} ({node_type(nodes[n])})' for n in on - listed)}")
        if listed and not on:
            problems.append(f"{component} runs on none of the nodes of its listed types {sorted(listed)}")
    assert not problems, "; ".join(problems)


@pytest.mark.contract("HYP-HMA-04")
def test_hyp_hma_04_agent_runs_on_every_listed_node_and_nowhere_else(cluster, install_chart):
    rel = install(install_chart)
    ds = rel.manifest.get("DaemonSet", "health-monitoring-agent", "aws-hyperpod")
    nodes = cluster.nodes()
    expected = {name_of(n) for n in nodes if node_type(n) in F.HMA_TYPES}
    if not expected:
        pytest.skip("no node of an HMA-listed instance type in this cluster shape")
    on = wait_placement(cluster, ds, expected)
    assert on == expected, f"agent pods: missing on {sorted(expected - on)}, extra on {sorted(on - expected)}"
    pods = pods_of(cluster, ds)
    assert len(pods) == len(expected), f"expected one agent pod per listed node ({len(expected)}), found {len(pods)}"


# == Task governance, storage, sub-charts, upgrades ==========================================================================
@pytest.mark.contract("HYP-TEAM-05")
def test_hyp_team_05_team_group_permissions(cluster, install_chart, team_namespaces, helm):
    team = "cp-team"
    team_namespaces(rendered(helm, set={"computeQuotaTarget.targetId": team}))
    install(install_chart, set={"computeQuotaTarget.targetId": team})
    group_name = f"hyperpod-ns-{team}-namespace-level-group"

    def can(verb: str, resource: str, ns: str | None = None) -> bool:
        return cluster.can(verb, resource, user="scientist", groups=[group_name], namespace=ns)

    home = f"hyperpod-ns-{team}"
    verdicts = {
        f"create pytorchjobs in {home}": (can("create", "pytorchjobs.kubeflow.org", home), True),
        f"create jobs.batch in {home}": (can("create", "jobs.batch", home), True),
        "create pytorchjobs in default": (can("create", "pytorchjobs.kubeflow.org", "default"), False),
        "create jobs.batch in default": (can("create", "jobs.batch", "default"), False),
        f"get clusterqueue {home}-clusterqueue": (can("get", f"clusterqueues.kueue.x-k8s.io/{home}-clusterqueue"), True),
        "get clusterqueue hyperpod-ns-other-clusterqueue":
            (can("get", "clusterqueues.kueue.x-k8s.io/hyperpod-ns-other-clusterqueue"), False),
    }
    wrong = {what: f"allowed={got}, expected {want}" for what, (got, want) in verdicts.items() if got != want}
    assert not wrong, f"group {group_name}: {wrong}"


@pytest.mark.contract("HYP-STOR-03")
def test_hyp_stor_03_fsx_claim_binds_to_its_volume(cluster, install_chart):
    install(install_chart, set={"storage.enabled": True})

    def bound():
        pvc = cluster.get_json("persistentvolumeclaim", "fsx-claim", namespace=F.NAMESPACE)
        return pvc if dig(pvc, "status.phase") == "Bound" else None

    pvc = cluster.wait_for(bound, timeout=120, what="fsx-claim to be Bound")
    assert dig(pvc, "spec.volumeName") == "fsx-pv", f"fsx-claim bound to {dig(pvc, 'spec.volumeName')!r}, expected fsx-pv"
    phase = dig(cluster.get_json("persistentvolume", "fsx-pv"), "status.phase")
    assert phase == "Bound", f"fsx-pv phase: expected Bound, found {phase!r}"


@pytest.mark.contract("HYP-STOR-03")
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
        cluster.wait_for(lambda: dig(cluster.get_json("pod", "fsx-writer", namespace=F.NAMESPACE), "status.phase")
                         == "Succeeded", timeout=300, what="the writer pod")
        assert cluster.kubectl("logs", "fsx-writer", "-n", F.NAMESPACE).strip() == "ok"
    finally:
        cluster.kubectl("delete", "pod", "fsx-writer", "-n", F.NAMESPACE, "--ignore-not-found", check=False)


@pytest.mark.contract("HYP-SUB-01")
def test_hyp_sub_01_team_subchart_installs_exactly_the_team_objects(chart_dir, install_chart, team_namespaces, helm, cluster):
    sub = F.subchart_dir(chart_dir, "team-role-and-bindings")
    team = "cp-solo"
    team_namespaces(helm.template(sub, set={"computeQuotaTarget.targetId": team}, release=F.RELEASE))
    rel = install_chart(sub, set={"computeQuotaTarget.targetId": team}, release=F.RELEASE)
    want = sorted((k, ns or "", n) for k, n, ns in F.team_objects(team))
    assert sorted(key(o) for o in rel.manifest) == want, f"installed: expected exactly {want}"
    absent = [F.describe(e) for e in F.team_objects(team) if not cluster.kubectl.exists(*e)]
    assert not absent, f"not on the cluster after install: {absent}"
    rel.uninstall()


def _manifest_state(rel) -> list:
    return sorted((key(o), repr(o)) for o in rel.manifest)


@pytest.mark.contract("HYP-UPG-01")
def test_hyp_upg_01_reuse_values_keeps_the_configuration(install_chart, team_namespaces, helm):
    sets = {"storage.enabled": True, "trainingOperators.enabled": False, "computeQuotaTarget.targetId": "t1"}
    team_namespaces(rendered(helm, set=sets))
    rel = install(install_chart, set=sets)
    before = _manifest_state(rel)
    m = rel.manifest
    assert m.has("PersistentVolumeClaim", "fsx-claim") and m.has("Role", "hyperpod-ns-t1-namespace-role") \
        and not m.has("Deployment", f"{F.RELEASE}-training-operators"), "the install did not take the non-default values"
    rel.upgrade(reuse_values=True)
    assert _manifest_state(rel) == before, "helm upgrade --reuse-values changed the release manifest"


@pytest.mark.contract("HYP-UPG-02")
def test_hyp_upg_02_plain_upgrade_of_a_default_install_changes_nothing(install_chart, helm):
    rel = install(install_chart)
    before = _manifest_state(rel)
    rel.upgrade()
    assert _manifest_state(rel) == before, "helm upgrade changed the release manifest"
    statuses = [r.get("status") for r in our_release(helm)]
    assert statuses == ["deployed"], f"release status after upgrade: expected deployed, found {statuses}"


@pytest.mark.contract("HYP-TRAIN-03")
@pytest.mark.real_cluster("the training and MPI operators must really run to reconcile jobs", needs="containers")
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
    cluster.wait_for(lambda: dig(cluster.get_json("pytorchjob", "ptj", namespace=namespace), "status.conditions"),
                     timeout=300, what="the training operator to report on the PyTorchJob")
    cluster.wait_for(lambda: dig(cluster.get_json("mpijob", "mpij", namespace=namespace), "status.conditions"),
                     timeout=300, what="the MPI operator to report on the MPIJob")
    pods = [name_of(p) for p in cluster.kubectl.items("pods", namespace=namespace)]
    assert any(p.startswith("ptj-") for p in pods), f"no PyTorchJob pods; pods: {pods}"
    assert any(p.startswith("mpij-") for p in pods), f"no MPIJob pods; pods: {pods}"
