"""HyperPod dependencies chart: the behaviours checkable from helm's own output ([R] in
shared/contracts/hyperpod.md, section E). One test per behaviour id, parametrized where a behaviour
spans cases. Renders use release `dependencies` in `kube-system`, as the README installs it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import hyperpod_facts as F
import pytest
import yaml

from chartproof.manifest import containers, env_map, pod_spec
from chartproof.paths import scenario, scenarios

CHART = "hyperpod"
SCENARIOS = [p.stem for p in scenarios("hyperpod")]
CRDS = ("--include-crds",)


@pytest.fixture
def hp(render):
    """render() of the umbrella as the README installs it (release dependencies, kube-system, CRDs included)."""

    def run(values=(), set=None, *, namespace=F.NAMESPACE, chart=CHART, crds=True):
        return render(chart, values, set, release=F.RELEASE, namespace=namespace, args=CRDS if crds else ())

    run.error = lambda values=(), set=None, *, namespace=F.NAMESPACE, chart=CHART: render.error(
        chart, values, set, release=F.RELEASE, namespace=namespace)
    return run


@pytest.fixture(scope="module")
def chart_dir(charts) -> Path:
    return charts.local_dir(CHART)


def subchart_dir(chart_dir: Path, name: str) -> Path:
    repo = F.DEPENDENCIES[name][1]
    if repo is None:  # a remote chart fetched by `helm dependency update`, or our local copy
        repo = name
    path = chart_dir / "charts" / repo
    if not (path / "Chart.yaml").is_file():
        pytest.skip(f"{name} is not shipped unpacked in this build of the chart")
    return path


def objects_of(manifest, component: str, team_id: str = "t") -> list[dict]:
    return [o for o in manifest if F.component_of(manifest, o, team_id) == component]


def rules(obj: dict) -> list[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples of a Role/ClusterRole (resourceNames ignored)."""
    out = []
    for rule in obj.get("rules") or []:
        for group in rule.get("apiGroups") or [""]:
            for res in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    out.append((group, res, verb))
    return out


def allows(obj: dict, group: str, resource: str, verb: str) -> bool:
    return any((g == group or g == "*") and (r == resource or r == "*") and (v == verb or v == "*")
               for g, r, v in rules(obj))


def tolerations(obj: dict) -> list[dict]:
    return pod_spec(obj).get("tolerations") or []


def has_health_toleration(obj: dict) -> bool:
    return F.tolerates(tolerations(obj), F.HEALTH_TAINT)


# == Packaging ==================================================================================================
def test_hyp_dep_01_chart_yaml_lists_the_fifteen_dependencies(chart_dir):
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    assert (meta["apiVersion"], meta.get("type", "application")) == ("v2", "application")
    assert (meta["name"], meta["version"], str(meta["appVersion"])) == ("hyperpod-helm-chart", "0.1.0", "1.16.0")
    deps = {d["name"]: d for d in meta.get("dependencies") or []}
    assert len(meta["dependencies"]) == 15 and set(deps) == set(F.DEPENDENCIES)
    for name, (version, repo_dir, condition) in F.DEPENDENCIES.items():
        dep = deps[name]
        assert str(dep["version"]).lstrip("v") == version, name
        assert condition in [c.strip() for c in str(dep.get("condition", "")).split(",")], name
        assert not dep.get("alias") and not dep.get("tags") and not dep.get("import-values"), name
        repo = dep["repository"]
        if repo_dir is None:
            assert repo in (F.REMOTE_REPOSITORIES[name], f"file://charts/{name}"), (name, repo)
        else:
            assert repo == f"file://charts/{repo_dir}", (name, repo)
        if repo.startswith("file://"):
            sub = yaml.safe_load((chart_dir / repo[len("file://"):] / "Chart.yaml").read_text())
            assert sub["name"] == name, f"{repo} declares {sub['name']}"
            assert str(sub["version"]).lstrip("v") == version, f"{repo} declares {sub['version']}"


@pytest.fixture
def chart_copy(chart_dir, tmp_path) -> Path:
    """A private copy: `helm dependency update` writes Chart.lock and archives into the chart directory,
    which must not touch the chart under test."""
    dest = tmp_path / "hyperpod"
    shutil.copytree(chart_dir, dest, ignore=shutil.ignore_patterns("*.tgz", "Chart.lock"))
    return dest


def _lock(path: Path) -> list[tuple[str, str, str]]:
    lock = yaml.safe_load((path / "Chart.lock").read_text())
    return [(d["name"], str(d["version"]), d["repository"]) for d in lock["dependencies"]]


def test_hyp_dep_02_dependency_update_works_offline_and_is_repeatable(helm, chart_copy, hp):
    before = hp(chart=str(chart_copy))
    first = helm.run("dependency", "update", str(chart_copy))
    assert first.ok, first.output
    assert len(_lock(chart_copy)) == 15
    archives = sorted(p.name for p in (chart_copy / "charts").glob("*.tgz"))
    assert len(archives) == 15, archives
    for name, version, _ in _lock(chart_copy):
        assert any(a in (f"{name}-{version}.tgz", f"{name}-v{version}.tgz") for a in archives), (name, archives)
    lock_before = _lock(chart_copy)
    second = helm.run("dependency", "update", str(chart_copy))
    assert second.ok, second.output
    assert _lock(chart_copy) == lock_before
    assert sorted(p.name for p in (chart_copy / "charts").glob("*.tgz")) == archives
    # With archives next to the unpacked subcharts the chart must still render the same, every time
    # (Helm would otherwise load each subchart twice and use either copy).
    # (a distinct --set per render keeps the engine's render cache out of the way)
    for i in range(3):
        after = hp(set={"chartproofRenderProbe": i}, chart=str(chart_copy))
        assert after.objects == before.objects


