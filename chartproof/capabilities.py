"""What a cluster can really do, read from its nodes rather than from the provider's name.

A ``real_cluster`` test declares what it needs (``@pytest.mark.real_cluster(reason, needs="containers")``);
it runs where the cluster has it and is skipped, naming what is missing, where it has not:

- ``containers``: real containers run. kind's nodes do; kwok's simulated nodes never start one.
- ``gpus``: real accelerators. Only nodes that are not simulated and report ``nvidia.com/gpu`` (or Neuron)
  allocatable count; kind only *advertises* GPUs on its nodes, so it has none.
- ``services``: what a provisioned cluster offers beyond containers: cloud storage classes, an ingress
  controller, the charts' private images and databases. Only a cluster Chartproof did not create has them.
"""

from __future__ import annotations

from collections.abc import Iterable

from chartproof.clusters.nodes import SIMULATED_ANNOTATION

NEEDS = {
    "containers": "real containers (kind, or a cluster whose nodes are not simulated)",
    "gpus": "real GPUs (nodes that are not simulated reporting allocatable accelerators; kind only advertises them)",
    "services": "a provisioned cluster's services (cloud storage, an ingress controller, the charts' images "
                "and databases): --cluster existing",
}
DEFAULT_NEEDS = ("services",)
GPU_RESOURCES = ("nvidia.com/gpu", "aws.amazon.com/neuron", "aws.amazon.com/neuroncore")


def _simulated(node: dict) -> bool:
    return SIMULATED_ANNOTATION in ((node.get("metadata") or {}).get("annotations") or {})


def _has_accelerators(node: dict) -> bool:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return any(str(allocatable.get(resource, "0")) not in ("", "0") for resource in GPU_RESOURCES)


def capabilities_of(provider: str, nodes: Iterable[dict]) -> set[str]:
    """The capabilities of a cluster of ``provider`` with these Node objects."""
    real = [n for n in nodes if not _simulated(n)]
    found: set[str] = set()
    if real:
        found.add("containers")
        if provider == "existing":
            found.add("services")
            if any(_has_accelerators(n) for n in real):
                found.add("gpus")
    return found


def capabilities(cluster) -> set[str]:
    """The cluster's capabilities, read once from its nodes."""
    cached = getattr(cluster, "_chartproof_capabilities", None)
    if cached is None:
        cached = capabilities_of(cluster.provider, cluster.nodes())
        cluster._chartproof_capabilities = cached
    return cached


def parse_needs(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """A marker's ``needs=``: one name or several; unknown names are a mistake in the suite, said plainly."""
    if value is None:
        return DEFAULT_NEEDS
    names = tuple(part.strip() for part in value.split(",")) if isinstance(value, str) else tuple(value)
    unknown = [n for n in names if n not in NEEDS]
    if unknown:
        raise ValueError(f"real_cluster(needs=...): unknown {', '.join(unknown)}; known: {', '.join(NEEDS)}")
    return names


def unmet(cluster_name: str, have: set[str], needs: Iterable[str]) -> str | None:
    """Why a test that needs ``needs`` cannot run on a cluster that has ``have``, or None when it can."""
    missing = [n for n in needs if n not in have]
    if not missing:
        return None
    return f"needs {'; '.join(NEEDS[n] for n in missing)}: cluster {cluster_name} has " + (
        ", ".join(sorted(have)) if have else "simulated nodes only")
