"""A customer's own configuration against the README's promises: for each `--values CHART=FILE`, what the
contract says those values must produce, checked on the render of that file (render tier, no cluster).

    pytest suites/customer -m "not cluster" --values adaptive=their-values.yaml

The behaviour suites prove each promise with values of their own; here the same promises are functions of the
customer's values (merged over the chart's values.yaml): pools, autoscaling, harmony GPUs and placement,
persistence, secret wiring (adaptive); persistence and the Grafana domain (monitoring); which components the
enable flags turn on (hyperpod). A promise the values do not touch is skipped with the reason; a file that
does not render is skipped here and reported once by test_customer_values_render_and_lint. Failures name
keys and objects, never a secret's value.
"""

from __future__ import annotations

import re

import customer_facts as C
import pytest

from chartproof.manifest import (
    container,
    container_running,
    dig,
    ingress_routes,
    pod_spec,
    ref,
    same_quantity,
)


def _need_pools(customer: C.Customer) -> list[dict]:
    found = C.pools(customer)
    if not found:
        pytest.skip(f"the values define no inference pool ({customer.said('harmony.computePool')})")
    return found


def _autoscaling(customer: C.Customer) -> bool:
    return bool(customer.get("autoscaling.enabled", False))


# -- adaptive: pools -----------------------------------------------------------------------------------------
@pytest.mark.contract("ADP-POOL-01")
def test_one_pool_deployment_per_compute_pool_entry(adaptive_customer):
    c = adaptive_customer
    entries = _need_pools(c)
    m = c.manifest
    found = {ref(C.pool_deployment(m, entry.get("name"))) for entry in entries}
    extra = sorted({ref(d) for d in C.pool_deployments(m)} - found)
    assert not extra, f"harmony.computePool lists {len(entries)} pool(s) {[e.get('name') for e in entries]}; " \
                      f"ADP-POOL-01 promises one Deployment each, but the render also has pool Deployments {extra}"
    for entry in entries:
        d = C.pool_deployment(m, entry.get("name"))
        group = C.env_of(m, d, "harmony").get("GROUP")
        assert group == str(entry.get("name")), \
            f"pool {entry.get('name')!r}: D.5 promises env GROUP = the raw pool name, {ref(d)} has GROUP={group!r}"


@pytest.mark.contract("ADP-AUTOSCALE-01")
def test_pool_replicas_are_min_replica_count_without_autoscaling(adaptive_customer):
    c = adaptive_customer
    entries = _need_pools(c)
    if _autoscaling(c):
        pytest.skip("autoscaling.enabled is true: pool sizes are KEDA's (see the ScaledObject tests)")
    m = c.manifest
    for i, entry in enumerate(entries):
        d = C.pool_deployment(m, entry.get("name"))
        expected = int(C.count(entry.get("minReplicaCount", C.POOL_DEFAULTS["minReplicaCount"])))
        found = dig(d, "spec.replicas", 1)
        assert found == expected, \
            f"pool {entry.get('name')!r}: {c.said(C.pool_path(i, 'minReplicaCount'), 1)} and " \
            f"{c.said('autoscaling.enabled')}; ADP-AUTOSCALE-01 promises exactly {expected} replicas " \
            f"(maxReplicaCount ignored), {ref(d)} has {found}"
        scalers = [ref(o) for o in C.autoscalers_of(m, d)]
        assert not scalers, f"pool {entry.get('name')!r}: autoscaling is off ({c.said('autoscaling.enabled')}), " \
                            f"ADP-AUTOSCALE-01 promises no ScaledObject or HPA, found {scalers} scaling {ref(d)}"
    keda = C.keda_objects(m)
    assert not keda, f"{c.said('autoscaling.enabled')}: ADP-AUTOSCALE-01 promises no KEDA object, found {keda}"


@pytest.mark.contract("ADP-POOL-02", "ADP-GPU-01", "ADP-GPU-02")
def test_each_pool_has_its_own_or_harmonys_gpus(adaptive_customer):
    c = adaptive_customer
    entries = _need_pools(c)
    m = c.manifest
    checked = 0
    for i, entry in enumerate(entries):
        setting = C.pool_setting(c, i, "gpusPerReplica")
        if setting.source == "ambiguous":
            continue
        d = C.pool_deployment(m, entry.get("name"))
        h = container(d, "harmony")
        n = C.count(setting.value)
        found = {s: C.gpu_of(h, s) for s in ("requests", "limits")}
        if n > 0:
            wrong = {s: v for s, v in found.items() if v is None or C.count(v) != n}
            assert not wrong, f"{setting.said}: ADP-POOL-02 promises {C.GPU}: {C.text(n)} in requests and limits " \
                              f"of {ref(d)} container harmony, found {found}"
        else:
            present = {s: v for s, v in found.items() if v is not None}
            assert not present, f"{setting.said}: a CPU-only pool (ADP-GPU-02) has no {C.GPU}, {ref(d)} has {present}"
        env = C.env_of(m, d, "harmony")
        expected = C.text(n) if n > 0 else "1"
        got = {k: env.get(k) for k in ("GPU_COUNT", "WORLD_SIZE")}
        assert got == {"GPU_COUNT": expected, "WORLD_SIZE": expected}, \
            f"{setting.said}: D.5 promises GPU_COUNT = WORLD_SIZE = {expected} in {ref(d)}, found {got}"
        checked += 1
    if not checked:
        pytest.skip("every pool sets gpusPerReplica: null, which the contract leaves open (inherit or CPU only)")


