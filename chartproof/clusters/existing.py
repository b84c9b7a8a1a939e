"""A cluster someone else owns, reached through a kubeconfig. Chartproof never creates or deletes it,
and touches only the namespaces and releases it created and labelled."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from chartproof.clusters.base import Cluster, ClusterProvider, ClusterRecord
from chartproof.clusters.nodes import SIMULATED_ANNOTATION
from chartproof.errors import ClusterUnreachableError, UsageError, WrongContextError
from chartproof.kube import Kubectl
from chartproof.toolchain import Toolchain


def default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = env.split(os.pathsep)[0] if env else ""
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def kubeconfig_contexts(path: Path) -> tuple[list[str], str | None]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ClusterUnreachableError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"kubeconfig {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    names = [c.get("name") for c in data.get("contexts") or [] if c.get("name")]
    return names, data.get("current-context") or None


class ExistingProvider(ClusterProvider):
    name = "existing"

    def __init__(self, toolchain: Toolchain | None = None, *, kubeconfig: Path | None = None, context: str | None = None):
        self.toolchain = toolchain or Toolchain()
        self.kubeconfig = Path(kubeconfig).expanduser() if kubeconfig else default_kubeconfig()
        self.context = context

    def resolve_context(self) -> str:
        names, current = kubeconfig_contexts(self.kubeconfig)
        wanted = self.context or current
        if not wanted:
            raise WrongContextError(f"{self.kubeconfig} has no current context; name one with --kube-context",
                                    hint="known: " + (", ".join(names) or "none"))
        if wanted not in names:
            raise WrongContextError(f"context '{wanted}' is not in {self.kubeconfig}",
                                    hint="known: " + (", ".join(names) or "none"))
        return wanted

    def up(self, name: str | None, shape: str | None, *, owner: str = "cli", keep: bool = False) -> Cluster:
        if shape:
            raise UsageError("--nodes does not apply to an existing cluster: its nodes are what they are")
        context = self.resolve_context()
        record = ClusterRecord(name=context, provider=self.name, kubeconfig=str(self.kubeconfig), owner=owner, keep=True)
        cluster = self.attach(record)
        cluster.server_version()  # unreachable -> one-line error before any test runs
        return cluster

    def attach(self, record: ClusterRecord) -> Cluster:
        kubectl = Kubectl(self.toolchain.path("kubectl"), Path(record.kubeconfig), context=record.name)
        cluster = Cluster(record.name, self.name, kubectl, simulated=False, record=None)
        return cluster

    def down(self, name: str) -> None:
        """Never deletes someone else's cluster."""
        return None


def detect_simulated(cluster: Cluster) -> bool:
    nodes = cluster.nodes()
    return bool(nodes) and all(SIMULATED_ANNOTATION in (n["metadata"].get("annotations") or {}) for n in nodes)
