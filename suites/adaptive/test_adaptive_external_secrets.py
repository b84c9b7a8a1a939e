"""Adaptive contract, E "External secrets" (ADP-ESO-01..04; D.7): in ESO mode a SecretStore and two
ExternalSecrets replace the Opaque Secrets, produce every key inline mode renders, and pass the store spec and
remote refs verbatim; `values_external_secret.yaml` is such a configuration."""

from __future__ import annotations

import adaptive_facts as F
import pytest

from chartproof import yamlio
from chartproof.manifest import container, dig, fragment, ref

ESO_ON = {"externalSecret": {"enabled": True}}
OBJECT_STORAGE = {k: {"remoteRef": {"key": "prod/s3", "property": k}}
                  for k in ("awsAccessKeyId", "awsSecretAccessKey", "awsEndpointUrlS3")}
AWS_KEYS = {"AWS_ACCESS_KEY_ID": "awsAccessKeyId", "AWS_SECRET_ACCESS_KEY": "awsSecretAccessKey",
            "AWS_ENDPOINT_URL_S3": "awsEndpointUrlS3"}


@pytest.mark.contract("ADP-ESO-01")
def test_eso_mode_renders_store_and_two_external_secrets_and_no_opaque_secret(render):
    m = render(F.CHART, [ESO_ON])
    m.get("SecretStore", F.STORE)
    for name, target in ((F.CP_EXT, F.CP_SECRET), (F.HM_EXT, F.HM_SECRET)):
        es = m.get("ExternalSecret", name)
        found = (es.get("apiVersion"), dig(es, "spec.refreshInterval"), dig(es, "spec.target.name"),
                 dig(es, "spec.target.creationPolicy", "Owner"))
        assert found == ("external-secrets.io/v1", "1h", target, "Owner"), \
            f"{ref(es)}: expected (external-secrets.io/v1, 1h, target {target}, Owner), found {found}"
    inline = [ref(s) for s in m.select("Secret") if dig(s, "metadata.name") in (F.CP_SECRET, F.HM_SECRET)]
    assert not inline, f"ESO mode: expected no Opaque config Secret, found {inline}"


@pytest.mark.contract("ADP-ESO-01")
def test_eso_mode_neither_requires_nor_validates_secrets(render):
    m = render(F.CHART, [ESO_ON, {"secrets": {"cookiesSecret": "short", "dbUrl": "", "modelRegistryUrl": None}}])
    assert m.select("ExternalSecret", name=F.CP_EXT), f"expected ExternalSecret {F.CP_EXT}, found {m.names('ExternalSecret')}"
    assert render(F.CHART, [ESO_ON, {"secrets": None}]).select("SecretStore", name=F.STORE), \
        f"secrets: null in ESO mode: expected SecretStore {F.STORE}"


@pytest.mark.contract("ADP-ESO-02")
@pytest.mark.parametrize("case", ["defaults", "s3proxy-and-redis-password"])
def test_external_secrets_produce_every_inline_key(render, case):
    values = [] if case == "defaults" else [{"s3proxy": {"enabled": True}, "redis": {"auth": {"password": "pw"}}}]
    inline = F.produced_keys(render(F.CHART, values))
    eso = F.produced_keys(render(F.CHART, values + [ESO_ON]))
    for name in (F.CP_SECRET, F.HM_SECRET):
        missing = inline.get(name, set()) - eso.get(name, set())
        assert not missing, f"Secret {name}: its ExternalSecret does not produce {sorted(missing)} " \
                            f"(produces {sorted(eso.get(name, set()))})"


@pytest.mark.contract("ADP-ESO-03")
def test_store_spec_and_remote_refs_verbatim(render):
    spec = {"provider": {"aws": {"service": "SecretsManager", "region": "eu-west-1",
                                 "auth": {"jwt": {"serviceAccountRef": {"name": "eso-sa"}}}}}}
    data = {"dbUrl": {"remoteRef": {"key": "prod/db", "property": "url"}},
            "cookiesSecret": {"remoteRef": {"key": "prod/cookies", "property": None}},  # plain text: no property
            "modelRegistryUrl": {"remoteRef": {"key": "prod/storage", "property": "registry"}},
            "sharedDirectoryUrl": {"remoteRef": {"key": "prod/storage", "property": "shared"}},
            "oidcProviders": {"remoteRef": {"key": "prod/oidc", "property": None}}}
    m = render(F.CHART, [{"externalSecret": {"enabled": True, "spec": spec, "data": data}}])
    store = m.get("SecretStore", F.STORE)
    assert dig(store, "spec") == spec, f"{ref(store)}: expected spec = externalSecret.spec\n{fragment(store)}"
    for name in (F.CP_EXT, F.HM_EXT):
        es = m.get("ExternalSecret", name)
        found = dig(es, "spec.secretStoreRef", {}) or {}
        assert found.get("name") == F.STORE and found.get("kind", "SecretStore") == "SecretStore", \
            f"{ref(es)}: expected secretStoreRef {F.STORE} kind SecretStore, found {found}"
    data = {k: {"remoteRef": {f: x for f, x in v["remoteRef"].items() if x is not None}} if k in ("cookiesSecret", "oidcProviders")
            else v for k, v in data.items()}  # null removes the default property (helm's merge), as the README does
    expected_cp = {"dbUrl": data["dbUrl"], "cookiesSecret": data["cookiesSecret"], "oidc_providers": data["oidcProviders"]}
    expected_hm = {"ADAPTIVE_MODEL_REGISTRY": data["modelRegistryUrl"],
                   "HARMONY_SETTING_MODEL_REGISTRY_ROOT": data["modelRegistryUrl"],
                   "ADAPTIVE_HARMONY__SHARED_DIRECTORY__URL": data["sharedDirectoryUrl"]}
    for name, expected in ((F.CP_EXT, expected_cp), (F.HM_EXT, expected_hm)):
        refs = F.remote_refs(m.get("ExternalSecret", name))
        wrong = {k: refs.get(k) for k, v in expected.items() if refs.get(k) != v["remoteRef"]}
        assert not wrong, f"ExternalSecret {name}: expected remoteRefs verbatim " \
                          f"{ {k: v['remoteRef'] for k, v in expected.items()} }, found for those keys {wrong}"
    present = set(AWS_KEYS) & set(F.remote_refs(m.get("ExternalSecret", F.HM_EXT)))
    assert not present, f"no objectStorageConfig: expected no AWS keys in {F.HM_EXT}, found {sorted(present)}"


