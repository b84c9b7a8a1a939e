"""Which build of each chart is under test, named as helm names it: a directory, a packaged ``.tgz``, an OCI
reference (``oci://HOST/PATH/CHART`` with ``:TAG``, ``@sha256:DIGEST`` or a version given apart), or a chart of
a classic repository added with ``helm repo add`` (``REPO/CHART``)."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from chartproof import yamlio
from chartproof.errors import ChartNotFoundError, UsageError
from chartproof.paths import CHARTS

DEFAULT_CHARTS = {"adaptive": CHARTS / "adaptive", "monitoring": CHARTS / "monitoring", "hyperpod": CHARTS / "hyperpod"}

_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")            # an OCI tag (helm writes a version's + as _)
_VERSION = re.compile(r"^[A-Za-z0-9_.+*^~=<>!|, -]+$")                # an exact version or a helm constraint
_EXACT = re.compile(r"^v?\d+(\.\d+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_OCI_PATH = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$")
VERSION_OPTION = "--chart-version"  # the pytest option giving a reference's version, as helm's --version
_REPO_CHART = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*)/(?P<chart>[A-Za-z0-9][\w.-]*)$")


def helm_user_paths(environ: dict[str, str] | None = None) -> dict[str, Path]:
    """Where the user's helm keeps registry logins and repositories, as helm itself decides it:
    ``HELM_REGISTRY_CONFIG`` / ``HELM_REPOSITORY_CONFIG`` / ``HELM_REPOSITORY_CACHE``, else under
    ``HELM_CONFIG_HOME`` / ``HELM_CACHE_HOME``, else the XDG (or macOS) homes with ``helm`` appended."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "darwin":
        config_default, cache_default = home / "Library" / "Preferences", home / "Library" / "Caches"
    else:
        config_default, cache_default = home / ".config", home / ".cache"

    def base(helm_var: str, xdg_var: str, default: Path) -> Path:
        if env.get(helm_var):
            return Path(env[helm_var])
        return Path(env.get(xdg_var) or default) / "helm"

    config = base("HELM_CONFIG_HOME", "XDG_CONFIG_HOME", config_default)
    cache = base("HELM_CACHE_HOME", "XDG_CACHE_HOME", cache_default)
    return {
        "registry_config": Path(env.get("HELM_REGISTRY_CONFIG") or config / "registry" / "config.json"),
        "repository_config": Path(env.get("HELM_REPOSITORY_CONFIG") or config / "repositories.yaml"),
        "repository_cache": Path(env.get("HELM_REPOSITORY_CACHE") or cache / "repository"),
    }


def helm_repositories(environ: dict[str, str] | None = None) -> dict[str, dict]:
    """The user's classic repositories (``helm repo add``) by name; none when the file is missing or unreadable."""
    path = helm_user_paths(environ)["repository_config"]
    try:
        data = yamlio.load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    entries = data.get("repositories") if isinstance(data, dict) else None
    return {str(e["name"]): e for e in entries or [] if isinstance(e, dict) and e.get("name")}


def _version_of_tag(tag: str) -> str:
    """``helm push`` writes a version's ``+`` as ``_`` in the tag (tags cannot hold ``+``)."""
    return tag.replace("_", "+")


def _tag_of_version(version: str) -> str | None:
    tag = version.replace("+", "_")
    return tag if _EXACT.match(version) and _TAG.match(tag) else None


