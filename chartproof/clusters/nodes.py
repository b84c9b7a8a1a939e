"""Declarative node profiles (``fixtures/nodes/*.yaml``) and cluster shapes (``--nodes``)."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from chartproof import yamlio
from chartproof.errors import UsageError
from chartproof.paths import FIXTURES

PROFILE_DIR = FIXTURES / "nodes"
HEALTH_LABEL = "sagemaker.amazonaws.com/node-health-status"
DHC_LABEL = "sagemaker.amazonaws.com/deep-health-check-status"
SIMULATED_ANNOTATION = "kwok.x-k8s.io/node"
ACCELERATORS = ("nvidia.com/gpu", "aws.amazon.com/neuron", "aws.amazon.com/neuroncore", "vpc.amazonaws.com/efa")


@dataclass(frozen=True)
class NodeProfile:
    name: str
    labels: dict[str, str]
    capacity: dict[str, str]
    taints: list[dict] = field(default_factory=list)
    hyperpod: bool = False
    states: dict[str, dict] = field(default_factory=dict)

    def _state(self, state: str | None) -> dict:
        if not state:
            return {}
        if state not in self.states:
            known = ", ".join(sorted(self.states)) or "none"
            raise UsageError(f"node profile {self.name} has no state '{state}' (its states: {known})")
        return self.states[state] or {}

    def resolved(self, state: str | None) -> tuple[dict[str, str], list[dict]]:
        labels = dict(self.labels)
        if self.hyperpod:
            labels.setdefault(HEALTH_LABEL, "Schedulable")
            labels.setdefault(DHC_LABEL, "Passed")
        taints = [dict(t) for t in self.taints]
        variant = self._state(state)
        labels.update({k: str(v) for k, v in (variant.get("labels") or {}).items()})
        taints += [dict(t) for t in variant.get("taints") or []]
        return labels, taints

    def resources(self, state: str | None) -> tuple[dict[str, str], dict[str, str]]:
        """``(capacity, allocatable)`` in a state: allocatable equals capacity unless the state says otherwise
        (a state's ``capacity:`` overrides both, its ``allocatable:`` only allocatable)."""
        variant = self._state(state)
        capacity = {**self.capacity, **{k: str(v) for k, v in (variant.get("capacity") or {}).items()}}
        allocatable = {**capacity, **{k: str(v) for k, v in (variant.get("allocatable") or {}).items()}}
        return capacity, allocatable


STATE_KEYS = ("labels", "taints", "capacity", "allocatable")


def _states(path: Path, raw) -> dict[str, dict]:
    states = dict(raw or {})
    for name, variant in states.items():
        if not isinstance(variant, dict) or set(variant) - set(STATE_KEYS):
            raise UsageError(f"node profile {path.name}: state '{name}' may only set {', '.join(STATE_KEYS)}")
    return states


def load_profiles(directory: Path = PROFILE_DIR) -> dict[str, NodeProfile]:
    profiles = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "shapes.yaml":
            continue
        data = yamlio.load(path.read_text()) or {}
        profiles[path.stem] = NodeProfile(
            name=path.stem,
            labels={k: str(v) for k, v in (data.get("labels") or {}).items()},
            capacity={k: str(v) for k, v in (data.get("capacity") or {}).items()},
            taints=list(data.get("taints") or []),
            hyperpod=bool(data.get("hyperpod")),
            states=_states(path, data.get("states")),
        )
    return profiles


def load_shapes(directory: Path = PROFILE_DIR) -> dict[str, str]:
    path = directory / "shapes.yaml"
    return {k: str(v) for k, v in (yamlio.load(path.read_text()) or {}).items()} if path.is_file() else {}


@dataclass(frozen=True)
class NodeGroup:
    profile: NodeProfile
    state: str | None
    count: int

    @property
    def label(self) -> str:
        return self.profile.name + (f":{self.state}" if self.state else "")


_ITEM = re.compile(r"^(?P<profile>[A-Za-z0-9][\w.-]*)(?::(?P<state>[\w-]+))?=(?P<count>\d+)$")


def parse_shape(spec: str | None, directory: Path = PROFILE_DIR) -> list[NodeGroup]:
    """``ml.p5.48xlarge=4,cpu=2`` (or a shape name such as ``default``) -> node groups."""
    shapes = load_shapes(directory)
    spec = (spec or "default").strip()
    spec = shapes.get(spec, spec)
    profiles = load_profiles(directory)
    groups: list[NodeGroup] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        match = _ITEM.match(item)
        if not match:
            raise UsageError(f"bad --nodes item '{item}': expected PROFILE[:STATE]=COUNT, e.g. ml.p5.48xlarge=4")
        name = match["profile"]
        if name not in profiles:
            raise UsageError(f"unknown node profile '{name}' in --nodes; known: {', '.join(sorted(profiles))}",
                             hint="or a shape: " + ", ".join(sorted(shapes)) if shapes else None)
        group = NodeGroup(profiles[name], match["state"], int(match["count"]))
        group.profile.resolved(group.state)  # validates the state name
        groups.append(group)
    if not groups or sum(g.count for g in groups) == 0:
        raise UsageError("--nodes asks for no nodes")
    return groups


def dns_label(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def node_objects(groups: list[NodeGroup], *, simulated: bool = True, name_prefix: str | None = None) -> list[dict]:
    """Kubernetes Node objects for the groups, named ``<profile>[-<state>]-<n>`` (or ``<name_prefix>-<n>``).
    A simulated node carries the status its kubelet would report on registering (see ``registered_status``)."""
    nodes = []
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for group in groups:
        labels, taints = group.profile.resolved(group.state)
        capacity, allocatable = group.profile.resources(group.state)
        base = name_prefix or dns_label(group.profile.name + (f"-{group.state}" if group.state else ""))
        for index in range(group.count):
            name = f"{base}-{index}"
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {
                        **labels,
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        # a kubelet sets the beta pair too; without them the node lifecycle controller patches
                        # every node to add them (1,000 writes of 1,000 large Node objects)
                        "beta.kubernetes.io/os": "linux",
                        "beta.kubernetes.io/arch": "amd64",
                        "chartproof.dev/profile": dns_label(group.profile.name),
                        "type": "kwok" if simulated else "kind",
                    },
                    "annotations": {"chartproof.dev/profile": group.label},
                },
                "spec": {"taints": taints} if taints else {},
                "status": {"capacity": dict(capacity), "allocatable": dict(allocatable)},
            }
            if simulated:
                node["metadata"]["annotations"][SIMULATED_ANNOTATION] = "fake"
                node["status"].update(registered_status(name, now))
            nodes.append(node)
    return nodes


