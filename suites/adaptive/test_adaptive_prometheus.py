"""Adaptive contract, E "Prometheus" (ADP-PROM-01..04; D.2 and D.6 Prometheus): the bundled Prometheus with
its fixed names and scrape jobs, and its TSDB volume: an emptyDir, or a claim template with persistence."""

from __future__ import annotations

import adaptive_facts as F
import pytest
import yaml

from chartproof import yamlio
from chartproof.manifest import containers, dig, fragment, images, ref, same_quantity

PERSIST = {"prometheus": {"server": {"persistentVolume": {"enabled": True}}}}


def prometheus_container(sts: dict) -> dict:
    found = [c for c in containers(sts) if "prometheus/prometheus" in str(c.get("image"))]
    assert found, f"{ref(sts)}: no container runs quay.io/prometheus/prometheus; images {images(sts)}"
    return found[0]


@pytest.mark.contract("ADP-PROM-01")
def test_prometheus_statefulset_and_service(render):
    m = render(F.CHART)
    sts = m.get("StatefulSet", F.PROMETHEUS)
    assert dig(sts, "spec.replicas", 1) == 2, f"{ref(sts)}: expected 2 replicas, found {dig(sts, 'spec.replicas')}"
    item = prometheus_container(sts)
    assert item.get("image") == "quay.io/prometheus/prometheus:v3.1.0", f"image: found {item.get('image')!r}"
    args = [str(a) for a in item.get("args") or []]
    assert "--storage.tsdb.retention.time=30d" in args, f"expected retention 30d in args, found {args}"
    svc = m.get("Service", F.PROMETHEUS)
    ports = [p for p in dig(svc, "spec.ports", []) or [] if p.get("port") == 80]
    assert ports and F.target_of(ports[0], item) == 9090, f"{ref(svc)}: expected port 80 -> 9090, found {dig(svc, 'spec.ports')}"


def scrape_config(m) -> dict:
    cms = m.select("ConfigMap", where=lambda o: "prometheus.yml" in (o.get("data") or {}))
    assert cms, f"no ConfigMap holds prometheus.yml; ConfigMaps {m.names('ConfigMap')}"
    try:
        return yamlio.load(cms[0]["data"]["prometheus.yml"]) or {}
    except yaml.YAMLError as exc:
        raise AssertionError(f"prometheus.yml is not YAML: {exc}") from None


@pytest.mark.contract("ADP-PROM-01")
def test_scrape_jobs_of_d6(render):
    cfg = scrape_config(render(F.CHART))
    jobs = {j.get("job_name"): j for j in cfg.get("scrape_configs") or []}
    expected = {"prometheus", "kubernetes-apiservers", "kubernetes-nodes", "kubernetes-nodes-cadvisor", "kubernetes-pods"}
    assert expected <= set(jobs), f"expected scrape jobs {sorted(expected)}, found {sorted(jobs)}"
    pods = jobs["kubernetes-pods"]
    assert pods.get("scrape_interval") == "5s" and pods.get("honor_labels") is True, \
        f"kubernetes-pods: expected scrape_interval 5s and honor_labels true\n{fragment(pods)}"
    relabel = pods.get("relabel_configs") or []
    keep = [r for r in relabel if r.get("action") == "keep"
            and "__meta_kubernetes_pod_annotation_prometheus_io_scrape" in (r.get("source_labels") or [])]
    assert keep and all(r.get("regex") == "adaptive" for r in keep), \
        f"kubernetes-pods: expected to keep pods annotated prometheus.io/scrape: adaptive\n{fragment(relabel)}"
    targets = {r.get("target_label") for r in relabel}
    assert {"__metrics_path__", "__address__", "namespace", "pod", "node"} <= targets, \
        f"kubernetes-pods: expected path, port, namespace, pod, node relabelling, found targets {sorted(map(str, targets))}"
    assert any(r.get("action") == "labelmap" and "pod_label" in str(r.get("regex")) for r in relabel), \
        f"kubernetes-pods: expected pod labels added (labelmap)\n{fragment(relabel)}"


