"""Monitoring chart, persistence (contract adaptive.md MON-PERSIST-01..03, D.9 PVC `grafana.pvc.name`, C.2
`grafana.enablePersistence`, `grafana.storageClass`, `grafana.pvc.*`, `loki.loki.persistence.size`): what
stores Grafana's `/var/lib/grafana` and Loki's `/data` and `/db`, found through the containers' mounts."""

from __future__ import annotations

import monitoring_facts as F
import pytest

from chartproof import yamlio
from chartproof.kube import KubectlError
from chartproof.manifest import dig, fragment, quantity, ref, same_quantity

CLASS = "fast-ssd"


def persisted(storage_class: str | None = CLASS, **grafana) -> list[dict]:
    values = {"enablePersistence": True, **grafana}
    if storage_class is not None:
        values["storageClass"] = storage_class
    return [{"grafana": values}]


def data_stores(m) -> dict[str, tuple[str, dict]]:
    """{"grafana /var/lib/grafana": (kind, volume or claim), "loki /data": ..., "loki /db": ...}."""
    dep, grafana = F.grafana(m)
    sts, loki = F.loki(m)
    out = {f"grafana {F.GRAFANA_DATA}": F.backing(m, dep, grafana, F.GRAFANA_DATA)}
    for path in F.LOKI_DATA:
        out[f"loki {path}"] = F.backing(m, sts, loki, path)
    return out


def claim_summary(claim: dict) -> str:
    return f"{ref(claim) if claim.get('kind') else 'claim template ' + str(dig(claim, 'metadata.name'))}:\n{fragment(claim)}"


@pytest.mark.contract("MON-PERSIST-01", "MON-01")
def test_mon_persist_01_no_claim_by_default(render):
    m = render(F.CHART, release=F.RELEASE)
    claims = [ref(o) for o in m.select("PersistentVolumeClaim")]
    templates = [f"{ref(o)} template {dig(t, 'metadata.name')}" for o in m.select("StatefulSet")
                 for t in dig(o, "spec.volumeClaimTemplates", []) or []]
    assert not claims and not templates, f"defaults: expected no claim, found {claims + templates}"


@pytest.mark.contract("MON-PERSIST-01")
def test_mon_persist_01_grafana_and_loki_data_on_emptydir_by_default(render):
    stores = data_stores(render(F.CHART, release=F.RELEASE))
    wrong = {path: (kind, store) for path, (kind, store) in stores.items() if kind != "emptyDir"}
    assert not wrong, f"defaults: expected emptyDir for {list(stores)}, found {wrong}"


@pytest.mark.contract("MON-PERSIST-02")
def test_mon_persist_02_grafana_data_on_claim_grafana(render):
    m = render(F.CHART, persisted(), release=F.RELEASE)
    dep, grafana = F.grafana(m)
    kind, claim = F.backing(m, dep, grafana, F.GRAFANA_DATA)
    assert kind == "claim", f"{F.GRAFANA_DATA}: expected PVC grafana, found {kind} {claim}"
    assert claim.get("kind") == "PersistentVolumeClaim" and dig(claim, "metadata.name") == "grafana", \
        f"{F.GRAFANA_DATA}: expected PVC grafana, found {claim_summary(claim)}"
    modes = set(dig(claim, "spec.accessModes", []) or [])
    assert modes == {"ReadWriteOnce"}, f"PVC grafana: expected access mode ReadWriteOnce, found {sorted(modes)}"
    size = dig(claim, "spec.resources.requests.storage")
    assert size is not None and same_quantity(size, "2Gi"), f"PVC grafana: expected 2Gi, found {size!r}"
    assert F.storage_class(claim) == CLASS, f"PVC grafana: expected class {CLASS}, found {F.storage_class(claim)!r}"


