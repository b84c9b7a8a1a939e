"""The twenty checks of tests/bench/helm-unittest/adaptive, one for one, written as Chartproof tests.

The render bench (chartproof.bench_render) times these against helm-unittest running its own suites on the
same chart: the same values, the same assertions, so the figure compares the two engines and not two test
lists. The name does not match ``test_*.py`` on purpose: `pytest tests` leaves it out; the bench names it.
Objects are found by what the contract promises (kind and component label), as in suites/.
"""

from __future__ import annotations

import pytest

from chartproof.manifest import Manifest, dig

CHART = "adaptive"
COMPONENT = "app.kubernetes.io/component"


def workload(m: Manifest, kind: str, component: str) -> dict:
    return m.one(kind, labels={COMPONENT: component})


def control_plane(m: Manifest) -> dict:
    return workload(m, "Deployment", "control-plane")


def harmony(m: Manifest) -> dict:
    return workload(m, "StatefulSet", "harmony")


def env(obj: dict) -> list[dict]:
    return dig(obj, "spec.template.spec.containers", [{}])[0].get("env") or []


def has_env(obj: dict, **entry) -> None:
    found = env(obj)
    assert entry in found, f"{obj['kind']} {obj['metadata']['name']}: expected env {entry}, found {found}"


@pytest.mark.parametrize("values, expected", [
    ({}, "true"), ({"controlPlane.runDbMigrations": False}, "false")], ids=["default", "off"])
def test_database_migrations(render, values, expected):
    has_env(control_plane(render(CHART, set=values)), name="ADAPTIVE_DB__RUN_MIGRATIONS", value=expected)


def test_secure_session_cookies_off(render):
    has_env(control_plane(render(CHART, set={"auth.session.secure": False})),
            name="ADAPTIVE_AUTH__SESSION__SECURE", value="false")


def test_auth_values_reach_the_control_plane(render):
    cp = control_plane(render(CHART, set={"auth.default_role": "read-only", "auth.default_team": "research"}))
    has_env(cp, name="ADAPTIVE_AUTH__DEFAULT_ROLE", value="read-only")
    has_env(cp, name="ADAPTIVE_AUTH__DEFAULT_TEAM", value="research")


def test_documented_env_defaults(render):
    cp = control_plane(render(CHART))
    has_env(cp, name="ADAPTIVE_SERVER__BIND", value="0.0.0.0:9000")
    has_env(cp, name="ADAPTIVE_AUTH__SESSION__EXPIRATION_SECONDS", value="518400")
    has_env(cp, name="IMAGE_TAG", value="control-plane:latest")


def test_database_url_from_the_config_secret(render):
    has_env(control_plane(render(CHART)), name="ADAPTIVE_DB__URL",
            valueFrom={"secretKeyRef": {"name": "adaptive-control-plane-config-secret", "key": "dbUrl"}})


def test_image_from_registry_repository_and_tag(render):
    cp = control_plane(render(CHART, set={"containerRegistry": "reg.example.com:5000/org",
                                          "controlPlane.image.repository": "repo/c",
                                          "controlPlane.image.tag": "control-plane:4.5"}))
    assert dig(cp, "spec.template.spec.containers")[0]["image"] == "reg.example.com:5000/org/repo/c:control-plane:4.5"


def test_harmony_replicas(render):
    assert harmony(render(CHART, set={"harmony.replicaCount": 3}))["spec"]["replicas"] == 3


def test_torch_world_size(render):
    hm = harmony(render(CHART, set={"harmony.replicaCount": 3}))
    has_env(hm, name="WORLD_SIZE", value="24")
    has_env(hm, name="MASTER_ADDR", value="adaptive-harmony-0.adaptive-harmony-hdls-svc")


def test_harmony_ports(render):
    ports = dig(harmony(render(CHART)), "spec.template.spec.containers")[0]["ports"]
    for port in ({"name": "http", "containerPort": 50053, "protocol": "TCP"},
                 {"name": "torch", "containerPort": 7777, "protocol": "TCP"}):
        assert port in ports, f"expected port {port}, found {ports}"


def test_gpus_per_replica(render):
    hm = harmony(render(CHART, set={"harmony.gpusPerReplica": 4}))
    assert dig(hm, "spec.template.spec.containers")[0]["resources"]["limits"]["nvidia.com/gpu"] == 4


def test_tolerates_the_gpu_taint(render):
    tolerations = dig(harmony(render(CHART)), "spec.template.spec.tolerations", [])
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations


@pytest.mark.parametrize("release, name", [("adaptive", "adaptive-control-plane"), ("acme", "acme-adaptive-control-plane")])
def test_control_plane_name(render, release, name):
    assert control_plane(render(CHART, release=release))["metadata"]["name"] == name


def test_harmony_headless_service_name(render):
    assert harmony(render(CHART))["spec"]["serviceName"] == "adaptive-harmony-hdls-svc"


def test_name_override_renames_the_name_label(render):
    hm = harmony(render(CHART, set={"nameOverride": "foo"}))
    assert hm["metadata"]["labels"]["app.kubernetes.io/name"] == "foo"
    assert hm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "foo"


def test_one_deployment_per_compute_pool(render):
    m = render(CHART, [{"harmony": {"computePool": [{"name": "pool-a"}, {"name": "pool-b"}]}}])
    assert len(m.select("Deployment", labels={COMPONENT: "harmony-dpl"})) == 2


def test_pool_named_and_labelled_in_kebab_case(render):
    m = render(CHART, [{"harmony": {"computePool": [{"name": "Pool-A"}]}}])
    pool = m.one("Deployment", labels={COMPONENT: "harmony-dpl"})
    assert pool["metadata"]["name"] == "adaptive-harmony-dpl-pool-a"
    assert dig(pool, "spec.template.metadata.labels")["inference-pool"] == "pool-a"


def test_refuses_a_render_without_the_cookies_secret(render):
    assert "cookiesSecret" in render.error(CHART, set={"secrets.cookiesSecret": ""})


def test_database_url_in_the_control_plane_secret(render):
    m = render(CHART, set={"secrets.dbUrl": "postgres://u:p@h:5432/d"})
    assert "dbUrl" in m.get("Secret", "adaptive-control-plane-config-secret").get("data", {})
