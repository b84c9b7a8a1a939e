"""Which Secret keys pods read (``env[].valueFrom.secretKeyRef``, ``envFrom[].secretRef``), and which of
those reads name no existing key: one reader for the live suites, whatever made the Secrets (the chart,
or External Secrets from a store)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chartproof.manifest import all_containers, dig, env_map

WHOLE_SECRET = "*"  # the key of an envFrom read: every key of the Secret


@dataclass(frozen=True)
class SecretRead:
    """One read of a Secret by a container: ``key`` is WHOLE_SECRET for ``envFrom``."""

    pod: str
    container: str
    secret: str
    key: str
    variable: str = ""  # the env variable a secretKeyRef fills
    optional: bool = False

    def describe(self) -> str:
        if self.key == WHOLE_SECRET:
            return f"pod {self.pod}/{self.container}: envFrom {self.secret}"
        return f"pod {self.pod}/{self.container}: {self.variable} <- {self.secret}/{self.key}"


def secret_reads(pods: Iterable[dict]) -> list[SecretRead]:
    """Every Secret read of every container (init containers included) of ``pods``."""
    out = []
    for pod in pods:
        name = dig(pod, "metadata.name")
        for item in all_containers(pod):
            for var, value in env_map(item).items():
                found = dig(value, "secretKeyRef") if isinstance(value, dict) else None
                if isinstance(found, dict):
                    out.append(SecretRead(name, item.get("name"), found.get("name"), found.get("key"), var,
                                          bool(found.get("optional"))))
            for source in item.get("envFrom") or []:
                secret = dig(source, "secretRef.name")
                if secret:
                    out.append(SecretRead(name, item.get("name"), secret, WHOLE_SECRET,
                                          optional=bool(dig(source, "secretRef.optional"))))
    return out


def secret_keys(secrets: Iterable[dict]) -> dict[str, set[str]]:
    """``{Secret name: its keys}`` (``data`` and ``stringData``)."""
    return {dig(s, "metadata.name"): set((s.get("data") or {}) | (s.get("stringData") or {})) for s in secrets}


def dangling(reads: Iterable[SecretRead], keys: dict[str, set[str]]) -> list[SecretRead]:
    """The non-optional reads that name a Secret that does not exist, or a key it does not hold."""
    return [r for r in reads if not r.optional and (
        r.secret not in keys or (r.key != WHOLE_SECRET and r.key not in keys[r.secret]))]


def keys_read(reads: Iterable[SecretRead], secret: str) -> set[str] | None:
    """The keys of ``secret`` the reads use; None when one of them is an envFrom (every key is read)."""
    keys = set()
    for r in reads:
        if r.secret == secret:
            if r.key == WHOLE_SECRET:
                return None
            keys.add(r.key)
    return keys


def external_secret_problems(external_secrets: Iterable[dict], secrets: Iterable[dict],
                             pods: Iterable[dict]) -> list[str]:
    """What keeps the Secrets that ExternalSecrets produced from holding exactly the keys the pods read:
    a target Secret that was not produced, a read of a key (or Secret) that nothing produced, naming the
    pod, the key and the Secret, and keys a produced Secret holds that no pod reads (unless a pod reads it
    whole, through envFrom). Empty when every read resolves."""
    keys = secret_keys(secrets)
    reads = secret_reads(pods)
    targets = {dig(es, "spec.target.name") or dig(es, "metadata.name"): dig(es, "metadata.name")
               for es in external_secrets}
    problems = [f"ExternalSecret {es} produced no Secret {target}" for target, es in targets.items()
                if target not in keys]
    for read in dangling(reads, keys):
        if read.secret in targets and read.secret in keys:
            problems.append(f"{read.describe()}: pod {read.pod} reads key {read.key} of Secret {read.secret}, which "
                            f"ExternalSecret {targets[read.secret]} does not produce (it holds {sorted(keys[read.secret])})")
        elif read.secret in targets:
            problems.append(f"{read.describe()}: Secret {read.secret} (of ExternalSecret {targets[read.secret]}) "
                            f"does not exist")
        else:
            problems.append(f"{read.describe()}: no ExternalSecret produces Secret {read.secret}"
                            + (f" and it has no key {read.key}" if read.secret in keys else ", and it does not exist"))
    for target, es in targets.items():
        read = keys_read(reads, target)
        if target in keys and read is not None and keys[target] - read:
            problems.append(f"Secret {target} of ExternalSecret {es} holds keys no pod reads: "
                            f"{sorted(keys[target] - read)} (pods read {sorted(read)})")
    return problems
