"""Pinned binaries: resolve each from an explicit path, the cache, a checksummed download, or a Go build."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chartproof.errors import ToolchainError
from chartproof.paths import cache_dir
from chartproof.progress import Progress
from chartproof.toolchain import gobuild
from chartproof.toolchain.download import DownloadUnavailable, download_binary
from chartproof.toolchain.pins import ToolPin, load_pins

# How each tool prints its version, to check a binary really is the pinned one.
VERSION_ARGS = {
    "kubectl": ["version", "--client"],
    "helm": ["version", "--short"],
    "helm-3.8": ["version", "--short"],
    "kind": ["version"],
    "ct": ["version"],
}


def env_var(tool: str) -> str:
    """``CHARTPROOF_KUBE_APISERVER`` for kube-apiserver, ``CHARTPROOF_HELM_3_8`` for helm-3.8."""
    return "CHARTPROOF_" + tool.upper().replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class Resolved:
    tool: str
    version: str
    path: Path
    source: str  # explicit | cache | download | build


class Toolchain:
    """The set of pinned tools. ``path(tool)`` is fast once the cache is warm (a stat per tool)."""

    def __init__(self, *, cache: Path | None = None, explicit: dict[str, str] | None = None,
                 allow_download: bool | None = None, pins: dict[str, ToolPin] | None = None):
        self.pins = pins if pins is not None else load_pins()
        self.cache = cache or cache_dir()
        self.explicit = dict(explicit or {})
        if allow_download is None:
            allow_download = os.environ.get("CHARTPROOF_OFFLINE", "") in ("", "0", "false")
        self.allow_download = allow_download

    # -- lookup --------------------------------------------------------------------------------------
    def pin(self, tool: str) -> ToolPin:
        try:
            return self.pins[tool]
        except KeyError:
            raise ToolchainError(f"unknown tool '{tool}'; known: {', '.join(sorted(self.pins))}") from None

    def cached_path(self, tool: str) -> Path:
        pin = self.pin(tool)
        return self.cache / "tools" / tool / pin.cache_version / tool

    def explicit_path(self, tool: str) -> Path | None:
        value = self.explicit.get(tool) or os.environ.get(env_var(tool))
        if not value:
            return None
        path = Path(value).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ToolchainError(f"{tool}: the explicit path {path} is not an executable file",
                                 hint=f"set by {'--tool' if tool in self.explicit else env_var(tool)}")
        return path

    def find(self, tool: str) -> Resolved | None:
        """Resolve without downloading or building; None when the tool is not available yet."""
        pin = self.pin(tool)
        explicit = self.explicit_path(tool)
        if explicit:
            return Resolved(tool, pin.version, explicit, "explicit")
        cached = self.cached_path(tool)
        if cached.is_file():
            meta = cached.with_name("meta.json")
            source = json.loads(meta.read_text()).get("source", "cache") if meta.is_file() else "cache"
            return Resolved(tool, pin.version, cached, f"cache ({source})")
        return None

    def path(self, tool: str) -> Path:
        """The binary for ``tool``, obtaining it first if needed."""
        found = self.find(tool)
        if found:
            return found.path
        self.install([tool])
        return self.cached_path(tool)

    # -- obtaining -----------------------------------------------------------------------------------
    def install(self, tools: list[str] | None = None, *, force: bool = False) -> list[Resolved]:
        """Obtain ``tools`` (default: every pin but those built on demand: ``on_demand = true`` pins, such as
        the older control plane of ``nox -s matrix``, are obtained when first asked for)."""
        names = tools or [name for name, pin in self.pins.items() if not pin.extra.get("on_demand")]
        for name in names:
            self.pin(name)
        todo = [n for n in names if force or self.find(n) is None]
        # Tools of one group (same module and version) are obtained together.
        groups: dict[str, list[ToolPin]] = {}
        for name in todo:
            pin = self.pins[name]
            members = [p for p in self.pins.values() if p.build_group == pin.build_group and p.version == pin.version]
            groups[f"{pin.build_group}@{pin.version}"] = members
        for members in groups.values():
            self._obtain_group(members, force=force)
        return [self.find(n) for n in names]  # type: ignore[misc]

    @contextmanager
    def _lock(self, name: str):
        lock_dir = self.cache / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{name}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _obtain_group(self, members: list[ToolPin], *, force: bool) -> None:
        first = members[0]
        with self._lock(f"{first.build_group}-{first.version}"):
            if not force and all(self.cached_path(p.name).is_file() for p in members):
                return  # another process finished it while we waited
            staging = Path(tempfile.mkdtemp(prefix=f".{first.build_group}-", dir=self._ensure(self.cache / "tools")))
            try:
                binaries, source = self._fetch_or_build(members, staging)
                for pin in members:
                    self._verify_version(pin, binaries[pin.name])
                for pin in members:
                    self._publish(pin, binaries[pin.name], source)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def _fetch_or_build(self, members: list[ToolPin], staging: Path) -> tuple[dict[str, Path], str]:
        if self.allow_download and all(p.download and p.checksum and not p.source for p in members):
            binaries = {}
            try:
                for pin in members:
                    with Progress(f"toolchain {pin.name} {pin.version}", "download", every=10) as progress:
                        dest = staging / pin.name
                        download_binary(pin, dest, progress)
                        binaries[pin.name] = dest
                return binaries, "download"
            except DownloadUnavailable as exc:
                print(f"[toolchain] release download unavailable ({exc}); building from the Go module instead",
                      flush=True)
        first = members[0]
        names = ", ".join(p.name for p in members)
        log_dir = self._ensure(self.cache / "logs")
        log_path = log_dir / f"build-{first.build_group}-{first.cache_version}.log"
        workdir = self.cache / "build" / f"{first.build_group}-{first.cache_version}"
        origin = f"our source {first.source} with {first.module}" if first.source else first.module
        with open(log_path, "w") as log, Progress(
            f"toolchain {names} {first.version}", f"build from {origin}", every=15
        ) as progress:
            if first.source:
                binaries = {first.name: gobuild.build_source(first, workdir, staging / "out", log, progress)}
            else:
                binaries = gobuild.build_group(members, workdir, staging / "out", log, progress)
        return binaries, "build"

    def _verify_version(self, pin: ToolPin, binary: Path) -> None:
        args = VERSION_ARGS.get(pin.name, ["--version"])
        try:
            out = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60)
        except OSError as exc:
            raise ToolchainError(f"{pin.name}: the new binary does not run: {exc}") from exc
        text = out.stdout + out.stderr
        if pin.version.lstrip("v") not in text:
            raise ToolchainError(
                f"{pin.name}: the new binary reports '{text.strip()[:120]}', not {pin.version}",
                hint=f"retry with: chartproof toolchain install --force {pin.name}",
            )

    def _publish(self, pin: ToolPin, binary: Path, source: str) -> None:
        final = self.cached_path(pin.name)
        self._ensure(final.parent)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        shutil.copy2(binary, tmp)
        tmp.chmod(0o755)
        os.replace(tmp, final)  # atomic: a reader sees the old binary or the whole new one, never half
        meta = {"tool": pin.name, "version": pin.version, "source": source, "module": pin.module,
                **({"source_digest": pin.source_digest} if pin.source else {}),
                "obtained": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        final.with_name("meta.json").write_text(json.dumps(meta, indent=2) + "\n")

    @staticmethod
    def _ensure(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- reporting -----------------------------------------------------------------------------------
    def table(self) -> list[tuple[str, str, str, str]]:
        rows = []
        for name, pin in self.pins.items():
            try:
                found = self.find(name)
            except ToolchainError as exc:
                rows.append((name, pin.version, "error", exc.message))
                continue
            rows.append((name, pin.version, found.source if found else "missing", str(found.path) if found else "-"))
        return rows


__all__ = ["Toolchain", "Resolved", "env_var"]
