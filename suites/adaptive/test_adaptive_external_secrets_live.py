"""Adaptive contract E on a cluster with the real External Secrets Operator (ADP-ESO-05, ADP-SECRET-04): the
external-secrets scenario, its SecretStore pointed at ESO's fake provider through values only (the way a user
switches providers), is reconciled by the real controller into the two Secrets, which hold exactly the keys
the release's pods read. On the embedded cluster the operator is ours (chartproof.operator_fixtures); on
kind and existing clusters the cluster's own serves, or the test skips saying ESO is absent."""

from __future__ import annotations

import adaptive_facts as F
import pytest

from chartproof.manifest import Manifest, dig
from chartproof.operators import external_secrets_ready, fake_provider
from chartproof.paths import scenario
from chartproof.secretkeys import external_secret_problems

SCENARIO = "external-secrets"


def fake_store_values(rendered: Manifest) -> dict:
    """Values that switch the release's SecretStore to ESO's fake provider, holding a value for every
    remoteRef its ExternalSecrets read; the providers the scenario configured are removed (null)."""
    refs = [d["remoteRef"] for es in rendered.select("ExternalSecret") for d in dig(es, "spec.data", []) or []]
    configured = dig(rendered.get("SecretStore", F.STORE), "spec.provider", {}) or {}
    return {"externalSecret": {"spec": {"provider": {**dict.fromkeys(configured), **fake_provider(refs)}}}}


@pytest.mark.contract("ADP-ESO-05", "ADP-SECRET-04")
@pytest.mark.cluster
def test_external_secrets_produce_exactly_the_keys_pods_read(render, install_chart, cluster, namespace,
                                                            external_secrets):
    """The real controller makes both ExternalSecrets Ready; each Secret is created and owned by its
    ExternalSecret and holds exactly the keys the release's pods read (secretKeyRef, envFrom): no read of a
    key that no ExternalSecret produces (pod, key and Secret named), no produced key left unread."""
    values = [scenario(F.CHART, SCENARIO)]
    values.append(fake_store_values(render.scenario(F.CHART, values, release=F.RELEASE)))
    install_chart(F.CHART, values, release=F.RELEASE)
    ready = external_secrets_ready(cluster.kubectl, namespace)
    names = sorted(dig(es, "metadata.name") for es in ready)
    assert names == sorted([F.CP_EXT, F.HM_EXT]), f"expected ExternalSecrets {F.CP_EXT} and {F.HM_EXT}, found {names}"
    secrets = cluster.kubectl.items("secrets", namespace=namespace)
    for name in (F.CP_SECRET, F.HM_SECRET):
        live = next((s for s in secrets if dig(s, "metadata.name") == name), None)
        assert live is not None, f"ADP-ESO-05: expected Secret {name} created by External Secrets, found none"
        owners = [o.get("kind") for o in dig(live, "metadata.ownerReferences", []) or []]
        assert "ExternalSecret" in owners, f"ADP-ESO-05: Secret {name}: expected owned by its ExternalSecret, owners {owners}"
    problems = external_secret_problems(ready, secrets, cluster.kubectl.items("pods", namespace=namespace))
    assert not problems, ("ADP-SECRET-04: every secretKeyRef/envFrom of every pod names a key its ExternalSecrets "
                          "produce, and they produce exactly those; found:\n" + "\n".join(problems))
