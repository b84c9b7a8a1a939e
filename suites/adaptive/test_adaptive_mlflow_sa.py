"""Adaptive contract, E "MLflow, ServiceAccount" (ADP-MLFLOW-01, ADP-SA-01; D.2 app pods, D.3/D.4 MLflow
env): the MLflow server and its env only when enabled; every app pod runs as `serviceAccount.name` with
the `imagePullSecrets`; the global `volumes`/`volumeMounts` reach the pods D.4/D.5 name."""

from __future__ import annotations

import adaptive_facts as F
import pytest

from chartproof.manifest import all_containers, container, dig, env_map, pod_spec, ref


@pytest.mark.contract("ADP-MLFLOW-01")
def test_mlflow_on_by_default_with_its_env_and_service(render):
    m = render(F.CHART)
    dep = m.get("Deployment", F.MLFLOW)
    item = container(dep, "mlflow")
    assert "ghcr.io/mlflow/mlflow:v3.1.1" in str(item.get("image")), f"mlflow image: found {item.get('image')!r}"
    F.expect_env(F.effective_env(m, item), {
        "MLFLOW_WORKERS": "4", "MLFLOW_BACKEND_STORE_URI": "sqlite:///mlflow-storage/mlflow.db",
        "MLFLOW_DEFAULT_ARTIFACT_ROOT": "mlflow-artifacts:/", "MLFLOW_SERVE_ARTIFACTS": "true",
        "MLFLOW_ARTIFACTS_DESTINATION": "/artifacts"}, f"{ref(dep)} mlflow")
    svc = m.get("Service", F.MLFLOW_SVC)
    http = F.port(svc, "http")
    assert http.get("port") == 5000, f"{ref(svc)} port http: expected 5000, found {http}"
    F.expect_env(F.env_of(m, F.control_plane(m), "control-plane"),
                 {"ADAPTIVE_MLFLOW__ENABLED": "true", "ADAPTIVE_MLFLOW__URL": F.MLFLOW_URL, "MLFLOW_TRACKING_URI": F.MLFLOW_URL},
                 "control-plane")
    F.expect_env(F.env_of(m, F.harmony(m), "harmony"), {"MLFLOW_TRACKING_URI": F.MLFLOW_URL}, "harmony")


@pytest.mark.contract("ADP-MLFLOW-01")
def test_mlflow_artifacts_go_under_the_mount_path(render):
    m = render(F.CHART, set={"mlflow.mountPath": "/mlflow-storage"})
    found = F.env_of(m, m.get("Deployment", F.MLFLOW), "mlflow").get("MLFLOW_ARTIFACTS_DESTINATION")
    assert found == "/mlflow-storage/artifacts", f"mountPath /mlflow-storage: expected MLFLOW_ARTIFACTS_DESTINATION " \
                                                 f"/mlflow-storage/artifacts, found {found!r}"


@pytest.mark.contract("ADP-MLFLOW-01")
def test_mlflow_off_removes_it_and_all_mlflow_env(render):
    m = render(F.CHART, set={"mlflow.enabled": False})
    left = [ref(o) for o in m if dig(o, "metadata.name") in (F.MLFLOW, F.MLFLOW_SVC)] + \
        [ref(o) for o in m.select(F.WORKLOAD_KINDS, labels={F.COMPONENT: "mlflow"})]
    assert not left, f"mlflow off: expected no MLflow object, found {left}"
    env = [f"{ref(o)}/{c.get('name')}: {k}" for o in m.select(F.WORKLOAD_KINDS) for c in all_containers(o)
           for k in env_map(c) if "MLFLOW" in k]
    assert not env, f"mlflow off: expected no MLflow env, found {env}"


@pytest.mark.contract("ADP-SA-01")
@pytest.mark.parametrize("create", [True, False])
def test_app_pods_use_the_named_service_account(render, create):
    m = render(F.CHART, [F.pools("p")], set={"serviceAccount.create": create, "serviceAccount.name": "my-sa"})
    assert bool(m.select("ServiceAccount", name="my-sa")) == create, \
        f"serviceAccount.create {create}: ServiceAccount my-sa {'missing' if create else 'rendered'}; " \
        f"found {m.names('ServiceAccount')}"
    workloads = F.app_workloads(m)
    components = {(dig(o, "metadata.labels", {}) or {}).get(F.COMPONENT) for o in workloads}
    assert components >= set(F.APP_COMPONENTS), f"expected app workloads of {F.APP_COMPONENTS}, found {components}"
    wrong = {ref(o): pod_spec(o).get("serviceAccountName") for o in workloads if pod_spec(o).get("serviceAccountName") != "my-sa"}
    assert not wrong, f"expected serviceAccountName my-sa on every app pod, found {wrong}"


@pytest.mark.contract("ADP-SA-01")
def test_default_service_account(render):
    m = render(F.CHART)
    assert m.select("ServiceAccount", name=F.DEFAULT_SA), f"expected ServiceAccount {F.DEFAULT_SA}, found {m.names('ServiceAccount')}"
    wrong = {ref(o): pod_spec(o).get("serviceAccountName") for o in F.app_workloads(m)
             if pod_spec(o).get("serviceAccountName") != F.DEFAULT_SA}
    assert not wrong, f"expected serviceAccountName {F.DEFAULT_SA} on every app pod, found {wrong}"


@pytest.mark.contract("ADP-SA-01")
def test_image_pull_secrets_reach_every_app_pod(render):
    m = render(F.CHART, [F.pools("p"), {"imagePullSecrets": [{"name": "regcred"}]}])
    wrong = {ref(o): pod_spec(o).get("imagePullSecrets") for o in F.app_workloads(m)
             if {"name": "regcred"} not in (pod_spec(o).get("imagePullSecrets") or [])}
    assert not wrong, f"expected imagePullSecrets regcred on every app pod, found {wrong}"


@pytest.mark.contract("ADP-HARMONY-01", "ADP-POOL-01")
def test_global_volumes_reach_control_plane_harmony_and_pools(render):
    values = {"volumes": [{"name": "extra", "emptyDir": {}}], "volumeMounts": [{"name": "extra", "mountPath": "/extra"}]}
    m = render(F.CHART, [F.pools("p"), values])
    for obj in (F.control_plane(m), F.harmony(m), F.pool(m, "p")):
        assert F.volume(obj, "extra") is not None, f"{ref(obj)}: expected global volume extra"
    for obj, name in ((F.control_plane(m), "control-plane"), (F.harmony(m), "harmony"), (F.harmony(m), "init-permissions")):
        assert "/extra" in F.mount_of(container(obj, name), "extra"), f"{ref(obj)} {name}: expected volume extra at /extra"
