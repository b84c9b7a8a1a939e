"""chart-testing (``ct``) conventions, as chart repositories use them: the repository's ``ct.yaml`` (which
directories hold the charts, the extra arguments of helm install, the lint options), a chart's own
``ci/*-values.yaml`` scenarios (``chartproof.paths.scenarios``), and ``ct lint`` run with the pinned ct and helm.

What a run takes from ``ct.yaml`` (at the pytest root, or ``$CHARTPROOF_CT_CONFIG``): each chart under its
``chart-dirs`` becomes the default location of the catalog chart of that Chart.yaml name (``--chart`` still
wins); its ``helm-extra-args`` go to every helm install, upgrade and uninstall of the run and its
``helm-extra-set-args`` to every install and upgrade, after Chartproof's own flags, as ``ct install`` passes
them. ``ct lint`` here passes the same file to ct, which reads its lint options itself.

Command line (the lint session runs it): ``python -m chartproof.chart_testing lint [--config FILE] [CHART_DIR ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from chartproof import yamlio
from chartproof.charts import DEFAULT_CHARTS, chart_metadata
from chartproof.errors import ChartNotFoundError, ChartproofError, ToolchainError, UsageError, WaitTimeout
from chartproof.paths import REPO, scenario_id, scenarios
from chartproof.toolchain import Toolchain
from chartproof.toolchain.gobuild import go_binary, go_env

CT_FILE = "ct.yaml"
CONFIG_ENV = "CHARTPROOF_CT_CONFIG"
DEFAULT_CHART_DIRS = ("charts",)  # ct's own default
# Forced on every `ct lint` here: the version increment check needs git history and a remote, maintainer
# validation asks GitHub, and `helm dependency build` would rewrite the vendored charts/ of each chart.
OFFLINE_LINT_FLAGS = ("--validate-maintainers=false", "--check-version-increment=false", "--skip-helm-dependencies")
LINT_PROGRAMS = ("yamllint", "yamale")  # ct runs them from PATH (PyPI packages of the same names)


@dataclass(frozen=True)
class CtConfig:
    """The parts of a ``ct.yaml`` Chartproof reads; paths are resolved against the file's folder."""

    path: Path | None                      # the file read; None: no ct.yaml, ct's defaults
    base: Path                             # where relative paths (and ct itself) start
    chart_dirs: tuple[Path, ...] = ()
    charts: tuple[Path, ...] = ()          # ct's `charts`: chart directories named one by one
    excluded_charts: tuple[str, ...] = ()  # directory names
    helm_extra_args: tuple[str, ...] = ()  # extra arguments of helm install / upgrade / uninstall (`helm-extra-args`)
    helm_extra_set_args: tuple[str, ...] = ()  # extra arguments of helm install / upgrade (`helm-extra-set-args`)
    helm_lint_extra_args: tuple[str, ...] = ()
    lint_conf: Path | None = None
    chart_yaml_schema: Path | None = None
    target_branch: str = ""
    settings: dict = field(default_factory=dict, compare=False)  # the whole file, for what is not read here

    def chart_directories(self) -> list[Path]:
        """Every chart: the ``charts`` entries, then each folder with a Chart.yaml directly under a chart dir,
        less ``excluded-charts``; in that order, each once."""
        found: list[Path] = []
        for entry in self.charts:
            if not (entry / "Chart.yaml").is_file():
                raise ChartNotFoundError(f"{self._where()}: charts entry {entry} has no Chart.yaml")
            found.append(entry)
        for parent in self.chart_dirs:
            if not parent.is_dir():
                raise UsageError(f"{self._where()}: chart-dirs entry {parent} is not a directory")
            found += [d for d in sorted(parent.iterdir()) if (d / "Chart.yaml").is_file()]
        out: list[Path] = []
        for directory in found:
            if directory.name not in self.excluded_charts and directory.resolve() not in [d.resolve() for d in out]:
                out.append(directory)
        return out

    def chart_locations(self) -> dict[str, Path]:
        """Catalog name -> chart directory, for every chart of ``chart_directories``."""
        locations: dict[str, Path] = {}
        for directory in self.chart_directories():
            name = catalog_name(directory)
            if name in locations:
                raise UsageError(f"{self._where()}: two charts are named '{name}': {locations[name]} and {directory}")
            locations[name] = directory
        return locations

    def _where(self) -> str:
        return str(self.path) if self.path else f"chart-testing defaults in {self.base}"


def _strings(path: Path, data: dict, key: str) -> list[str]:
    """A list of strings, or one string with commas (as ct's flags take it)."""
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise UsageError(f"{path}: {key} must be a list of strings, not {type(value).__name__}")


