"""The helm driver: render, lint, install, upgrade, uninstall, with one-line errors and no leaked secrets."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chartproof import render_server, yamlio
from chartproof.charts import ChartCatalog, ChartRef, PulledChart, helm_repositories, helm_user_paths
from chartproof.errors import BadValuesError, ChartNotFoundError, RenderError
from chartproof.manifest import Manifest
from chartproof.oci import is_loopback_registry
from chartproof.redaction import REDACTOR, Redactor
from chartproof.render_server import tree_stamp

_SET_KEY = re.compile(r"^[A-Za-z0-9_.\[\]\\/-]+$")
RELEASE_CHANGING = ("install", "upgrade", "rollback", "uninstall", "delete", "del", "un")  # with helm's aliases
_RECORD = ("--output", "json")

# helm install and upgrade (3.9 and later) ask the server, document by document, whether it validates fields
# itself (server-side field validation: GA and always on from Kubernetes 1.27); where it does, helm skips its
# own check, so the asking, which fetches and parses the server's OpenAPI v3 documents, changes nothing but its
# cost (measured: `helm install charts/adaptive` 0.77 -> 0.43 CPU-s with the flag, with the same objects,
# warnings and errors). A v1 List is the one document helm still checks on the client.
NO_CLIENT_VALIDATION = "--disable-openapi-validation"
# `lookup` or `.Capabilities` inside one template action ({{ ... }}, comments too): the render reads the cluster.
_READS_CLUSTER = re.compile(r"\{\{(?:[^}]|\}(?!\}))*?\b(?:lookup|Capabilities)\b")
_VERSION = re.compile(r"v?(\d+)\.(\d+)")


@dataclass
class HelmResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def error(self) -> str:
        """helm's own error line (``Error: ...``), without the prefix."""
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        for index, line in enumerate(lines):
            if line.startswith("Error: "):
                # Schema failures put the offending keys on the lines after "Error:" ("- at '/x': ...");
                # keep them, folded into the one line.
                detail = [ln.strip() for ln in lines[index + 1:] if ln.startswith((" ", "\t", "-"))]
                return " ".join([line[len("Error: "):].strip(), *detail])
        return lines[-1].strip() if lines else f"exit {self.returncode}"

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def release(self) -> ReleaseRecord | None:
        """The release an ``install``/``upgrade`` with ``--output json`` printed (None otherwise)."""
        if not self.ok or "--output" not in self.args:
            return None
        try:
            doc = json.loads(self.stdout)
        except ValueError:
            return None
        return ReleaseRecord.of(doc) if isinstance(doc, dict) and "manifest" in doc else None


@dataclass(frozen=True)
class ReleaseRecord:
    """What helm stored for one revision of a release: the text ``helm get manifest`` and ``helm get hooks``
    print for it, read from the release that ``helm install``/``helm upgrade --output json`` printed."""

    revision: int
    manifest: str
    hooks: str

    @classmethod
    def of(cls, doc: dict) -> ReleaseRecord:
        # helm get hooks prints each hook as "---\n# Source: PATH\nMANIFEST\n" (cmd/helm/get_hooks.go).
        hooks = "".join(f"---\n# Source: {h.get('path', '')}\n{h.get('manifest', '')}\n" for h in doc.get("hooks") or [])
        return cls(int(doc.get("version") or 0), str(doc.get("manifest") or ""), hooks)


def set_args(values: dict[str, Any] | None) -> list[str]:
    """``{"a.b": True, "c": 3}`` -> ``["--set", "a.b=true", "--set", "c=3"]``; a malformed key is refused."""
    args: list[str] = []
    for key, value in (values or {}).items():
        if not isinstance(key, str) or not key or not _SET_KEY.match(key) or key.startswith(".") or key.endswith(".") or ".." in key:
            raise BadValuesError(f"bad --set key {key!r}: expected a dotted path such as harmony.gpusPerReplica")
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = "null"
        else:
            text = str(value)
        args += ["--set", f"{key}={text}"]
    return args


