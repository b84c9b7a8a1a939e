"""HyperPod contract E, "Training operators": the Kubeflow training operator and the MPI operator (D wiring)."""

from __future__ import annotations

import hyperpod_facts as F
import pytest

from chartproof.manifest import container_running, dig, env_map, fragment, pod_spec, template_labels

TRAINING_DEPLOYMENT = f"{F.RELEASE}-training-operators"
MPI_DEPLOYMENT = f"{F.RELEASE}-mpi-operator"


def _words(ctr: dict) -> list[str]:
    return [str(a) for a in (ctr.get("command") or []) + (ctr.get("args") or [])]


def _crds_of_kind(m, kind: str) -> list[dict]:
    return m.select("CustomResourceDefinition", where=lambda o: dig(o, "spec.names.kind") == kind)


def _version_names(crd: dict) -> list[str]:
    return [str(v.get("name")) for v in dig(crd, "spec.versions", []) or [] if isinstance(v, dict)]


@pytest.mark.contract("HYP-TRAIN-01")
def test_hyp_train_01_schemes_enabled_without_mpijob(hp):
    m = hp()
    dep = m.get("Deployment", TRAINING_DEPLOYMENT, "kubeflow")
    ctr = container_running(dep, "training-operator")
    schemes = [a.split("=", 1)[1] for a in _words(ctr) if a.startswith("--enable-scheme=")]
    assert sorted(schemes) == sorted(F.TRAINING_SCHEMES), \
        f"--enable-scheme arguments: expected one each for {sorted(F.TRAINING_SCHEMES)}, found {schemes}"
    for plural in F.TRAINING_CRDS:
        crd = m.get("CustomResourceDefinition", f"{plural}.kubeflow.org")
        assert _version_names(crd) == ["v1"], f"{plural}.kubeflow.org versions: expected ['v1'], found {_version_names(crd)}"


@pytest.mark.contract("HYP-TRAIN-01")
def test_hyp_train_01_training_operators_ship_no_mpijob_crd(hp):
    """With the MPI operator off, nothing (the training operators included) ships an MPIJob CRD."""
    m = hp(set={"mpi-operator.enabled": False})
    found = [dig(o, "metadata.name") for o in _crds_of_kind(m, "MPIJob")] + \
        [n for n in m.names("CustomResourceDefinition") if n == "mpijobs.kubeflow.org"]
    assert not found, f"MPIJob CRDs with mpi-operator off: expected none, found {sorted(set(found))}"


@pytest.mark.contract("HYP-TRAIN-02")
def test_hyp_train_02_training_operator_deployment_wiring(hp):
    m = hp()
    dep = m.get("Deployment", TRAINING_DEPLOYMENT, "kubeflow")
    assert dig(dep, "spec.replicas", 1) == 1, f"replicas: expected 1, found {dig(dep, 'spec.replicas')}"
    spec = pod_spec(dep)
    assert spec.get("serviceAccountName") == "training-operator", \
        f"serviceAccountName: expected training-operator, found {spec.get('serviceAccountName')!r}"
    ctr = container_running(dep, "training-operator")
    assert ctr.get("image") == "kubeflow/training-operator:v1-855e096", f"image: found {ctr.get('image')!r}"
    assert (ctr.get("command") or [None])[0] == "/manager", f"command: expected /manager first, found {ctr.get('command')}"
    env = env_map(ctr)
    assert dig(env.get("MY_POD_NAMESPACE"), "fieldRef.fieldPath") == "metadata.namespace", f"MY_POD_NAMESPACE: {env}"
    assert dig(env.get("MY_POD_NAME"), "fieldRef.fieldPath") == "metadata.name", f"MY_POD_NAME: {env}"
    ports = [p.get("containerPort") for p in ctr.get("ports") or []]
    assert 8080 in ports, f"container ports: expected 8080, found {ports}"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        got = (dig(ctr, f"{probe}.httpGet.path"), dig(ctr, f"{probe}.httpGet.port"))
        assert got in ((path, 8081), (path, "8081")), f"{probe}: expected {path} on 8081, found {got}"
    svc = m.get("Service", "training-operator", "kubeflow")
    svc_ports = [(p.get("port"), p.get("name")) for p in dig(svc, "spec.ports", []) or []]
    assert (8080, "monitoring-port") in svc_ports, f"Service ports: expected 8080 monitoring-port, found {svc_ports}"
    selector = dig(svc, "spec.selector", {}) or {}
    pod_labels = template_labels(dep)
    assert selector and all(pod_labels.get(k) == v for k, v in selector.items()), \
        f"Service selector {selector} does not select the operator's pods (labels {pod_labels})"
    admin = m.get("ClusterRole", "kubeflow-training-admin")
    aggregates = dig(admin, "metadata.labels", {}).get("rbac.authorization.kubeflow.org/aggregate-to-kubeflow-admin")
    assert str(aggregates) == "true", f"kubeflow-training-admin must aggregate into kubeflow-admin:\n{fragment(admin)}"
    assert F.allows(admin, "kubeflow.org", "pytorchjobs", "delete") or admin.get("aggregationRule"), \
        f"kubeflow-training-admin grants no pytorchjobs administration:\n{fragment(admin)}"
    for role in ("kubeflow-training-edit", "kubeflow-training-view"):
        m.get("ClusterRole", role)
    crb = m.get("ClusterRoleBinding", "training-operator")
    assert F.role_ref(crb) == ("ClusterRole", "training-operator"), f"roleRef: {F.role_ref(crb)}"
    assert ("ServiceAccount", "training-operator", "kubeflow") in F.subjects(crb), f"subjects: {F.subjects(crb)}"
    operator = m.get("ClusterRole", "training-operator")
    assert F.allows(operator, "kubeflow.org", "pytorchjobs", "update"), f"the operator cannot update pytorchjobs:\n{fragment(operator)}"