@pytest.mark.contract("ADP-POOL-02", "ADP-GPU-05")
def test_each_pool_has_its_own_or_harmonys_placement(adaptive_customer):
    c = adaptive_customer
    entries = _need_pools(c)
    m = c.manifest
    for i, entry in enumerate(entries):
        d = C.pool_deployment(m, entry.get("name"))
        spec = pod_spec(d)
        selector = C.pool_setting(c, i, "nodeSelector")
        if selector.source != "ambiguous":
            expected, found = C.label_map(selector.value), C.label_map(spec.get("nodeSelector"))
            assert found == expected, f"{selector.said}: ADP-POOL-02 promises nodeSelector {expected} (the pool's own " \
                                      f"merged over harmony's) on {ref(d)}, found {found}"
        tolerations = C.pool_setting(c, i, "tolerations")
        if tolerations.source != "ambiguous":
            expected_t, found_t = C.toleration_set(tolerations.value), C.toleration_set(spec.get("tolerations"))
            assert found_t == expected_t, \
                f"{tolerations.said}: ADP-POOL-02/ADP-GPU-05 promise tolerations {tolerations.value or []} on " \
                f"{ref(d)}, found {spec.get('tolerations') or []}"


# -- adaptive: autoscaling ------------------------------------------------------------------------------------
def _need_autoscaled_pools(customer: C.Customer) -> list[dict]:
    entries = _need_pools(customer)
    if not _autoscaling(customer):
        pytest.skip(f"autoscaling is off ({customer.said('autoscaling.enabled')}): no ScaledObject is promised")
    return entries


def _scaled_object(m, d: dict, name) -> dict:
    found = [o for o in C.autoscalers_of(m, d) if o.get("kind") == "ScaledObject"]
    assert len(found) == 1, f"pool {name!r}: autoscaling on, ADP-AUTOSCALE-02 promises one ScaledObject targeting " \
                            f"{ref(d)}, found {[ref(o) for o in found]}; ScaledObjects: {m.names('ScaledObject')}"
    return found[0]


@pytest.mark.contract("ADP-AUTOSCALE-02")
def test_one_scaled_object_per_pool_with_autoscaling(adaptive_customer):
    c = adaptive_customer
    entries = _need_autoscaled_pools(c)
    m = c.manifest
    mine = {ref(_scaled_object(m, C.pool_deployment(m, e.get("name")), e.get("name"))) for e in entries}
    others = sorted({ref(o) for o in m.select("ScaledObject")} - mine)
    assert not others, f"{len(entries)} pool(s) in harmony.computePool: ADP-AUTOSCALE-02 promises exactly one " \
                       f"ScaledObject per pool, the render also has {others}"
    crds = {dig(o, "metadata.name") for o in m.select("CustomResourceDefinition")}
    if c.get("keda.crds.install", True):
        assert "scaledobjects.keda.sh" in crds, \
            f"{c.said('keda.crds.install')}: ADP-AUTOSCALE-02 promises the KEDA CRDs, scaledobjects.keda.sh is not rendered"
    assert m.with_image("kedacore/"), \
        f"{c.said('autoscaling.enabled')}: ADP-AUTOSCALE-02 promises KEDA's operator, no kedacore image renders"


@pytest.mark.contract("ADP-AUTOSCALE-03")
def test_scaled_object_bounds_and_cooldown_are_the_customers(adaptive_customer):
    c = adaptive_customer
    entries = _need_autoscaled_pools(c)
    m = c.manifest
    cooldown = c.get("autoscaling.coolDownPeriodSeconds", 180)
    for i, entry in enumerate(entries):
        so = _scaled_object(m, C.pool_deployment(m, entry.get("name")), entry.get("name"))
        spec = dig(so, "spec", {}) or {}
        for key, field in (("minReplicaCount", "minReplicaCount"), ("maxReplicaCount", "maxReplicaCount")):
            expected = C.count(entry.get(key, C.POOL_DEFAULTS[key]))
            found = spec.get(field)
            assert found is not None and C.count(found) == expected, \
                f"pool {entry.get('name')!r}: {c.said(C.pool_path(i, key), C.POOL_DEFAULTS[key])}; ADP-AUTOSCALE-03 " \
                f"promises {field} {C.text(expected)} on {ref(so)}, found {found!r}"
        found = spec.get("cooldownPeriod")
        assert found is not None and C.count(found) == C.count(cooldown), \
            f"{c.said('autoscaling.coolDownPeriodSeconds', 180)}: ADP-AUTOSCALE-03 promises cooldownPeriod " \
            f"{cooldown} on {ref(so)}, found {found!r}"


