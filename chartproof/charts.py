"""Which build of each chart is under test: a directory, a packaged ``.tgz``, or ``oci://…@version``."""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from chartproof.errors import ChartNotFoundError, UsageError
from chartproof.paths import CHARTS

DEFAULT_CHARTS = {"adaptive": CHARTS / "adaptive", "monitoring": CHARTS / "monitoring", "hyperpod": CHARTS / "hyperpod"}
_OCI = re.compile(r"^(?P<ref>oci://[^@\s]+?)(?:@(?P<version>[\w.+-]+))?$")


@dataclass(frozen=True)
class ChartRef:
    name: str          # catalog name: adaptive, monitoring, hyperpod
    location: str      # what the user gave
    kind: str          # dir | tgz | oci
    version: str = ""  # oci only

    @classmethod
    def parse(cls, name: str, text: str, version: str | None = None) -> ChartRef:
        text = text.strip()
        match = _OCI.match(text)
        if match:
            ver = version or match["version"]
            if not ver:
                raise UsageError(f"chart {name}: {text} needs a version (write {text}@X.Y.Z)")
            return cls(name, match["ref"], "oci", ver)
        path = Path(text).expanduser()
        if path.is_dir():
            if not (path / "Chart.yaml").is_file():
                raise ChartNotFoundError(f"chart {name}: directory {path} has no Chart.yaml")
            return cls(name, str(path.resolve()), "dir")
        if path.is_file() and text.endswith((".tgz", ".tar.gz")):
            return cls(name, str(path.resolve()), "tgz")
        if path.exists():
            raise ChartNotFoundError(f"chart {name}: {path} is neither a chart directory nor a .tgz package")
        raise ChartNotFoundError(f"chart {name}: '{text}' does not exist (expected a chart directory, a .tgz, or oci://REF@VERSION)")

    def __str__(self) -> str:
        return f"{self.location}@{self.version}" if self.kind == "oci" else self.location


def chart_metadata(directory: Path) -> dict:
    return yaml.safe_load((directory / "Chart.yaml").read_text()) or {}


class ChartCatalog:
    """The charts a run tests, by name, with an unpacked directory of each (pulled once per run)."""

    def __init__(self, overrides: dict[str, str] | None = None, *, workdir: Path, pull=None):
        self.refs = {name: ChartRef(name, str(path), "dir") for name, path in DEFAULT_CHARTS.items()}
        for name, text in (overrides or {}).items():
            self.refs[name] = ChartRef.parse(name, text)
        self.workdir = workdir
        self._pull = pull  # callable(ChartRef, dest_dir) for oci refs: the helm driver's pull
        self._dirs: dict[str, Path] = {}

    def ref(self, name: str) -> ChartRef:
        try:
            return self.refs[name]
        except KeyError:
            raise ChartNotFoundError(f"no chart named '{name}' in this run; known: {', '.join(sorted(self.refs))}") from None

    def local_dir(self, name: str) -> Path:
        """An unpacked directory of the chart (the directory itself for a directory reference)."""
        if name in self._dirs:
            return self._dirs[name]
        ref = self.ref(name)
        if ref.kind == "dir":
            directory = Path(ref.location)
        else:
            dest = self.workdir / "charts" / name
            dest.mkdir(parents=True, exist_ok=True)
            if ref.kind == "tgz":
                with tarfile.open(ref.location) as tar:
                    tar.extractall(dest, filter="data")
            else:
                if self._pull is None:
                    raise UsageError("oci charts need helm to pull them")
                self._pull(ref, dest)
            tops = [p for p in dest.iterdir() if (p / "Chart.yaml").is_file()]
            if len(tops) != 1:
                raise ChartNotFoundError(f"chart {name}: {ref} does not unpack to one chart directory")
            directory = tops[0]
        self._dirs[name] = directory
        return directory

    def resolve(self, chart: str | Path) -> Path:
        """A catalog name or a chart directory path -> a directory to hand to helm."""
        if isinstance(chart, str) and chart in self.refs:
            return self.local_dir(chart)
        path = Path(chart)
        if (path / "Chart.yaml").is_file():
            return path
        if isinstance(chart, str) and "/" not in chart:
            self.ref(chart)  # raises with the known names
        raise ChartNotFoundError(f"'{chart}' is neither a chart of this run nor a chart directory")

    def describe(self) -> list[dict]:
        rows = []
        for name, ref in sorted(self.refs.items()):
            row = {"name": name, "reference": str(ref), "kind": ref.kind}
            try:
                meta = chart_metadata(self.local_dir(name))
                row.update(chart=meta.get("name"), version=meta.get("version"), appVersion=meta.get("appVersion"))
            except Exception as exc:  # noqa: BLE001 - a report must not fail on one chart
                row["error"] = str(exc)
            rows.append(row)
        return rows