def _args(path: Path, data: dict, key: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, str):
        raise UsageError(f"{path}: {key} must be one string of arguments (like '--timeout 600s'), "
                         f"not {type(value).__name__}")
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise UsageError(f"{path}: {key} does not split into arguments: {exc}") from None


def config_path(root: Path | None = None) -> Path | None:
    """``$CHARTPROOF_CT_CONFIG`` if set, else ``ROOT/ct.yaml`` if it exists (root: the repository)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    candidate = Path(root or REPO) / CT_FILE
    return candidate if candidate.is_file() else None


def load(path: Path | None = None, *, root: Path | None = None) -> CtConfig:
    """The ct.yaml at ``path`` (it must exist), else the one ``config_path(root)`` finds, else ct's defaults."""
    path = Path(path) if path else config_path(root)
    if path is None:
        base = Path(root or REPO)
        return CtConfig(None, base, chart_dirs=tuple(base / d for d in DEFAULT_CHART_DIRS))
    try:
        data = yamlio.load(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read chart-testing config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UsageError(f"chart-testing config {path} is not valid YAML{where}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise UsageError(f"chart-testing config {path} must be a mapping of ct options, not {type(data).__name__}")
    base = path.resolve().parent
    target = data.get("target-branch", "")
    if not isinstance(target, str):
        raise UsageError(f"{path}: target-branch must be a branch name")

    def optional_path(key: str) -> Path | None:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{path}: {key} must be a file path")
        return base / value if value else None

    return CtConfig(
        path=path.resolve(),
        base=base,
        chart_dirs=tuple(base / d for d in (_strings(path, data, "chart-dirs") or DEFAULT_CHART_DIRS)),
        charts=tuple(base / c for c in _strings(path, data, "charts")),
        excluded_charts=tuple(_strings(path, data, "excluded-charts")),
        helm_extra_args=_args(path, data, "helm-extra-args"),
        helm_extra_set_args=_args(path, data, "helm-extra-set-args"),
        helm_lint_extra_args=_args(path, data, "helm-lint-extra-args"),
        lint_conf=optional_path("lint-conf"),
        chart_yaml_schema=optional_path("chart-yaml-schema"),
        target_branch=target,
        settings=data,
    )


def catalog_name(chart_dir: Path) -> str:
    """The catalog name of a chart directory: the name of the default chart whose Chart.yaml has the same
    name (``hyperpod-helm-chart`` -> ``hyperpod``), else the Chart.yaml name itself."""
    try:
        name = str(chart_metadata(chart_dir).get("name") or "")
    except (OSError, yaml.YAMLError):
        raise ChartNotFoundError(f"chart directory {chart_dir}: Chart.yaml cannot be read") from None
    if not name:
        raise ChartNotFoundError(f"chart directory {chart_dir}: Chart.yaml has no name")
    for catalog, directory in DEFAULT_CHARTS.items():
        try:
            if str(chart_metadata(directory).get("name")) == name:
                return catalog
        except (OSError, yaml.YAMLError):
            continue
    return name


def run_charts(root: Path, given: dict[str, str], versions: Iterable[str] = ()) -> dict[str, str]:
    """A run's ``--chart`` pairs completed from the ct.yaml of ``root``: every chart of its chart dirs, by
    catalog name, unless ``--chart`` or ``--chart-version`` (``NAME=VERSION`` items) names it already.
    Without a ct.yaml, ``given`` unchanged."""
    path = config_path(root)
    if path is None:
        return dict(given)
    named = {item.partition("=")[0].strip() for item in versions}
    found = {name: str(directory) for name, directory in load(path).chart_locations().items()
             if name not in given and name not in named}
    return {**found, **given}


def run_helm_args(root: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(helm-extra-args, helm-extra-set-args)`` of the ct.yaml of ``root`` (both empty without one), for the
    run's helm: as ``ct install`` does, the first go to helm install, upgrade and uninstall, the second to
    install and upgrade, after Chartproof's own flags (so ``--timeout 600s`` there wins)."""
    path = config_path(root)
    if path is None:
        return (), ()
    config = load(path)
    return config.helm_extra_args, config.helm_extra_set_args


def scenario_cases(catalog, charts: Iterable[str] = DEFAULT_CHARTS) -> list[tuple[str, Path, str]]:
    """(chart, values file, id) for every scenario of every chart of a run's catalog: its fixtures, then the
    ``ci/*-values.yaml`` of the directory under test. ``charts`` first, then the catalog's other names."""
    names = list(charts)
    if catalog is not None:
        names += sorted(n for n in catalog.refs if n not in names)
    cases = []
    for chart in names:
        directory = None
        if catalog is not None and chart in catalog.refs:
            try:
                directory = catalog.local_dir(chart)
            except ChartproofError:
                directory = None  # the run stops on it before any test (Run.validate); fixtures only here
        paths = scenarios(chart, directory) if directory else scenarios(chart)
        cases += [(chart, path, scenario_id(chart, path)) for path in paths]
    return cases


# -- ct lint ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LintResult:
    command: list[str]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def findings(self) -> list[str]:
        """The lines that say what is wrong: yamllint's errors and warnings, helm lint's, ct's failed charts."""
        marks = (" error ", " warning ", "[ERROR]", "[WARNING]", "\u2716", "Error:")
        return [line.strip() for line in self.output.splitlines() if any(m in line for m in marks)]


def ct_etc(toolchain: Toolchain | None = None) -> Path:
    """The ``etc/`` of the pinned ct module (lintconf.yaml, chart_schema.yaml), from the Go module cache;
    the module is downloaded into it first when missing (a ct given by path still needs Go for this)."""
    pin = (toolchain or Toolchain()).pin("ct")
    proc = subprocess.run([go_binary(), "mod", "download", "-json", f"{pin.module}@{pin.version}"],
                          capture_output=True, text=True, env=go_env(), cwd="/", timeout=600)
    try:
        directory = Path(json.loads(proc.stdout)["Dir"]) / "etc"
    except (ValueError, KeyError):
        detail = (proc.stdout + proc.stderr).strip().splitlines()
        raise ToolchainError(f"cannot read ct's lint rules from {pin.module}@{pin.version}: "
                             f"{detail[-1] if detail else 'go mod download failed'}") from None
    for name in ("lintconf.yaml", "chart_schema.yaml"):
        if not (directory / name).is_file():
            raise ToolchainError(f"{pin.module}@{pin.version} has no etc/{name}")
    return directory


def lint_env(helm: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """ct's environment: the pinned helm first on PATH, then the running Python's scripts (yamllint, yamale)."""
    env = dict(os.environ if environ is None else environ)
    env["PATH"] = os.pathsep.join([str(Path(helm).parent), str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def lint_command(ct: Path, charts: list[Path], config: CtConfig, etc: Path) -> list[str]:
    """``ct lint`` of ``charts`` with the config file, ct's own lint rules unless the config names others,
    and the offline flags."""
    if not charts:
        raise ChartNotFoundError(f"no chart to lint (none under {', '.join(map(str, config.chart_dirs)) or 'chart-dirs'})")
    command = [str(ct), "lint", "--charts", ",".join(str(c) for c in charts)]
    if config.path:
        command += ["--config", str(config.path)]
    if not config.lint_conf:
        command += ["--lint-conf", str(etc / "lintconf.yaml")]
    if not config.chart_yaml_schema:
        command += ["--chart-yaml-schema", str(etc / "chart_schema.yaml")]
    return command + list(OFFLINE_LINT_FLAGS)


def ct_lint(charts: list[Path] | None = None, *, config: CtConfig | None = None,
            toolchain: Toolchain | None = None, timeout: float = 600) -> LintResult:
    """``ct lint`` on ``charts`` (default: every chart of the config), from the config's folder."""
    toolchain = toolchain or Toolchain()
    config = config or load()
    targets = [Path(c).resolve() for c in charts] if charts else config.chart_directories()
    for target in targets:
        if not (target / "Chart.yaml").is_file():
            raise ChartNotFoundError(f"ct lint: {target} is not a chart directory (no Chart.yaml)")
    env = lint_env(toolchain.path("helm"))
    missing = [p for p in LINT_PROGRAMS if not shutil.which(p, path=env["PATH"])]
    if missing:
        raise ToolchainError(f"ct lint runs {' and '.join(missing)}, and {'it is' if len(missing) == 1 else 'they are'} "
                             "not on PATH", hint=f"pip install {' '.join(missing)}")
    command = lint_command(toolchain.path("ct"), targets, config, ct_etc(toolchain))
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=config.base, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WaitTimeout(f"ct lint did not finish in {timeout:.0f}s") from None
    return LintResult(command, proc.returncode, proc.stdout + proc.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chartproof.chart_testing",
                                     description="chart-testing's ct lint with the pinned ct and helm")
    sub = parser.add_subparsers(dest="command", required=True)
    lint = sub.add_parser("lint", help="ct lint the charts (default: every chart under the config's chart-dirs)")
    lint.add_argument("charts", nargs="*", type=Path, metavar="CHART_DIR")
    lint.add_argument("--config", type=Path, default=None, help=f"a ct.yaml (default: ./{CT_FILE} of the repository)")
    args = parser.parse_args(argv)
    try:
        result = ct_lint(args.charts or None, config=load(args.config))
    except ChartproofError as err:
        print(err.one_line(), file=sys.stderr)
        return err.exit_code
    print("$ " + " ".join(shlex.quote(part) for part in result.command), flush=True)
    print(result.output, end="" if result.output.endswith("\n") else "\n", flush=True)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