@pytest.mark.contract("ADP-AUTOSCALE-04")
def test_scaled_object_trigger_uses_the_customers_threshold_and_pool_name(adaptive_customer):
    c = adaptive_customer
    entries = _need_autoscaled_pools(c)
    m = c.manifest
    threshold = c.get("autoscaling.ttftTimeoutThreshold", 0.1)
    for entry in entries:
        so = _scaled_object(m, C.pool_deployment(m, entry.get("name")), entry.get("name"))
        triggers = dig(so, "spec.triggers", []) or []
        assert len(triggers) == 1 and triggers[0].get("type") == "prometheus", \
            f"{ref(so)}: ADP-AUTOSCALE-04 promises a single prometheus trigger, found {[t.get('type') for t in triggers]}"
        md = triggers[0].get("metadata") or {}
        found = md.get("threshold")
        assert found is not None and float(found) == float(threshold), \
            f"{c.said('autoscaling.ttftTimeoutThreshold', 0.1)}: ADP-AUTOSCALE-04 promises threshold {threshold} " \
            f"on {ref(so)}, found {found!r}"
        query = "".join(str(md.get("query", "")).split())
        wanted = f'pool="{entry.get("name")}"'
        assert query.count(wanted) >= 2, \
            f"pool {entry.get('name')!r}: ADP-AUTOSCALE-04 promises both rates filtered on the raw name {wanted}, " \
            f"{ref(so)} query is {query}"


# -- adaptive: harmony ----------------------------------------------------------------------------------------
@pytest.mark.contract("ADP-HARMONY-01")
def test_harmony_has_the_customers_replica_count(adaptive_customer):
    c = adaptive_customer
    sts = C.harmony_statefulset(c.manifest)
    expected = int(C.count(c.get("harmony.replicaCount", 1)))
    found = dig(sts, "spec.replicas", 1)
    assert found == expected, f"{c.said('harmony.replicaCount', 1)}: ADP-HARMONY-01 promises {expected} replicas, " \
                              f"{ref(sts)} has {found}"


def _expected_gpu_holders(c: C.Customer, sts: dict) -> tuple[set, list[str]]:
    """(workload, container) pairs that must hold GPUs, and the pools left out as ambiguous."""
    expected: set = set()
    if C.count(c.get("harmony.gpusPerReplica")) > 0:
        expected.add((ref(sts), "harmony"))
    open_pools = []
    for i, entry in enumerate(C.pools(c)):
        setting = C.pool_setting(c, i, "gpusPerReplica")
        d = C.pool_deployment(c.manifest, entry.get("name"))
        if setting.source == "ambiguous":
            open_pools.append(ref(d))
        elif C.count(setting.value) > 0:
            expected.add((ref(d), "harmony"))
    return expected, open_pools


def _check_gpu_holders(c: C.Customer, sts: dict, promise: str) -> None:
    expected, open_pools = _expected_gpu_holders(c, sts)
    found = {h for h in C.gpu_holders(c.manifest) if h[0] not in open_pools}
    extra, missing = sorted(found - expected), sorted(expected - found)
    assert not extra, f"{c.said('harmony.gpusPerReplica')}: {promise} promises {C.GPU} only in the harmony container " \
                      f"(and pools with GPUs), also found in {extra}"
    assert not missing, f"{c.said('harmony.gpusPerReplica')} and the pools' own gpusPerReplica: expected {C.GPU} in " \
                        f"{missing}, not found"


@pytest.mark.contract("ADP-GPU-01")
def test_harmony_requests_the_customers_gpus(adaptive_customer):
    c = adaptive_customer
    n = C.count(c.get("harmony.gpusPerReplica"))
    if n <= 0:
        pytest.skip(f"{c.said('harmony.gpusPerReplica')}: harmony is CPU-only (ADP-GPU-02 applies)")
    m = c.manifest
    sts = C.harmony_statefulset(m)
    h = container(sts, "harmony")
    found = {s: C.gpu_of(h, s) for s in ("requests", "limits")}
    wrong = {s: v for s, v in found.items() if v is None or C.count(v) != n}
    assert not wrong, f"{c.said('harmony.gpusPerReplica')}: ADP-GPU-01 promises {C.GPU}: {C.text(n)} in requests and " \
                      f"limits of {ref(sts)} container harmony, found {found}"
    replicas = C.count(c.get("harmony.replicaCount", 1))
    env = C.env_of(m, sts, "harmony")
    expected = {"GPU_COUNT": C.text(n), "WORLD_SIZE": C.text(n * replicas)}
    got = {k: env.get(k) for k in expected}
    assert got == expected, f"{c.said('harmony.gpusPerReplica')}, {c.said('harmony.replicaCount', 1)}: ADP-GPU-01 " \
                            f"promises {expected} in {ref(sts)}, found {got}"
    _check_gpu_holders(c, sts, "ADP-GPU-01")


