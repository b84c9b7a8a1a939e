"""Adaptive contract, E "Secrets and validation" (ADP-SECRET-*; D.2 Secrets, D.6 Redis URL): the required
secrets are validated, both inline Secrets carry exactly the D.2 keys with the given values, and every
secret reference of every pod resolves to a key the release renders or its ExternalSecrets produce."""

from __future__ import annotations

import adaptive_facts as F
import pytest

from chartproof import yamlio
from chartproof.manifest import all_containers, decoded_secret, env_map, ref, scalar_text
from chartproof.paths import scenarios

GOOD_COOKIE = "c" * 64


@pytest.mark.contract("ADP-SECRET-01")
@pytest.mark.parametrize("item", ["modelRegistryUrl", "sharedDirectoryUrl", "dbUrl", "cookiesSecret"])
@pytest.mark.parametrize("how", ["empty", "missing"])
def test_required_secret_missing_or_empty_is_refused_naming_it(render, item, how):
    message = render.error(F.CHART, set={f"secrets.{item}": "" if how == "empty" else None})
    assert item in message, f"secrets.{item} {how}: expected a refusal naming {item}, found: {message}"


@pytest.mark.contract("ADP-SECRET-02")
@pytest.mark.parametrize("length", [10, 63])
def test_cookie_secret_shorter_than_64_is_refused(render, length):
    message = render.error(F.CHART, [{"secrets": {"cookiesSecret": "k" * length}}])
    assert "cookiesSecret" in message and "64" in message, \
        f"cookiesSecret of {length} chars: expected a refusal naming cookiesSecret and 64, found: {message}"


@pytest.mark.contract("ADP-SECRET-02")
@pytest.mark.parametrize("length", [64, 100])
def test_cookie_secret_of_64_or_more_renders(render, length):
    m = render(F.CHART, [{"secrets": {"cookiesSecret": "k" * length}}])
    found = F.secret_data(m, F.CP_SECRET).get("cookiesSecret")
    assert found == "k" * length, f"cookiesSecret of {length} chars: expected it in {F.CP_SECRET}, found {found!r}"


@pytest.mark.contract("ADP-SECRET-03")
def test_inline_secrets_carry_exactly_the_d2_keys_with_the_given_values(render):
    values = {"secrets": {"modelRegistryUrl": "s3://b/reg", "sharedDirectoryUrl": "s3://b/shared",
                          "dbUrl": "postgres://u:p@h:5432/d", "cookiesSecret": GOOD_COOKIE}}
    m = render(F.CHART, [values])
    for name, keys in ((F.CP_SECRET, F.CP_SECRET_KEYS), (F.HM_SECRET, F.HM_SECRET_KEYS)):
        obj = m.get("Secret", name)
        assert obj.get("type", "Opaque") == "Opaque", f"{ref(obj)}: expected type Opaque, found {obj.get('type')!r}"
        assert set(decoded_secret(obj)) == keys, \
            f"{ref(obj)}: expected exactly the keys {sorted(keys)}, found {sorted(decoded_secret(obj))}"
    cp, hm = F.secret_data(m, F.CP_SECRET), F.secret_data(m, F.HM_SECRET)
    expected_cp = {"dbUrl": "postgres://u:p@h:5432/d", "cookiesSecret": GOOD_COOKIE, "redisUrl": F.DEFAULT_REDIS_URL}
    expected_hm = {"HARMONY_SETTING_MODEL_REGISTRY_ROOT": "s3://b/reg", "ADAPTIVE_MODEL_REGISTRY": "s3://b/reg",
                   "ADAPTIVE_HARMONY__SHARED_DIRECTORY__URL": "s3://b/shared", "REDIS_URL": F.DEFAULT_REDIS_URL}
    for name, data, expected in ((F.CP_SECRET, cp, expected_cp), (F.HM_SECRET, hm, expected_hm)):
        wrong = {k: data.get(k) for k, v in expected.items() if data.get(k) != v}
        assert not wrong, f"Secret {name}: expected {expected}, found for those keys {wrong}"


