"""chart-testing conventions: ct.yaml (chart-dirs, helm-extra-args) read into a run's default charts, a chart's
own ci/*-values.yaml as packaging scenarios (also in a ct repository of its own), and `ct lint` on our charts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chartproof import chart_testing
from chartproof.chart_testing import CtConfig, lint_command, load, run_charts, scenario_cases
from chartproof.charts import ChartCatalog
from chartproof.errors import ChartNotFoundError, ToolchainError, UsageError
from chartproof.helm import Helm
from chartproof.paths import CHARTS, FIXTURES, scenario, scenario_id, scenarios
from chartproof.toolchain import Toolchain
from tests.conftest import REPO


def chart(directory: Path, name: str, version: str = "0.1.0") -> Path:
    directory.mkdir(parents=True)
    (directory / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    return directory


# -- ct.yaml --------------------------------------------------------------------------------------------------
def test_chart_dirs_and_helm_extra_args_are_read_relative_to_the_file(tmp_path):
    (tmp_path / "ct.yaml").write_text("chart-dirs:\n  - stable\n  - incubator\n"
                                      "helm-extra-args: --timeout 600s --atomic\ntarget-branch: main\n")
    config = load(tmp_path / "ct.yaml")
    assert config.path == (tmp_path / "ct.yaml").resolve()
    assert config.chart_dirs == (tmp_path / "stable", tmp_path / "incubator")
    assert config.helm_extra_args == ("--timeout", "600s", "--atomic")
    assert config.target_branch == "main"


def test_comma_separated_chart_dirs_and_ct_defaults(tmp_path):
    (tmp_path / "ct.yaml").write_text("chart-dirs: a, b\n")
    assert load(tmp_path / "ct.yaml").chart_dirs == (tmp_path / "a", tmp_path / "b")
    (tmp_path / "ct.yaml").write_text("helm-extra-args: --wait\n")  # no chart-dirs: ct's default, charts/
    assert load(tmp_path / "ct.yaml").chart_dirs == (tmp_path / "charts",)
    empty = tmp_path / "no-ct"
    empty.mkdir()
    defaults = load(root=empty)
    assert defaults.path is None and defaults.chart_dirs == (empty / "charts",) and defaults.helm_extra_args == ()


@pytest.mark.parametrize("text, message", [
    ("chart-dirs: [charts\n", "is not valid YAML (line"),
    ("- charts\n", "must be a mapping of ct options, not list"),
    ("chart-dirs: 3\n", "chart-dirs must be a list of strings, not int"),
    ("helm-extra-args: [--timeout, 600s]\n", "helm-extra-args must be one string of arguments"),
    ("helm-extra-args: \"--set 'a=b\"\n", "helm-extra-args does not split into arguments"),
])
def test_a_malformed_ct_yaml_is_one_usage_line(tmp_path, text, message):
    (tmp_path / "ct.yaml").write_text(text)
    with pytest.raises(UsageError) as info:
        load(tmp_path / "ct.yaml")
    assert message in info.value.message and str(tmp_path / "ct.yaml") in info.value.message
    assert info.value.exit_code == 2


def test_a_missing_config_file_is_refused(tmp_path):
    with pytest.raises(UsageError, match="cannot read chart-testing config"):
        load(tmp_path / "nope.yaml")


def test_charts_of_chart_dirs_become_catalog_entries_by_chart_yaml_name(tmp_path):
    (tmp_path / "ct.yaml").write_text("chart-dirs: [charts]\nexcluded-charts: [old]\n")
    chart(tmp_path / "charts" / "engine", "adaptive")
    chart(tmp_path / "charts" / "deps", "hyperpod-helm-chart")  # our hyperpod chart's Chart.yaml name
    chart(tmp_path / "charts" / "extra", "extra")
    chart(tmp_path / "charts" / "old", "monitoring")
    (tmp_path / "charts" / "not-a-chart").mkdir()
    locations = load(tmp_path / "ct.yaml").chart_locations()
    assert locations == {"adaptive": tmp_path / "charts" / "engine", "hyperpod": tmp_path / "charts" / "deps",
                         "extra": tmp_path / "charts" / "extra"}


def test_two_charts_of_one_name_and_a_missing_chart_dir_are_refused(tmp_path):
    (tmp_path / "ct.yaml").write_text("chart-dirs: [a, b]\n")
    chart(tmp_path / "a" / "x", "adaptive")
    chart(tmp_path / "b" / "y", "adaptive")
    with pytest.raises(UsageError, match="two charts are named 'adaptive'"):
        load(tmp_path / "ct.yaml").chart_locations()
    (tmp_path / "ct.yaml").write_text("chart-dirs: [a, missing]\n")
    with pytest.raises(UsageError, match="chart-dirs entry .*missing is not a directory"):
        load(tmp_path / "ct.yaml").chart_locations()
    (tmp_path / "ct.yaml").write_text("charts: [a]\n")
    with pytest.raises(ChartNotFoundError, match="charts entry .* has no Chart.yaml"):
        load(tmp_path / "ct.yaml").chart_locations()


def test_run_charts_fill_what_chart_and_chart_version_leave(tmp_path, monkeypatch):
    monkeypatch.delenv(chart_testing.CONFIG_ENV, raising=False)
    assert run_charts(tmp_path, {"adaptive": "x.tgz"}) == {"adaptive": "x.tgz"}  # no ct.yaml: unchanged
    (tmp_path / "ct.yaml").write_text("chart-dirs: [charts]\n")
    for name in ("adaptive", "monitoring", "hyperpod-helm-chart"):
        chart(tmp_path / "charts" / name, name)
    charts = run_charts(tmp_path, {"adaptive": "build.tgz"}, ["monitoring=0.1.5"])
    assert charts == {"adaptive": "build.tgz", "hyperpod": str(tmp_path / "charts" / "hyperpod-helm-chart")}
    other = tmp_path / "elsewhere.yaml"
    other.write_text("chart-dirs: [charts]\nexcluded-charts: [hyperpod-helm-chart, adaptive]\n")
    monkeypatch.setenv(chart_testing.CONFIG_ENV, str(other))
    assert run_charts(tmp_path, {}) == {"monitoring": str(tmp_path / "charts" / "monitoring")}


def test_the_repository_ct_yaml_names_our_charts():
    config = load(REPO / "ct.yaml")
    assert config.chart_locations() == {"adaptive": CHARTS / "adaptive", "hyperpod": CHARTS / "hyperpod",
                                        "monitoring": CHARTS / "monitoring"}
    assert "--timeout" in config.helm_extra_args


# -- ci/*-values.yaml scenarios -------------------------------------------------------------------------------
def test_scenarios_are_fixtures_then_the_chart_dirs_ci_values(tmp_path):
    copy = tmp_path / "monitoring"
    shutil.copytree(CHARTS / "monitoring", copy)
    (copy / "ci" / "extra-values.yaml").write_text("grafana:\n  replicas: 2\n")
    (copy / "ci" / "notes.yaml").write_text("not: a ci values file\n")
    found = scenarios("monitoring", copy)
    fixtures = sorted((FIXTURES / "monitoring").glob("*.yaml"))
    assert found == fixtures + [copy / "ci" / "extra-values.yaml", copy / "ci" / "persisted-values.yaml"]
    assert [scenario_id("monitoring", p) for p in found[-2:]] == ["monitoring-ci-extra-values",
                                                                  "monitoring-ci-persisted-values"]
    assert scenario_id("monitoring", fixtures[0]) == f"monitoring-{fixtures[0].stem}"
    assert scenario("monitoring", "ci-extra-values", copy) == copy / "ci" / "extra-values.yaml"
    assert scenario("monitoring", "persisted-values") == CHARTS / "monitoring" / "ci" / "persisted-values.yaml"
    with pytest.raises(FileNotFoundError, match="known: .*ci-persisted-values"):
        scenario("monitoring", "extra-values")  # only in the copy


def test_a_packaged_chart_build_brings_its_own_ci_scenarios(tmp_path):
    copy = tmp_path / "src" / "monitoring"
    shutil.copytree(CHARTS / "monitoring", copy)
    (copy / "ci" / "packaged-values.yaml").write_text("grafana:\n  replicas: 2\n")
    helm = Toolchain().path("helm")
    subprocess.run([str(helm), "package", str(copy), "-d", str(tmp_path)], check=True, capture_output=True)
    catalog = ChartCatalog({"monitoring": str(tmp_path / "monitoring-0.1.5.tgz")}, workdir=tmp_path / "work")
    ids = [case_id for name, _path, case_id in scenario_cases(catalog) if name == "monitoring"]
    assert "monitoring-ci-packaged-values" in ids and "monitoring-ci-persisted-values" in ids
    assert "adaptive-cpu-only" in [case_id for _n, _p, case_id in scenario_cases(catalog)]


def test_inner_packaging_run_in_a_ct_repository_picks_up_its_ci_scenario(tmp_path):
    """A chart repository laid out for ct: ct.yaml, helm/monitoring (a copy with a ci file of its own) and the
    packaging suite; the suite's cases come from the run's catalog, which ct.yaml's chart-dirs filled."""
    (tmp_path / "ct.yaml").write_text("chart-dirs:\n  - helm\nhelm-extra-args: --timeout 600s\n")
    copy = tmp_path / "helm" / "monitoring"
    shutil.copytree(CHARTS / "monitoring", copy)
    (copy / "ci" / "ctrepo-values.yaml").write_text(
        "grafana:\n  proxy:\n    domain: ctrepo.example.com\n  enablePersistence: true\n")
    suite = tmp_path / "suites" / "packaging"
    suite.mkdir(parents=True)
    shutil.copy(REPO / "suites" / "packaging" / "test_every_scenario.py", suite)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--rootdir", str(tmp_path),
                           "--report-dir", str(tmp_path / "reports"), "suites/packaging", "-m", "not cluster",
                           "-k", "monitoring-"], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != chart_testing.CONFIG_ENV})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for test in ("test_scenario_renders", "test_template_is_deterministic", "test_strict_lint_is_clean"):
        assert f"{test}[monitoring-ci-ctrepo-values] PASSED" in out, out[-3000:]
        assert f"{test}[monitoring-ci-persisted-values] PASSED" in out
    assert "failed" not in out.splitlines()[-1]


