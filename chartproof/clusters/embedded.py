"""The default cluster: a real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) run by kwokctl's binary runtime from our pinned binaries, with kwok simulating the
nodes and the pods on them. Nothing is downloaded: every binary comes from the toolchain.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import yaml

from chartproof.clusters.base import Cluster, ClusterProvider, ClusterRecord
from chartproof.clusters.nodes import describe_shape, node_objects, parse_shape
from chartproof.errors import ClusterError
from chartproof.kube import Kubectl, KubectlError, wait_for
from chartproof.paths import FIXTURES, cache_dir
from chartproof.progress import Progress
from chartproof.toolchain import Toolchain

STAGES_DIR = FIXTURES / "kwok" / "stages"
STORAGE_CLASSES = FIXTURES / "kwok" / "storageclasses.yaml"
COMPONENT_BINARIES = {
    "kubeApiserverBinary": "kube-apiserver",
    "kubeControllerManagerBinary": "kube-controller-manager",
    "kubeSchedulerBinary": "kube-scheduler",
    "kubectlBinary": "kubectl",
    "etcdBinary": "etcd",
    "kwokControllerBinary": "kwok",
}


def new_cluster_name() -> str:
    return "chartproof-" + secrets.token_hex(3)


class EmbeddedProvider(ClusterProvider):
    name = "embedded"
    simulated = True

    def __init__(self, toolchain: Toolchain | None = None):
        self.toolchain = toolchain or Toolchain()

    # -- configuration ---------------------------------------------------------------------------------
    def kwok_workdir(self) -> Path:
        return cache_dir() / "kwok"

    def kwokctl_config(self) -> str:
        """The kwokctl configuration: local binaries, the host-path provisioner, and our stages."""
        options = {"runtime": "binary"}
        options.update({key: str(self.toolchain.path(tool)) for key, tool in COMPONENT_BINARIES.items()})
        config = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": options,
            "componentsPatches": [
                {"name": "kube-controller-manager",
                 "extraArgs": [{"key": "enable-hostpath-provisioner", "value": "true"}]},
            ],
        }
        docs = [yaml.safe_dump(config, sort_keys=False)]
        docs += [path.read_text() for path in sorted(STAGES_DIR.glob("*.yaml"))]
        return "---\n".join(docs)

    def _kwokctl(self, name: str, *args: str, kubeconfig: Path, log: Path | None = None, timeout: float = 300):
        env = dict(os.environ, KWOK_WORKDIR=str(self.kwok_workdir()))
        cmd = [str(self.toolchain.path("kwokctl")), "--name", name, *args, "--kubeconfig", str(kubeconfig)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        if log:
            with open(log, "a") as fh:
                fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
        return proc

    # -- lifecycle -------------------------------------------------------------------------------------
    def up(self, name: str | None, shape: str | None, *, owner: str = "cli", keep: bool = False) -> Cluster:
        groups = parse_shape(shape)  # bad --nodes fails before anything is created
        for tool in ("kwokctl", *COMPONENT_BINARIES.values()):
            self.toolchain.path(tool)  # builds what is missing, with progress, before the clock starts
        name = name or new_cluster_name()
        record = ClusterRecord(name=name, provider=self.name, kubeconfig="", owner=owner, keep=keep,
                               shape=describe_shape(groups))
        record.kubeconfig = str(record.directory / "kubeconfig")
        record.save()  # remembered before it exists, so an interrupted start is still found and removed
        config = record.directory / "kwokctl.yaml"
        config.write_text(self.kwokctl_config())
        log = record.directory / "kwokctl.log"
        try:
            with Progress(f"cluster {name}", f"embedded control plane + {sum(g.count for g in groups)} simulated nodes",
                          every=10) as progress:
                progress.update("kwokctl create cluster")
                proc = self._kwokctl(name, "-c", str(config), "create", "cluster", "--wait", "120s",
                                     kubeconfig=Path(record.kubeconfig), log=log)
                if proc.returncode != 0:
                    lines = (proc.stdout + proc.stderr).strip().splitlines()
                    raise ClusterError(f"kwokctl could not start cluster {name}: {lines[-1] if lines else proc.returncode}",
                                       hint=f"log: {log}")
                cluster = self.attach(record)
                progress.update("storage classes and nodes")
                cluster.kubectl.apply(STORAGE_CLASSES.read_text())
                cluster.kubectl.apply(node_objects(groups, simulated=True))
                progress.update("waiting for nodes Ready")
                expected = sum(g.count for g in groups)
                wait_for(lambda: _ready_nodes(cluster.kubectl) >= expected, timeout=120,
                         what=f"{expected} Ready nodes", interval=0.2)
                wait_for(lambda: cluster.kubectl.exists("serviceaccount", "default", "default"), timeout=60,
                         what="the default ServiceAccount", interval=0.2)
            return cluster
        except BaseException:
            self.down(name)
            raise

    def attach(self, record: ClusterRecord) -> Cluster:
        kubectl = Kubectl(self.toolchain.path("kubectl"), Path(record.kubeconfig))
        return Cluster(record.name, self.name, kubectl, simulated=True, record=record)

    def down(self, name: str) -> None:
        directory = ClusterRecord.root() / name
        kubeconfig = directory / "kubeconfig"
        proc = self._kwokctl(name, "delete", "cluster", kubeconfig=kubeconfig, timeout=120)
        still_there = (self.kwok_workdir() / "clusters" / name).exists()
        if proc.returncode != 0 and still_there:
            raise ClusterError(f"kwokctl could not delete cluster {name}: {(proc.stderr or proc.stdout).strip()[-300:]}")
        shutil.rmtree(directory, ignore_errors=True)

    def known_names(self) -> list[str]:
        """Clusters kwokctl knows in our work directory (also ones whose record was lost)."""
        root = self.kwok_workdir() / "clusters"
        return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def _ready_nodes(kubectl: Kubectl) -> int:
    try:
        nodes = kubectl.items("nodes")
    except KubectlError:
        return 0
    return sum(
        1 for n in nodes
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in (n.get("status") or {}).get("conditions") or [])
    )