@pytest.mark.contract("ADP-GPU-02")
def test_cpu_only_harmony_requests_no_gpu(adaptive_customer):
    c = adaptive_customer
    if C.count(c.get("harmony.gpusPerReplica")) > 0:
        pytest.skip(f"{c.said('harmony.gpusPerReplica')}: harmony has GPUs (ADP-GPU-01 applies)")
    m = c.manifest
    sts = C.harmony_statefulset(m)
    replicas = C.count(c.get("harmony.replicaCount", 1))
    env = C.env_of(m, sts, "harmony")
    expected = {"GPU_COUNT": "1", "WORLD_SIZE": C.text(replicas)}
    got = {k: env.get(k) for k in expected}
    assert got == expected, f"{c.said('harmony.gpusPerReplica')}: ADP-GPU-02 promises {expected} in {ref(sts)}, " \
                            f"found {got}"
    _check_gpu_holders(c, sts, "ADP-GPU-02")


@pytest.mark.contract("ADP-GPU-05")
def test_harmony_has_the_customers_tolerations_and_node_selector(adaptive_customer):
    c = adaptive_customer
    sts = C.harmony_statefulset(c.manifest)
    spec = pod_spec(sts)
    expected = c.get("harmony.tolerations", [])
    assert C.toleration_set(spec.get("tolerations")) == C.toleration_set(expected), \
        f"{c.said('harmony.tolerations')}: ADP-GPU-05 promises exactly those tolerations on {ref(sts)}, " \
        f"found {spec.get('tolerations') or []}"
    selector, found = C.label_map(c.get("harmony.nodeSelector", {})), C.label_map(spec.get("nodeSelector"))
    assert found == selector, f"{c.said('harmony.nodeSelector')}: C.1 promises that nodeSelector on {ref(sts)}, " \
                              f"found {found}"


# -- adaptive: persistence ------------------------------------------------------------------------------------
def _tensorboard_store(c: C.Customer) -> tuple[dict, str, dict | None]:
    if not c.get("tensorboard.enabled", False):
        pytest.skip(f"tensorboard is off ({c.said('tensorboard.enabled')}): no logdir to persist")
    sts = C.harmony_statefulset(c.manifest)
    kind, store = C.store_of_volume(c.manifest, sts, "tensorboard-volume")
    return sts, kind, store


@pytest.mark.contract("ADP-TB-04")
def test_tensorboard_logdir_is_temporary_without_persistence(adaptive_customer):
    c = adaptive_customer
    sts, kind, store = _tensorboard_store(c)
    if c.get("tensorboard.persistentVolume.enabled", False):
        pytest.skip("tensorboard.persistentVolume.enabled is true (ADP-TB-05 applies)")
    assert kind == "emptyDir", f"{c.said('tensorboard.persistentVolume.enabled')}: ADP-TB-04 promises " \
                               f"tensorboard-volume as an emptyDir on {ref(sts)}, found {kind}"
    limit = c.get("tensorboard.emptyDir.sizeLimit")
    found = dig(store, "emptyDir.sizeLimit")
    assert same_quantity(found, limit), f"{c.said('tensorboard.emptyDir.sizeLimit')}: ADP-TB-04 promises sizeLimit " \
                                        f"{limit!r} on tensorboard-volume, found {found!r}"


