"""Cluster providers: ``embedded`` (default, no Docker), ``kind`` (Docker), ``existing`` (a kubeconfig)."""

from __future__ import annotations

from chartproof.clusters.base import Cluster, ClusterProvider, ClusterRecord
from chartproof.clusters.embedded import EmbeddedProvider
from chartproof.clusters.existing import ExistingProvider
from chartproof.clusters.kind import KindProvider
from chartproof.errors import UsageError

PROVIDERS = {"embedded": EmbeddedProvider, "kind": KindProvider, "existing": ExistingProvider}


def provider_for(name: str, **options) -> ClusterProvider:
    if name not in PROVIDERS:
        raise UsageError(f"unknown cluster provider '{name}'; choose one of: {', '.join(PROVIDERS)}")
    if name == "existing":
        return ExistingProvider(kubeconfig=options.get("kubeconfig"), context=options.get("context"),
                                toolchain=options.get("toolchain"))
    if name == "embedded":
        return EmbeddedProvider(toolchain=options.get("toolchain"), kube_version=options.get("kube_version"))
    return PROVIDERS[name](toolchain=options.get("toolchain"))


__all__ = ["Cluster", "ClusterProvider", "ClusterRecord", "PROVIDERS", "provider_for"]
