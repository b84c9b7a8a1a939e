"""Adaptive contract, E "Harmony and GPUs" (ADP-HARMONY-01, ADP-GPU-*; D.4 harmony StatefulSet, D.2 its
Services and ConfigMaps): the StatefulSet `<hm>` with its env, ports, volumes, sidecar and annotations; GPUs
requested only by the `harmony` container; the default toleration of the `nvidia.com/gpu` taint."""

from __future__ import annotations

import json

import adaptive_facts as F
import pytest

from chartproof.manifest import (
    all_containers,
    container,
    dig,
    fragment,
    pod_spec,
    quantity,
    ref,
    template_annotations,
)


def default_render(render):
    """The chart's default render, made in the test's own call: when helm refuses it (helm 3.8 renders as
    Kubernetes 1.23, below the chart's kubeVersion), that refusal is the promise's failure, not a setup error."""
    return render(F.CHART)


@pytest.mark.contract("ADP-HARMONY-01")
@pytest.mark.parametrize("replicas", [1, 3])
def test_statefulset_has_replica_count_and_headless_service_name(render, replicas):
    sts = F.harmony(render(F.CHART, set={"harmony.replicaCount": replicas}))
    assert dig(sts, "spec.replicas", 1) == replicas, f"{ref(sts)}: expected {replicas} replicas, found {dig(sts, 'spec.replicas')}"
    assert dig(sts, "spec.serviceName") == F.HM_HDLS, f"{ref(sts)} serviceName: expected {F.HM_HDLS}, found " \
                                                      f"{dig(sts, 'spec.serviceName')!r}"


@pytest.mark.contract("ADP-HARMONY-01")
def test_harmony_env_is_d4(render):
    m = render(F.CHART, set={"harmony.replicaCount": 3, "harmony.group": "g1", "harmony.partitionKey": "pk1",
                             "harmony.extraEnvVars.EXTRA": "x"})
    h = container(F.harmony(m), "harmony")
    env = F.effective_env(m, h)
    F.expect_env(env, {
        "GPU_COUNT": "8", "WORLD_SIZE": "24", "MASTER_ADDR": f"{F.HM}-0.{F.HM_HDLS}", "MASTER_PORT": "7777",
        "QUEUE_PORT": "50052", "CONTROL_PLANE_URL": f"http://{F.CP_SVC}:9009", "GROUP": "g1",
        "GROUP_CAPABILITIES": "TRAINING,INFERENCE,EVALUATION", "PARTITION_KEY": "pk1",
        "SERVICE_URL": f"http://{F.HM_SVC}:80", "ADAPTIVE_LOGGING_LEVEL": "info", "ADAPTIVE_MODE": "PROD",
        "JOB_LOG_DIR": "/opt/adaptive/working_dir/job_logs", "IMAGE_TAG": "harmony:latest", "EXTRA": "x",
    }, "harmony container")
    ordinal = env.get("ORDINAL")
    assert isinstance(ordinal, dict) and dig(ordinal, "fieldRef.fieldPath"), \
        f"ORDINAL must be the pod's ordinal (a downward-API reference, not a literal), found {ordinal!r}"
    assert F.HM_SECRET in F.env_from_secrets(h), f"harmony: expected envFrom Secret {F.HM_SECRET}, found {h.get('envFrom')}"


@pytest.mark.contract("ADP-HARMONY-01")
def test_harmony_container_ports(render):
    default = default_render(render)
    ports = F.container_ports(container(F.harmony(default), "harmony"))
    expected = {"http": 50053, "queue": 50052, "torch": 7777}
    wrong = {k: ports.get(k) for k, v in expected.items() if ports.get(k) != v}
    assert not wrong, f"harmony container ports: expected {expected}, found {ports}"


@pytest.mark.contract("ADP-HARMONY-01")
def test_harmony_volumes_and_mounts(render):
    default = default_render(render)
    sts = F.harmony(default)
    h = container(sts, "harmony")
    expected = {"workdir-volume": "/opt/adaptive/working_dir", "cloud-cache-volume": "/opt/adaptive/cloud_cache",
                "harmony-settings-volume": "/opt/adaptive/harmony_settings/docker.json", "dshm": "/dev/shm"}
    wrong = {v: F.mount_of(h, v) for v, path in expected.items() if path not in F.mount_of(h, v)}
    assert not wrong, f"harmony mounts: expected {expected}, found for those volumes {wrong}"
    for name in ("workdir-volume", "cloud-cache-volume"):
        vol = F.volume(sts, name) or {}
        assert "emptyDir" in vol, f"volume {name}: expected an emptyDir, found {vol}"
    dshm = dig(F.volume(sts, "dshm") or {}, "emptyDir", {}) or {}
    assert dshm.get("medium") == "Memory" and dshm.get("sizeLimit") is not None \
        and quantity(dshm["sizeLimit"]) == quantity("8Gi"), f"volume dshm: expected emptyDir Memory 8Gi, found {dshm}"
    settings = F.volume(sts, "harmony-settings-volume") or {}
    assert dig(settings, "configMap.name") == F.SETTINGS_CM, \
        f"volume harmony-settings-volume: expected ConfigMap {F.SETTINGS_CM}, found {settings}"