def _lint_clean(result) -> list[str]:
    return [ln for ln in result.output.splitlines() if "[WARNING]" in ln or "[ERROR]" in ln]


def test_hyp_lint_01_lint_is_clean_after_dependency_update(helm, chart_copy, chart_dir):
    assert helm.run("dependency", "update", str(chart_copy)).ok
    result = helm.lint(str(chart_copy), args=("--namespace", F.NAMESPACE))
    assert result.ok and not _lint_clean(result), result.output
    extra = {"team-role-and-bindings": {"computeQuotaTarget.targetId": "x"}}
    for name, (_, repo_dir, _) in F.DEPENDENCIES.items():
        sub = chart_copy / "charts" / (repo_dir or name)
        if not (sub / "Chart.yaml").is_file():
            continue
        values = [F.inference_values(prefix="")] if name == "hyperpod-inference-operator" else []
        result = helm.lint(str(sub), values, extra.get(name), args=("--namespace", F.NAMESPACE))
        assert result.ok and not _lint_clean(result), f"{name}: {result.output}"


def test_hyp_lint_02_lint_passes_before_any_dependency_update(helm, chart_copy):
    assert not (chart_copy / "Chart.lock").exists()
    result = helm.lint(str(chart_copy), args=("--namespace", F.NAMESPACE))
    assert result.ok, result.output
    assert not [ln for ln in result.output.splitlines() if "[ERROR]" in ln], result.output


# == Defaults and toggles ===========================================================================================
def test_hyp_default_01_default_render_is_exactly_the_default_on_components(hp):
    m = hp(scenario("hyperpod", "defaults"))
    assert m.objects == hp().objects, "the defaults scenario must equal a render without values"
    expected = F.expected_objects()
    for component in F.DEFAULT_ON:
        for entry in expected[component]:
            assert any(F.matches(entry, o) for o in m), f"{component}: {entry} missing from the default render"
    for component in ("nvidia-device-plugin", "aws-efa-k8s-device-plugin", "health-monitoring-agent"):
        F.daemonset_of(m, component)
    for component in F.DEFAULT_OFF:
        for entry in expected[component]:
            if entry[0] != "Namespace":
                assert not any(F.matches(entry, o) for o in m), f"default-off {component} rendered {entry}"
    owners = {F.component_of(m, o) for o in m}
    assert owners <= F.DEFAULT_ON | {"namespace"}, f"objects of {owners - F.DEFAULT_ON} in the default render"
    assert not [o for o in m if o["metadata"]["name"].startswith("hyperpod-ns-")]


TOGGLES = [
    # (id, --set, component, turned on?)
    ("trainingOperators", {"trainingOperators.enabled": False}, "training-operators", False),
    ("inferenceOperators", {"inferenceOperators.enabled": True}, "hyperpod-inference-operator", True),
    ("mlflow", {"mlflow.enabled": True}, "mlflow", True),
    ("storage", {"storage.enabled": True}, "storage", True),
    ("cluster-role", {"cluster-role-and-bindings.enabled": True}, "cluster-role-and-bindings", True),
    ("namespaced-role", {"namespaced-role-and-bindings.enabled": True}, "namespaced-role-and-bindings", True),
    ("team-role", {"team-role-and-bindings.enabled": True, "team-role-and-bindings.computeQuotaTarget.targetId": "t"},
     "team-role-and-bindings", True),
    ("deep-health-check", {"deep-health-check.enabled": False}, "deep-health-check", False),
    ("health-monitoring-agent", {"health-monitoring-agent.enabled": False}, "health-monitoring-agent", False),
    ("job-auto-restart", {"job-auto-restart.enabled": False}, "job-auto-restart", False),
    ("mpi-operator", {"mpi-operator.enabled": False}, "mpi-operator", False),
    ("hyperpod-patching", {"hyperpod-patching.enabled": False}, "hyperpod-patching", False),
    ("nvidia", {"nvidia-device-plugin.devicePlugin.enabled": False}, "nvidia-device-plugin", False),
    ("neuron", {"neuron-device-plugin.devicePlugin.enabled": False}, "neuron-device-plugin", False),
    ("efa", {"aws-efa-k8s-device-plugin.devicePlugin.enabled": False}, "aws-efa-k8s-device-plugin", False),
]


@pytest.mark.parametrize("how", ["set", "values-file"])
@pytest.mark.parametrize("flag,flip,component,on", TOGGLES, ids=[t[0] for t in TOGGLES])
def test_hyp_toggle_01_each_flag_switches_exactly_its_component(hp, flag, flip, component, on, how):
    base_values = [F.inference_values()] if component == "hyperpod-inference-operator" else []
    base = hp(base_values)
    flipped = hp(base_values + [F.nested(flip)]) if how == "values-file" else hp(base_values, flip)
    with_it, without = (flipped, base) if on else (base, flipped)
    own = [o for o in with_it if F.component_of(with_it, o) == component and o["kind"] != "Namespace"]
    assert own, f"{component} renders nothing when on"
    assert not [o for o in without if F.component_of(without, o) == component and o["kind"] != "Namespace"], \
        f"{component} still renders objects when off"
    for entry in F.expected_objects()[component]:
        assert any(F.matches(entry, o) for o in with_it), f"{component} on: {entry} missing"
        if entry[0] != "Namespace":
            assert not any(F.matches(entry, o) for o in without), f"{component} off: {entry} still there"
    # every other object is untouched (shared Namespaces are HYP-NS-01's business)
    others = lambda m: sorted((F.key(o), yaml.safe_dump(o)) for o in m  # noqa: E731
                              if F.component_of(m, o) != component and o["kind"] != "Namespace")
    assert others(with_it) == others(without)