def merge_values(defaults: Any, user: Any) -> Any:
    """Chart defaults with user values on top, as helm coalesces them: maps merge key by key, the user's
    value wins everywhere else (lists and scalars replace), and a user ``null`` deletes the key."""
    if not (isinstance(defaults, dict) and isinstance(user, dict)):
        return user
    merged = dict(defaults)
    for key, value in user.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values_file(path: Path) -> dict:
    """Parse a values file so bad input fails with one clear line before helm sees it."""
    try:
        data = yamlio.load(Path(path).read_text())
    except OSError as exc:
        raise BadValuesError(f"cannot read values file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadValuesError(f"values file {path} is not valid YAML:{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadValuesError(f"values file {path} must hold a mapping at the top, not a {type(data).__name__}")
    return data


class Helm:
    def __init__(self, binary: Path, catalog: ChartCatalog, *, workdir: Path, kubeconfig: Path | None = None,
                 context: str | None = None, redactor: Redactor = REDACTOR, render_cache: Path | None = None,
                 use_renderer: bool = True):
        self.binary = Path(binary)
        self.catalog = catalog
        self.workdir = Path(workdir)
        self.kubeconfig = kubeconfig
        self.context = context
        self.redactor = redactor
        self._renders: dict[str, Manifest] = {}
        self._learned_files: set[tuple[str, int, int]] = set()  # values files whose secrets the redactor knows
        self._private_files: dict[str, Path] = {}  # repr of a values dict -> the private file holding it
        # Renders shared by every process of the run that uses this folder (see chartproof.render_server).
        self.render_cache = Path(render_cache) if render_cache else self.workdir / "render-cache"
        self.use_renderer = use_renderer  # False: this helm is not the one chartproof-render links (helm 3.8)
        # ct.yaml's helm-extra-args (install, upgrade, uninstall) and helm-extra-set-args (install, upgrade), as
        # ct install passes them; after Chartproof's own flags, so that a ct.yaml `--timeout` wins (chart_testing).
        self.extra_args: tuple[str, ...] = ()
        self.extra_set_args: tuple[str, ...] = ()
        # How many commands that change a release (install, upgrade, rollback, uninstall) this driver ran, per
        # (namespace, release), and in all: a ReleaseRecord read at one count is the release's until the next.
        self._changes: dict[tuple[str, str], int] = {}
        self._unattributed_changes = 0
        # The cluster this helm talks to validates fields itself, and this helm leaves them to it (set by the run
        # from both versions, skips_client_validation): installs then skip helm's inert client-side check.
        self.server_checks_fields = False

    # -- plumbing --------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # A private helm home: the run neither reads nor writes the user's repositories and caches.
        home = self.workdir / "helm-home"
        env.setdefault("HELM_CACHE_HOME", str(home / "cache"))
        env.setdefault("HELM_CONFIG_HOME", str(home / "config"))
        env.setdefault("HELM_DATA_HOME", str(home / "data"))
        return env

    def changes(self, release: str, namespace: str) -> tuple[int, int]:
        """A stamp of the commands this driver ran that may have changed ``release``: equal stamps, same release."""
        return self._changes.get((namespace, release), 0), self._unattributed_changes

    def _count_change(self, args: tuple[str, ...]) -> None:
        if not args or args[0] not in RELEASE_CHANGING:
            return
        name = args[1] if len(args) > 1 and not args[1].startswith("-") else None
        namespace = next((v.split("=", 1)[1] for v in args if v.startswith("--namespace=")), None)
        for flag in ("--namespace", "-n"):
            if flag in args[:-1]:
                namespace = args[args.index(flag) + 1]
        if name is None or namespace is None:  # a release this cannot name (--generate-name, the default namespace)
            self._unattributed_changes += 1
        else:
            self._changes[(namespace, name)] = self._changes.get((namespace, name), 0) + 1

    def run(self, *args: str, check: bool = False, timeout: float = 600) -> HelmResult:
        self._count_change(args)
        cmd = [str(self.binary), *args]
        if self.kubeconfig and args and args[0] not in ("template", "lint", "package", "dependency", "show", "pull", "version"):
            cmd += ["--kubeconfig", str(self.kubeconfig)]
            if self.context:
                cmd += ["--kube-context", self.context]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env())
        result = HelmResult(list(args), proc.returncode, proc.stdout, self.redactor(proc.stderr))
        if check and not result.ok:
            raise RenderError(self.redactor(result.error))
        return result

    def values_args(self, values: Any = (), set: dict[str, Any] | None = None) -> list[str]:
        args: list[str] = []
        if isinstance(values, (str, Path, dict)):
            values = [values]
        for item in values or ():
            if isinstance(item, dict):
                self.redactor.add_values(item)
                args += ["-f", str(self._write_private(item))]
            else:
                self._learn_values_file(Path(item))
                args += ["-f", str(Path(item))]
        for key, value in (set or {}).items():
            tree: Any = value  # a.b.c=v is learned as {a: {b: {c: v}}}: its subtree counts too
            for part in reversed(str(key).split(".")):
                tree = {part: tree}
            self.redactor.add_values(tree)
        return args + set_args(set)

    def _learn_values_file(self, path: Path) -> None:
        """The redactor learns the secrets of a values file (parsed once per content: a file many renders use
        is read again only when it changes)."""
        try:
            info = path.stat()
        except OSError:
            info = None
        state = (str(path.resolve()), info.st_size, info.st_mtime_ns) if info else None
        if state is not None and state in self._learned_files:
            return
        self.redactor.add_values(load_values_file(path))  # unreadable or malformed: BadValuesError
        if state is not None:
            self._learned_files.add(state)

    def _write_private(self, data: dict) -> Path:
        directory = self.workdir / "values"
        memo = repr(data)  # the same values again (tests of a module set the same few): the file already written
        if memo in self._private_files and self._private_files[memo].exists():
            return self._private_files[memo]
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = yamlio.dump(data, sort_keys=True)
        path = directory / (hashlib.sha256(text.encode()).hexdigest()[:16] + ".yaml")
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=directory)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        self._private_files[memo] = path
        return path

    def chart_dir(self, chart: str | Path) -> Path:
        return self.catalog.resolve(chart)

    def pull_env(self) -> dict[str, str]:
        """The environment of a pull: the run's private helm homes, but the user's registry logins and
        classic repositories (``helm registry login``, ``helm repo add``), which a pull only reads."""
        env = self.env()
        user = helm_user_paths()
        env["HELM_REGISTRY_CONFIG"] = str(user["registry_config"])
        env["HELM_REPOSITORY_CONFIG"] = str(user["repository_config"])
        env["HELM_REPOSITORY_CACHE"] = str(user["repository_cache"])
        return env

    def learn_credentials(self) -> None:
        """Teach the redactor the secrets of the user's registry logins and repositories before a pull,
        so that no helm message can echo one."""
        user = helm_user_paths()
        try:
            auths = json.loads(user["registry_config"].read_text()).get("auths") or {}
        except (OSError, ValueError, AttributeError):
            auths = {}
        for entry in auths.values() if isinstance(auths, dict) else ():
            if not isinstance(entry, dict):
                continue
            for key in ("auth", "password", "identitytoken", "registrytoken"):
                if isinstance(entry.get(key), str):
                    self.redactor.add(entry[key])
            try:
                _user, _, password = base64.b64decode(entry.get("auth") or "").decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                password = ""
            if password:
                self.redactor.add(password)
        for repo in helm_repositories().values():
            if isinstance(repo.get("password"), str):
                self.redactor.add(repo["password"])

    def pull(self, ref: ChartRef, dest: Path) -> PulledChart:
        """Download ``ref`` (oci or repo) into ``dest`` as helm would (``helm pull``) and return the package;
        a digest reference must come back with that digest. Any failure: ChartNotFoundError (exit 4)."""
        self.learn_credentials()
        download = Path(dest) / "package"
        download.mkdir(parents=True, exist_ok=True)
        args = ["pull", ref.helm_ref, "--destination", str(download)]
        if ref.helm_version:
            args += ["--version", ref.helm_version]
        if ref.kind == "oci" and (is_loopback_registry(ref.location) or os.environ.get("CHARTPROOF_OCI_PLAIN_HTTP") == "1"):
            args.append("--plain-http")
        try:
            proc = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=600,
                                  env=self.pull_env())
        except subprocess.TimeoutExpired:
            raise ChartNotFoundError(f"chart {ref.name}: cannot pull {ref}: no answer within 600s") from None
        result = HelmResult(args, proc.returncode, self.redactor(proc.stdout), self.redactor(proc.stderr))
        if not result.ok:
            raise ChartNotFoundError(f"chart {ref.name}: cannot pull {ref}: {self.redactor(result.error)}")
        packages = sorted(download.glob("*.tgz"))
        if len(packages) != 1:
            raise ChartNotFoundError(f"chart {ref.name}: helm pull {ref} left {len(packages)} packages, not one")
        served = re.search(r"^Digest: (\S+)$", result.output, re.M)
        registry_digest = served[1] if served and ref.kind == "oci" else ""
        if ref.digest and registry_digest != ref.digest:
            raise ChartNotFoundError(f"chart {ref.name}: {ref} was asked for by digest, but the registry served "
                                     f"{registry_digest or 'no digest'}")
        return PulledChart(packages[0], registry_digest)

    # -- operations ------------------------------------------------------------------------------------
    def template(self, chart: str | Path, values: Any = (), set: dict[str, Any] | None = None, *,
                 release: str | None = None, namespace: str = "default", kube_version: str | None = None,
                 args: tuple[str, ...] | list[str] = ()) -> Manifest:
        directory = self.chart_dir(chart)
        release = release or _default_release(chart)
        cmd = ["template", release, str(directory), "--namespace", namespace, *self.values_args(values, set)]
        if kube_version:
            cmd += ["--kube-version", kube_version]
        cmd += list(args)
        stamp = tree_stamp(directory)
        key = json.dumps([cmd, [_digest(p) for p in cmd if p.endswith((".yaml", ".yml"))], stamp])
        if key in self._renders:
            return self._renders[key]
        result = self._render(cmd, chart_stamp=stamp)
        if not result.ok:
            raise RenderError(self.redactor(result.error))
        manifest = Manifest(result.stdout)
        self._renders[key] = manifest
        return manifest

    def _render(self, cmd: list[str], chart_stamp: str | None = None) -> HelmResult:
        """``helm template``'s result: from the long-lived renderer and the run's render cache by default,
        from a helm process with ``CHARTPROOF_RENDERER=helm`` (or when the renderer cannot serve)."""
        if self.use_renderer and render_server.choice() != "helm":
            rendered = render_server.CLIENT.template(cmd, env=self.env(), cache_dir=self.render_cache,
                                                     log_path=self.workdir / "chartproof-render.log",
                                                     chart_stamp=chart_stamp)
            if rendered is not None:
                return HelmResult(cmd, rendered.exit, rendered.stdout, self.redactor(rendered.stderr))
        return self.run(*cmd)

    def lint(self, chart: str | Path, values: Any = (), set: dict[str, Any] | None = None, *, strict: bool = False,
             args: tuple[str, ...] | list[str] = ()) -> HelmResult:
        cmd = ["lint", str(self.chart_dir(chart)), *self.values_args(values, set)]
        if strict:
            cmd.append("--strict")
        return self.run(*cmd, *args)

    def install(self, chart: str | Path, release: str, namespace: str, values: Any = (), set: dict[str, Any] | None = None,
                *, create_namespace: bool = False, timeout: float = 300, args: tuple[str, ...] | list[str] = (),
                record: bool = False) -> HelmResult:
        """``helm install``; with ``record``, it prints the release as JSON, and the result's ``release`` is
        its manifest and hooks (no ``helm get`` needed)."""
        directory, values_args = self.chart_dir(chart), self.values_args(values, set)
        cmd = ["install", release, str(directory), "--namespace", namespace, *values_args, "--timeout", f"{int(timeout)}s"]
        if create_namespace:
            cmd.append("--create-namespace")
        if not args and self._client_validation_inert(directory, release, namespace, values_args):
            cmd.append(NO_CLIENT_VALIDATION)
        return self.run(*cmd, *self.extra_args, *self.extra_set_args, *args, *(_RECORD if record else ()),
                        timeout=self._budget(timeout))

    def upgrade(self, chart: str | Path, release: str, namespace: str, values: Any = (), set: dict[str, Any] | None = None,
                *, reuse_values: bool = False, timeout: float = 300, args: tuple[str, ...] | list[str] = (),
                record: bool = False) -> HelmResult:
        directory, values_args = self.chart_dir(chart), self.values_args(values, set)
        cmd = ["upgrade", release, str(directory), "--namespace", namespace, *values_args, "--timeout", f"{int(timeout)}s"]
        if reuse_values:
            cmd.append("--reuse-values")  # the values are the release's own: no render here can stand for them
        elif not args and self._client_validation_inert(directory, release, namespace, values_args, upgrade=True):
            cmd.append(NO_CLIENT_VALIDATION)
        return self.run(*cmd, *self.extra_args, *self.extra_set_args, *args, *(_RECORD if record else ()),
                        timeout=self._budget(timeout))

    def uninstall(self, release: str, namespace: str, *, wait: bool = True, timeout: float = 300) -> HelmResult:
        cmd = ["uninstall", release, "--namespace", namespace, "--timeout", f"{int(timeout)}s"]
        if wait:
            cmd.append("--wait")
        return self.run(*cmd, *self.extra_args, timeout=self._budget(timeout))

    def _client_validation_inert(self, directory: Path, release: str, namespace: str, values_args: list[str], *,
                                 upgrade: bool = False) -> bool:
        """Whether helm's client-side check of this install or upgrade would do nothing: the cluster validates
        fields (``server_checks_fields``) and the renderer's render of the same values and ct.yaml arguments
        holds no v1 List, for a chart whose render does not depend on the cluster. Anything unsure (an argument
        the renderer does not know, a render that fails) leaves helm's check as it is."""
        extra = [*self.extra_args, *self.extra_set_args]
        if (not self.server_checks_fields or NO_CLIENT_VALIDATION in extra or not self.use_renderer
                or render_server.choice() == "helm" or _templates_read_cluster(directory)):
            return False
        cmd = ["template", release, str(directory), "--namespace", namespace, *values_args, *extra,
               *(["--is-upgrade"] if upgrade else [])]
        rendered = render_server.CLIENT.template(cmd, env=self.env(), cache_dir=self.render_cache,
                                                 log_path=self.workdir / "chartproof-render.log",
                                                 chart_stamp=tree_stamp(directory))
        return rendered is not None and rendered.exit == 0 and has_v1_list(rendered.stdout) is False

    def _budget(self, timeout: float) -> float:
        """How long a helm call may take: its --timeout, or a longer one of ct.yaml's extra args, plus a minute."""
        return max([timeout, *_timeouts(self.extra_args)]) + 60

    def get_manifest(self, release: str, namespace: str) -> Manifest:
        return Manifest(self.run("get", "manifest", release, "--namespace", namespace, check=True).stdout)

    def releases(self, namespace: str | None = None) -> list[dict]:
        cmd = ["list", "--output", "json", "--all"]
        cmd += ["--namespace", namespace] if namespace else ["--all-namespaces"]
        return json.loads(self.run(*cmd, check=True).stdout or "[]")