@pytest.mark.contract("ADP-TB-05")
def test_tensorboard_claim_has_the_customers_class_modes_and_size(adaptive_customer):
    c = adaptive_customer
    sts, kind, claim = _tensorboard_store(c)
    if not c.get("tensorboard.persistentVolume.enabled", False):
        pytest.skip(f"{c.said('tensorboard.persistentVolume.enabled')}: logs are temporary (ADP-TB-04 applies)")
    assert kind == "claim" and claim is not None, \
        f"{c.said('tensorboard.persistentVolume.enabled')}: ADP-TB-05 promises a claim template tensorboard-volume " \
        f"on {ref(sts)}, found {kind}"
    pv = "tensorboard.persistentVolume"
    expected = C.expected_class(c.get(f"{pv}.storageClass"))
    found = C.claim_class(claim)
    assert found == expected, f"{c.said(f'{pv}.storageClass')}: ADP-TB-05 promises storageClassName {expected!r} " \
                              f"(None = omitted) on {C.claim_name(claim)}, found {found!r}"
    modes = c.get(f"{pv}.accessModes") or ["ReadWriteOnce"]
    found_modes = dig(claim, "spec.accessModes", []) or []
    assert set(found_modes) == set(modes), f"{c.said(f'{pv}.accessModes')}: ADP-TB-05 promises accessModes {modes} " \
                                           f"on {C.claim_name(claim)}, found {found_modes}"
    size = c.get(f"{pv}.size", C.TB_DEFAULT_SIZE)
    found_size = dig(claim, "spec.resources.requests.storage")
    assert same_quantity(found_size, size), f"{c.said(f'{pv}.size', C.TB_DEFAULT_SIZE)}: ADP-TB-05 promises " \
                                            f"storage {size} on {C.claim_name(claim)}, found {found_size!r}"
    for part in ("annotations", "labels"):
        wanted = {str(k): str(v) for k, v in (c.get(f"{pv}.{part}", {}) or {}).items()}
        have = {str(k): str(v) for k, v in (dig(claim, f"metadata.{part}", {}) or {}).items()}
        wrong = {k: have.get(k) for k, v in wanted.items() if have.get(k) != v}
        assert not wrong, f"{c.said(f'{pv}.{part}')}: ADP-TB-05 promises those {part} on {C.claim_name(claim)}, " \
                          f"found for those keys {wrong}"


def _prometheus_store(c: C.Customer) -> tuple[dict, str, dict | None]:
    obj = C.workload(c.manifest, C.prometheus_name(c))
    kind, store = C.store_of_volume(c.manifest, obj, "storage-volume")
    return obj, kind, store


@pytest.mark.contract("ADP-PROM-02")
def test_prometheus_has_no_claim_without_persistence(adaptive_customer):
    c = adaptive_customer
    key = "prometheus.server.persistentVolume.enabled"
    if c.get(key, False):
        pytest.skip(f"{key} is true (ADP-PROM-03 applies)")
    obj, kind, _ = _prometheus_store(c)
    assert kind == "emptyDir", f"{c.said(key)}: ADP-PROM-02 promises storage-volume as an emptyDir on {ref(obj)}, " \
                               f"found {kind}"
    templates = [dig(t, "metadata.name") for t in dig(obj, "spec.volumeClaimTemplates", []) or []]
    assert not templates, f"{c.said(key)}: ADP-PROM-02 promises no claim template on {ref(obj)}, found {templates}"


def _prometheus_claim(c: C.Customer) -> tuple[dict, dict]:
    key = "prometheus.server.persistentVolume.enabled"
    if not c.get(key, False):
        pytest.skip(f"Prometheus persistence is off ({c.said(key)}; ADP-PROM-02 applies)")
    obj, kind, claim = _prometheus_store(c)
    assert kind == "claim" and claim is not None, \
        f"{c.said(key)}: ADP-PROM-03 promises a claim for storage-volume on {ref(obj)}, found {kind}"
    return obj, claim


@pytest.mark.contract("ADP-PROM-03")
def test_prometheus_claim_has_the_customers_size(adaptive_customer):
    c = adaptive_customer
    obj, claim = _prometheus_claim(c)
    pv = "prometheus.server.persistentVolume"
    modes = c.get(f"{pv}.accessModes") or ["ReadWriteOnce"]
    found_modes = dig(claim, "spec.accessModes", []) or []
    assert set(found_modes) == set(modes), f"ADP-PROM-03 promises accessModes {modes} on {C.claim_name(claim)} of " \
                                           f"{ref(obj)}, found {found_modes}"
    size = c.get(f"{pv}.size", "10Gi")
    found = dig(claim, "spec.resources.requests.storage")
    assert same_quantity(found, size), f"{c.said(f'{pv}.size', '10Gi')}: ADP-PROM-03 promises storage {size} on " \
                                       f"{C.claim_name(claim)} of {ref(obj)}, found {found!r}"


@pytest.mark.contract("ADP-PROM-04")
def test_prometheus_claim_has_the_customers_storage_class(adaptive_customer):
    c = adaptive_customer
    obj, claim = _prometheus_claim(c)
    readme, community = "prometheus.server.storageClass", "prometheus.server.persistentVolume.storageClass"
    chosen = c.get(community) if c.get(community) not in (None, "") else c.get(readme)
    expected = C.expected_class(chosen)
    found = C.claim_class(claim)
    assert found == expected, f"{c.said(readme)}, {c.said(community)}: ADP-PROM-04 promises storageClassName " \
                              f"{expected!r} (None = omitted) on {C.claim_name(claim)} of {ref(obj)}, found {found!r}"