def test_hyp_toggle_02_training_operator_off_removes_it_and_its_crds_only(hp):
    on, off = hp(), hp(set={"trainingOperators.enabled": False})
    m = hp(scenario("hyperpod", "training-operators-off"))
    assert m.objects == off.objects
    for kind, name, ns in [("Deployment", f"{F.RELEASE}-training-operators", "kubeflow"),
                           ("Service", "training-operator", "kubeflow"), ("ServiceAccount", "training-operator", "kubeflow"),
                           ("ClusterRole", "training-operator", None), ("ClusterRoleBinding", "training-operator", None),
                           ("ClusterRole", "kubeflow-training-admin", None), ("ClusterRole", "kubeflow-training-edit", None),
                           ("ClusterRole", "kubeflow-training-view", None)]:
        assert on.find(kind, name, ns) and not off.find(kind, name, ns), (kind, name)
    for plural in F.TRAINING_CRDS:
        assert on.has("CustomResourceDefinition", f"{plural}.kubeflow.org")
        assert not off.has("CustomResourceDefinition", f"{plural}.kubeflow.org"), plural
    assert off.has("CustomResourceDefinition", "mpijobs.kubeflow.org")
    assert not hp(set={"trainingOperators.enabled": False, "mpi-operator.enabled": False}).has(
        "CustomResourceDefinition", "mpijobs.kubeflow.org")


def test_hyp_toggle_03_namespaced_roles_render_only_when_enabled(hp):
    role = "hyperpod-scientist-user-namespace-level-role"
    default = hp()
    assert not default.find("Role") and not default.find("RoleBinding")
    on = hp(set={"namespaced-role-and-bindings.enabled": True})
    assert on.get("Role", role) and on.get("RoleBinding", f"{role}-binding")


NS_CASES = {
    **{name: ([scenario("hyperpod", name)], None) for name in SCENARIOS},
    "dhc-off-hma-only": ([], {"deep-health-check.enabled": False, "job-auto-restart.enabled": False}),
    "dhc-off-jar-only": ([], {"deep-health-check.enabled": False, "health-monitoring-agent.enabled": False}),
    "training-off-mlflow-on": ([], {"trainingOperators.enabled": False, "mlflow.enabled": True}),
    "training-off-namespaced-roles-on": ([], {"trainingOperators.enabled": False,
                                              "namespaced-role-and-bindings.enabled": True}),
    "namespaced-roles-elsewhere": ([], {"namespaced-role-and-bindings.enabled": True,
                                        "namespaced-role-and-bindings.namespace": "research"}),
    "mlflow-elsewhere": ([], {"mlflow.enabled": True, "mlflow.mlflow.serviceAccount.namespace": "mlflow"}),
}


@pytest.mark.parametrize("case", sorted(NS_CASES))
def test_hyp_ns_01_every_namespace_used_exists_exactly_once(hp, case):
    values, sets = NS_CASES[case]
    m = hp(values, sets)
    namespaces = [o["metadata"]["name"] for o in m.find("Namespace")]
    assert len(namespaces) == len(set(namespaces)), f"Namespace rendered twice: {namespaces}"
    assert F.NAMESPACE not in namespaces, "kube-system must not be created"
    for obj in m:
        if obj["kind"] in ("Namespace", "CustomResourceDefinition", "PersistentVolume") or obj["kind"].startswith("Cluster"):
            continue
        ns = obj["metadata"].get("namespace") or F.NAMESPACE
        assert ns in (F.NAMESPACE,) or ns.startswith("hyperpod-ns-") or ns in namespaces, \
            f"{F.key(obj)} lands in {ns}, which nothing creates"
    if case == "dhc-off-hma-only":
        assert m.get("Namespace", "aws-hyperpod")["metadata"]["labels"].get("name") == "aws-hyperpod"


# == Training and MPI operators =======================================================================================
def test_hyp_train_01_schemes_enabled_without_mpijob(hp):
    m = hp()
    dep = m.get("Deployment", f"{F.RELEASE}-training-operators", "kubeflow")
    args = [a for c in containers(dep) for a in (c.get("command") or []) + (c.get("args") or [])]
    schemes = [a.split("=", 1)[1] for a in args if a.startswith("--enable-scheme=")]
    assert sorted(schemes) == sorted(["pytorchjob", "tfjob", "mxjob", "xgboostjob", "paddlejob"])
    assert "mpijob" not in schemes
    training_crds = [o for o in m.find("CustomResourceDefinition") if F.component_of(m, o) == "training-operators"]
    assert {o["metadata"]["name"] for o in training_crds} == {f"{p}.kubeflow.org" for p in F.TRAINING_CRDS}
    for crd in training_crds:
        assert [v["name"] for v in crd["spec"]["versions"]] == ["v1"], crd["metadata"]["name"]
        assert crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["type"] == "object"


