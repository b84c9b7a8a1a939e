"""What every cluster provider gives the suite: a ``Cluster`` handle, and the provider interface."""

from __future__ import annotations

import abc
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chartproof import waiters
from chartproof.clusters.nodes import ACCELERATORS
from chartproof.kube import Kubectl, wait_for
from chartproof.paths import cache_dir


@dataclass
class ClusterRecord:
    """A cluster Chartproof created, as remembered in ``<cache>/clusters/<name>/record.json``."""

    name: str
    provider: str
    kubeconfig: str
    created: float = field(default_factory=time.time)
    owner_pid: int = field(default_factory=os.getpid)
    owner: str = "cli"  # cli | pytest run id
    keep: bool = False
    shape: str = ""

    @classmethod
    def create(cls, name: str, provider: str, *, owner: str, keep: bool, shape: str) -> ClusterRecord:
        """A record for a cluster Chartproof is about to start, saved before it exists (so an interrupted
        start is still found and removed); its kubeconfig lives in the record's directory."""
        record = cls(name=name, provider=provider, kubeconfig=str(cls.root() / name / "kubeconfig"), owner=owner,
                     keep=keep, shape=shape)
        record.save()
        return record

    @staticmethod
    def root() -> Path:
        return cache_dir() / "clusters"

    @property
    def directory(self) -> Path:
        return self.root() / self.name

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / "record.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, self.directory / "record.json")

    @classmethod
    def load_all(cls) -> list[ClusterRecord]:
        records = []
        for path in sorted(cls.root().glob("*/record.json")):
            try:
                records.append(cls(**json.loads(path.read_text())))
            except (ValueError, TypeError):
                continue
        return records

    @property
    def owner_alive(self) -> bool:
        try:
            os.kill(self.owner_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @property
    def state(self) -> str:
        if self.keep:
            return "kept"
        if self.owner == "cli":
            return "up (cli)"
        return "in use" if self.owner_alive else "leaked"


class Cluster:
    """A reachable cluster: kubectl, waiters, and facts about its nodes."""

    def __init__(self, name: str, provider: str, kubectl: Kubectl, *, simulated: bool, record: ClusterRecord | None = None):
        self.name = name
        self.provider = provider
        self.kubectl = kubectl
        self.simulated = simulated
        self.record = record

    @property
    def kubeconfig(self) -> Path:
        return self.kubectl.kubeconfig

    @property
    def context(self) -> str | None:
        return self.kubectl.context

    def get_json(self, kind: str, name: str | None = None, namespace: str | None = None, selector: str | None = None) -> dict:
        return self.kubectl.get_json(kind, name, namespace=namespace, selector=selector)

    def apply(self, obj: Any, namespace: str | None = None) -> str:
        return self.kubectl.apply(obj, namespace=namespace)

    def wait_ready(self, namespace: str | None = None, timeout: float = 180,
                   objects: list[tuple[str, str, str | None]] | None = None) -> None:
        waiters.wait_ready(self.kubectl, namespace=namespace, objects=objects, timeout=timeout,
                           fixed_nodes=self.provider in ("embedded", "kind"))

    def wait_for(self, predicate, timeout: float = 60, what: str = "condition", interval: float = 0.5):
        return wait_for(predicate, timeout=timeout, what=what, interval=interval)

    def wait_crds_served(self, names: list[str], timeout: float = 60) -> None:
        """Until the API server lists every object of each CRD of ``names`` in one piece: the CRD is in
        discovery (helm's and kubectl's REST mappers) and its storage's watch cache is filled. A CRD deleted
        before that keeps its cleanup finalizer for minutes: the API server's cleanup fails with "could not list
        instances: storage is (re)initializing" and its retries back off (measured: a HyperPod uninstall 3 s
        after its install waited 270 s for mpijobs.kubeflow.org to go). Every CRD is asked on each look, so
        their caches fill side by side; looks come every 0.05 s."""
        pending = list(names)

        def served() -> bool:
            pending[:] = [name for name in pending if not self.kubectl.lists_whole(name)]
            return not pending

        self.wait_for(served, timeout=timeout, what=f"{', '.join(names)} listable", interval=0.05)

    def nodes(self) -> list[dict]:
        return self.kubectl.items("nodes")

    def can(self, verb: str, resource: str, *, user: str = "chartproof-probe", groups: tuple[str, ...] | list[str] = (),
            namespace: str | None = None) -> bool:
        """Whether ``user`` in ``groups`` may ``verb`` ``resource``, asked of the API server's authorizer.

        ``resource`` is ``plural[.group][/name]``, e.g. ``jobs.batch``, ``clusterqueues.kueue.x-k8s.io/q1``,
        ``pods/eviction``. A SubjectAccessReview, unlike ``kubectl auth can-i``, also answers for resource types
        the server does not serve (Kueue's, before Kueue is installed).
        """
        resource, _, name = resource.partition("/")
        plural, _, group = resource.partition(".")
        attributes = {"verb": verb, "resource": plural, "group": group}
        if name and plural in ("pods", "nodes") and name in ("eviction", "status", "log", "exec"):
            attributes["subresource"] = name
        elif name:
            attributes["name"] = name
        if namespace:
            attributes["namespace"] = namespace
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": user, "groups": [*groups, "system:authenticated"], "resourceAttributes": attributes}}
        out = self.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
        return bool(json.loads(out).get("status", {}).get("allowed"))

    def server_version(self) -> str:
        return self.kubectl.server_version()

    def gpu_inventory(self) -> list[dict[str, str]]:
        """One row per node: instance type and allocatable accelerators."""
        rows = []
        for node in self.nodes():
            alloc = (node.get("status") or {}).get("allocatable") or {}
            labels = node["metadata"].get("labels") or {}
            row = {"node": node["metadata"]["name"],
                   "instance-type": labels.get("node.kubernetes.io/instance-type", "?")}
            row.update({res: alloc.get(res, "0") for res in ACCELERATORS})
            rows.append(row)
        return rows

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "provider": self.provider, "simulated": self.simulated,
                "server_version": self.server_version(), "kubeconfig": str(self.kubeconfig),
                "context": self.context, "nodes": self.gpu_inventory()}


class ClusterProvider(abc.ABC):
    """Brings clusters up and down. ``unavailable()`` says, in one line, why it cannot run here."""

    name: str = ""
    simulated: bool = False

    def unavailable(self) -> str | None:
        return None

    @abc.abstractmethod
    def up(self, name: str, shape: str | None, *, owner: str = "cli", keep: bool = False) -> Cluster: ...

    @abc.abstractmethod
    def down(self, name: str) -> None: ...

    @abc.abstractmethod
    def attach(self, record: ClusterRecord) -> Cluster: ...