def _timeouts(args: tuple[str, ...]) -> list[float]:
    """The seconds of each ``--timeout`` of helm arguments (``--timeout 10m``, ``--timeout=600s``, ``1h2m3s``)."""
    found = []
    for i, arg in enumerate(args):
        value = arg.partition("=")[2] if arg.startswith("--timeout=") else (
            args[i + 1] if arg == "--timeout" and i + 1 < len(args) else None)
        parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", value or "")
        if parts:
            found.append(sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts))
    return found


def skips_client_validation(helm_version: str, server_version: str) -> bool:
    """Whether helm ``helm_version`` (``v3.22.0``) against an API server at ``server_version`` (``v1.36.1``)
    leaves every document but a v1 List to the server's field validation (see ``NO_CLIENT_VALIDATION``)."""
    helm, server = _VERSION.match(helm_version or ""), _VERSION.match(server_version or "")
    if not helm or not server:
        return False
    return (int(helm[1]), int(helm[2])) >= (3, 9) and (int(server[1]), int(server[2])) >= (1, 27)


def has_v1_list(text: str) -> bool | None:
    """Whether rendered ``text`` holds a ``v1 List`` document; None when it does not parse."""
    try:
        documents = yamlio.load_all(text)
    except yaml.YAMLError:
        return None
    return any(isinstance(doc, dict) and doc.get("apiVersion") == "v1" and doc.get("kind") == "List"
               for doc in documents)


_READ_CLUSTER: dict[tuple[str, str], bool] = {}  # (chart directory, tree stamp) -> _templates_read_cluster


def _templates_read_cluster(directory: Path) -> bool:
    """Whether a template of the chart (its subcharts too) calls ``lookup`` or reads ``.Capabilities``: its
    render then depends on the cluster, and a client-only render cannot stand for what helm installs. A chart
    that is not a readable directory counts as one that does."""
    if not directory.is_dir():
        return True
    key = (str(directory), tree_stamp(directory))
    if key not in _READ_CLUSTER:
        found = False
        for path in directory.rglob("*"):
            if path.is_file() and "templates" in path.relative_to(directory).parts:
                try:
                    found = bool(_READS_CLUSTER.search(path.read_text(errors="replace")))
                except OSError:
                    found = True
                if found:
                    break
        _READ_CLUSTER[key] = found
    return _READ_CLUSTER[key]


def _default_release(chart: str | Path) -> str:
    name = Path(str(chart)).name
    return {"hyperpod": "dependencies"}.get(name, name)


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""