NODE_LEASES = "kube-node-lease"  # the namespace of the Lease each node's kubelet renews


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (node.get("status") or {}).get("conditions") or [])


def taken_nodes(nodes: list[dict], leases: list[dict]) -> int:
    """How many of ``nodes`` are Ready with a node Lease somebody holds (``leases``: those of NODE_LEASES). For
    a simulated node that is kwok, which has taken the node and will run its pods: a simulated node registers
    Ready by itself, so Ready alone does not show that."""
    held = {lease["metadata"]["name"] for lease in leases if (lease.get("spec") or {}).get("holderIdentity")}
    return sum(1 for node in nodes if node_ready(node) and node["metadata"]["name"] in held)


KUBELET_PORT = 10250
_CONDITIONS = (("MemoryPressure", "False", "KubeletHasSufficientMemory"),
               ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
               ("PIDPressure", "False", "KubeletHasSufficientPID"),
               ("Ready", "True", "KubeletReady"))


def registered_status(name: str, now: str) -> dict:
    """What a kubelet puts in its Node's status when it registers (before it ever patches it): the four
    conditions, Ready among them, its addresses, its endpoint and its node info. Creating simulated nodes so
    saves one status patch of each large Node object (kwok's node-ready stage then serves only nodes made
    by others); at 1,000 nodes those patches, and the taint the node lifecycle controller adds and removes
    on a node that is not yet Ready, were most of the API server's work. The InternalIP is derived from the
    name (10.64.0.0/10), as a cluster's node addresses are unique; kwok's own default gives every node one."""
    digest = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big") & 0x3FFFFF
    address = f"10.{64 + (digest >> 16)}.{(digest >> 8) & 255}.{digest & 255 or 1}"
    return {
        "phase": "Running",
        "conditions": [{"type": kind, "status": status, "reason": reason, "message": "simulated by kwok",
                        "lastHeartbeatTime": now, "lastTransitionTime": now} for kind, status, reason in _CONDITIONS],
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "kwok-simulated",
                     "kubeProxyVersion": "kwok-simulated", "containerRuntimeVersion": "kwok://simulated",
                     "kernelVersion": "simulated", "osImage": "simulated", "machineID": "", "systemUUID": "",
                     "bootID": ""},
    }


def describe_shape(groups: list[NodeGroup]) -> str:
    return ",".join(f"{g.label}={g.count}" for g in groups)