@pytest.mark.contract("ADP-PROM-01")
def test_prometheus_companions(render):
    m = render(F.CHART)
    headless = [ref(s) for s in m.select("Service") if dig(s, "spec.clusterIP") == "None"
                and (dig(s, "spec.selector", {}) or {}).items() <= (dig(m.get("StatefulSet", F.PROMETHEUS),
                                                                         "spec.template.metadata.labels", {}) or {}).items()]
    assert headless, "expected a headless Service of the Prometheus pods"
    assert m.select("ServiceAccount", name=F.PROMETHEUS), f"expected ServiceAccount {F.PROMETHEUS}, found {m.names('ServiceAccount')}"
    assert m.select("ClusterRole") and m.select("ClusterRoleBinding"), "expected Prometheus' ClusterRole and binding"


@pytest.mark.contract("ADP-PROM-02")
def test_tsdb_is_an_empty_dir_by_default(render):
    sts = render(F.CHART).get("StatefulSet", F.PROMETHEUS)
    vol = F.volume(sts, "storage-volume")
    assert vol is not None and "emptyDir" in vol, f"{ref(sts)}: expected volume storage-volume as emptyDir, found {vol}"
    assert F.claim_template(sts, "storage-volume") is None, f"{ref(sts)}: persistence off, found claim template storage-volume"


def claim(render, values) -> dict:
    sts = render(F.CHART, values).get("StatefulSet", F.PROMETHEUS)
    found = F.claim_template(sts, "storage-volume")
    assert found is not None, f"{ref(sts)}: expected claim template storage-volume, found " \
                              f"{[dig(c, 'metadata.name') for c in dig(sts, 'spec.volumeClaimTemplates', []) or []]}"
    assert F.volume(sts, "storage-volume") is None, f"{ref(sts)}: storage-volume is both a volume and a claim template"
    return found


@pytest.mark.contract("ADP-PROM-03")
@pytest.mark.parametrize("size", [None, "50Gi"])
def test_persistence_gives_a_read_write_once_claim_template(render, size):
    values = [PERSIST] + ([{"prometheus": {"server": {"persistentVolume": {"size": size}}}}] if size else [])
    spec = claim(render, values).get("spec") or {}
    assert spec.get("accessModes") == ["ReadWriteOnce"], f"accessModes: expected [ReadWriteOnce], found {spec.get('accessModes')}"
    found = dig(spec, "resources.requests.storage")
    assert same_quantity(found, size or "10Gi"), f"claim size: expected {size or '10Gi'}, found {found!r}"


@pytest.mark.contract("ADP-PROM-04")
@pytest.mark.parametrize("readme, community, expected", [
    ("gp3", None, "gp3"), (None, "io2", "io2"), (None, None, None), ("-", None, ""), (None, "-", ""), ("", "", None)],
    ids=["readme-key", "community-key", "neither", "readme-dash", "community-dash", "both-empty"])
def test_storage_class(render, readme, community, expected):
    server: dict = {"persistentVolume": {"enabled": True}}
    if readme is not None:
        server["storageClass"] = readme
    if community is not None:
        server["persistentVolume"]["storageClass"] = community
    spec = claim(render, [{"prometheus": {"server": server}}]).get("spec") or {}
    assert spec.get("storageClassName") == expected, \
        f"storageClass {readme!r} / persistentVolume.storageClass {community!r}: expected storageClassName {expected!r} " \
        f"(None = omitted), found {spec.get('storageClassName')!r}"


@pytest.mark.contract("ADP-PROM-04", extension=True)
def test_community_storage_class_wins_over_the_readme_key(render):
    server = {"storageClass": "gp3", "persistentVolume": {"enabled": True, "storageClass": "io2"}}
    found = (claim(render, [{"prometheus": {"server": server}}]).get("spec") or {}).get("storageClassName")
    assert found == "io2", f"both keys set: expected storageClassName io2 (persistentVolume.storageClass), found {found!r}"