@pytest.mark.contract("ADP-HARMONY-01")
def test_init_container_chowns_the_work_dirs_as_root(render):
    default = default_render(render)
    init = container(F.harmony(default), "init-permissions")
    assert "busybox" in str(init.get("image")), f"init-permissions: expected a busybox image, found {init.get('image')!r}"
    assert dig(init, "securityContext.runAsUser") == 0, f"init-permissions must run as root\n{fragment(init)}"
    command = " ".join(str(x) for x in (init.get("command") or []) + (init.get("args") or []))
    assert "1002:1000" in command and "chown" in command, f"init-permissions: expected a chown to 1002:1000, found {command!r}"


@pytest.mark.contract("ADP-HARMONY-01")
def test_job_log_exporter_sidecar_and_its_config(render):
    default = default_render(render)
    sts = F.harmony(default)
    alloy = container(sts, "job-log-exporter")
    assert "grafana/alloy" in str(alloy.get("image")), f"job-log-exporter: expected grafana/alloy, found {alloy.get('image')!r}"
    assert 12345 in F.container_ports(alloy).values(), f"job-log-exporter: expected port 12345, found {alloy.get('ports')}"
    for vol, path in (("workdir-volume", "/workdir/"), ("alloy-config", "/etc/alloy")):
        found = [p.rstrip("/") for p in F.mount_of(alloy, vol)]
        assert path.rstrip("/") in found, f"job-log-exporter: expected {vol} at {path}, found {found}"
    assert dig(F.volume(sts, "alloy-config") or {}, "configMap.name") == F.ALLOY_CM, \
        f"volume alloy-config: expected ConfigMap {F.ALLOY_CM}, found {F.volume(sts, 'alloy-config')}"
    config = str((default.get("ConfigMap", F.ALLOY_CM).get("data") or {}).get("config.alloy", ""))
    compact = "".join(config.split())
    missing = [n for n in ("job_*.*.log", "job_id", "type", 'service_name="harmony"', "http://loki:3100/loki/api/v1/push")
               if n not in compact]
    assert not missing, f"config.alloy: missing {missing}\n{config[:1500]}"


@pytest.mark.contract("ADP-HARMONY-01")
def test_settings_configmap_docker_json(render):
    default = default_render(render)
    raw = (default.get("ConfigMap", F.SETTINGS_CM).get("data") or {}).get("docker.json", "")
    try:
        settings = json.loads(raw)
    except ValueError:
        raise AssertionError(f"{F.SETTINGS_CM} docker.json is not JSON: {raw[:500]!r}") from None
    text = json.dumps(settings)
    for path in ("/opt/adaptive/working_dir", "/opt/adaptive/cloud_cache"):
        assert path in text, f"docker.json: expected {path}, found {raw[:800]}"


@pytest.mark.contract("ADP-HARMONY-01")
def test_harmony_pods_carry_the_default_annotations(render):
    default = default_render(render)
    found = template_annotations(F.harmony(default))
    wrong = {k: found.get(k) for k, v in F.HARMONY_ANNOTATIONS.items() if str(found.get(k)) != v}
    assert not wrong, f"harmony pod annotations: expected {F.HARMONY_ANNOTATIONS}, found {found}"


@pytest.mark.contract("ADP-HARMONY-01")
def test_harmony_services(render):
    default = default_render(render)
    hdls = default.get("Service", F.HM_HDLS)
    assert dig(hdls, "spec.clusterIP") == "None", f"{ref(hdls)}: expected headless (clusterIP None)\n{fragment(hdls)}"
    h = container(F.harmony(default), "harmony")
    for name, number in (("http", 50053), ("queue", 50052), ("torch", 7777)):
        p = F.port(hdls, name)
        assert p.get("port") == number and F.target_of(p, h) == number, f"{ref(hdls)} port {name}: expected {number}, found {p}"
    svc = default.get("Service", F.HM_SVC)
    selector = dig(svc, "spec.selector", {}) or {}
    assert selector.get("statefulset.kubernetes.io/pod-name") == f"{F.HM}-0", \
        f"{ref(svc)}: expected to select pod {F.HM}-0, selector {selector}"
    http = F.port(svc, "http")
    assert http.get("port") == 80 and F.target_of(http, h) == 50053, f"{ref(svc)} port http: expected 80 -> 50053, found {http}"


