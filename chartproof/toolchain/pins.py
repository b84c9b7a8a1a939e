"""The pin file: one place that names every tool and its version."""

from __future__ import annotations

import hashlib
import platform
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PIN_FILE = Path(__file__).with_name("pins.toml")


def go_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


@dataclass(frozen=True)
class ToolPin:
    name: str
    version: str
    module: str
    package: str
    group: str = ""
    stamp: str = ""
    download: str = ""
    archive_member: str = ""
    checksum: str = ""
    # A tool of our own: a Go main package in chartproof/toolchain/<source>/ (main.go, go.mod, go.sum) that links
    # ``module`` at ``module_version``; its cache key carries a hash of that directory.
    source: str = ""
    module_version: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def build_group(self) -> str:
        """Tools of one group come from one module and are built by one ``go build``."""
        return self.group or self.name

    def expand(self, template: str, **more: str) -> str:
        return template.format(version=self.version, v=self.version.lstrip("v"), arch=go_arch(), **more)

    @property
    def source_dir(self) -> Path | None:
        return PIN_FILE.parent / self.source if self.source else None

    @property
    def source_digest(self) -> str:
        return source_digest(self.source_dir) if self.source_dir else ""

    @property
    def cache_version(self) -> str:
        """The cache folder's name: the version, plus the source's digest for a tool of our own."""
        return f"{self.version}-{self.source_digest[:12]}" if self.source else self.version

    @property
    def download_url(self) -> str:
        return self.expand(self.download) if self.download else ""

    @property
    def checksum_url(self) -> str:
        return self.expand(self.checksum, url=self.download_url) if self.checksum and self.download else ""


_KNOWN = {"version", "module", "package", "group", "stamp", "download", "archive_member", "checksum", "source",
          "module_version"}


@cache
def source_digest(directory: Path) -> str:
    """sha256 over the relative paths and contents of a source directory (an edit rebuilds the tool)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def load_pins(path: Path = PIN_FILE) -> dict[str, ToolPin]:
    data = tomllib.loads(path.read_text())
    pins = {}
    for name, entry in data.get("tool", {}).items():
        known = {k: str(v) for k, v in entry.items() if k in _KNOWN}
        extra = {k: v for k, v in entry.items() if k not in _KNOWN}
        pins[name] = ToolPin(name=name, extra=extra, **known)
    return pins