def test_hyp_train_02_training_operator_deployment_wiring(hp):
    m = hp()
    dep = m.get("Deployment", f"{F.RELEASE}-training-operators", "kubeflow")
    assert dep["spec"].get("replicas", 1) == 1
    spec = pod_spec(dep)
    assert spec["serviceAccountName"] == "training-operator"
    ctr = containers(dep)[0]
    assert ctr["image"] == "kubeflow/training-operator:v1-855e096"
    assert ctr["command"] == ["/manager"]
    assert {"MY_POD_NAMESPACE", "MY_POD_NAME"} <= set(env_map(ctr))
    assert env_map(ctr)["MY_POD_NAMESPACE"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert 8080 in [p["containerPort"] for p in ctr.get("ports") or []]
    assert (ctr["livenessProbe"]["httpGet"]["path"], ctr["livenessProbe"]["httpGet"]["port"]) == ("/healthz", 8081)
    assert (ctr["readinessProbe"]["httpGet"]["path"], ctr["readinessProbe"]["httpGet"]["port"]) == ("/readyz", 8081)
    svc = m.get("Service", "training-operator", "kubeflow")
    assert [(p["port"], p.get("name")) for p in svc["spec"]["ports"]] == [(8080, "monitoring-port")]
    sel = svc["spec"]["selector"]
    assert all(spec_labels.get(k) == v for spec_labels in [dep["spec"]["template"]["metadata"]["labels"]]
               for k, v in sel.items())
    admin = m.get("ClusterRole", "kubeflow-training-admin")
    assert admin["metadata"]["labels"].get("rbac.authorization.kubeflow.org/aggregate-to-kubeflow-admin") == "true"
    assert allows(admin, "kubeflow.org", "pytorchjobs", "delete") or admin.get("aggregationRule")
    crb = m.get("ClusterRoleBinding", "training-operator")
    assert crb["roleRef"]["name"] == "training-operator"
    assert {"kind": "ServiceAccount", "name": "training-operator", "namespace": "kubeflow"} in crb["subjects"]
    assert allows(m.get("ClusterRole", "training-operator"), "kubeflow.org", "pytorchjobs", "update")


def test_hyp_mpi_01_mpi_operator_objects_and_its_crd(hp):
    m = hp()
    for entry in F.expected_objects()["mpi-operator"]:
        assert any(F.matches(entry, o) for o in m), entry
    mpi_crds = [o for o in m.find("CustomResourceDefinition") if o["spec"]["names"]["kind"] == "MPIJob"]
    assert [o["metadata"]["name"] for o in mpi_crds] == ["mpijobs.kubeflow.org"]
    versions = mpi_crds[0]["spec"]["versions"]
    assert [v["name"] for v in versions] == ["v2beta1"]
    assert versions[0]["served"] and versions[0]["storage"] and "status" in versions[0].get("subresources", {})
    dep = m.get("Deployment", f"{F.RELEASE}-mpi-operator", F.NAMESPACE)
    ctr = containers(dep)[0]
    assert ctr["image"] == "mpioperator/mpi-operator:0.5"
    assert ctr.get("imagePullPolicy") == "IfNotPresent" and dep["spec"].get("replicas", 1) == 1
    assert {"-alsologtostderr", "-stderrthreshold=INFO", "-v=4"} <= set(ctr.get("args") or [])
    assert pod_spec(dep)["serviceAccountName"] == f"{F.RELEASE}-mpi-operator"
    crb = m.get("ClusterRoleBinding", f"{F.RELEASE}-mpi-operator")
    assert crb["roleRef"]["name"] == f"{F.RELEASE}-mpi-operator"
    assert allows(m.get("ClusterRole", f"{F.RELEASE}-mpi-operator"), "kubeflow.org", "mpijobs", "update")


# == Task-governance RBAC ==================================================================================================
def assert_team(m, team_id: str):
    for entry in F.team_objects(team_id):
        assert any(F.matches(entry, o) for o in m), f"{entry} missing"
    group = f"hyperpod-ns-{team_id}-namespace-level-group"
    for kind, name in (("ClusterRoleBinding", f"hyperpod-ns-{team_id}-cluster-role-binding"),
                       ("RoleBinding", f"hyperpod-ns-{team_id}-namespace-role-binding")):
        subjects = m.get(kind, name)["subjects"]
        assert [(s["kind"], s["name"]) for s in subjects] == [("Group", group)], subjects
    cr = m.get("ClusterRole", f"hyperpod-ns-{team_id}-cluster-role")
    cq = [r for r in cr["rules"] if "clusterqueues" in r.get("resources", [])]
    assert cq and all(r.get("resourceNames") == [f"hyperpod-ns-{team_id}-clusterqueue"] for r in cq)
    role = m.get("Role", f"hyperpod-ns-{team_id}-namespace-role", f"hyperpod-ns-{team_id}")
    assert allows(role, "kubeflow.org", "pytorchjobs", "create") and allows(role, "batch", "jobs", "create")


def team_names(m) -> list:
    return [F.key(o) for o in m if o["metadata"]["name"].startswith("hyperpod-ns-")]


def test_hyp_team_01_target_id_alone_creates_the_team_objects(hp):
    m = hp(set={"computeQuotaTarget.targetId": "team-a"})
    assert_team(m, "team-a")
    assert len(team_names(m)) == 4
    assert sorted(F.key(o) for o in m if not o["metadata"]["name"].startswith("hyperpod-ns-")) == \
        sorted(F.key(o) for o in hp())
    gov = hp(scenario("hyperpod", "task-governance"))
    assert_team(gov, "team-a")


def test_hyp_team_02_no_team_objects_without_target_id(hp):
    assert team_names(hp(set={"team-role-and-bindings.enabled": False})) == []
    assert team_names(hp()) == []


def test_hyp_team_03_enabled_without_target_id_fails_naming_the_key(hp):
    message = hp.error(set={"team-role-and-bindings.enabled": True})
    assert "computeQuotaTarget.targetId" in message


def test_hyp_team_04_subchart_target_id_works_and_wins(hp):
    m = hp(set={"team-role-and-bindings.computeQuotaTarget.targetId": "sub"})
    assert_team(m, "sub")
    both = hp(set={"team-role-and-bindings.computeQuotaTarget.targetId": "sub", "computeQuotaTarget.targetId": "root"})
    assert_team(both, "sub")
    assert not [k for k in team_names(both) if "root" in k[1]]
    assert len(team_names(both)) == 4


def test_hyp_nsrole_01_namespaced_role_and_binding_follow_the_namespace(hp):
    role = "hyperpod-scientist-user-namespace-level-role"
    for ns in ("kubeflow", "research"):
        sets = {"namespaced-role-and-bindings.enabled": True}
        if ns != "kubeflow":
            sets["namespaced-role-and-bindings.namespace"] = ns
        m = hp(set=sets)
        r = m.get("Role", role, ns)
        rb = m.get("RoleBinding", f"{role}-binding", ns)
        assert len(m.find("Role")) == 1 and len(m.find("RoleBinding")) == 1
        assert rb["subjects"] == [{"kind": "Group", "name": f"{role}-{ns}-level", "apiGroup": "rbac.authorization.k8s.io"}]
        assert (rb["roleRef"]["kind"], rb["roleRef"]["name"]) == ("Role", role)
        assert allows(r, "kubeflow.org", "pytorchjobs", "create") and allows(r, "", "pods/exec", "create")


def test_hyp_crole_01_cluster_role_and_binding(hp):
    name = "hyperpod-scientist-user-cluster-role"
    m = hp(set={"cluster-role-and-bindings.enabled": True})
    cr = m.get("ClusterRole", name)
    assert allows(cr, "", "pods", "list") and allows(cr, "", "nodes", "list")
    assert not allows(cr, "", "pods", "delete")
    crb = m.get("ClusterRoleBinding", f"{name}-binding")
    assert [(s["kind"], s["name"]) for s in crb["subjects"]] == [("Group", f"{name}-cluster-level")]
    assert (crb["roleRef"]["kind"], crb["roleRef"]["name"]) == ("ClusterRole", name)


HEALTH_TOLERATION_EXACT = dict(F.HEALTH_TAINT)


# == Device plugins ===================================================================================================
def test_hyp_tol_01_plugins_and_mpi_operator_tolerate_the_health_taint(hp):
    m = hp()
    for component in ("nvidia-device-plugin", "aws-efa-k8s-device-plugin", "neuron-device-plugin"):
        ds = F.daemonset_of(m, component)
        assert HEALTH_TOLERATION_EXACT in tolerations(ds), f"{component}: {tolerations(ds)}"
    assert has_health_toleration(m.get("Deployment", f"{F.RELEASE}-mpi-operator", F.NAMESPACE))
    nvidia = F.daemonset_of(m, "nvidia-device-plugin")
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations(nvidia)


def test_hyp_tol_02_health_agent_tolerates_every_noschedule_and_noexecute_taint(hp):
    ds = F.daemonset_of(hp(), "health-monitoring-agent")
    tols = tolerations(ds)
    for effect in ("NoSchedule", "NoExecute"):
        assert any(not t.get("key") and t.get("operator") == "Exists" and t.get("effect") in (effect, None) for t in tols), tols
        assert F.tolerates(tols, {"key": "anything.example.com/x", "value": "y", "effect": effect})


def test_hyp_aff_01_nvidia_and_neuron_affinity_lists(hp):
    m = hp()
    nvidia = F.daemonset_of(m, "nvidia-device-plugin")
    neuron = F.daemonset_of(m, "neuron-device-plugin")
    assert F.instance_type_values(nvidia) == F.NVIDIA_TYPES
    assert F.instance_type_values(neuron) == F.NEURON_TYPES
    for ds in (nvidia, neuron):
        assert len(F.required_terms(ds)) >= 1
    custom = {"nvidia-device-plugin": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": F.INSTANCE_TYPE, "operator": "In", "values": ["ml.g5.xlarge"]}]}]}}}}}
    replaced = F.daemonset_of(hp([custom]), "nvidia-device-plugin")
    assert F.instance_type_values(replaced) == {"ml.g5.xlarge"}


def test_hyp_aff_02_efa_affinity_follows_supported_instance_labels(hp):
    ds = F.daemonset_of(hp(), "aws-efa-k8s-device-plugin")
    terms = F.required_terms(ds)
    exprs = [e for t in terms for e in t.get("matchExpressions") or []]
    assert {e["key"] for e in exprs} == {F.INSTANCE_TYPE}
    assert all(e["operator"] == "In" for e in exprs)
    assert F.instance_type_values(ds) == F.EFA_TYPES
    user = {"aws-efa-k8s-device-plugin": {"supportedInstanceLabels": {"keys": ["example.com/type"],
                                                                      "values": ["ml.p5.48xlarge", "ml.trn2.48xlarge"]}}}
    replaced = F.daemonset_of(hp([user]), "aws-efa-k8s-device-plugin")
    exprs = [e for t in F.required_terms(replaced) for e in t.get("matchExpressions") or []]
    assert [(e["key"], e["operator"], sorted(e["values"])) for e in exprs] == \
        [("example.com/type", "In", ["ml.p5.48xlarge", "ml.trn2.48xlarge"])]


def test_hyp_aff_03_instance_type_lists_are_consistent(hp):
    m = hp()
    hma = F.instance_type_values(F.daemonset_of(m, "health-monitoring-agent"))
    nvidia = F.instance_type_values(F.daemonset_of(m, "nvidia-device-plugin"))
    neuron = F.instance_type_values(F.daemonset_of(m, "neuron-device-plugin"))
    efa = F.instance_type_values(F.daemonset_of(m, "aws-efa-k8s-device-plugin"))
    assert hma, "the agent has no instance-type affinity"
    assert {t for t in hma if F.is_nvidia(t)} <= nvidia
    assert {t for t in hma if F.is_neuron(t)} <= neuron
    assert {t for t in hma if F.efa_interfaces(t) > 0} <= efa
    assert all(F.is_nvidia(t) or F.is_neuron(t) for t in hma), sorted(hma)


def test_hyp_dp_01_plugin_namespaces_image_and_priority(hp):
    for release_ns in (F.NAMESPACE, "hyperpod-deps"):
        m = hp(namespace=release_ns)
        ds = m.get("DaemonSet", "neuron-device-plugin-daemonset", "kube-system")
        spec = pod_spec(ds)
        assert containers(ds)[0]["image"] == "public.ecr.aws/neuron/neuron-device-plugin:2.19.16.0"
        assert spec["serviceAccountName"] == "neuron-device-plugin"
        assert spec.get("priorityClassName") == "system-node-critical"
        assert m.get("ServiceAccount", "neuron-device-plugin", "kube-system")
        paths = {v["hostPath"]["path"].rstrip("/") for v in spec.get("volumes") or [] if "hostPath" in v}
        assert {"/var/lib/kubelet/device-plugins", "/run"} <= paths
        for entry in F.expected_objects()["neuron-device-plugin"]:
            assert any(F.matches(entry, o) for o in m), entry
        nvidia = F.daemonset_of(m, "nvidia-device-plugin")
        assert nvidia["metadata"]["namespace"] == "kube-system"
        assert "nvcr.io/nvidia/k8s-device-plugin:v0.16.1" in F.images(nvidia)


# == Resiliency components ==================================================================================================
def test_hyp_dhc_01_deep_health_check_namespace_and_rbac(hp):
    m = hp()
    ns = m.get("Namespace", "aws-hyperpod")
    assert ns["metadata"]["labels"]["name"] == "aws-hyperpod"
    assert F.component_of(m, ns) == "deep-health-check"
    assert m.get("ServiceAccount", "deep-health-check-service-account", "aws-hyperpod")
    cr = m.get("ClusterRole", "deep-health-check-service-account-role")
    for res, verbs in (("nodes", ("get", "list")), ("pods", ("get", "list", "patch"))):
        assert all(allows(cr, "", res, v) for v in verbs), (res, rules(cr))
    assert not allows(cr, "", "nodes", "patch") and not allows(cr, "", "pods", "delete")
    crb = m.get("ClusterRoleBinding", "deep-health-check-service-account-role-binding")
    assert crb["roleRef"]["name"] == "deep-health-check-service-account-role"
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": "deep-health-check-service-account",
                                "namespace": "aws-hyperpod"}]