@pytest.mark.contract("ADP-ESO-03")
def test_object_storage_config_adds_the_three_aws_keys(render):
    m = render(F.CHART, [{"externalSecret": {"enabled": True, "data": {"objectStorageConfig": OBJECT_STORAGE}}}])
    refs = F.remote_refs(m.get("ExternalSecret", F.HM_EXT))
    wrong = {k: refs.get(k) for k, v in AWS_KEYS.items() if refs.get(k) != OBJECT_STORAGE[v]["remoteRef"]}
    assert not wrong, f"ExternalSecret {F.HM_EXT}: expected {sorted(AWS_KEYS)} from objectStorageConfig verbatim, found {wrong}"


def _leaves(node, prefix=()):
    for k, v in node.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, (*prefix, k))
        else:
            yield (*prefix, k)


@pytest.mark.contract("ADP-ESO-04")
def test_example_file_keys_are_keys_of_values_yaml(charts):
    directory = charts.local_dir(F.CHART)
    example = directory / "values_external_secret.yaml"
    assert example.is_file(), f"the chart has no values_external_secret.yaml beside values.yaml (in {directory})"
    defaults = yamlio.load((directory / "values.yaml").read_text()) or {}
    unknown = []
    for path in _leaves(yamlio.load(example.read_text()) or {}):
        node = defaults
        for part in path:
            if not isinstance(node, dict) or part not in node:
                unknown.append(".".join(map(str, path)))
                break
            node = node[part]
    assert not unknown, f"values_external_secret.yaml sets keys that values.yaml does not have: {unknown}"


@pytest.mark.contract("ADP-ESO-04")
def test_example_file_renders_eso_mode_with_five_remote_refs(render, charts):
    example = charts.local_dir(F.CHART) / "values_external_secret.yaml"
    if not example.is_file():
        pytest.fail("the chart has no values_external_secret.yaml beside values.yaml")
    overlay = yamlio.load(example.read_text()) or {}
    m = render(F.CHART, [example])
    inline = [ref(s) for s in m.select("Secret") if dig(s, "metadata.name") in (F.CP_SECRET, F.HM_SECRET)]
    assert not inline, f"the example renders inline Secrets {inline}, expected ESO mode"
    assert dig(m.get("SecretStore", F.STORE), "spec") == dig(overlay, "externalSecret.spec"), \
        f"SecretStore {F.STORE}: expected the file's externalSecret.spec"
    data = dig(overlay, "externalSecret.data", {}) or {}
    cp, hm = F.remote_refs(m.get("ExternalSecret", F.CP_EXT)), F.remote_refs(m.get("ExternalSecret", F.HM_EXT))
    expected = {("cp", "dbUrl"): "dbUrl", ("cp", "cookiesSecret"): "cookiesSecret", ("cp", "oidc_providers"): "oidcProviders",
                ("hm", "ADAPTIVE_MODEL_REGISTRY"): "modelRegistryUrl",
                ("hm", "ADAPTIVE_HARMONY__SHARED_DIRECTORY__URL"): "sharedDirectoryUrl"}
    wrong = {k: (cp if k[0] == "cp" else hm).get(k[1]) for k, v in expected.items()
             if (cp if k[0] == "cp" else hm).get(k[1]) != dig(data, f"{v}.remoteRef")}
    assert not wrong, f"expected the five remote refs of the file, found for those keys {wrong}"


@pytest.mark.contract("ADP-ESO-04")
def test_example_file_harmony_and_registry_take_effect(render, charts):
    example = charts.local_dir(F.CHART) / "values_external_secret.yaml"
    if not example.is_file():
        pytest.fail("the chart has no values_external_secret.yaml beside values.yaml")
    m = render(F.CHART, [example])
    sts = F.harmony(m)
    h = container(sts, "harmony")
    assert str(h.get("image", "")).startswith("111111111111.dkr.ecr.us-west-2.amazonaws.com/"), \
        f"harmony image: expected the file's registry 111111111111.dkr.ecr.us-west-2.amazonaws.com, found {h.get('image')!r}"
    checks = [("limits", "cpu", 7), ("limits", "memory", "64Gi"), ("requests", "cpu", 7), ("requests", "memory", "60Gi")]
    wrong = [c for c in checks if not F.resource_is(h, *c)]
    assert not wrong, f"harmony resources: expected the file's {checks}, found {h.get('resources')}"
    assert F.has_gpus(h, 8) and dig(sts, "spec.replicas", 1) == 1, \
        f"harmony: expected 1 replica of 8 GPUs, found {dig(sts, 'spec.replicas')} / {h.get('resources')}"
