"""A cluster someone else owns, reached through kubeconfig files read the way kubectl reads them.
Chartproof never creates or deletes it, and touches only the namespaces and releases it created and labelled.

Which files: ``--kubeconfig`` alone when given; else every file of ``$KUBECONFIG`` (a list, merged in order:
for a name defined twice the first file wins, ``current-context`` comes from the first file that sets one,
a listed file that does not exist is skipped); else ``~/.kube/config``. ``--kube-context`` picks a context,
the merged ``current-context`` otherwise.

What kubectl and helm are given: one file. When the context comes from a single file, that file itself;
when several files were merged, a copy holding only the chosen context, its cluster and its user (the
entries kubectl would pick, file references made absolute against the file each came from), written 0600
into a private directory of this process that is removed when the process exits. A copy rather than passing
``$KUBECONFIG`` through: every consumer (kubectl, helm, pytest-xdist workers, pytest-helm-charts' client, the
run report) then sees one file and one context, and no credential of another context is copied anywhere.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chartproof import yamlio
from chartproof.clusters.base import Cluster, ClusterProvider, ClusterRecord
from chartproof.clusters.nodes import SIMULATED_ANNOTATION
from chartproof.errors import ClusterUnreachableError, UsageError, WrongContextError
from chartproof.kube import Kubectl
from chartproof.toolchain import Toolchain

# Fields holding a path that kubectl resolves against the directory of the file that defined the entry.
_CLUSTER_FILE_FIELDS = ("certificate-authority",)
_USER_FILE_FIELDS = ("client-certificate", "client-key", "tokenFile")


def kubeconfig_paths(explicit: Path | str | None = None, env: str | None = None) -> list[Path]:
    """The files kubectl would read, in order: ``explicit`` alone; else the entries of ``env`` (default
    ``$KUBECONFIG``) without empty ones and repeats; else ``~/.kube/config``."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG", "") if env is None else env
    paths: list[Path] = []
    for entry in env.split(os.pathsep):
        path = Path(entry).expanduser() if entry.strip() else None
        if path is not None and path not in paths:
            paths.append(path)
    return paths or [Path.home() / ".kube" / "config"]


def default_kubeconfig() -> Path:
    """The first file kubectl would read (``$KUBECONFIG`` may list more: see ``kubeconfig_paths``)."""
    return kubeconfig_paths()[0]


@dataclass
class _Entry:
    """One named context, cluster or user, and the file that defined it."""

    body: dict[str, Any]
    origin: Path


@dataclass
class Kubeconfig:
    """Kubeconfig files merged as kubectl merges them."""

    files: list[Path] = field(default_factory=list)  # the ones read, in order
    current_context: str | None = None
    contexts: dict[str, _Entry] = field(default_factory=dict)
    clusters: dict[str, _Entry] = field(default_factory=dict)
    users: dict[str, _Entry] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: list[Path], *, explicit: bool = False) -> Kubeconfig:
        """Read ``paths`` in order. A missing file is skipped unless it was named explicitly; no readable file,
        or one that cannot be read, is ClusterUnreachableError; a file that is not YAML is UsageError."""
        merged = cls()
        for path in paths:
            try:
                text = path.read_text()
            except FileNotFoundError:
                if explicit or len(paths) == 1:
                    raise ClusterUnreachableError(f"cannot read kubeconfig {path}: No such file or directory") from None
                continue
            except OSError as exc:
                raise ClusterUnreachableError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
            try:
                data = yamlio.load(text) or {}
            except yaml.YAMLError as exc:
                raise UsageError(f"kubeconfig {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
            if not isinstance(data, dict):
                raise UsageError(f"kubeconfig {path} is not a kubeconfig (expected a mapping)")
            merged._add(data, path)
        if not merged.files:
            raise ClusterUnreachableError("no kubeconfig to read: none of the files of $KUBECONFIG exists "
                                          f"({os.pathsep.join(str(p) for p in paths)})")
        return merged

    def _add(self, data: dict[str, Any], origin: Path) -> None:
        self.files.append(origin)
        if not self.current_context and data.get("current-context"):
            self.current_context = str(data["current-context"])
        for section, key, table in (("contexts", "context", self.contexts), ("clusters", "cluster", self.clusters),
                                    ("users", "user", self.users)):
            for item in data.get(section) or []:
                name = item.get("name") if isinstance(item, dict) else None
                if name and str(name) not in table:  # the first file that defines a name wins
                    body = item.get(key)
                    table[str(name)] = _Entry(dict(body) if isinstance(body, dict) else {}, origin)

    @property
    def context_names(self) -> list[str]:
        return list(self.contexts)

    @property
    def where(self) -> str:
        """The files read, for messages."""
        if len(self.files) == 1:
            return str(self.files[0])
        return "any of " + ", ".join(str(p) for p in self.files)

    def resolve(self, wanted: str | None) -> str:
        """``wanted``, or the current context; WrongContextError naming the known ones otherwise."""
        known = "known: " + (", ".join(self.context_names) or "none")
        name = wanted or self.current_context
        if not name:
            raise WrongContextError(f"{self.where} has no current context; name one with --kube-context", hint=known)
        if name not in self.contexts:
            raise WrongContextError(f"context '{name}' is not in {self.where}", hint=known)
        return name

    def minified(self, context: str) -> dict[str, Any]:
        """A kubeconfig with only ``context``, the cluster and user it names (as kubectl would pick them),
        their file references absolute."""
        entry = self.contexts[context]
        doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": context,
                               "contexts": [{"name": context, "context": dict(entry.body)}], "clusters": [], "users": []}
        cluster = self.clusters.get(str(entry.body.get("cluster", "")))
        if cluster is not None:
            doc["clusters"].append({"name": entry.body["cluster"], "cluster": _absolute(cluster, _CLUSTER_FILE_FIELDS)})
        user = self.users.get(str(entry.body.get("user", "")))
        if user is not None:
            body = _absolute(user, _USER_FILE_FIELDS)
            command = (body.get("exec") or {}).get("command")
            if isinstance(command, str) and os.sep in command and not os.path.isabs(command):
                body["exec"] = {**body["exec"], "command": str(user.origin.parent / command)}
            doc["users"].append({"name": entry.body["user"], "user": body})
        return doc

    def handoff(self, context: str) -> Path:
        """The one file kubectl and helm are given for ``context`` (see the module docstring)."""
        return self.files[0] if len(self.files) == 1 else self.write_minified(context)

    def write_minified(self, context: str) -> Path:
        """``minified(context)`` as a file (0600) in this process's private directory, removed at exit."""
        text = yamlio.dump(self.minified(context), sort_keys=False)
        path = _private_dir() / f"kubeconfig-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        if not path.is_file():
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)
        return path