def gpu_holders(m) -> list[str]:
    return [f"{ref(o)}/{c.get('name')}" for o in m.select(F.WORKLOAD_KINDS) for c in all_containers(o)
            if F.gpus(c, "requests") is not None or F.gpus(c, "limits") is not None]


@pytest.mark.contract("ADP-GPU-01")
@pytest.mark.parametrize("n, replicas", [(8, 1), (4, 2), (1, 3)])
def test_gpus_in_the_harmony_container_only(render, n, replicas):
    m = render(F.CHART, set={"harmony.gpusPerReplica": n, "harmony.replicaCount": replicas})
    sts = F.harmony(m)
    h = container(sts, "harmony")
    assert F.has_gpus(h, n), f"harmony container: expected nvidia.com/gpu {n} in requests and limits, found {h.get('resources')}"
    others = [x for x in gpu_holders(m) if x != f"{ref(sts)}/harmony"]
    assert not others, f"only the harmony container may request GPUs; also found in {others}"
    F.expect_env(F.effective_env(m, h), {"GPU_COUNT": str(n), "WORLD_SIZE": str(n * replicas)}, "harmony container")


@pytest.mark.contract("ADP-GPU-01")
def test_gpus_come_on_top_of_harmony_resources(render):
    h = container(F.harmony(render(F.CHART, set={"harmony.gpusPerReplica": 4})), "harmony")
    for section, name, value in (("limits", "cpu", "30"), ("requests", "cpu", "30"), ("limits", "memory", "500Gi"),
                                 ("requests", "memory", "500Gi")):
        assert F.resource_is(h, section, name, value), \
            f"harmony {section}.{name}: expected harmony.resources' {value}, found {h.get('resources')}"


@pytest.mark.contract("ADP-GPU-02")
@pytest.mark.parametrize("setting", [None, 0], ids=["null", "zero"])
def test_cpu_only_has_no_gpu_anywhere(render, setting):
    m = render(F.CHART, [F.pools("p")], set={"harmony.gpusPerReplica": setting, "harmony.replicaCount": 2})
    assert not gpu_holders(m), f"gpusPerReplica {setting}: expected no nvidia.com/gpu, found in {gpu_holders(m)}"
    F.expect_env(F.env_of(m, F.harmony(m), "harmony"), {"GPU_COUNT": "1", "WORLD_SIZE": "2"}, "harmony StatefulSet")
    F.expect_env(F.env_of(m, F.pool(m, "p"), "harmony"), {"GPU_COUNT": "1", "WORLD_SIZE": "1"}, "pool p")


@pytest.mark.contract("ADP-GPU-03")
@pytest.mark.parametrize("n", [3, 5, 7, 16])
def test_any_positive_gpu_count_renders(render, n):
    h = container(F.harmony(render(F.CHART, set={"harmony.gpusPerReplica": n})), "harmony")
    assert F.has_gpus(h, n), f"gpusPerReplica {n}: expected nvidia.com/gpu {n}, found {h.get('resources')}"


@pytest.mark.contract("ADP-GPU-05")
def test_default_tolerates_the_gpu_taint_in_harmony_and_every_pool(render):
    m = render(F.CHART, [F.pools("a", "b")])
    for obj in (F.harmony(m), F.pool(m, "a"), F.pool(m, "b")):
        tolerations = pod_spec(obj).get("tolerations")
        assert F.tolerates(tolerations, F.GPU_TAINT), \
            f"{ref(obj)}: expected to tolerate nvidia.com/gpu:NoSchedule, tolerations {tolerations}"


@pytest.mark.contract("ADP-GPU-05")
def test_user_tolerations_replace_the_default_and_reach_pools(render):
    mine = [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    own = [{"key": "pool-only", "operator": "Exists", "effect": "NoExecute"}]
    m = render(F.CHART, [F.pools("inherit", {"name": "own", "tolerations": own}, tolerations=mine)])
    for obj in (F.harmony(m), F.pool(m, "inherit")):
        found = pod_spec(obj).get("tolerations")
        assert F.toleration_set(found) == F.toleration_set(mine), \
            f"{ref(obj)}: expected exactly harmony.tolerations {mine} (replacing the default), found {found}"
    found = pod_spec(F.pool(m, "own")).get("tolerations")
    assert F.toleration_set(found) == F.toleration_set(own), f"pool own: expected its own {own}, found {found}"