# -- ct lint --------------------------------------------------------------------------------------------------
def test_lint_command_passes_the_config_rules_and_offline_flags(tmp_path):
    etc = tmp_path / "etc"
    config = CtConfig(path=tmp_path / "ct.yaml", base=tmp_path)
    command = lint_command(Path("/bin/ct"), [tmp_path / "a", tmp_path / "b"], config, etc)
    assert command[:4] == ["/bin/ct", "lint", "--charts", f"{tmp_path / 'a'},{tmp_path / 'b'}"]
    assert ["--config", str(tmp_path / "ct.yaml")] == command[4:6]
    assert str(etc / "lintconf.yaml") in command and str(etc / "chart_schema.yaml") in command
    assert {"--validate-maintainers=false", "--check-version-increment=false", "--skip-helm-dependencies"} <= set(command)
    own = CtConfig(path=None, base=tmp_path, lint_conf=tmp_path / "mine.yaml")
    command = lint_command(Path("/bin/ct"), [tmp_path / "a"], own, etc)
    assert "--lint-conf" not in command and "--config" not in command and "--chart-yaml-schema" in command
    with pytest.raises(ChartNotFoundError, match="no chart to lint"):
        lint_command(Path("/bin/ct"), [], own, etc)


@pytest.fixture(scope="module")
def ct_ready() -> Toolchain:
    toolchain = Toolchain()
    try:
        toolchain.path("ct")
    except ToolchainError as err:
        pytest.skip(f"ct could not be built here: {err.one_line()}")
    missing = [p for p in chart_testing.LINT_PROGRAMS
               if not shutil.which(p, path=chart_testing.lint_env(toolchain.path("helm"))["PATH"])]
    if missing:
        pytest.skip(f"ct lint needs {' and '.join(missing)} (pip install yamllint yamale; nox -s lint installs them)")
    return toolchain


