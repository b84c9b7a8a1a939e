"""Monitoring chart, the /monitoring route (contract adaptive.md MON-ROUTE-01, D.9 Grafana and Ingress, C.2
`grafana.proxy.*` and `grafana.ingress.*`): the release routes /monitoring on the Adaptive host to Grafana,
and Grafana serves from that sub-path."""

from __future__ import annotations

import configparser

import monitoring_facts as F
import pytest

from chartproof.manifest import dig

SUB_PATH_ENV = "GF_SERVER_SERVE_FROM_SUB_PATH"


def serves_from_sub_path(m, env: dict) -> bool:
    """GF_SERVER_SERVE_FROM_SUB_PATH=true, or `serve_from_sub_path = true` in a grafana.ini the release renders."""
    if SUB_PATH_ENV in env:
        return str(env[SUB_PATH_ENV]).strip().lower() == "true"
    for cm in m.select("ConfigMap"):
        for text in (cm.get("data") or {}).values():
            if "serve_from_sub_path" not in str(text):
                continue
            ini = configparser.ConfigParser(strict=False, interpolation=None)
            try:
                ini.read_string(str(text))
            except configparser.Error:
                continue
            if ini.has_option("server", "serve_from_sub_path"):
                return ini.get("server", "serve_from_sub_path").strip().lower() == "true"
    return False


@pytest.mark.contract("MON-ROUTE-01")
@pytest.mark.parametrize("domain, scheme", [("adaptive.acme.example.com", None), ("ml.internal", "http")])
def test_mon_route_01_monitoring_on_the_domain_goes_to_grafana(render, domain, scheme):
    proxy = {"domain": domain, **({"scheme": scheme} if scheme else {})}
    m = render(F.CHART, [{"grafana": {"proxy": proxy}}], release=F.RELEASE)
    found = F.routes(m, domain)
    assert found, f"expected an Ingress routing {domain}/monitoring (Prefix); routes rendered: {F.all_routes(m) or 'none'}"
    assert any(F.backend_is_grafana_3000(m, path) for _, path in found), \
        f"{domain}/monitoring: expected backend Service grafana port 3000, found {[p.get('backend') for _, p in found]}"

    _, grafana = F.grafana(m)
    env = F.effective_env(m, grafana)
    expected_root = f"{scheme or 'https'}://{domain}/monitoring/"
    assert env.get("GF_SERVER_ROOT_URL") == expected_root, \
        f"GF_SERVER_ROOT_URL: expected {expected_root!r}, found {env.get('GF_SERVER_ROOT_URL')!r}"
    assert env.get("GF_SERVER_DOMAIN") == domain, f"GF_SERVER_DOMAIN: expected {domain!r}, found {env.get('GF_SERVER_DOMAIN')!r}"
    assert serves_from_sub_path(m, env), \
        f"Grafana does not serve from the sub-path: {SUB_PATH_ENV}={env.get(SUB_PATH_ENV)!r} and no grafana.ini sets it"


@pytest.mark.contract("MON-ROUTE-01", extension=True)
def test_mon_route_01_route_is_ingress_grafana_with_the_values_class(render):
    """D.9's name of the Ingress and C.2's `grafana.ingress.*` keys are inferred."""
    m = render(F.CHART, [{"grafana": {"proxy": {"domain": "adaptive.acme.example.com"},
                                      "ingress": {"className": "nginx", "annotations": {"chartproof.dev/probe": "x"}}}}],
               release=F.RELEASE)
    ing = m.get("Ingress", F.GRAFANA)
    assert [i for i, _ in F.routes(m, "adaptive.acme.example.com") if i is ing], \
        f"Ingress grafana does not route adaptive.acme.example.com/monitoring; routes: {F.all_routes(m)}"
    cls = dig(ing, "spec.ingressClassName") or dig(ing, "metadata.annotations", {}).get("kubernetes.io/ingress.class")
    assert cls == "nginx", f"Ingress grafana: expected class nginx (grafana.ingress.className), found {cls!r}"
    annotations = dig(ing, "metadata.annotations", {}) or {}
    assert annotations.get("chartproof.dev/probe") == "x", \
        f"Ingress grafana: expected the grafana.ingress.annotations, found {annotations}"


@pytest.mark.contract("MON-ROUTE-01", extension=True)
def test_mon_route_01_ingress_can_be_turned_off(render):
    m = render(F.CHART, [{"grafana": {"ingress": {"enabled": False}}}], release=F.RELEASE)
    assert not F.routes(m, F.DEFAULT_DOMAIN), f"grafana.ingress.enabled=false still routes: {F.all_routes(m)}"
