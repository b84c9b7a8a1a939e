"""Application configuration a chart renders, checked by the application's own tool.

``prometheus_configs(manifest)`` finds every Prometheus server the render runs (a container running
``prometheus/prometheus``) and the configuration file its ``--config.file`` names, through the volume mounted
there. ``check_prometheus(promtool, server, workdir)`` lays out the files that container will see (every
ConfigMap and Secret it mounts, the service account files Kubernetes mounts, empty directories for the rest)
under ``workdir``, points the configuration's absolute paths into it, and runs ``promtool check config`` on
it: the check Prometheus' own tooling makes of a configuration, rule files included. ``check_promql`` runs
Prometheus' PromQL parser (``promtool check rules``) on queries a chart hands to other programs.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from chartproof import yamlio
from chartproof.manifest import Manifest, all_containers, dig, pod_spec, ref, repository
from chartproof.redaction import REDACTOR

PROMETHEUS_IMAGE = "prometheus/prometheus"
DEFAULT_CONFIG = "/etc/prometheus/prometheus.yml"  # the image's default --config.file
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_FILES = {"token": "placeholder-token\n", "ca.crt": "placeholder-ca\n", "namespace": "default\n"}


@dataclass
class PrometheusServer:
    """A Prometheus container of a render: where its configuration lives and what it mounts."""

    workload: dict
    container: dict
    config_path: str
    files: dict[str, str] = field(default_factory=dict)   # absolute path in the container -> content
    dirs: list[str] = field(default_factory=list)          # mount points with no content of the render
    problems: list[str] = field(default_factory=list)      # what the render leaves missing (no ConfigMap, ...)

    @property
    def name(self) -> str:
        return f"{ref(self.workload)} container {self.container.get('name')}"


def _flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
    return None


def _mounted_files(manifest: Manifest, volume: dict, namespace: str | None) -> dict[str, str] | None:
    """``{relative path: content}`` a ConfigMap, Secret or projected volume holds; None for other volume types."""
    def source(kind: str, name: str) -> dict[str, str] | None:
        found = manifest.select(kind, name=name)
        found = [o for o in found if dig(o, "metadata.namespace") in (None, namespace)] or found
        if not found:
            return None
        obj = found[0]
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
            return data | {k: str(v) for k, v in (obj.get("stringData") or {}).items()}
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}

    def pick(data: dict[str, str] | None, items: list | None) -> dict[str, str]:
        data = data or {}
        if not items:
            return dict(data)
        return {i["path"]: data[i["key"]] for i in items if i.get("key") in data and i.get("path")}

    if "configMap" in volume:
        return pick(source("ConfigMap", dig(volume, "configMap.name")), dig(volume, "configMap.items"))
    if "secret" in volume:
        return pick(source("Secret", dig(volume, "secret.secretName")), dig(volume, "secret.items"))
    if "projected" in volume:
        out: dict[str, str] = {}
        for item in dig(volume, "projected.sources", []) or []:
            if "configMap" in item:
                out |= pick(source("ConfigMap", dig(item, "configMap.name")), dig(item, "configMap.items"))
            elif "secret" in item:
                out |= pick(source("Secret", dig(item, "secret.name")), dig(item, "secret.items"))
            elif "serviceAccountToken" in item:
                out[dig(item, "serviceAccountToken.path", "token")] = SERVICE_ACCOUNT_FILES["token"]
        return out
    return None


def prometheus_configs(manifest: Manifest) -> list[PrometheusServer]:
    """Every container of the render that runs the Prometheus server image, with the files it will see."""
    servers = []
    for workload in manifest.workloads():
        spec = pod_spec(workload)
        namespace = dig(workload, "metadata.namespace")
        vols = {v.get("name"): v for v in spec.get("volumes") or []}
        claim_templates = {dig(t, "metadata.name") for t in dig(workload, "spec.volumeClaimTemplates", []) or []}
        for item in all_containers(workload):
            if repository(str(item.get("image", ""))).removeprefix("quay.io/") != PROMETHEUS_IMAGE:
                continue
            args = [str(a) for a in [*(item.get("command") or []), *(item.get("args") or [])]]
            server = PrometheusServer(workload, item, _flag(args, "config.file") or DEFAULT_CONFIG)
            for mount in item.get("volumeMounts") or []:
                path, volume = mount.get("mountPath"), vols.get(mount.get("name"))
                if volume is None and mount.get("name") in claim_templates:
                    server.dirs.append(path)  # a StatefulSet's claim per pod: a data directory, no files of ours
                    continue
                if volume is None:
                    server.problems.append(f"volumeMount {mount.get('name')} names no volume of the pod")
                    continue
                files = _mounted_files(manifest, volume, namespace)
                if files is None:
                    server.dirs.append(path)
                    continue
                if mount.get("subPath"):
                    key = mount["subPath"]
                    if key in files:
                        server.files[path] = files[key]
                    continue
                server.dirs.append(path)
                server.files |= {str(PurePosixPath(path) / rel): text for rel, text in files.items()}
            if spec.get("automountServiceAccountToken") is not False:
                server.files |= {f"{SERVICE_ACCOUNT_DIR}/{k}": v for k, v in SERVICE_ACCOUNT_FILES.items()
                                 if f"{SERVICE_ACCOUNT_DIR}/{k}" not in server.files}
            if server.config_path not in server.files:
                server.problems.append(f"nothing the container mounts holds its --config.file {server.config_path}")
            servers.append(server)
    return servers


def _rooted(node: Any, root: Path, prefixes: list[str]) -> Any:
    """The configuration with every absolute path under one of ``prefixes`` moved under ``root``."""
    if isinstance(node, dict):
        return {k: _rooted(v, root, prefixes) for k, v in node.items()}
    if isinstance(node, list):
        return [_rooted(v, root, prefixes) for v in node]
    if isinstance(node, str) and any(node == p or node.startswith(p.rstrip("/") + "/") for p in prefixes):
        return str(root) + node
    return node


@dataclass
class CheckResult:
    ok: bool
    output: str
    command: list[str]


_PROMTOOL_VERDICTS: dict[tuple, tuple[bool, str]] = {}


def check_prometheus(promtool: Path | str, server: PrometheusServer, workdir: Path) -> CheckResult:
    """``promtool check config`` on the server's configuration, with the files it references laid out as the
    container would see them. The output is redacted (mounted Secrets may hold credentials)."""
    root = Path(workdir) / "root"
    prefixes = sorted({*server.dirs, *server.files, SERVICE_ACCOUNT_DIR}, key=len, reverse=True)
    for path in server.dirs:
        (root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path, text in server.files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if path == server.config_path:
            try:
                config = yamlio.load(text)
            except yaml.YAMLError:
                config = None  # promtool says what is wrong with it
            if isinstance(config, dict):
                text = yamlio.dump(_rooted(config, root, prefixes), sort_keys=False)
        target.write_text(text)
        target.chmod(0o600)
    command = [str(promtool), "check", "config", str(root / server.config_path.lstrip("/"))]
    # promtool's verdict depends only on the files laid out (its output names them relative to the root):
    # scenarios whose servers load the same files ask it once a process.
    seen = (str(promtool), server.config_path, tuple(sorted(server.dirs)), tuple(sorted(server.files.items())))
    if seen not in _PROMTOOL_VERDICTS:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
        _PROMTOOL_VERDICTS[seen] = (proc.returncode == 0, (proc.stdout + proc.stderr).replace(str(root), ""))
    ok, output = _PROMTOOL_VERDICTS[seen]
    return CheckResult(ok, REDACTOR(output).strip(), command)



def check_promql(promtool: Path | str, queries: dict[str, str], workdir: Path) -> CheckResult:
    """``promtool check rules`` on a rule file holding each query as a recording rule: Prometheus' own parser
    on PromQL a chart hands to another program (a KEDA trigger's query), without a server."""
    rules = {"groups": [{"name": "chartproof", "rules": [
        {"record": f"chartproof:query_{i}", "expr": expr} for i, expr in enumerate(queries.values())]}]}
    path = Path(workdir) / "queries.rules.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yamlio.dump(rules, sort_keys=False))
    command = [str(promtool), "check", "rules", str(path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    for i, name in enumerate(queries):
        output = output.replace(f"chartproof:query_{i}", name)
    return CheckResult(proc.returncode == 0, REDACTOR(output.replace(str(path.parent), "")).strip(), command)


__all__ = ["PrometheusServer", "prometheus_configs", "check_prometheus", "check_promql", "CheckResult"]