def test_ct_lint_passes_on_our_three_charts(ct_ready):
    charts = [CHARTS / "adaptive", CHARTS / "monitoring", CHARTS / "hyperpod"]
    result = chart_testing.ct_lint(charts, config=load(REPO / "ct.yaml"), toolchain=ct_ready)
    assert result.ok, "\n".join(result.findings) or result.output[-3000:]
    assert "All charts linted successfully" in result.output
    assert 'Linting chart with values file' in result.output and "ci/persisted-values.yaml" in result.output


def test_ct_lint_finds_a_comment_without_its_space(tmp_path, ct_ready):
    copy = tmp_path / "charts" / "adaptive"
    shutil.copytree(CHARTS / "adaptive", copy)
    values = copy / "values.yaml"
    values.write_text("#comment\n" + values.read_text())
    result = chart_testing.ct_lint([copy], config=load(root=tmp_path), toolchain=ct_ready)
    assert not result.ok, result.output[-2000:]
    assert any("missing starting space in comment" in line and "(comments)" in line for line in result.findings), \
        result.output[-3000:]
    assert any("adaptive" in line and "\u2716" in line for line in result.findings)


def test_lint_cli_refuses_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "ct.yaml"
    bad.write_text("chart-dirs: 7\n")
    proc = subprocess.run([sys.executable, "-m", "chartproof.chart_testing", "lint", "--config", str(bad)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"chartproof: usage: {bad}: chart-dirs must be a list of strings, not int"]


# -- ct.yaml's helm-extra-args reach helm install ---------------------------------------------------------------
def test_run_helm_args_are_ct_yaml_extra_args_and_extra_set_args(tmp_path):
    assert chart_testing.run_helm_args(tmp_path) == ((), ()), "no ct.yaml: no extra helm arguments"
    (tmp_path / "ct.yaml").write_text("helm-extra-args: --timeout 600s\nhelm-extra-set-args: --set=a.b=1 --set c=2\n")
    assert chart_testing.run_helm_args(tmp_path) == (("--timeout", "600s"), ("--set=a.b=1", "--set", "c=2"))


INSTALL_PROBE = '''
import json
from pathlib import Path


def test_install_takes_ct_yaml_args(install_chart, helm):
    rel = install_chart(Path(__file__).parent / "charts" / "probe", release="probe")
    status = json.loads(helm.run("status", rel.name, "--namespace", rel.namespace, "-o", "json", check=True).stdout)
    manifest = helm.get_manifest(rel.name, rel.namespace)
    greeting = (manifest.get("ConfigMap", "probe").get("data") or {}).get("greeting")
    assert greeting == "from-ct-yaml", f"helm-extra-set-args did not reach helm install: greeting is {greeting!r}"
    description = (status.get("info") or {}).get("description")
    assert description == "from-ct-yaml", f"helm-extra-args did not reach helm install: description {description!r}"
'''


@pytest.mark.cluster
def test_ct_yaml_helm_extra_args_and_set_args_reach_every_helm_install_of_a_run(tmp_path):
    """ct install passes helm-extra-args and helm-extra-set-args to helm install: a run in a repository whose
    ct.yaml gives ``--description`` and ``--set`` installs a release that carries both (read back from the
    cluster's release record)."""
    probe = chart(tmp_path / "charts" / "probe", "probe")
    (probe / "templates").mkdir()
    (probe / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n  greeting: {{ .Values.greeting | quote }}\n")
    (probe / "values.yaml").write_text("greeting: from-values\n")
    (tmp_path / "test_probe.py").write_text(INSTALL_PROBE)
    (tmp_path / "ct.yaml").write_text("helm-extra-args: --description from-ct-yaml --timeout 120s\n"
                                      "helm-extra-set-args: --set greeting=from-ct-yaml\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
                           "--rootdir", str(tmp_path), "--report-dir", str(tmp_path / "reports"), "test_probe.py"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != chart_testing.CONFIG_ENV})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the run in a repository with ct.yaml's helm args failed:\n{out[-3000:]}"
    assert "1 passed" in out, out[-3000:]


def test_a_longer_ct_yaml_timeout_lengthens_the_helm_call_budget(tmp_path):
    """ct.yaml's ``--timeout 10m`` wins over Chartproof's own --timeout, so the helm call is given that long."""
    helm = Helm(Path("helm"), ChartCatalog(workdir=tmp_path), workdir=tmp_path)
    assert helm._budget(300) == 360
    helm.extra_args = ("--atomic", "--timeout", "10m")
    assert helm._budget(300) == 660
    helm.extra_args = ("--timeout=1h2m3s",)
    assert helm._budget(300) == 3723 + 60
