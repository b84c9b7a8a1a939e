"""Adaptive contract, E "OIDC, root URL, ingress" (ADP-OIDC-*, ADP-ING-*; D.6 `oidc_providers` format, D.2
control-plane Service and Ingress): providers reach the control plane in the D.6 format, the root URL is
passed verbatim, and the control plane is reachable behind the user's ingress (or the chart's own)."""

from __future__ import annotations

import json

import adaptive_facts as F
import pytest

from chartproof.manifest import container, dig, fragment, ref, template_labels

OKTA = {"name": "Okta", "key": "okta", "issuer_url": "https://acme.okta.com/oauth2/default",
        "client_id": "0oa1okta-client", "client_secret": "okta-client-secret-value",
        "scopes": ["openid", "email", "profile"], "pkce": True, "allow_sign_up": True}
KEYCLOAK = {"name": "Acme Keycloak", "key": "keycloak", "issuer_url": "https://sso.acme.example.com/realms/acme",
            "client_id": "adaptive-public", "scopes": ["openid", "email", "profile"], "pkce": False,
            "allow_sign_up": False}


def providers(*entries) -> dict:
    return {"secrets": {"auth": {"oidc": {"providers": list(entries)}}}}


def oidc_entries(m) -> list[dict[str, str]]:
    return F.parse_oidc(F.secret_data(m, F.CP_SECRET).get("oidc_providers", ""))


def quoted(entry: dict, field: str):
    raw = entry.get(field)
    assert raw is not None, f"oidc_providers entry {entry}: no {field}= field"
    try:
        return json.loads(raw)
    except ValueError:
        raise AssertionError(f"oidc_providers field {field}={raw}: expected a quoted string or JSON value") from None


@pytest.mark.contract("ADP-OIDC-01")
def test_providers_are_one_d6_entry_each_in_order_values_verbatim(render):
    m = render(F.CHART, [providers(OKTA, KEYCLOAK)])
    entries = oidc_entries(m)
    assert [e.get("key") for e in entries] == ["okta", "keycloak"], \
        f"expected one entry per provider in order okta, keycloak; found {entries}"
    for given, entry in zip((OKTA, KEYCLOAK), entries, strict=True):
        assert entry.get("name") == given["name"], f"{given['key']}: name expected {given['name']!r}, found {entry}"
        for field in ("issuer_url", "client_id"):
            assert quoted(entry, field) == given[field], f"{given['key']}: {field} expected {given[field]!r}, found {entry}"
        assert quoted(entry, "scopes") == given["scopes"], f"{given['key']}: scopes expected {given['scopes']}, found {entry}"
        for field in ("pkce", "allow_sign_up"):
            assert entry.get(field) == str(given[field]).lower(), \
                f"{given['key']}: {field} expected {str(given[field]).lower()}, found {entry}"
    assert quoted(entries[0], "client_secret") == OKTA["client_secret"], f"okta client_secret: found {entries[0]}"


@pytest.mark.contract("ADP-OIDC-01")
def test_provider_fields_come_in_the_d6_order(render):
    m = render(F.CHART, [providers(OKTA)])
    (entry,) = oidc_entries(m) or [{}]
    assert list(entry) == ["key", "name", "issuer_url", "client_id", "client_secret", "scopes", "pkce", "allow_sign_up"], \
        f"expected the D.6 field order, found {list(entry)}"


@pytest.mark.contract("ADP-OIDC-01", extension=True)
def test_no_provider_gives_an_empty_list(render):
    found = F.secret_data(render(F.CHART, [providers()]), F.CP_SECRET).get("oidc_providers", "")
    assert "".join(found.split()) == "[]", f"no provider: expected oidc_providers [], found {found!r}"


@pytest.mark.contract("ADP-OIDC-02")
def test_client_secret_field_only_when_given(render):
    given = {**KEYCLOAK, "key": "with", "client_secret": "sa"}
    empty = {**KEYCLOAK, "key": "empty", "client_secret": ""}
    absent = {**KEYCLOAK, "key": "absent"}
    entries = {e.get("key"): e for e in oidc_entries(render(F.CHART, [providers(given, empty, absent)]))}
    assert set(entries) == {"with", "empty", "absent"}, f"expected entries with, empty, absent; found {list(entries)}"
    assert quoted(entries["with"], "client_secret") == "sa", f"provider with a secret: found {entries['with']}"
    for name in ("empty", "absent"):
        assert "client_secret" not in entries[name], f"provider with {name} client_secret: expected no client_secret= " \
                                                     f"field, found {entries[name]}"