@dataclass(frozen=True)
class ChartRef:
    name: str          # catalog name: adaptive, monitoring, hyperpod
    location: str      # dir/tgz: the resolved path; oci: oci://HOST/PATH/CHART; repo: REPO/CHART
    kind: str          # dir | tgz | oci | repo
    version: str = ""  # oci and repo: the chart version (or a helm constraint); empty: repo's latest
    digest: str = ""   # oci only: the manifest digest to pull by (sha256:...)

    @classmethod
    def parse(cls, name: str, text: str, version: str | None = None) -> ChartRef:
        """``text`` as helm reads a chart argument; ``version`` the one given apart (helm's ``--version``)."""
        text = text.strip()
        version = (version or "").strip() or None
        if version is not None and not _VERSION.match(version):
            raise UsageError(f"chart {name}: bad {VERSION_OPTION} '{version}': expected X.Y.Z or a version constraint")
        if text.startswith("oci://"):
            return cls._parse_oci(name, text, version)
        path = Path(text).expanduser()
        if path.exists():
            if version is not None:
                raise UsageError(f"chart {name}: {VERSION_OPTION} applies to oci:// and REPO/CHART references, "
                                 f"not to the local {'directory' if path.is_dir() else 'file'} {path}")
            if path.is_dir():
                if not (path / "Chart.yaml").is_file():
                    raise ChartNotFoundError(f"chart {name}: directory {path} has no Chart.yaml")
                return cls(name, str(path.resolve()), "dir")
            if path.is_file() and text.endswith((".tgz", ".tar.gz")):
                return cls(name, str(path.resolve()), "tgz")
            raise ChartNotFoundError(f"chart {name}: {path} is neither a chart directory nor a .tgz package")
        match = _REPO_CHART.match(text)
        if match:
            repositories = helm_repositories()
            if match["repo"] in repositories:
                return cls(name, text, "repo", version or "")
            config = helm_user_paths()["repository_config"]
            raise ChartNotFoundError(
                f"chart {name}: '{text}' is neither a path (it does not exist) nor a chart of a configured helm "
                f"repository (no repository '{match['repo']}' in {config}; add it with helm repo add {match['repo']} URL)")
        raise ChartNotFoundError(f"chart {name}: '{text}' does not exist (expected a chart directory, a .tgz, "
                                 "oci://HOST/PATH/CHART:VERSION or REPO/CHART)")

    @classmethod
    def _parse_oci(cls, name: str, text: str, version: str | None) -> ChartRef:
        rest = text.removeprefix("oci://")
        rest, at, after = rest.partition("@")
        digest = ""
        versions: dict[str, str] = {}
        if at:
            if ":" in after:
                if not _DIGEST.match(after):
                    raise UsageError(f"chart {name}: bad digest in {text}: expected @sha256: and 64 hex digits")
                digest = after
            elif _VERSION.match(after):
                versions[f"@{after}"] = after  # the old form: a version after @
            else:
                raise UsageError(f"chart {name}: bad version '@{after}' in {text}")
        head, slash, last = rest.rpartition("/")
        if ":" in last:
            last, _, tag = last.partition(":")
            if not _TAG.match(tag):
                raise UsageError(f"chart {name}: bad tag ':{tag}' in {text}")
            versions[f":{tag}"] = _version_of_tag(tag)
        location = f"{head}{slash}{last}"
        if not slash or not last or not _OCI_PATH.match(location):
            raise UsageError(f"chart {name}: bad OCI reference {text}: expected oci://HOST/PATH/CHART[:TAG|@sha256:DIGEST]")
        if version is not None:
            versions[VERSION_OPTION] = version
        if len(set(versions.values())) > 1:
            raise UsageError(f"chart {name}: {text} names two versions ({', '.join(versions)}): give one")
        if not versions and not digest:
            raise UsageError(f"chart {name}: oci://{location} needs a version: give {VERSION_OPTION} {name}=X.Y.Z "
                             f"or write oci://{location}:TAG")
        return cls(name, f"oci://{location}", "oci", next(iter(versions.values()), ""), digest)

    @property
    def pulled(self) -> bool:
        return self.kind in ("oci", "repo")

    @property
    def helm_ref(self) -> str:
        """The chart argument of ``helm pull`` (its version goes with ``--version``, see ``helm_version``)."""
        if self.kind == "oci" and self.digest:
            tag = _tag_of_version(self.version) if self.version else None
            return f"{self.location}{':' + tag if tag else ''}@{self.digest}"
        return self.location

    @property
    def helm_version(self) -> str:
        """helm pull's ``--version``: empty for a digest (the digest names the build) and for a repo's latest."""
        return "" if self.digest else self.version

    def pinned(self, version: str) -> ChartRef:
        """This reference with the exact version a pull resolved (a constraint or a repo's latest)."""
        return self if self.digest or not version or self.kind not in ("oci", "repo") else replace(self, version=version)

    def __str__(self) -> str:
        """The canonical form: ``oci://H/P/C:0.6.2``, ``oci://H/P/C@sha256:...``, ``REPO/CHART --version 0.6.2``."""
        if self.kind == "oci":
            if self.digest:
                return self.helm_ref
            tag = _tag_of_version(self.version)
            return f"{self.location}:{tag}" if tag else f"{self.location} --version {self.version}"
        if self.kind == "repo" and self.version:
            return f"{self.location} --version {self.version}"
        return self.location