@pytest.mark.contract("ADP-SECRET-03")
@pytest.mark.parametrize("redis_auth, url", [
    ({}, "redis://adaptive-redis-svc:6379"),
    ({"password": "s3cr3t-redis-pw"}, "redis://:s3cr3t-redis-pw@adaptive-redis-svc:6379"),
    ({"username": "ops", "password": "s3cr3t-redis-pw"}, "redis://ops:s3cr3t-redis-pw@adaptive-redis-svc:6379"),
], ids=["no-auth", "password", "user-and-password"])
def test_redis_url_in_both_secrets_follows_d6(render, redis_auth, url):
    m = render(F.CHART, [{"redis": {"auth": redis_auth}}])
    found = (F.secret_data(m, F.CP_SECRET).get("redisUrl"), F.secret_data(m, F.HM_SECRET).get("REDIS_URL"))
    assert found == (url, url), f"redis.auth {redis_auth}: expected redisUrl = REDIS_URL = {url!r}, found {found}"


SECRET_REF_CASES = {
    "defaults": [],
    "external-secrets": [{"externalSecret": {"enabled": True}}],
    "external-secrets-object-storage": [{"externalSecret": {"enabled": True, "data": {"objectStorageConfig": {
        k: {"remoteRef": {"key": f"s3/{k}"}} for k in ("awsAccessKeyId", "awsSecretAccessKey", "awsEndpointUrlS3")}}}}],
    "s3proxy": [{"s3proxy": {"enabled": True}}],
    "pools-autoscaling": [F.pools("a", "b"), {"autoscaling": {"enabled": True}}],
    "redis-password": [{"redis": {"auth": {"password": "pw-123456"}}}],
    "mlflow-off-tensorboard-on": [{"mlflow": {"enabled": False}, "tensorboard": {"enabled": True}}],
}


@pytest.mark.contract("ADP-SECRET-04")
@pytest.mark.parametrize("case", sorted(SECRET_REF_CASES))
def test_every_secret_reference_of_every_pod_resolves(render, case):
    m = render(F.CHART, SECRET_REF_CASES[case])
    produced = F.produced_keys(m)
    checked, dangling = 0, []
    for obj in m.select(F.WORKLOAD_KINDS):
        for item in all_containers(obj):
            where = f"{ref(obj)} container {item.get('name')}"
            for var, value in env_map(item).items():
                target = F.secret_ref(value)
                if target:
                    checked += 1
                    if target[1] not in produced.get(target[0], set()):
                        dangling.append(f"{where}: {var} <- Secret {target[0]} key {target[1]}")
            for name in F.env_from_secrets(item):
                checked += 1
                if name not in produced:
                    dangling.append(f"{where}: envFrom Secret {name}")
    assert not dangling, f"references to nothing the release renders or its ExternalSecrets produce: {dangling}; " \
                         f"produced: { {k: sorted(v) for k, v in produced.items()} }"
    assert checked, "no pod references a Secret, though D.3 wires the control plane to its config Secrets"


def _secret_strings(values: dict) -> set[str]:
    """The secret values a customer puts in a values file: secrets.*, OIDC client secrets, the Azure key,
    the Redis password."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, str) and len(node) >= 6:
            found.add(node)

    secrets = dict(values.get("secrets") or {})
    providers = ((secrets.pop("auth", None) or {}).get("oidc") or {}).get("providers") or []
    walk(secrets)
    walk([p.get("client_secret") for p in providers if isinstance(p, dict)])
    walk((((values.get("s3proxy") or {}).get("azure") or {}).get("storageAccount") or {}).get("accessKey"))
    walk(((values.get("redis") or {}).get("auth") or {}).get("password"))
    return found


LEAK_CASES = {p.stem: [p] for p in scenarios(F.CHART)
              if _secret_strings(yamlio.load(p.read_text()) or {})}
LEAK_CASES["redis-password"] = [{"redis": {"auth": {"username": "ops", "password": "s3cr3t-redis-pw"}}}]


@pytest.mark.contract("ADP-SECRET-04", extension=True)
@pytest.mark.parametrize("case", sorted(LEAK_CASES))
def test_secret_values_appear_only_in_secrets(render, case):
    """No secret from the values lands in a ConfigMap, a literal env value, an annotation or any other object
    than a Secret: pods read them through secretKeyRef/envFrom."""
    values = LEAK_CASES[case]
    merged: dict = {}
    for item in values:
        merged.update(yamlio.load(item.read_text()) if hasattr(item, "read_text") else item)
    secrets = _secret_strings(merged)
    assert secrets, f"case {case} has no secret value to look for"
    m = render.scenario(F.CHART, values) if case != "redis-password" else render(F.CHART, values)
    for obj in m:
        if obj.get("kind") == "Secret":
            continue
        text = scalar_text(obj)
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f"{ref(obj)} carries {len(leaked)} secret value(s) of case {case} (expected only in Secrets)"