def _absolute(entry: _Entry, fields: tuple[str, ...]) -> dict[str, Any]:
    body = dict(entry.body)
    for key in fields:
        value = body.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            body[key] = str(entry.origin.parent / value)
    return body


_PRIVATE_DIR: Path | None = None


def _private_dir() -> Path:
    """This process's directory for merged kubeconfigs: mode 0700, removed at exit."""
    global _PRIVATE_DIR
    if _PRIVATE_DIR is None or not _PRIVATE_DIR.is_dir():
        _PRIVATE_DIR = Path(tempfile.mkdtemp(prefix="chartproof-kubeconfig-"))
        atexit.register(shutil.rmtree, _PRIVATE_DIR, True)
    return _PRIVATE_DIR


def single_context_kubeconfig(path: Path, context: str | None) -> Path:
    """A kubeconfig file whose current context is ``context``, for clients that take no context of their own
    (pytest-helm-charts): ``path`` itself when it already is (or ``context`` is None), else a private copy."""
    merged = Kubeconfig.load([Path(path)], explicit=True)
    if context is None or merged.current_context == context:
        return Path(path)
    return merged.write_minified(merged.resolve(context))


def kubeconfig_contexts(path: Path) -> tuple[list[str], str | None]:
    """The context names of one kubeconfig file and its current context."""
    merged = Kubeconfig.load([Path(path)], explicit=True)
    return merged.context_names, merged.current_context


class ExistingProvider(ClusterProvider):
    name = "existing"

    def __init__(self, toolchain: Toolchain | None = None, *, kubeconfig: Path | str | None = None,
                 context: str | None = None):
        self.toolchain = toolchain or Toolchain()
        self.explicit = Path(kubeconfig).expanduser() if kubeconfig else None
        self.paths = kubeconfig_paths(self.explicit)
        self.context = context

    def load(self) -> Kubeconfig:
        return Kubeconfig.load(self.paths, explicit=self.explicit is not None)

    def resolve_context(self) -> str:
        return self.load().resolve(self.context)

    def up(self, name: str | None, shape: str | None, *, owner: str = "cli", keep: bool = False) -> Cluster:
        if shape:
            raise UsageError("--nodes does not apply to an existing cluster: its nodes are what they are")
        cluster = self._connect(self.context)
        cluster.server_version()  # unreachable -> one-line error before any test runs
        return cluster

    def attach(self, record: ClusterRecord) -> Cluster:
        """The cluster of ``record`` (its name is the context), read again from this provider's kubeconfig files:
        a merged copy is this process's own, never one another process made (it goes when that process ends)."""
        return self._connect(record.name)

    def _connect(self, context: str | None) -> Cluster:
        merged = self.load()
        name = merged.resolve(context)
        kubectl = Kubectl(self.toolchain.path("kubectl"), merged.handoff(name), context=name)
        return Cluster(name, self.name, kubectl, simulated=False, record=None)

    def down(self, name: str) -> None:
        """Never deletes someone else's cluster."""
        return None


def detect_simulated(cluster: Cluster) -> bool:
    nodes = cluster.nodes()
    return bool(nodes) and all(SIMULATED_ANNOTATION in (n["metadata"].get("annotations") or {}) for n in nodes)