@pytest.mark.contract("ADP-OIDC-03")
@pytest.mark.parametrize("root", ["https://adaptive.acme.example.com", "http://10.0.0.5:9000"])
def test_root_url_verbatim_and_provider_keys_unchanged(render, root):
    m = render(F.CHART, [providers(OKTA, {**KEYCLOAK, "key": "Key_Cloak-1"})], set={"controlPlane.rootUrl": root})
    env = F.env_of(m, F.control_plane(m), "control-plane")
    assert env.get("ADAPTIVE_SERVER__ROOT_URL") == root, \
        f"ADAPTIVE_SERVER__ROOT_URL: expected {root!r}, found {env.get('ADAPTIVE_SERVER__ROOT_URL')!r}"
    keys = [e.get("key") for e in oidc_entries(m)]
    assert keys == ["okta", "Key_Cloak-1"], f"provider keys must pass unchanged (callback <rootUrl>/api/v1/auth/login/" \
                                            f"<key>/callback): expected ['okta', 'Key_Cloak-1'], found {keys}"


@pytest.mark.contract("ADP-ING-01")
def test_no_ingress_by_default(render):
    m = render(F.CHART)
    assert not m.select("Ingress"), f"default render: expected no Ingress, found {[ref(o) for o in m.select('Ingress')]}"


@pytest.mark.contract("ADP-ING-01")
@pytest.mark.parametrize("service_port", [None, 8080])
def test_control_plane_service_http_port_reaches_9000(render, service_port):
    m = render(F.CHART, set={"controlPlane.servicePort": service_port} if service_port else None)
    svc, dep = m.get("Service", F.CP_SVC), F.control_plane(m)
    http = F.port(svc, "http")
    expected = service_port or 80
    assert http.get("port") == expected, f"{ref(svc)} port http: expected {expected}, found {http}"
    target = F.target_of(http, container(dep, "control-plane"))
    assert target == 9000, f"{ref(svc)} port http must reach container port 9000, targets {http.get('targetPort')!r} " \
                           f"({target}); container ports {container(dep, 'control-plane').get('ports')}"
    assert 9000 in F.container_ports(container(dep, "control-plane")).values(), \
        f"container control-plane does not declare port 9000: {container(dep, 'control-plane').get('ports')}"
    selector = dig(svc, "spec.selector", {}) or {}
    labels = template_labels(dep)
    assert selector and all(labels.get(k) == v for k, v in selector.items()), \
        f"{ref(svc)} selector {selector} does not select the control-plane pods (labels {labels})"


@pytest.mark.contract("ADP-ING-02")
def test_ingress_enabled_routes_the_root_url_host_to_the_control_plane(render):
    tls = [{"hosts": ["adaptive.acme.example.com"], "secretName": "tls"}]
    values = {"ingress": {"enabled": True, "className": "nginx", "annotations": {"a/b": "c"}, "tls": tls},
              "controlPlane": {"rootUrl": "https://adaptive.acme.example.com:8443"}}
    m = render(F.CHART, [values])
    ing = m.one("Ingress")
    assert dig(ing, "spec.ingressClassName") == "nginx", f"ingressClassName: expected nginx\n{fragment(ing)}"
    assert (dig(ing, "metadata.annotations", {}) or {}).get("a/b") == "c", f"annotation a/b: c expected\n{fragment(ing)}"
    assert dig(ing, "spec.tls") == tls, f"tls: expected {tls}\n{fragment(ing)}"
    routes = [(r.get("host"), p.get("path", "/"), p.get("pathType"), dig(p, "backend.service.name"),
               dig(p, "backend.service.port"))
              for r in dig(ing, "spec.rules", []) or [] for p in dig(r, "http.paths", []) or []]
    port = F.port(m.get("Service", F.CP_SVC), "http")
    good = [r for r in routes if r[0] == "adaptive.acme.example.com" and r[1] == "/" and r[2] in ("Prefix", "ImplementationSpecific")
            and r[3] == F.CP_SVC and r[4] in ({"name": "http"}, {"number": port.get("port")})]
    assert good, f"expected adaptive.acme.example.com / (Prefix) -> {F.CP_SVC} http; found routes {routes}"