@dataclass(frozen=True)
class PulledChart:
    """What a pull left: the package, and the registry's manifest digest when it came from an OCI registry."""

    package: Path
    registry_digest: str = ""


def chart_metadata(directory: Path) -> dict:
    return yamlio.load((directory / "Chart.yaml").read_text()) or {}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


class ChartCatalog:
    """The charts a run tests, by name, with an unpacked directory of each (pulled once per run)."""

    def __init__(self, overrides: dict[str, str] | None = None, *, workdir: Path, pull=None,
                 versions: dict[str, str] | None = None):
        self.refs = {name: ChartRef(name, str(path), "dir") for name, path in DEFAULT_CHARTS.items()}
        versions = dict(versions or {})
        for name in versions:
            if name not in (overrides or {}):
                raise UsageError(f"{VERSION_OPTION} {name}={versions[name]} needs --chart {name}=REF "
                                 "(an oci:// or REPO/CHART reference)")
        for name, text in (overrides or {}).items():
            self.refs[name] = ChartRef.parse(name, text, versions.get(name))
        self.workdir = workdir
        self._pull = pull  # callable(ChartRef, dest_dir) -> PulledChart | Path | None: the helm driver's pull
        self._dirs: dict[str, Path] = {}
        self._pulled: dict[str, dict] = {}  # name -> digest (of the .tgz), registry_digest

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
                _unpack(Path(ref.location), dest)
            else:
                if self._pull is None:
                    raise UsageError(f"chart {name}: {ref} must be pulled, and this catalog has no helm to pull it")
                pulled = self._pull(ref, dest)
                if isinstance(pulled, Path):
                    pulled = PulledChart(pulled)
                if isinstance(pulled, PulledChart):
                    unpacked = dest / "unpacked"
                    _unpack(pulled.package, unpacked)
                    self._pulled[name] = {"digest": sha256_file(pulled.package),
                                          **({"registry_digest": pulled.registry_digest} if pulled.registry_digest else {})}
                    dest = unpacked
            tops = [p for p in dest.iterdir() if (p / "Chart.yaml").is_file()]
            if len(tops) != 1:
                raise ChartNotFoundError(f"chart {name}: {ref} does not unpack to one chart directory")
            directory = tops[0]
            if ref.digest and ref.version:
                found = str(chart_metadata(directory).get("version", ""))
                if found != ref.version:
                    raise ChartNotFoundError(f"chart {name}: {ref} is version {found}, not {ref.version}")
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
        """One row per chart: ``reference`` in canonical form (pinned to the version a pull resolved),
        ``kind``, Chart.yaml's name and versions, and for a pulled chart ``digest`` (sha256 of its .tgz)."""
        rows = []
        for name, ref in sorted(self.refs.items()):
            row = {"name": name, "reference": str(ref), "kind": ref.kind}
            try:
                meta = chart_metadata(self.local_dir(name))
                row.update(chart=meta.get("name"), version=meta.get("version"), appVersion=meta.get("appVersion"))
                if ref.pulled:
                    row["reference"] = str(ref.pinned(str(meta.get("version") or "")))
                row.update(self._pulled.get(name, {}))
            except Exception as exc:  # noqa: BLE001 - a report must not fail on one chart
                row["error"] = str(exc)
            rows.append(row)
        return rows


def _unpack(package: Path, dest: Path) -> None:
    try:
        with tarfile.open(package) as tar:
            tar.extractall(dest, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise ChartNotFoundError(f"cannot unpack chart package {package.name}: {exc}") from None