@pytest.mark.contract("MON-PERSIST-02")
def test_mon_persist_02_grafana_claim_name_and_size_from_values(render):
    m = render(F.CHART, persisted(pvc={"name": "grafana-data", "size": "5Gi"}), release=F.RELEASE)
    dep, grafana = F.grafana(m)
    kind, claim = F.backing(m, dep, grafana, F.GRAFANA_DATA)
    assert kind == "claim" and dig(claim, "metadata.name") == "grafana-data", \
        f"grafana.pvc.name=grafana-data: expected {F.GRAFANA_DATA} on PVC grafana-data, found {kind} {claim_summary(claim)}"
    size = dig(claim, "spec.resources.requests.storage")
    assert size is not None and same_quantity(size, "5Gi"), f"grafana.pvc.size=5Gi: expected 5Gi, found {size!r}"


@pytest.mark.contract("MON-PERSIST-02")
def test_mon_persist_02_loki_data_and_db_on_claims_of_the_class(render):
    stores = data_stores(render(F.CHART, persisted(), release=F.RELEASE))
    for path in (f"loki {p}" for p in F.LOKI_DATA):
        kind, claim = stores[path]
        assert kind == "claim", f"{path}: expected a claim of class {CLASS}, found {kind} {claim}"
        assert F.storage_class(claim) == CLASS, \
            f"{path}: expected class {CLASS}, found {F.storage_class(claim)!r} in {claim_summary(claim)}"


@pytest.mark.contract("MON-PERSIST-02", extension=True)
@pytest.mark.parametrize("size", [None, "20Gi"])
def test_mon_persist_02_loki_claim_templates_sized_by_loki_persistence_size(render, size):
    """The inferred mechanism: StatefulSet claim templates of `loki.loki.persistence.size` (default 10Gi)."""
    values = persisted() + ([{"loki": {"loki": {"persistence": {"size": size}}}}] if size else [])
    m = render(F.CHART, values, release=F.RELEASE)
    sts, loki = F.loki(m)
    templates = {dig(t, "metadata.name"): t for t in dig(sts, "spec.volumeClaimTemplates", []) or []}
    for path in F.LOKI_DATA:
        mount = [mnt.get("name") for mnt in loki.get("volumeMounts") or [] if mnt.get("mountPath") == path]
        assert mount and mount[0] in templates, \
            f"loki {path}: expected a claim template, found mount {mount}, templates {sorted(templates)}"
        found = dig(templates[mount[0]], "spec.resources.requests.storage")
        assert found is not None and quantity(found) == quantity(size or "10Gi"), \
            f"loki {path}: expected {size or '10Gi'}, found {found!r}"


@pytest.mark.contract("MON-PERSIST-03")
def test_mon_persist_03_claims_name_no_class_when_storage_class_is_empty(render):
    stores = data_stores(render(F.CHART, persisted(storage_class=""), release=F.RELEASE))
    for path, (kind, claim) in stores.items():
        assert kind == "claim", f"{path}: expected a claim, found {kind} {claim}"
        spec = claim.get("spec") or {}
        annotation = (dig(claim, "metadata.annotations", {}) or {}).get("volume.beta.kubernetes.io/storage-class")
        assert "storageClassName" not in spec and annotation is None, \
            (f"{path}: expected no storageClassName (the cluster's default class; \"\" would mean no class), "
             f"found {spec.get('storageClassName', annotation)!r} in {claim_summary(claim)}")


@pytest.mark.contract("MON-PERSIST-03")
def test_mon_persist_03_persisted_release_passes_api_validation(render, cluster, namespace):
    """The API server, not the text, decides: a server-side dry run of the whole release in a namespace."""
    m = render(F.CHART, persisted(storage_class=""), release=F.RELEASE, namespace=namespace)
    text = yamlio.dump_all(m.objects, sort_keys=False)
    try:
        out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", "-n", namespace, input=text)
    except KubectlError as exc:
        raise AssertionError(f"the API server refuses the release: {exc.stderr.strip()[-2000:]}") from None
    for kind, name in (("deployment.apps", F.GRAFANA), ("statefulset.apps", F.LOKI),
                       ("persistentvolumeclaim", "grafana")):
        assert f"{kind}/{name}" in out, f"the dry run did not accept {kind}/{name}; kubectl said:\n{out}"