def test_hyp_hma_01_health_monitoring_agent_objects_and_wiring(hp):
    m = hp()
    for entry in F.expected_objects()["health-monitoring-agent"]:
        assert any(F.matches(entry, o) for o in m), entry
    cr = m.get("ClusterRole", "health-monitoring-agent")
    assert allows(cr, "", "nodes", "get") and allows(cr, "", "nodes", "patch") and allows(cr, "", "nodes/status", "patch")
    for group in ("", "events.k8s.io"):
        assert all(allows(cr, group, "events", v) for v in ("create", "patch", "update"))
    ds = m.get("DaemonSet", "health-monitoring-agent", "aws-hyperpod")
    assert ds["spec"]["selector"]["matchLabels"] == {"app": "health-monitoring-agent"}
    spec = pod_spec(ds)
    assert spec["serviceAccountName"] == "health-monitoring-agent"
    assert F.instance_type_values(ds) == F.HMA_TYPES
    ctr = containers(ds)[0]
    assert {"--enable-k8s-exporter=false", "--config.system-log-monitor=/config/system-message-monitor.json"} <= set(ctr["args"])
    res = ctr["resources"]
    assert res["requests"] == res["limits"] == {"cpu": "500m", "memory": "512Mi"}
    sc = ctr.get("securityContext") or {}
    psc = spec.get("securityContext") or {}
    assert (sc.get("runAsUser", psc.get("runAsUser")), sc.get("runAsGroup", psc.get("runAsGroup"))) == (1000, 2000)
    env = env_map(ctr)
    assert env["NODE_NAME"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["NODE_IP"]["fieldRef"]["fieldPath"] == "status.hostIP"
    vols = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m_["mountPath"].rstrip("/") or "/": (vols.get(m_["name"]), bool(m_.get("readOnly"))) for m_ in ctr["volumeMounts"]}
    assert mounts["/var/log"][0] == "/var/log/"
    assert mounts["/dev/kmsg"] == ("/dev/kmsg", True)
    assert mounts["/etc/localtime"] == ("/etc/localtime", True)


