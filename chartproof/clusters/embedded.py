"""The default cluster: a real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) run by kwokctl's binary runtime from our pinned binaries, with kwok simulating the
nodes and the pods on them. Nothing is downloaded: every binary comes from the toolchain.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from chartproof import yamlio
from chartproof.clusters.base import Cluster, ClusterProvider, ClusterRecord
from chartproof.clusters.nodes import NODE_LEASES, describe_shape, node_objects, parse_shape, taken_nodes
from chartproof.errors import ClusterError, WaitTimeout
from chartproof.kube import Kubectl, KubectlError, wait_for
from chartproof.paths import FIXTURES, cache_dir
from chartproof.progress import Progress
from chartproof.toolchain import Toolchain
from chartproof.versions import KUBE_VERSION_ENV, control_plane_pins

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


# kwokctl scans for unused ports from a fixed starting point, so two clusters starting at the same time
# (parallel runs on one machine) can pick the same ones; ports the kernel hands out do not collide that way.
PORT_OPTIONS = ("kubeApiserverPort", "etcdPort", "etcdPeerPort", "kubeControllerManagerPort", "kubeSchedulerPort",
                "kwokControllerPort")
START_ATTEMPTS = 2
# The API client rate of kube-controller-manager (default 20 requests/s, burst 30) and kube-scheduler
# (50/s, burst 100). At the default, the ReplicaSet controller creates 1,000 pods in 50 s, one every
# 50 ms, on a control plane that could take them far faster (measured: chartproof/bench.py).
CLIENT_RATE = [{"key": "kube-api-qps", "value": "1000"}, {"key": "kube-api-burst", "value": "2000"}]
# Nothing on a simulated node reads the annotation the TTL controller keeps on every Node (a kubelet's cache
# lifetime for secrets and config maps), and it rewrites all of them each time the node count crosses one of
# its steps (100, 500, 1,000 nodes); with the beta labels nodes.py now registers, 2,223 of the 3,224 Node
# patches of 1,000 nodes with 1,000 pods.
CONTROLLERS = [{"key": "controllers", "value": "*,-ttl"}]
# The control plane's collector runs at a quarter of Go's default pace (heap growth 400% between collections,
# up to 2 GiB a process): at 1,000 nodes with 1,000 pods the API server spent an eighth of its CPU in it, on
# two cores shared with everything else; it about doubles resident memory (API server 517 -> 865 MiB there).
GO_RUNTIME = [{"name": "GOGC", "value": "400"}, {"name": "GOMEMLIMIT", "value": "2GiB"}]
# etcd skips fsync (its --unsafe-no-fsync, meant for test clusters): a simulated cluster's store need not outlive
# a crash of this machine (a kept cluster that did would be made again), and every API write would otherwise
# wait for the disk. Measured on the eleven HyperPod scenario installs (`pytest suites/hyperpod -k
# install_01_scenario`, two runs each, machine-wide CPU from /proc/stat): 82.8 and 82.6 s, 53 and 48 CPU-s with
# fsync; 80.6 and 78.1 s, 46 and 41 CPU-s without.
ETCD_NO_FSYNC = [{"key": "unsafe-no-fsync", "value": "true"}]
# kwokctl's component names, and the flags each runs with besides kwokctl's own.
COMPONENT_ARGS = {
    "etcd": ETCD_NO_FSYNC,
    "kube-apiserver": [],
    "kube-controller-manager": [{"key": "enable-hostpath-provisioner", "value": "true"}, *CLIENT_RATE, *CONTROLLERS],
    "kube-scheduler": CLIENT_RATE,
    "kwok-controller": [],
}


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def new_cluster_name() -> str:
    return "chartproof-" + secrets.token_hex(3)


class EmbeddedProvider(ClusterProvider):
    name = "embedded"
    simulated = True

    def __init__(self, toolchain: Toolchain | None = None, kube_version: str | None = None):
        self.toolchain = toolchain or Toolchain()
        self.kube_version = kube_version or os.environ.get(KUBE_VERSION_ENV) or None

    # -- Kubernetes version (--chartproof-kube-version MINOR, CHARTPROOF_KUBE_VERSION) -----------------------
    def component_tool(self, tool: str) -> str:
        """The pin that runs ``tool`` (one of COMPONENT_BINARIES) at the chosen Kubernetes version:
        ``kube-apiserver-1.26`` for 1.26, the current pin when none is chosen; kwok is the same at every version."""
        return control_plane_pins(self.toolchain.pins, self.kube_version).get(tool, tool)

    def kube_release(self) -> str:
        """The Kubernetes release the control plane runs (kwokctl's ``kubeVersion``)."""
        return self.toolchain.pin(self.component_tool("kube-apiserver")).version

    # -- configuration ---------------------------------------------------------------------------------
    def kwok_workdir(self) -> Path:
        return cache_dir() / "kwok"

    def kwokctl_config(self) -> str:
        """The kwokctl configuration: local binaries, OS-chosen ports, the host-path provisioner, our stages."""
        options: dict = {"runtime": "binary"}
        options.update(zip(PORT_OPTIONS, free_ports(len(PORT_OPTIONS)), strict=True))
        options.update({key: str(self.toolchain.path(self.component_tool(tool)))
                        for key, tool in COMPONENT_BINARIES.items()})
        options["kubeVersion"] = self.kube_release()
        config = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": options,
            "componentsPatches": [{"name": name, "extraArgs": args, "extraEnvs": GO_RUNTIME}
                                  for name, args in COMPONENT_ARGS.items()],
        }
        docs = [yamlio.dump(config, sort_keys=False)]
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
            self.toolchain.path(self.component_tool(tool))  # builds what is missing, with progress, before the clock starts
        name = name or new_cluster_name()
        record = ClusterRecord.create(name, self.name, owner=owner, keep=keep, shape=describe_shape(groups))
        log = record.directory / "kwokctl.log"
        try:
            with Progress(f"cluster {name}", f"embedded control plane + {sum(g.count for g in groups)} simulated nodes",
                          every=10) as progress:
                for attempt in range(1, START_ATTEMPTS + 1):
                    try:
                        return self._start(record, groups, progress, attempt, log)
                    except (ClusterError, WaitTimeout) as exc:
                        if attempt == START_ATTEMPTS:
                            raise
                        # A component that lost a race at start (a port taken between our pick and its bind, a
                        # controller that exited under load) is not the chart's fault: keep its logs, start afresh.
                        kept = self._keep_logs(name, suffix=f"attempt-{attempt}")
                        with open(log, "a") as fh:
                            fh.write(f"attempt {attempt} failed: {exc.message} (logs: {kept})\n")
                        progress.update(f"attempt {attempt} failed ({exc.message[:80]}); starting again")
                        self._kwokctl(name, "delete", "cluster", kubeconfig=Path(record.kubeconfig), log=log)
        except BaseException as exc:
            kept = self._keep_logs(name) if not isinstance(exc, KeyboardInterrupt) else None
            self.down(name)
            if kept and isinstance(exc, ClusterError | WaitTimeout):
                raise ClusterError(f"cluster {name} did not start: {exc.message}", hint=f"component logs: {kept}") from None
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start(self, record: ClusterRecord, groups, progress: Progress, attempt: int, log: Path) -> Cluster:
        """One try at a working cluster: control plane up and serving, storage classes and nodes Ready."""
        name = record.name
        config = record.directory / "kwokctl.yaml"
        progress.update(f"kwokctl create cluster (attempt {attempt})")
        config.write_text(self.kwokctl_config())
        proc = self._kwokctl(name, "-c", str(config), "create", "cluster", "--wait", "120s",
                             kubeconfig=Path(record.kubeconfig), log=log)
        if proc.returncode != 0:
            lines = (proc.stdout + proc.stderr).strip().splitlines()
            raise ClusterError(f"kwokctl could not start cluster {name}: {lines[-1] if lines else proc.returncode}",
                               hint=f"log: {log}")
        cluster = self.attach(record)
        progress.update("waiting for the API server")
        wait_for(lambda: _api_ready(cluster.kubectl), timeout=120, what="a ready API server", interval=0.2)
        progress.update("storage classes and nodes")
        _retry_while_starting(lambda: cluster.kubectl.apply(STORAGE_CLASSES.read_text()))
        nodes = node_objects(groups, simulated=True)
        _retry_while_starting(lambda: cluster.kubectl.create(
            nodes, progress=lambda done: progress.update(f"{done}/{len(nodes)} nodes created")))
        progress.update("waiting for kwok to take the nodes")
        expected = sum(g.count for g in groups)
        wait_for(lambda: _taken_nodes(cluster.kubectl) >= expected,
                 timeout=90, what=f"{expected} Ready nodes, each with its Lease", interval=0.2,
                 give_up=lambda: self._dead_component(name), explain=lambda: self._log_tail(name, "kwok-controller"))
        wait_for(lambda: cluster.kubectl.exists("serviceaccount", "default", "default"), timeout=60,
                 what="the default ServiceAccount", interval=0.2)
        return cluster

    def _component_dir(self, name: str) -> Path:
        return self.kwok_workdir() / "clusters" / name

    def _dead_component(self, name: str) -> str | None:
        """The name of a control-plane component whose process has exited (waiting cannot bring it back)."""
        pids = self._component_dir(name) / "pids"
        if not pids.is_dir():
            return None
        for pidfile in sorted(pids.glob("*.pid")):
            try:
                pid = int(pidfile.read_text().strip())
            except (ValueError, OSError):
                continue
            if not _alive(pid):
                return f"{pidfile.stem} exited ({self._log_tail(name, pidfile.stem)})"
        return None

    def _log_tail(self, name: str, component: str, lines: int = 3) -> str:
        path = self._component_dir(name) / "logs" / f"{component}.log"
        try:
            tail = path.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return f"no {component} log"
        return f"last lines of {component}.log: " + " | ".join(_log_line(line)[:200] for line in tail)

    def _keep_logs(self, name: str, suffix: str = "") -> Path | None:
        """Copy the control plane's logs somewhere that outlives the failed cluster."""
        logs = self._component_dir(name) / "logs"
        if not logs.is_dir():
            return None
        dest = cache_dir() / "failed-clusters" / (f"{name}-{suffix}" if suffix else name)
        shutil.copytree(logs, dest, dirs_exist_ok=True)
        record_dir = ClusterRecord.root() / name
        for extra in ("kwokctl.log", "kwokctl.yaml"):
            if (record_dir / extra).is_file():
                shutil.copy2(record_dir / extra, dest / extra)
        return dest

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


