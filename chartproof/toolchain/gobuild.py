"""Build a pinned tool from its Go module, inside a generated wrapper module.

The wrapper module requires the tool's module at the pinned tag and copies the tag's own ``replace``
list: a replace that points into the module's tree (``k8s.io/api => ./staging/src/k8s.io/api``,
``go.etcd.io/etcd/api/v3 => ../api``) becomes that module at the matching published version, so the
build uses exactly the code the tag releases. Versions are stamped through ``-ldflags -X``: an
unstamped Kubernetes component reports v0.0.0, which confuses kwokctl and kubectl's version skew logic.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from chartproof.errors import ToolchainError
from chartproof.progress import Progress
from chartproof.toolchain.pins import ToolPin, load_pins

_REPLACE_BLOCK = re.compile(r"^replace\s*\((.*?)^\)", re.M | re.S)
_REPLACE_LINE = re.compile(r"^replace\s+(.+)$", re.M)


@dataclass(frozen=True)
class ModuleInfo:
    gomod: str
    time: str
    commit: str


def go_binary() -> str:
    go = shutil.which("go")
    if not go:
        raise ToolchainError(
            "the Go toolchain is not on PATH, and a tool must be built from its Go module",
            hint="install Go >= 1.22, or point CHARTPROOF_<TOOL> at a binary",
        )
    return go


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(CGO_ENABLED="0", GOFLAGS="-mod=mod", GOWORK="off", GOTOOLCHAIN="local")
    return env


def module_info(module: str, version: str, log) -> ModuleInfo:
    """Download the module (into the Go module cache) and return its go.mod text and origin."""
    proc = subprocess.run(
        [go_binary(), "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True, text=True, env=go_env(), cwd="/",
    )
    log.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        detail = (proc.stdout + proc.stderr).strip().splitlines()
        raise ToolchainError(f"go mod download {module}@{version} failed: {detail[-1] if detail else proc.returncode}")
    data = json.loads(proc.stdout)
    info = json.loads(Path(data["Info"]).read_text()) if data.get("Info") else {}
    origin = data.get("Origin") or info.get("Origin") or {}
    return ModuleInfo(
        gomod=Path(data["GoMod"]).read_text(),
        time=info.get("Time", "1970-01-01T00:00:00Z"),
        commit=origin.get("Hash", ""),
    )


def published_version(pin: ToolPin, path: str) -> str:
    """The version at which a module replaced by a local path is published for this tag."""
    if pin.module == "k8s.io/kubernetes" and path.startswith("k8s.io/"):
        return "v0." + pin.version.lstrip("v").split(".", 1)[1]  # v1.36.1 -> v0.36.1
    return pin.version


def replace_directives(pin: ToolPin, gomod: str) -> list[str]:
    lines: list[str] = []
    for block in _REPLACE_BLOCK.findall(gomod):
        lines += [ln.strip() for ln in block.splitlines()]
    lines += [m.strip() for m in _REPLACE_LINE.findall(gomod) if not m.strip().startswith("(")]
    required = set(re.findall(r"^\s*(?:require\s+)?([\w.~-]+(?:/[\w.~-]+)+)\s+v\S+", gomod, re.M))
    out = []
    for line in lines:
        line = line.split("//", 1)[0].strip()
        if "=>" not in line:
            continue
        left, right = (part.split() for part in line.split("=>", 1))
        if right and (right[0].startswith("./") or right[0].startswith("../")):
            if left[0] not in required:
                continue  # a guard against bad imports (etcd's FORBIDDEN_DEPENDENCY), not a dependency
            out.append(f"{left[0]} => {left[0]} {published_version(pin, left[0])}")
        elif len(right) == 2:
            out.append(f"{' '.join(left)} => {right[0]} {right[1]}")
    return out


def wrapper_gomod(pin: ToolPin, group: str, info: ModuleInfo) -> str:
    replaces = replace_directives(pin, info.gomod)
    text = f"module chartproof.local/build/{group}\n\ngo 1.22\n\nrequire {pin.module} {pin.version}\n"
    if replaces:
        text += "\nreplace (\n" + "".join(f"\t{r}\n" for r in replaces) + ")\n"
    return text


def stamp_ldflags(pin: ToolPin, info: ModuleInfo) -> list[str]:
    """``-X`` flags that make the binary report the pinned version."""
    v = pin.version
    if pin.stamp == "kubernetes":
        major, minor = v.lstrip("v").split(".")[:2]
        flags = []
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += [
                f"-X {pkg}.gitVersion={v}",
                f"-X {pkg}.gitMajor={major}",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
                f"-X {pkg}.buildDate={info.time[:19]}Z",
            ]
            if info.commit:
                flags.append(f"-X {pkg}.gitCommit={info.commit}")
        return flags
    if pin.stamp == "helm":
        minor = str(pin.extra.get("kube_minor", ""))
        flags = [
            f"-X helm.sh/helm/v3/internal/version.version={v}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
        ]
        if info.commit:
            flags.append(f"-X helm.sh/helm/v3/internal/version.gitCommit={info.commit}")
        if minor:
            for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
                flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={minor}"]
        return flags
    if pin.stamp == "kwok":
        flags = [f"-X sigs.k8s.io/kwok/pkg/consts.Version={v.lstrip('v')}"]
        kube = str(pin.extra.get("kube_version", ""))
        if kube:
            flags.append(f"-X sigs.k8s.io/kwok/pkg/consts.KubeVersion={kube.lstrip('v')}")
        return flags
    if pin.stamp == "ct":
        pkg = "github.com/helm/chart-testing/v3/ct/cmd"
        return [f"-X {pkg}.Version={v}", f"-X {pkg}.BuildDate={info.time[:19]}Z"] + (
            [f"-X {pkg}.GitCommit={info.commit}"] if info.commit else [])
    if pin.stamp == "distribution":
        pkg = f"{pin.module}/version"
        return [f"-X {pkg}.version={v}", f"-X {pkg}.mainpkg={pin.module}"] + (
            [f"-X {pkg}.revision={info.commit}"] if info.commit else [])
    if pin.stamp == "prometheus":  # Go module v0.301.0 is Prometheus 3.1.0 (v0.54.1: 2.54.1)
        minor, patch = v.lstrip("v").split(".")[1:3]
        release = f"{int(minor) // 100 or 2}.{int(minor) % 100 if int(minor) >= 100 else minor}.{patch}"
        pkg = "github.com/prometheus/common/version"
        return [f"-X {pkg}.Version={release}", f"-X {pkg}.Branch=HEAD", f"-X {pkg}.BuildDate={info.time[:10].replace('-', '')}",
                f"-X '{pkg}.BuildUser=chartproof ({pin.module} {v})'"] + (
            [f"-X {pkg}.Revision={info.commit}"] if info.commit else [])
    return []


def build_group(pins: list[ToolPin], workdir: Path, outdir: Path, log, progress: Progress) -> dict[str, Path]:
    """Build every tool of one group (same module, version and stamp) into ``outdir``; return tool -> binary."""
    first = pins[0]
    group = first.build_group
    workdir.mkdir(parents=True, exist_ok=True)
    outdir.mkdir(parents=True, exist_ok=True)

    progress.update(f"go mod download {first.module}@{first.version}")
    info = module_info(first.module, first.version, log)
    (workdir / "go.mod").write_text(wrapper_gomod(first, group, info))
    (workdir / "go.sum").unlink(missing_ok=True)

    packages = [p.package for p in pins]
    _run_go(["get", *[f"{pkg}@{first.version}" for pkg in packages]], workdir, log, progress,
            step="go get", pin=first)

    ldflags = " ".join(["-s", "-w", *stamp_ldflags(first, info)])
    target = str(outdir / first.name) if len(pins) == 1 else str(outdir) + os.sep
    _run_go(["build", "-trimpath", "-v", "-ldflags", ldflags, "-o", target, *packages], workdir, log, progress,
            step="go build", pin=first)
    if len(pins) == 1:
        return {first.name: outdir / first.name}
    return {p.name: outdir / p.package.rstrip("/").rsplit("/", 1)[-1] for p in pins}


def build_source(pin: ToolPin, workdir: Path, outdir: Path, log, progress: Progress) -> Path:
    """Build a tool of our own (``source`` pin): a copy of its source directory, its committed go.mod and
    go.sum, stamped with ``-X main.version=<pin version>`` plus the stamp flags of the module it links."""
    source = pin.source_dir
    if source is None or not (source / "go.mod").is_file():
        raise ToolchainError(f"{pin.name}: its source directory {source} holds no go.mod")
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(source, workdir)
    outdir.mkdir(parents=True, exist_ok=True)
    flags = ["-s", "-w", f"-X main.version={pin.version}"]
    donor = pin.extra.get("ldflags_from")
    if donor:
        # The stamp flags of another pin (``ldflags_from = "helm"``: a tool linking helm reports helm's version
        # and assumes helm's default Kubernetes version), so the two builds cannot drift apart.
        stamped = load_pins().get(str(donor))
        if stamped is None:
            raise ToolchainError(f"{pin.name}: ldflags_from names '{donor}', which is not a pinned tool")
        progress.update(f"go mod download {stamped.module}@{stamped.version}")
        flags += stamp_ldflags(stamped, module_info(stamped.module, stamped.version, log))
    elif pin.stamp and pin.module:
        linked = pin.module_version or pin.version
        progress.update(f"go mod download {pin.module}@{linked}")
        info = module_info(pin.module, linked, log)
        flags += stamp_ldflags(dataclasses.replace(pin, version=linked), info)
    target = outdir / pin.name
    _run_go(["build", "-trimpath", "-v", "-ldflags", " ".join(flags), "-o", str(target), "."], workdir, log, progress,
            step="go build", pin=pin)
    return target


def _run_go(args: list[str], cwd: Path, log, progress: Progress, *, step: str, pin: ToolPin) -> None:
    log.write(f"\n$ go {' '.join(args)}\n")
    log.flush()
    proc = subprocess.Popen(
        [go_binary(), *args], cwd=cwd, env=go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    packages = 0
    last = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        line = line.strip()
        if not line:
            continue
        last = line
        if step == "go build" and not line.startswith(("go:", "#")):
            packages += 1
            progress.update(f"{step}: {packages} packages compiled, last {line}")
        else:
            progress.update(f"{step}: {line[:100]}")
    rc = proc.wait()
    if rc != 0:
        raise ToolchainError(
            f"building {pin.name} {pin.version} failed at step '{step}' (exit {rc}): {last[:200]}",
            hint=f"log: {log.name}; retry with: chartproof toolchain install {pin.name}",
        )
