"""Copies of our charts to change, exact text edits, and helm renders of a copy."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import yaml

from chartproof.helm import HelmResult
from chartproof.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "charts"
CHART_NAMES = ("adaptive", "monitoring", "hyperpod")

# How the suites render each chart by default (the README's install commands).
RENDER_ARGS = {
    "adaptive": ("adaptive", "--namespace", "default"),
    "monitoring": ("monitoring", "--namespace", "default"),
    "hyperpod": ("dependencies", "--namespace", "kube-system", "--include-crds"),
}


class EditError(AssertionError):
    """An edit that does not match its file exactly once: the catalog is out of step with the chart."""


def copy_chart(name: str, destination: Path) -> Path:
    """A copy of ``charts/<name>`` (subcharts included) at ``destination/<name>``, without the archives and
    lock file that ``helm dependency update`` leaves behind (the unpacked subcharts are the source)."""
    target = destination / name
    shutil.copytree(CHARTS / name, target, ignore=shutil.ignore_patterns("*.tgz", "Chart.lock"))
    return target


def chart_dirs(root: Path) -> list[Path]:
    """The chart at ``root`` and every subchart below it (directories of ``charts/`` with a Chart.yaml)."""
    found = [root]
    sub = root / "charts"
    if sub.is_dir():
        for child in sorted(sub.iterdir()):
            if (child / "Chart.yaml").is_file():
                found += chart_dirs(child)
    return found


def template_files(chart: Path) -> list[Path]:
    """Every file under ``templates/`` of one chart (not its subcharts), sorted."""
    directory = chart / "templates"
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    count = text.count(old)
    if count != 1:
        raise EditError(f"{path}: the text to replace occurs {count} times (expected exactly once):\n{old}")
    path.write_text(text.replace(old, new))


def chart_name(chart: Path) -> str:
    return str(yaml.safe_load((chart / "Chart.yaml").read_text())["name"])


# -- helm ----------------------------------------------------------------------------------------------------
@cache
def helm_binary() -> Path:
    from chartproof.toolchain import Toolchain

    return Toolchain().path("helm")


@cache
def _helm_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="chartproof-selfcheck-helm-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def helm(*args: str, timeout: float = 300) -> HelmResult:
    """The pinned helm with a private home (no user repositories or caches)."""
    home = _helm_home()
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}
    proc = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, env=env, timeout=timeout)
    return HelmResult(list(args), proc.returncode, proc.stdout, proc.stderr)


def render_default(name: str, chart: Path) -> str:
    """``helm template`` of a copy of chart ``name`` with its default values, as the suites render it."""
    release, *args = RENDER_ARGS[name]
    run = helm("template", release, str(chart), *args)
    if not run.ok:
        raise AssertionError(f"helm template {chart} failed: {run.stderr.strip()[-2000:]}")
    return run.stdout


def manifest_of(text: str) -> Manifest:
    return Manifest(text)


def object_keys(manifest: Manifest) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of every object, in render order."""
    return [(o.get("kind", ""), (o.get("metadata") or {}).get("namespace") or "", (o.get("metadata") or {}).get("name", ""))
            for o in manifest]


def sources(text: str) -> set[str]:
    """The template paths helm names in ``# Source:`` comments."""
    return {line[len("# Source: "):].strip() for line in text.splitlines() if line.startswith("# Source: ")}