def _log_line(line: str) -> str:
    """kwok logs JSON: level, message and error are what a person needs from a line."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line.strip()
    if not isinstance(entry, dict):
        return line.strip()
    return " ".join(str(entry[k]) for k in ("level", "msg", "err") if entry.get(k))


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent that never reaps it (kwokctl detaches its children)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _api_ready(kubectl: Kubectl) -> bool:
    """/readyz answers ok three times in a row (a control plane under load can flap right after start)."""
    for _ in range(3):
        try:
            if kubectl("get", "--raw", "/readyz", timeout=15).strip() != "ok":
                return False
        except (KubectlError, subprocess.TimeoutExpired):
            return False
    return True


def _retry_while_starting(step: Callable[[], object], timeout: float = 60) -> None:
    """Run ``step`` (an apply or create) until the new API server takes it: refusals and timeouts of a server
    still starting are retried, any other error is raised."""
    def attempt():
        try:
            step()
            return True
        except KubectlError as exc:
            if "connection refused" in exc.stderr or "openapi" in exc.stderr or "timeout" in exc.stderr.lower():
                return False
            raise

    wait_for(attempt, timeout=timeout, what="objects applied", interval=0.5)


def _taken_nodes(kubectl: Kubectl) -> int:
    try:
        return taken_nodes(kubectl.items("nodes"), kubectl.items("leases", NODE_LEASES))
    except KubectlError:
        return 0
