"""kind clusters, for machines with Docker: real kubelets and containers, GPUs advertised as
extended resources on the workers (see fixtures/kind/README.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from chartproof import yamlio
from chartproof.clusters.base import Cluster, ClusterProvider, ClusterRecord
from chartproof.clusters.embedded import new_cluster_name
from chartproof.clusters.nodes import NodeGroup, describe_shape, parse_shape
from chartproof.errors import ClusterError, ProviderUnavailableError
from chartproof.kube import Kubectl
from chartproof.paths import FIXTURES
from chartproof.progress import Progress
from chartproof.toolchain import Toolchain

BASE_CONFIG = FIXTURES / "kind" / "cluster.yaml"
DEFAULT_KIND_SHAPE = "gpu-only"


def docker_unavailable_reason() -> str | None:
    docker = shutil.which("docker")
    if not docker:
        return "kind needs a Docker engine and there is no docker command on PATH"
    try:
        proc = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "kind needs a Docker engine and `docker info` did not answer within 15s"
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        return "kind needs a Docker engine: `docker info` failed: " + (last[-1] if last else f"exit {proc.returncode}")
    return None


def kind_config(groups: list[NodeGroup]) -> dict:
    """The base configuration plus one worker per simulated node."""
    config = yamlio.load(BASE_CONFIG.read_text())
    config["nodes"] = list(config.get("nodes") or [{"role": "control-plane"}])
    config["nodes"] += [{"role": "worker"} for g in groups for _ in range(g.count)]
    return config


def worker_names(cluster: str, count: int) -> list[str]:
    """kind's own node names: ``<cluster>-worker``, ``<cluster>-worker2``, ..."""
    return [f"{cluster}-worker" + (str(i + 1) if i else "") for i in range(count)]


def create_command(kind: Path, name: str, config: Path, kubeconfig: Path, wait: str = "180s") -> list[str]:
    return [str(kind), "create", "cluster", "--name", name, "--config", str(config), "--kubeconfig", str(kubeconfig),
            "--wait", wait]


def delete_command(kind: Path, name: str, kubeconfig: Path) -> list[str]:
    return [str(kind), "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)]


def node_commands(groups: list[NodeGroup], names: list[str]) -> list[list[str]]:
    """kubectl argument lists that give each worker its profile: labels, taints, extended resources."""
    commands: list[list[str]] = []
    index = 0
    for group in groups:
        labels, taints = group.profile.resolved(group.state)
        extended = {k: v for k, v in group.profile.capacity.items() if "/" in k}
        for _ in range(group.count):
            node = names[index]
            index += 1
            commands.append(["label", "node", node, "--overwrite", *[f"{k}={v}" for k, v in sorted(labels.items())]])
            for taint in taints:
                value = f"={taint['value']}" if taint.get("value") else ""
                commands.append(["taint", "node", node, "--overwrite", f"{taint['key']}{value}:{taint['effect']}"])
            if extended:
                patch = [{"op": "add", "path": "/status/capacity/" + key.replace("~", "~0").replace("/", "~1"), "value": value}
                         for key, value in sorted(extended.items())]
                commands.append(["patch", "node", node, "--subresource=status", "--type=json", "-p", json.dumps(patch)])
    return commands


class KindProvider(ClusterProvider):
    name = "kind"
    simulated = False

    def __init__(self, toolchain: Toolchain | None = None):
        self.toolchain = toolchain or Toolchain()

    def unavailable(self) -> str | None:
        return docker_unavailable_reason()

    def up(self, name: str | None, shape: str | None, *, owner: str = "cli", keep: bool = False) -> Cluster:
        reason = self.unavailable()
        if reason:
            raise ProviderUnavailableError(reason)
        groups = parse_shape(shape or DEFAULT_KIND_SHAPE)
        kind = self.toolchain.path("kind")
        name = name or new_cluster_name()
        record = ClusterRecord.create(name, self.name, owner=owner, keep=keep, shape=describe_shape(groups))
        config = record.directory / "kind.yaml"
        config.write_text(yamlio.dump(kind_config(groups), sort_keys=False))
        try:
            with Progress(f"cluster {name}", "kind create cluster", every=15):
                proc = subprocess.run(create_command(kind, name, config, Path(record.kubeconfig)),
                                      capture_output=True, text=True, timeout=900)
                if proc.returncode != 0:
                    lines = (proc.stderr or proc.stdout).strip().splitlines()
                    raise ClusterError(f"kind could not create cluster {name}: {lines[-1] if lines else proc.returncode}")
            cluster = self.attach(record)
            for args in node_commands(groups, worker_names(name, sum(g.count for g in groups))):
                cluster.kubectl(*args)
            return cluster
        except BaseException:
            self.down(name)
            raise

    def attach(self, record: ClusterRecord) -> Cluster:
        kubectl = Kubectl(self.toolchain.path("kubectl"), Path(record.kubeconfig), context=f"kind-{record.name}")
        return Cluster(record.name, self.name, kubectl, simulated=False, record=record)

    def down(self, name: str) -> None:
        directory = ClusterRecord.root() / name
        if shutil.which("docker") and not self.unavailable():
            proc = subprocess.run(delete_command(self.toolchain.path("kind"), name, directory / "kubeconfig"),
                                  capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise ClusterError(f"kind could not delete cluster {name}: {proc.stderr.strip()[-300:]}")
        shutil.rmtree(directory, ignore_errors=True)
