"""Real operators run as local processes against a test cluster (controllers need an API server, not a node).

``LocalController`` starts a controller binary with its arguments and environment, writes its output to a
log file, waits until it is up, and makes sure it stops: ``stop()``, the end of the process that owns it
(the run), SIGTERM, SIGINT, or even SIGKILL of the owner. The binary runs under a small watchdog
(``python -m chartproof.operators watch``) that ends it within a second of the owner's exit, and the
binary is bound to the watchdog by the kernel (PR_SET_PDEATHSIG), so no controller outlives its run.
``log_tail()`` gives the last lines for failure diagnostics.

The External Secrets launcher (``external_secrets_*``) builds on it: the pinned ESO release's CRDs,
generated with controller-gen from its API packages, and its controller, built from our wrapper module
(``toolchain/gosrc/external-secrets-controller``), run out of cluster with the cluster's kubeconfig:
no webhook, no cert controller, no leader election, metrics off, its health probe on a free loopback port.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chartproof.crdgen import generate_crds, load_crds
from chartproof.errors import ChartproofError
from chartproof.kube import Kubectl, KubectlError, wait_for
from chartproof.paths import REPO
from chartproof.progress import Progress
from chartproof.redaction import REDACTOR

STOP_GRACE_S = 10.0  # SIGTERM, then this long, then SIGKILL
OWNER_POLL_S = 0.5


class ControllerError(ChartproofError):
    """A controller that could not be started, or died while starting."""

    exit_code = 8
    label = "controller"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class LocalController:
    """A controller binary running as a local process, with its log file and a readiness check.

    ``ready(controller)`` returns True once the controller serves (a health URL answers, a log line
    appeared). ``owner_pid``: the process whose end stops the controller (default: this process).
    """

    name: str
    binary: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path = Path("controller.log")
    ready: Callable[[LocalController], bool] | None = None
    owner_pid: int | None = None
    pid: int | None = None  # the watchdog's pid, which is also the process group of the controller
    extra: dict = field(default_factory=dict)  # what a launcher wants to remember (ports, CRDs)

    # -- starting --------------------------------------------------------------------------------------
    def start(self, timeout: float = 120) -> LocalController:
        """Start the binary under its watchdog and wait until it is ready; raise ControllerError with the
        log's last lines when it exits or is not ready in time (it is stopped then)."""
        self.log_path = Path(self.log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        owner = self.owner_pid or os.getpid()
        cmd = [sys.executable, "-m", "chartproof.operators", "watch", "--owner", str(owner), "--",
               str(self.binary), *self.args]
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])  # the watchdog's import
        with open(self.log_path, "ab") as log:
            log.write(f"# chartproof: {self.name}: {self.binary} {' '.join(self.args)}\n".encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)  # its own process group: stop() signals the group
        self.pid = proc.pid
        self._proc = proc
        if owner == os.getpid():
            atexit.register(self.stop)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with Progress(f"{self.name}", "start", every=10) as progress:
            while True:
                if not self.alive:
                    raise ControllerError(f"{self.name} exited while starting; its log ends with:\n{self.log_tail(25)}",
                                          hint=f"log: {self.log_path}")
                if self.ready is None or self.ready(self):
                    progress.update(f"pid {self.pid}")
                    return
                if time.monotonic() >= deadline:
                    raise ControllerError(f"{self.name} not ready within {timeout:.0f}s; its log ends with:\n"
                                          f"{self.log_tail(25)}", hint=f"log: {self.log_path}")
                time.sleep(0.25)

    # -- state ------------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        proc = getattr(self, "_proc", None)
        if proc is not None:
            return proc.poll() is None
        return self.pid is not None and _alive(self.pid)

    def log_text(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, redacted."""
        return REDACTOR("\n".join(self.log_text().splitlines()[-lines:]))

    def state(self) -> dict:
        """What another process needs to find this controller again (``LocalController.attach``)."""
        return {"name": self.name, "binary": str(self.binary), "args": self.args, "log_path": str(self.log_path),
                "owner_pid": self.owner_pid, "pid": self.pid, "extra": self.extra}

    @classmethod
    def attach(cls, state: dict) -> LocalController:
        return cls(name=state["name"], binary=Path(state["binary"]), args=list(state.get("args") or []),
                   log_path=Path(state["log_path"]), owner_pid=state.get("owner_pid"), pid=state.get("pid"),
                   extra=dict(state.get("extra") or {}))

    # -- stopping ---------------------------------------------------------------------------------------
    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM to the controller's process group, SIGKILL after ``grace`` seconds. Idempotent."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(pid):
            self._reap()
            time.sleep(0.1)
        if group_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self._reap()
        self.pid = None

    def _reap(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0)

    def __enter__(self) -> LocalController:
        return self if self.pid else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def group_alive(pgid: int) -> bool:
    """Whether a member of process group ``pgid`` runs (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


# -- the watchdog --------------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when the watchdog (its parent) dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def watch(owner: int, command: list[str]) -> int:
    """Run ``command`` until it exits, the owner process ends, or this process gets SIGTERM/SIGINT/SIGHUP;
    then stop it (SIGTERM, SIGKILL after the grace period). Returns the command's exit code."""
    child = subprocess.Popen(command, preexec_fn=_die_with_parent)
    stopping = {"why": ""}

    def on_signal(signum, _frame):
        stopping["why"] = f"signal {signum}"

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    while child.poll() is None and not stopping["why"]:
        if not _alive(owner):
            stopping["why"] = f"owner process {owner} ended"
            break
        time.sleep(OWNER_POLL_S)
    if child.poll() is None:
        print(f"# chartproof: stopping {command[0]} ({stopping['why']})", flush=True)
        child.terminate()
        try:
            child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
    return child.wait()


# -- External Secrets ----------------------------------------------------------------------------------------
ESO_TOOL = "external-secrets-controller"
ESO_CRD = "externalsecrets.external-secrets.io"


@dataclass(frozen=True)
class ExternalSecretsPin:
    """The External Secrets release of the controller pin: its module, version and API packages."""

    module: str
    version: str
    api_packages: tuple[str, ...]

    @classmethod
    def of(cls, toolchain) -> ExternalSecretsPin:
        pin = toolchain.pin(ESO_TOOL)
        return cls(pin.module, pin.module_version or pin.version, tuple(pin.extra.get("api_packages") or ()))


def external_secrets_crds(toolchain) -> Path:
    """The folder of the pinned ESO release's CRDs, generated from its API packages (cached)."""
    eso = ExternalSecretsPin.of(toolchain)
    generator = toolchain.pin("controller-gen")
    return generate_crds(toolchain.path("controller-gen"), eso.module, eso.version, eso.api_packages,
                         generator=generator.cache_version)


# CRD schema fields the API server refuses before the Kubernetes minor that introduced them.
CRD_FIELD_MINORS = {"selectableFields": (1, 30)}


def _minor(version: str) -> tuple[int, int] | None:
    """``v1.26.13`` -> (1, 26); None when it is not a version (e.g. ``unknown``)."""
    parts = version.strip().lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1].split("-")[0].split("+")[0])
    except (IndexError, ValueError):
        return None