def test_hyp_hma_02_default_image_is_us_west_2(hp):
    ds = F.daemonset_of(hp(), "health-monitoring-agent")
    assert F.images(ds) == [F.hma_image("us-west-2")]


@pytest.mark.parametrize("region", sorted(F.HMA_ACCOUNTS))
def test_hyp_hma_03_region_selects_the_regional_image(hp, region):
    by_key = F.daemonset_of(hp(set={"health-monitoring-agent.region": region}), "health-monitoring-agent")
    by_global = F.daemonset_of(hp(set={"global.region": region}), "health-monitoring-agent")
    assert F.images(by_key) == F.images(by_global) == [F.hma_image(region)]
    other = "eu-west-1" if region != "eu-west-1" else "us-east-1"
    both = F.daemonset_of(hp(set={"health-monitoring-agent.region": region, "global.region": other}),
                          "health-monitoring-agent")
    assert F.images(both) == [F.hma_image(region)]
    custom = "registry.example.com/hma:custom"
    verbatim = F.daemonset_of(hp(set={"health-monitoring-agent.region": region,
                                      "health-monitoring-agent.hmaimage": custom}), "health-monitoring-agent")
    assert F.images(verbatim) == [custom]


def test_hyp_hma_03_unknown_region_fails_listing_the_known_ones(hp):
    message = hp.error(set={"health-monitoring-agent.region": "mars-north-7"})
    assert "mars-north-7" in message
    for region in F.HMA_ACCOUNTS:
        assert region in message, f"{region} not listed in: {message}"


