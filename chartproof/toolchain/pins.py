"""The pin file: one place that names every tool and its version."""

from __future__ import annotations

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
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def build_group(self) -> str:
        """Tools of one group come from one module and are built by one ``go build``."""
        return self.group or self.name

    def expand(self, template: str, **more: str) -> str:
        return template.format(version=self.version, v=self.version.lstrip("v"), arch=go_arch(), **more)

    @property
    def download_url(self) -> str:
        return self.expand(self.download) if self.download else ""

    @property
    def checksum_url(self) -> str:
        return self.expand(self.checksum, url=self.download_url) if self.checksum and self.download else ""


_KNOWN = {"version", "module", "package", "group", "stamp", "download", "archive_member", "checksum"}


@cache
def load_pins(path: Path = PIN_FILE) -> dict[str, ToolPin]:
    data = tomllib.loads(path.read_text())
    pins = {}
    for name, entry in data.get("tool", {}).items():
        known = {k: str(v) for k, v in entry.items() if k in _KNOWN}
        extra = {k: v for k, v in entry.items() if k not in _KNOWN}
        pins[name] = ToolPin(name=name, extra=extra, **known)
    return pins