# -- adaptive: secrets ----------------------------------------------------------------------------------------
@pytest.mark.contract("ADP-SECRET-04")
def test_every_secret_the_pods_read_holds_the_keys_they_read(adaptive_customer):
    c = adaptive_customer
    m = c.manifest
    sources = C.secret_sources(m)
    reads = C.secret_reads(m)
    mode = "ESO mode" if c.get("externalSecret.enabled", False) else "inline mode"
    dangling = []
    for read in reads:
        source = sources.get(read.secret)
        if source is None:
            if not read.optional:
                dangling.append(f"{read.where}: {read.variable} <- Secret {read.secret} (neither rendered nor an "
                                f"ExternalSecret target)")
        elif read.key is not None and read.key not in source.keys and not source.open_keys and not read.optional:
            dangling.append(f"{read.where}: {read.variable} <- Secret {read.secret} key {read.key} "
                            f"(produced by {', '.join(source.by)} with keys {sorted(source.keys)})")
    assert reads, "no pod reads a Secret, though D.3 wires the control plane to its config Secrets"
    assert not dangling, f"{c.said('externalSecret.enabled')} ({mode}): ADP-SECRET-04 promises every secretKeyRef/" \
                         f"envFrom names a Secret and key the release renders or its ExternalSecrets produce; " \
                         f"dangling: {dangling}"


def _need_eso(c: C.Customer) -> None:
    if not c.get("externalSecret.enabled", False):
        pytest.skip(f"secrets are inline ({c.said('externalSecret.enabled')}): no ExternalSecret is promised")


@pytest.mark.contract("ADP-ESO-01")
def test_eso_mode_renders_the_store_and_external_secrets_instead_of_secrets(adaptive_customer):
    c = adaptive_customer
    _need_eso(c)
    m = c.manifest
    stores = m.select("SecretStore")
    assert stores, f"{c.said('externalSecret.enabled')}: ADP-ESO-01 promises a SecretStore, none renders"
    external = m.select("ExternalSecret")
    assert len(external) >= 2, f"{c.said('externalSecret.enabled')}: ADP-ESO-01 promises the control-plane and " \
                               f"harmony ExternalSecrets, found {[ref(o) for o in external]}"
    targets = {dig(es, "spec.target.name") or dig(es, "metadata.name") for es in external}
    rendered = sorted(ref(s) for s in m.select("Secret") if dig(s, "metadata.name") in targets)
    assert not rendered, f"{c.said('externalSecret.enabled')}: ADP-ESO-01 promises no Opaque Secret where an " \
                         f"ExternalSecret creates it, found {rendered}"
    read = {r.secret for r in C.secret_reads(m)}
    assert targets & read, f"ESO mode: no pod reads a Secret the ExternalSecrets create ({sorted(targets)})"


@pytest.mark.contract("ADP-ESO-03")
def test_eso_store_spec_and_remote_refs_are_the_customers(adaptive_customer):
    c = adaptive_customer
    _need_eso(c)
    m = c.manifest
    spec = c.get("externalSecret.spec", {})
    stores = m.select("SecretStore")
    assert stores and all(dig(s, "spec") == spec for s in stores), \
        f"externalSecret.spec{' (yours)' if c.given('externalSecret.spec') else ' (chart default)'}: ADP-ESO-03 " \
        f"promises the SecretStore spec verbatim, found a different spec on {[ref(s) for s in stores]}"
    store_names = {dig(s, "metadata.name") for s in stores}
    unlinked = [ref(es) for es in m.select("ExternalSecret") if dig(es, "spec.secretStoreRef.name") not in store_names
                or dig(es, "spec.secretStoreRef.kind", "SecretStore") != "SecretStore"]
    assert not unlinked, f"ADP-ESO-03 promises every ExternalSecret references the release's SecretStore " \
                         f"{sorted(store_names)} (kind SecretStore); these do not: {unlinked}"
    refs = C.remote_refs(m)
    wrong = []
    for item, keys in C.ESO_ITEMS.items():
        path = ("externalSecret", "data", *item, "remoteRef")
        expected = c.get(path)
        if expected is None:
            continue
        for key in keys:
            found = refs.get(key, [])
            if not found or any(r != expected for _, r in found):
                wrong.append(f"{C.dotted(path)} -> key {key}: expected remoteRef {expected}, found "
                             f"{[f'{name}: {r}' for name, r in found] or 'no ExternalSecret data entry'}")
    assert not wrong, f"ADP-ESO-03 promises the customer's remoteRefs verbatim: {wrong}"


# -- monitoring -----------------------------------------------------------------------------------------------
def _data_stores(c: C.Customer) -> dict[str, tuple[str, dict | None]]:
    m = c.manifest
    dep = C.workload(m, str(c.get("grafana.name", "grafana")), ("Deployment",))
    sts = C.workload(m, "loki", ("StatefulSet",))
    grafana, loki = container_running(dep, "grafana"), container_running(sts, "loki")
    out = {f"{ref(dep)} {C.GRAFANA_DATA}": C.store_of_path(m, dep, grafana, C.GRAFANA_DATA)}
    out.update({f"{ref(sts)} {p}": C.store_of_path(m, sts, loki, p) for p in C.LOKI_DATA})
    return out