def test_hyp_jar_01_job_auto_restart_rbac(hp):
    m = hp()
    assert m.get("ServiceAccount", "job-auto-restart", "aws-hyperpod")
    cr = m.get("ClusterRole", "job-auto-restart")
    checks = [("", r, v) for r in ("nodes", "nodes/status", "pods", "pods/status") for v in ("get", "list", "watch")]
    checks += [("", "pods", "delete"), ("", "pods", "deletecollection"), ("", "nodes", "patch"),
               ("", "nodes/status", "patch"), ("", "events", "create")]
    checks += [("kubeflow.org", r, v) for r in ("pytorchjobs", "pytorchjobs/status")
               for v in ("get", "list", "watch", "delete", "patch", "update")]
    checks += [("coordination.k8s.io", "leases", v) for v in ("get", "create", "update", "delete")]
    for check in checks:
        assert allows(cr, *check), check
    assert not allows(cr, "", "secrets", "get")
    crb = m.get("ClusterRoleBinding", "job-auto-restart")
    assert crb["roleRef"]["name"] == "job-auto-restart"
    assert [(s["kind"], s["name"]) for s in crb["subjects"]] == [("User", "hyperpod-service-linked-role")]


def test_hyp_patch_01_patching_rbac(hp):
    m = hp()
    cr = m.get("ClusterRole", "hyperpod-patching")
    for check in (("", "pods", "list"), ("", "pods/eviction", "create"), ("", "nodes", "get"), ("", "nodes", "list"),
                  ("", "nodes", "watch")):
        assert allows(cr, *check), check
    assert not allows(cr, "", "pods", "delete")
    crb = m.get("ClusterRoleBinding", "hyperpod-patching")
    assert crb["roleRef"]["name"] == "hyperpod-patching"
    assert [(s["kind"], s["name"]) for s in crb["subjects"]] == [("User", "hyperpod-service-linked-role")]
    assert not hp(scenario("hyperpod", "hyperpod-patching-off")).has("ClusterRole", "hyperpod-patching")


def test_hyp_mlflow_01_service_account_with_role_annotation(hp):
    m = hp(set={"mlflow.enabled": True})
    sa = m.get("ServiceAccount", "mlflow-service-account1", "kubeflow")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::555555555555:role/hyperpod-mlflow-role"
    arn = "arn:aws:iam::111122223333:role/other"
    sa = hp(set={"mlflow.enabled": True, "mlflow.mlflow.serviceAccount.roleARN": arn}).get(
        "ServiceAccount", "mlflow-service-account1", "kubeflow")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == arn