def crds_refused_by(crds: Iterable[dict], server_version: str) -> list[str]:
    """What of ``crds`` an API server of ``server_version`` refuses, one line per field: e.g.
    ``externalsecrets.external-secrets.io v1 uses selectableFields (Kubernetes 1.30+)``. Empty when it serves them
    all (or its version is not known: then the apply itself tells)."""
    server = _minor(server_version)
    if server is None:
        return []
    refused = []
    for crd in crds:
        for version in (crd.get("spec") or {}).get("versions") or []:
            for name, since in CRD_FIELD_MINORS.items():
                if version.get(name) and server < since:
                    refused.append(f"{crd['metadata']['name']} {version.get('name')} uses {name} "
                                   f"(Kubernetes {since[0]}.{since[1]}+)")
    return refused


def install_crds(kubectl: Kubectl, directory: Path, timeout: float = 60) -> list[str]:
    """Apply every CRD of ``directory`` (server-side: ESO's store CRDs exceed the client-side annotation
    limit) and wait until each is Established. Returns the CRD names."""
    crds = load_crds(directory)
    names = [crd["metadata"]["name"] for crd in crds]
    kubectl.apply(crds, server_side=True)
    kubectl.wait_established(names, timeout=timeout)
    return names


def external_secrets_args(health_port: int, *, namespace: str | None = None) -> list[str]:
    """The controller's flags for an out-of-cluster test run."""
    args = [
        "--enable-leader-election=false",
        "--metrics-addr=0",  # controller-runtime: 0 turns the metrics endpoint off
        f"--live-addr=127.0.0.1:{health_port}",
        "--enable-push-secret-reconciler=false",
        "--enable-cluster-push-secret-reconciler=false",
        "--loglevel=info",
        "--zap-time-encoding=iso8601",
    ]
    if namespace:
        args.append(f"--namespace={namespace}")
    return args