def _need_persistence(c: C.Customer) -> dict[str, tuple[str, dict | None]]:
    if not c.get("grafana.enablePersistence", False):
        pytest.skip(f"persistence is off ({c.said('grafana.enablePersistence')}; MON-PERSIST-01 applies)")
    stores = _data_stores(c)
    wrong = {where: kind for where, (kind, _) in stores.items() if kind != "claim"}
    assert not wrong, f"{c.said('grafana.enablePersistence')}: MON-PERSIST-02 promises Grafana's and Loki's data " \
                      f"on claims, found {wrong}"
    return stores


@pytest.mark.contract("MON-PERSIST-01")
def test_monitoring_data_is_temporary_without_persistence(monitoring_customer):
    c = monitoring_customer
    if c.get("grafana.enablePersistence", False):
        pytest.skip("grafana.enablePersistence is true (MON-PERSIST-02 applies)")
    stores = _data_stores(c)
    wrong = {where: kind for where, (kind, _) in stores.items() if kind != "emptyDir"}
    assert not wrong, f"{c.said('grafana.enablePersistence')}: MON-PERSIST-01 promises emptyDir for Grafana and " \
                      f"Loki data, found {wrong}"
    claims = [ref(o) for o in c.manifest.select("PersistentVolumeClaim")]
    assert not claims, f"{c.said('grafana.enablePersistence')}: MON-PERSIST-01 promises no PVC, found {claims}"


@pytest.mark.contract("MON-PERSIST-02")
def test_grafana_claim_has_the_customers_name_and_size(monitoring_customer):
    c = monitoring_customer
    stores = _need_persistence(c)
    _, claim = next(v for k, v in stores.items() if k.endswith(C.GRAFANA_DATA))
    name, size = c.get("grafana.pvc.name", "grafana"), c.get("grafana.pvc.size", "2Gi")
    assert claim.get("kind") == "PersistentVolumeClaim" and dig(claim, "metadata.name") == name, \
        f"{c.said('grafana.pvc.name')}: MON-PERSIST-02 promises {C.GRAFANA_DATA} on PVC {name}, found {C.claim_name(claim)}"
    modes = dig(claim, "spec.accessModes", []) or []
    assert modes == ["ReadWriteOnce"], f"MON-PERSIST-02 promises PVC {name} ReadWriteOnce, found {modes}"
    found = dig(claim, "spec.resources.requests.storage")
    assert same_quantity(found, size), f"{c.said('grafana.pvc.size')}: MON-PERSIST-02 promises {size} on PVC {name}, " \
                                       f"found {found!r}"


@pytest.mark.contract("MON-PERSIST-02", "MON-PERSIST-03")
def test_monitoring_claims_have_the_customers_storage_class(monitoring_customer):
    c = monitoring_customer
    stores = _need_persistence(c)
    setting = c.get("grafana.storageClass", "")
    if setting == "-":
        pytest.skip('grafana.storageClass="-": C.2 gives no rule for "-" (only "" -> the default class)')
    expected = None if setting in (None, "") else str(setting)
    promise = "MON-PERSIST-03 promises claims without storageClassName (the default class)" if expected is None \
        else f"MON-PERSIST-02 promises claims of class {expected}"
    wrong = {where: C.claim_class(claim) for where, (_, claim) in stores.items() if C.claim_class(claim) != expected}
    assert not wrong, f"{c.said('grafana.storageClass')}: {promise}, found classes {wrong}"


@pytest.mark.contract("MON-PERSIST-02", extension=True)
def test_loki_claims_have_the_customers_size(monitoring_customer):
    c = monitoring_customer
    stores = _need_persistence(c)
    size = c.get("loki.loki.persistence.size", C.LOKI_DEFAULT_SIZE)
    wrong = {where: dig(claim, "spec.resources.requests.storage") for where, (_, claim) in stores.items()
             if " /data" in where or " /db" in where
             if not same_quantity(dig(claim, "spec.resources.requests.storage"), size)}
    assert not wrong, f"{c.said('loki.loki.persistence.size', C.LOKI_DEFAULT_SIZE)}: MON-PERSIST-02 (inferred) " \
                      f"sizes Loki's claims {size}, found {wrong}"


def _need_proxy(c: C.Customer) -> str:
    if not c.get("grafana.proxy.enable", True):
        pytest.skip(f"the Grafana proxy is off ({c.said('grafana.proxy.enable')}): no /monitoring route is promised")
    return str(c.get("grafana.proxy.domain"))