# == Storage ================================================================================================================
def _quantity_gi(q: str) -> float:
    """A binary-suffixed (or plain byte) storage quantity in GiB."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTP]i)?", str(q))
    assert match, f"unsupported quantity {q}"
    power = {None: -3, "Ki": -2, "Mi": -1, "Gi": 0, "Ti": 1, "Pi": 2}[match.group(2)]
    return float(match.group(1)) * 1024.0 ** power


def test_hyp_stor_01_fsx_volume_and_claim(hp):
    m = hp(set={"storage.enabled": True})
    pv = m.get("PersistentVolume", "fsx-pv")
    spec = pv["spec"]
    assert spec["csi"]["driver"] == "fsx.csi.aws.com" and spec["csi"]["volumeHandle"]
    assert {"dnsname", "mountname"} <= set(spec["csi"]["volumeAttributes"])
    assert spec["csi"]["volumeAttributes"]["mountname"] == "fsx"
    assert spec["accessModes"] == ["ReadWriteMany"] and spec["mountOptions"] == ["flock"]
    assert spec["persistentVolumeReclaimPolicy"] == "Retain" and spec["capacity"]["storage"] == "1200Gi"
    assert spec.get("volumeMode", "Filesystem") == "Filesystem"
    pvc = m.get("PersistentVolumeClaim", "fsx-claim", F.NAMESPACE)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1200Gi"
    assert pvc["spec"]["storageClassName"] == "fsx-sc"
    other = hp(set={"storage.enabled": True}, namespace="storage-test")
    assert other.get("PersistentVolumeClaim", "fsx-claim", "storage-test")


def test_hyp_stor_02_claim_is_bindable_to_the_volume(hp):
    m = hp(set={"storage.enabled": True})
    pv, pvc = m.get("PersistentVolume", "fsx-pv"), m.get("PersistentVolumeClaim", "fsx-claim", F.NAMESPACE)
    assert pvc["spec"]["volumeName"] == "fsx-pv"
    assert pv["spec"].get("storageClassName", "") == pvc["spec"].get("storageClassName", "")
    assert set(pvc["spec"]["accessModes"]) <= set(pv["spec"]["accessModes"])
    assert _quantity_gi(pvc["spec"]["resources"]["requests"]["storage"]) <= _quantity_gi(pv["spec"]["capacity"]["storage"])
    assert pvc["spec"].get("volumeMode", "Filesystem") == pv["spec"].get("volumeMode", "Filesystem")
    ref = pv["spec"].get("claimRef")
    if ref:
        assert (ref["name"], ref.get("namespace")) == ("fsx-claim", F.NAMESPACE)


# == Sub-charts and the inference operator =======================================================================================
def test_hyp_sub_01_team_subchart_alone_renders_exactly_the_team_objects(render, chart_dir):
    sub = subchart_dir(chart_dir, "team-role-and-bindings")
    m = render(sub, set={"computeQuotaTarget.targetId": "solo"}, release=F.RELEASE, namespace="default")
    assert sorted(F.key(o) for o in m) == sorted((k, n, ns or "") for k, n, ns in F.team_objects("solo"))
    assert_team(m, "solo")
    assert "computeQuotaTarget.targetId" in render.error(sub, release=F.RELEASE, namespace="default")


@pytest.mark.parametrize("name", sorted(n for n, d in F.DEPENDENCIES.items()))
def test_hyp_sub_02_every_local_subchart_renders_on_its_own(render, chart_dir, name):
    sub = subchart_dir(chart_dir, name)
    values, sets = [], None
    if name == "team-role-and-bindings":
        sets = {"computeQuotaTarget.targetId": "solo"}
    if name == "hyperpod-inference-operator":
        values = [F.inference_values(prefix="")]
    m = render(sub, values, sets, release=F.RELEASE, namespace=F.NAMESPACE, args=CRDS)
    assert len(m) > 0
    for entry in F.expected_objects(team_id="solo")[name]:
        assert any(F.matches(entry, o) for o in m), f"{name} alone: {entry} missing"


def test_hyp_inf_01_inference_operator_objects_with_required_values(hp):
    m = hp([F.inference_values()], {"inferenceOperators.enabled": True})
    for entry in F.expected_objects()["hyperpod-inference-operator"]:
        assert any(F.matches(entry, o) for o in m), entry
    dep = m.get("Deployment", "hyperpod-inference-operator-controller-manager")
    image = containers(dep)[0]["image"]
    assert image.endswith("/hyperpod-inference-operator:v1.0.0") and ".us-west-2." in image, image
    sa = m.get("ServiceAccount", "hyperpod-inference-operator-controller-manager")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == F.INFERENCE_REQUIRED["executionRoleArn"]
    svc = [s for s in m.find("Service") if F.component_of(m, s) == "hyperpod-inference-operator"]
    assert any(p["port"] == 8443 for s in svc for p in s["spec"]["ports"])
    kinds = {o["kind"] for o in m if F.component_of(m, o) == "hyperpod-inference-operator"}
    assert {"ClusterRole", "Role"} <= kinds
    crds = [o for o in m.find("CustomResourceDefinition") if o["spec"]["group"] == "inference.sagemaker.aws.amazon.com"]
    assert all([v["name"] for v in c["spec"]["versions"]] == ["v1alpha1"] for c in crds) and len(crds) == 3
    # third-party prerequisites are not bundled
    names = {F.key(o)[1] for o in m}
    for bundled in ("cert-manager", "keda-operator", "metrics-server", "aws-load-balancer-controller", "s3-csi-node",
                    "fsx-csi-controller"):
        assert bundled not in names, f"{bundled} must be a prerequisite, not part of the chart"
    assert not [o for o in m.find("ValidatingWebhookConfiguration")] + [o for o in m.find("MutatingWebhookConfiguration")]


@pytest.mark.parametrize("missing", sorted(F.INFERENCE_REQUIRED))
def test_hyp_inf_01_each_missing_required_value_fails_naming_it(hp, missing):
    message = hp.error([F.inference_values(drop=missing)], {"inferenceOperators.enabled": True})
    assert missing in message, f"{missing}: {message}"