def _external_secrets_ready(controller: LocalController) -> bool:
    """Up once its health probe answers and the ExternalSecret reconciler's workers have started."""
    port = controller.extra.get("health_port")
    if not (port and http_ok(f"http://127.0.0.1:{port}/healthz")):
        return False
    return any("Starting workers" in line and "externalsecret" in line.lower().replace("_", "").replace("-", "")
               for line in controller.log_text().splitlines())


def start_external_secrets(toolchain, kubeconfig: Path, log_path: Path, *, owner_pid: int | None = None,
                           timeout: float = 120) -> LocalController:
    """Start the pinned ESO controller against the cluster of ``kubeconfig`` (its CRDs must be installed)."""
    binary = toolchain.path(ESO_TOOL)
    port = free_port()
    controller = LocalController(
        name=ESO_TOOL, binary=binary, args=external_secrets_args(port), env={"KUBECONFIG": str(kubeconfig)},
        log_path=log_path, ready=_external_secrets_ready, owner_pid=owner_pid, extra={"health_port": port})
    return controller.start(timeout)


def external_secrets_served(kubectl: Kubectl) -> bool:
    """Whether the cluster serves the external-secrets.io/v1 ExternalSecret API."""
    try:
        crd = kubectl.get_json("customresourcedefinition", ESO_CRD)
    except KubectlError as exc:
        if exc.not_found:
            return False
        raise
    return any(v.get("name") == "v1" and v.get("served") for v in (crd.get("spec") or {}).get("versions") or [])


def conditions_ready(obj: dict) -> tuple[bool, str]:
    """An ESO object's Ready condition: (True, '') when Ready=True, else (False, reason: message)."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return True, ""
            return False, f"{cond.get('reason')}: {cond.get('message')}"
    return False, "no Ready condition yet"


def fake_provider(remote_refs: Iterable[dict], value: Callable[[str, str | None], str] | None = None) -> dict:
    """A SecretStore ``provider`` block of ESO's fake provider holding a value for every remoteRef: a JSON
    object of the properties asked for a key read with ``property``, the plain text otherwise. ``value(key,
    property)`` makes each value (default: ``fake:<key>[#<property>]``, never a real secret)."""
    value = value or (lambda key, prop: f"fake:{key}" + (f"#{prop}" if prop else ""))
    plain: dict[str, str] = {}
    objects: dict[str, dict[str, str]] = {}
    for remote in remote_refs:
        key, prop, version = remote.get("key"), remote.get("property"), remote.get("version")
        if version:
            raise ValueError(f"remoteRef {remote}: fake_provider holds no versions")
        if prop:
            objects.setdefault(key, {})[prop] = value(key, prop)
        else:
            plain[key] = value(key, None)
    both = sorted(set(plain) & set(objects))
    if both:
        raise ValueError(f"remote keys read both as plain text and by property: {both}")
    data = [{"key": k, "value": v} for k, v in sorted(plain.items())]
    data += [{"key": k, "value": json.dumps(props, sort_keys=True)} for k, props in sorted(objects.items())]
    return {"fake": {"data": data}}


def external_secrets_ready(kubectl: Kubectl, namespace: str, *, timeout: float = 120) -> list[dict]:
    """Wait until every ExternalSecret of ``namespace`` is Ready (the controller synced its Secret); returns
    them. On timeout the error quotes each one's Ready condition and its store's."""

    def current() -> list[dict]:
        return kubectl.items("externalsecrets.external-secrets.io", namespace=namespace)

    def unready() -> list[str]:
        out = []
        for es in current():
            ok, why = conditions_ready(es)
            if not ok:
                out.append(f"ExternalSecret {es['metadata']['name']}: {why}")
        return out

    def explain() -> str:
        stores = [f"SecretStore {s['metadata']['name']}: {conditions_ready(s)[1] or 'Ready'}"
                  for s in kubectl.items("secretstores.external-secrets.io", namespace=namespace)]
        return "; ".join(unready() + stores)

    wait_for(lambda: current() and not unready(), timeout=timeout, interval=1.0,
             what=f"readiness of the ExternalSecrets of namespace {namespace}", explain=explain)
    return current()


# -- command line (the watchdog) -----------------------------------------------------------------------------
def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chartproof.operators")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch", help="run a command until it exits or the owner process ends")
    w.add_argument("--owner", type=int, required=True)
    w.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(list(argv) if argv is not None else None)
    command = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not command:
        parser.error("watch: no command given")
    return watch(args.owner, command)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["LocalController", "ControllerError", "free_port", "http_ok", "install_crds", "external_secrets_crds",
           "start_external_secrets", "external_secrets_served", "conditions_ready", "fake_provider",
           "external_secrets_ready"]