@pytest.mark.contract("MON-ROUTE-01")
def test_grafana_serves_the_customers_domain(monitoring_customer):
    c = monitoring_customer
    domain = _need_proxy(c)
    scheme = c.get("grafana.proxy.scheme", "https")
    dep = C.workload(c.manifest, str(c.get("grafana.name", "grafana")), ("Deployment",))
    env = C.env(c.manifest, container_running(dep, "grafana"))
    expected = {"GF_SERVER_DOMAIN": domain, "GF_SERVER_ROOT_URL": f"{scheme}://{domain}/monitoring/"}
    got = {k: env.get(k) for k in expected}
    assert got == expected, f"{c.said('grafana.proxy.domain')}, {c.said('grafana.proxy.scheme')}: D.9 promises " \
                            f"{expected} on {ref(dep)}, found {got}"


@pytest.mark.contract("MON-ROUTE-01")
def test_monitoring_route_is_on_the_customers_domain(monitoring_customer):
    c = monitoring_customer
    domain = _need_proxy(c)
    if not c.get("grafana.ingress.enabled", True):
        pytest.skip(f"the customer routes /monitoring themselves ({c.said('grafana.ingress.enabled')})")
    m = c.manifest
    routes = ingress_routes(m, domain, "/monitoring")
    assert routes, f"{c.said('grafana.proxy.domain')}: MON-ROUTE-01 promises an Ingress routing {domain}/monitoring " \
                   f"(Prefix), routes rendered: {C.all_routes(m) or 'none'}"
    service = str(c.get("grafana.service.name", "grafana"))
    assert any(C.backend_is(m, entry, service, 3000) for _, entry in routes), \
        f"{domain}/monitoring: MON-ROUTE-01 promises backend Service {service} port 3000, found " \
        f"{[dig(e, 'backend') for _, e in routes]}"


# -- hyperpod -------------------------------------------------------------------------------------------------
def _present(m, kind: str, name: str) -> bool:
    return bool(m.select(kind, name=name))


@pytest.mark.contract("HYP-TOGGLE-01", "HYP-DEFAULT-01")
def test_hyperpod_components_follow_their_enable_flags(hyperpod_customer):
    c = hyperpod_customer
    m = c.manifest
    wrong = []
    for component, flag in C.HP_CONDITIONS.items():
        if component in C.HP_DAEMONSETS:
            continue
        on = c.get(flag, True) is not False
        signature = C.hp_signature(c, component)
        found = [f"{k} {n}" for k, n in signature if _present(m, k, n)]
        if on and len(found) < len(signature):
            missing = [f"{k} {n}" for k, n in signature if not _present(m, k, n)]
            wrong.append(f"{component}: {c.said(flag)} turns it on, the render lacks {missing}")
        if not on and found:
            wrong.append(f"{component}: {c.said(flag)} turns it off, the render still has {found}")
    assert not wrong, "HYP-TOGGLE-01 promises each enable flag adds or removes exactly its component: " + "; ".join(wrong)


@pytest.mark.contract("HYP-TOGGLE-01", "HYP-DEFAULT-01")
def test_hyperpod_daemonsets_follow_their_enable_flags(hyperpod_customer):
    c = hyperpod_customer
    m = c.manifest
    wrong = []
    for component in C.HP_DAEMONSETS:
        flag = C.HP_CONDITIONS[component]
        on = c.get(flag, True) is not False
        found = [ref(ds) for ds in C.hp_daemonsets(m, component)]
        if on and not found:
            wrong.append(f"{component}: {c.said(flag)} turns it on, the render has no such DaemonSet")
        if not on and found:
            wrong.append(f"{component}: {c.said(flag)} turns it off, the render still has {found}")
    assert not wrong, f"HYP-TOGGLE-01 promises each device plugin / agent DaemonSet per its flag: {'; '.join(wrong)}; " \
                      f"DaemonSets rendered: {m.names('DaemonSet')}"


@pytest.mark.contract("HYP-TEAM-01", "HYP-TEAM-04")
def test_hyperpod_team_roles_follow_the_customers_target_id(hyperpod_customer):
    c = hyperpod_customer
    on, target, why = C.team_state(c)
    if target is None:
        pytest.skip(f"the values set no computeQuotaTarget.targetId ({why})")
    m = c.manifest
    prefix = f"hyperpod-ns-{target}"
    expected = [("ClusterRole", f"{prefix}-cluster-role"), ("ClusterRoleBinding", f"{prefix}-cluster-role-binding"),
                ("Role", f"{prefix}-namespace-role"), ("RoleBinding", f"{prefix}-namespace-role-binding")]
    missing = [f"{k} {n}" for k, n in expected if not _present(m, k, n)]
    assert on and not missing, f"{why}: HYP-TEAM-01 promises the four team objects for {target!r}, missing {missing}"
    team = {ref(o) for o in m if re.match(r"hyperpod-ns-", str(dig(o, "metadata.name", "")))}
    others = sorted(team - {ref(o) for k, n in expected for o in m.select(k, name=n)})
    assert not others, f"{why}: expected team objects only for {target!r}, also found {others}"