@pytest.mark.contract("HYP-MPI-01")
def test_hyp_mpi_01_mpi_operator_objects_and_its_crd(hp):
    m = hp()
    absent = F.missing(m, F.expected_objects()["mpi-operator"])
    assert not absent, f"mpi-operator objects missing: {absent}"
    mpi_crds = _crds_of_kind(m, "MPIJob")
    names = [dig(o, "metadata.name") for o in mpi_crds]
    assert names == ["mpijobs.kubeflow.org"], f"MPIJob CRDs: expected only mpijobs.kubeflow.org, found {names}"
    versions = [v for v in dig(mpi_crds[0], "spec.versions", []) or [] if isinstance(v, dict)]
    assert [v.get("name") for v in versions] == ["v2beta1"], f"mpijobs versions: expected v2beta1, found {versions}"
    v = versions[0]
    assert v.get("served") and v.get("storage") and "status" in (v.get("subresources") or {}), \
        f"mpijobs v2beta1 must be served, stored, with the status subresource: {v.keys()}"
    dep = m.get("Deployment", MPI_DEPLOYMENT, F.NAMESPACE)
    ctr = container_running(dep, "mpi-operator")
    assert ctr.get("image") == "mpioperator/mpi-operator:0.5", f"image: found {ctr.get('image')!r}"
    assert ctr.get("imagePullPolicy") == "IfNotPresent", f"imagePullPolicy: found {ctr.get('imagePullPolicy')!r}"
    assert dig(dep, "spec.replicas", 1) == 1, f"replicas: found {dig(dep, 'spec.replicas')}"
    args = set(_words(ctr))
    want = {"-alsologtostderr", "-stderrthreshold=INFO", "-v=4"}
    assert want <= args, f"additionalArgs: expected {sorted(want)}, missing {sorted(want - args)}"
    sa = pod_spec(dep).get("serviceAccountName")
    assert sa == MPI_DEPLOYMENT, f"serviceAccountName: expected {MPI_DEPLOYMENT}, found {sa!r}"
    crb = m.get("ClusterRoleBinding", MPI_DEPLOYMENT)
    assert F.role_ref(crb) == ("ClusterRole", MPI_DEPLOYMENT), f"roleRef: {F.role_ref(crb)}"
    role = m.get("ClusterRole", MPI_DEPLOYMENT)
    assert F.allows(role, "kubeflow.org", "mpijobs", "update"), f"the operator cannot update mpijobs:\n{fragment(role)}"
