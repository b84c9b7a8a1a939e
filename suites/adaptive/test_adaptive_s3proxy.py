"""Adaptive contract, E "s3proxy (Azure)" (ADP-S3-01..03; D.8): the Azure Blob proxy objects, named
`adaptive-s3proxy`, only when enabled, and every storage client (control plane, harmony, pools) pointed at it."""

from __future__ import annotations

import base64

import adaptive_facts as F
import pytest

from chartproof.manifest import container, containers, dig, fragment, images, ref

ACCOUNT, KEY = "acmeadaptivestorage", "fake-azure-access-key-for-tests"
S3PROXY_ON = {"s3proxy": {"enabled": True, "azure": {"storageAccount": {"name": ACCOUNT, "accessKey": KEY}}}}
PROXY_ENV = ("AWS_ENDPOINT_URL", "S3_FORCE_PATH_STYLE", "ADAPTIVE_HARMONY__SHARED_DIRECTORY__ENDPOINT",
             "ADAPTIVE_HARMONY__SHARED_DIRECTORY__FORCE_PATH_STYLE")


def proxy_container(dep: dict) -> dict:
    found = [c for c in containers(dep) if "s3proxy" in str(c.get("image"))]
    assert found, f"{ref(dep)}: no container runs the s3proxy image; images {images(dep)}"
    return found[0]


@pytest.mark.contract("ADP-S3-01")
def test_s3proxy_off_by_default(render):
    m = render(F.CHART, [F.pools("p")])
    objects = [ref(o) for o in m if dig(o, "metadata.name") == F.S3PROXY] + [ref(o) for o in m.with_image("s3proxy")]
    assert not objects, f"s3proxy off: expected no s3proxy object, found {objects}"
    env = [f"{ref(o)}/{c.get('name')}: {k}" for o in F.app_workloads(m) for c in containers(o)
           for k in F.effective_env(m, c) if k in PROXY_ENV]
    assert not env, f"s3proxy off: expected no endpoint/path-style env, found {env}"


@pytest.mark.contract("ADP-S3-02")
def test_s3proxy_objects_are_named_adaptive_s3proxy(render):
    m = render(F.CHART, [S3PROXY_ON])
    missing = [k for k in ("Deployment", "Service", "Secret", "ServiceAccount", "HorizontalPodAutoscaler")
               if not m.select(k, name=F.S3PROXY)]
    assert not missing, f"s3proxy on: expected {missing} named {F.S3PROXY}"
    hpa = m.get("HorizontalPodAutoscaler", F.S3PROXY)
    assert hpa.get("apiVersion") == "autoscaling/v2", f"{ref(hpa)}: expected autoscaling/v2, found {hpa.get('apiVersion')}"
    bounds = (dig(hpa, "spec.minReplicas"), dig(hpa, "spec.maxReplicas"))
    assert bounds == (2, 10), f"{ref(hpa)}: expected 2-10 replicas, found {bounds}"
    svc = m.get("Service", F.S3PROXY)
    assert 80 in [p.get("port") for p in dig(svc, "spec.ports", []) or []], f"{ref(svc)}: expected port 80\n{fragment(svc)}"


@pytest.mark.contract("ADP-S3-02")
def test_s3proxy_env_and_credential(render):
    m = render(F.CHART, [S3PROXY_ON])
    dep = m.get("Deployment", F.S3PROXY)
    item = proxy_container(dep)
    assert "andrewgaul/s3proxy:2.6.0" in str(item.get("image")), f"s3proxy image: found {item.get('image')!r}"
    env = F.effective_env(m, item)
    F.expect_env(env, {"S3PROXY_AUTHORIZATION": "none", "S3PROXY_ENDPOINT": "http://0.0.0.0:80",
                       "S3PROXY_IGNORE_UNKNOWN_HEADERS": "true", "JCLOUDS_PROVIDER": "azureblob",
                       "JCLOUDS_AZUREBLOB_AUTH": "azureKey", "JCLOUDS_IDENTITY": ACCOUNT,
                       "JCLOUDS_ENDPOINT": f"https://{ACCOUNT}.blob.core.windows.net"}, f"{ref(dep)}")
    target = F.secret_ref(env.get("JCLOUDS_CREDENTIAL"))
    assert target == (F.S3PROXY, "targetCredential"), \
        f"JCLOUDS_CREDENTIAL: expected Secret {F.S3PROXY} key targetCredential, found {env.get('JCLOUDS_CREDENTIAL')!r}"
    raw = (m.get("Secret", F.S3PROXY).get("data") or {}).get("targetCredential")
    assert raw == base64.b64encode(KEY.encode()).decode() or F.secret_data(m, F.S3PROXY).get("targetCredential") == KEY, \
        f"Secret {F.S3PROXY} targetCredential: expected base64 of the access key, found {raw!r}"


@pytest.mark.contract("ADP-S3-02")
def test_s3proxy_resources_and_probes(render):
    item = proxy_container(render(F.CHART, [S3PROXY_ON]).get("Deployment", F.S3PROXY))
    for section, name, value in (("limits", "cpu", "1000m"), ("limits", "memory", "250Mi"),
                                 ("requests", "cpu", "200m"), ("requests", "memory", "250Mi")):
        assert F.resource_is(item, section, name, value), f"s3proxy {section}.{name}: expected {value}, found {item.get('resources')}"
    for probe in ("livenessProbe", "readinessProbe"):
        p = item.get(probe) or {}
        found = (p.get("initialDelaySeconds"), p.get("periodSeconds"), p.get("timeoutSeconds"))
        assert "tcpSocket" in p and found == (15, 30, 3), f"s3proxy {probe}: expected TCP, 15 s / 30 s / 3 s, found {p}"


@pytest.mark.contract("ADP-S3-03")
def test_every_storage_client_uses_the_proxy(render):
    m = render(F.CHART, [S3PROXY_ON, F.pools("a", "b")])
    F.expect_env(F.env_of(m, F.control_plane(m), "control-plane"),
                 {"ADAPTIVE_HARMONY__SHARED_DIRECTORY__ENDPOINT": f"http://{F.S3PROXY}",
                  "ADAPTIVE_HARMONY__SHARED_DIRECTORY__FORCE_PATH_STYLE": "true"}, "control-plane")
    for obj in (F.harmony(m), F.pool(m, "a"), F.pool(m, "b")):
        F.expect_env(F.effective_env(m, container(obj, "harmony")),
                     {"AWS_ENDPOINT_URL": f"http://{F.S3PROXY}", "S3_FORCE_PATH_STYLE": "true"}, f"{ref(obj)} harmony")
