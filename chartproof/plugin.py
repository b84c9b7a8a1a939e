"""The pytest face of Chartproof: options, fixtures, markers, teardown and the run report.

Fixtures (see docs/writing-suites.md): ``helm``, ``render``, ``charts``, ``cluster``, ``namespace``,
``install_chart``. Setup happens when a test first asks for it; the controller process removes the
cluster and everything the run created at the end, on failures and on Ctrl-C as well.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import weakref
from pathlib import Path
from typing import Any

import pytest

from chartproof import chart_testing, diagnostics, verdicts
from chartproof.capabilities import capabilities, parse_needs, unmet
from chartproof.clusters.pool import auto_workers, pool_size
from chartproof.errors import ChartproofError, ProviderUnavailableError, RenderError, UsageError
from chartproof.helm import Helm, load_values_file
from chartproof.kube import MANAGED_BY, KubectlError
from chartproof.manifest import Manifest
from chartproof.redaction import REDACTOR
from chartproof.releases import Release
from chartproof.reports import ReportWriter
from chartproof.run import RUN_LABEL, Run, RunOptions
from chartproof.versions import HELM_VERSION_ENV, KUBE_VERSION_ENV

CLUSTER_FIXTURES = {"cluster", "run_cluster", "namespace", "install_chart"}
_RUN_KEY = pytest.StashKey[Run]()
_REPORT_KEY = pytest.StashKey[ReportWriter]()
_CONFIG_ERROR_KEY = pytest.StashKey[ChartproofError]()
_report_writer: ReportWriter | None = None  # the controller's; workers' reports reach it through xdist


# -- options ----------------------------------------------------------------------------------------------
# Chartproof's options are --chartproof-NAME; today's --NAME is an alias wherever no other plugin (such as
# pytest-helm-charts, which has its own --kubeconfig) or conftest has taken it. Aliases are added once every
# plugin has added its options (a name taken first by us would make a later plugin's addoption stop pytest),
# and each keeps its option's dest, so both spellings fill the same value.
OPTION_PREFIX = "--chartproof-"
_PENDING_ALIASES: weakref.WeakKeyDictionary[pytest.Parser, list[tuple[str, dict[str, Any]]]] = weakref.WeakKeyDictionary()
_TAKEN_ALIASES_KEY = pytest.StashKey[list[str]]()


def _add(group: pytest.OptionGroup, name: str, **attrs: Any) -> None:
    """``--chartproof-NAME`` now, ``--NAME`` later if free; the dest defaults to ``chartproof_NAME``."""
    attrs.setdefault("dest", "chartproof_" + name.replace("-", "_"))
    group.addoption(OPTION_PREFIX + name, **attrs)
    if group.parser is not None:
        _PENDING_ALIASES.setdefault(group.parser, []).append((f"--{name}", attrs))


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("chartproof", "Chartproof: charts and clusters under test")
    _add(group, "cluster", default=os.environ.get("CHARTPROOF_CLUSTER", "embedded"), metavar="PROVIDER",
         help="embedded (default: real control plane, simulated GPU nodes), kind (needs Docker), "
              "or existing (a kubeconfig context)")
    _add(group, "nodes", default=None, metavar="SHAPE",
         help="cluster shape, PROFILE[:STATE]=COUNT,... or a shape name from fixtures/nodes/shapes.yaml")
    _add(group, "kube-context", default=None, metavar="CONTEXT",
         help="context of --chartproof-cluster existing (default: the current context of the kubeconfig)")
    _add(group, "kubeconfig", default=None, metavar="FILE",
         help="the one kubeconfig file of --chartproof-cluster existing (default: $KUBECONFIG, a list kubectl "
              "merges, else ~/.kube/config)")
    _add(group, "keep-cluster", action="store_true", help="keep the cluster after the run, for debugging")
    _add(group, "pool-size", default=os.environ.get("CHARTPROOF_POOL_SIZE"), metavar="N",
         help="embedded clusters lent to exclusive tests, one test at a time, so they run side by side "
              "(default: one per xdist worker, at most one per core; 0: they take turns on the run's cluster; "
              "also CHARTPROOF_POOL_SIZE)")
    group.addoption("--chart", action="append", default=[], metavar="NAME=REF",
                    help="the build of a chart to test, named as helm names it: a directory, a .tgz, "
                         "oci://HOST/PATH/CHART:TAG, oci://HOST/PATH/CHART@sha256:DIGEST, oci://HOST/PATH/CHART "
                         "with --chart-version, or REPO/CHART of a repository added with helm repo add "
                         "(names: adaptive, monitoring, hyperpod)")
    _add(group, "chart-version", action="append", default=[], metavar="NAME=VERSION", dest="chart_versions",
         help="the version of --chart NAME's oci:// or REPO/CHART reference, as helm's --version "
              "(a REPO/CHART without one: the repository's latest)")
    _add(group, "values", action="append", default=[], metavar="CHART=FILE", dest="customer_values",
         help="a customer's values file for a chart; suites/customer installs each one (repeatable)")
    _add(group, "helm", default=os.environ.get(HELM_VERSION_ENV) or None, metavar="MINOR", dest="chartproof_helm_version",
         help="run every helm call with the pinned helm of this minor, e.g. 3.8 (also CHARTPROOF_HELM_VERSION; "
              "default: the current helm)")
    _add(group, "kube-version", default=os.environ.get(KUBE_VERSION_ENV) or None, metavar="MINOR",
         help="start the embedded control plane at this pinned Kubernetes minor, e.g. 1.26 "
              "(also CHARTPROOF_KUBE_VERSION; default: the current pins)")
    _add(group, "tool", action="append", default=[], metavar="TOOL=PATH",
         help="use this binary instead of the pinned one (also CHARTPROOF_<TOOL>=PATH)")
    _add(group, "allow-kube-system", action="store_true",
         help="on a real cluster, let tests install into kube-system (the HyperPod chart's home)")
    _add(group, "report-dir", default=None, metavar="DIR", help="where run reports go (default: reports/)")
    _add(group, "run-id", default=None, metavar="ID",
         help="the name of this run's folder under --chartproof-report-dir (default: date, time and a random suffix)")
    _add(group, "field-report", default=None, metavar="FILE",
         help="JSON from chartproof certify/reproduce (command, preflight rows), merged into the report")
    _add(group, "contract", action="append", default=[], metavar="ID[,ID...]", dest="chartproof_contracts",
         help="run only the tests that prove these contract behaviours (e.g. ADP-POOL-02)")
    _add(group, "contract-coverage", action="store_true",
         help="after collection, fail unless every contract id has a test and every test names known ids")
    if any(name and name.endswith("conftest.py") for name, _ in pluginmanager.list_name_plugin()):
        # Loaded by a conftest's pytest_plugins: the plugins are all in, and our wrapper of
        # pytest_load_initial_conftests (already running) will not be called.
        _after_every_plugin(parser, pluginmanager.get_plugin("pytestconfig"))


def _after_every_plugin(parser: pytest.Parser, config: pytest.Config) -> None:
    """Today's short names, each one only if no other plugin or conftest has it (a conflict never stops pytest);
    then pytest-helm-charts' cluster fixtures bound to the run's cluster, when it is loaded."""
    group = parser.getgroup("chartproof")
    taken = []
    for alias, attrs in _PENDING_ALIASES.pop(parser, []):
        try:
            group.addoption(alias, **{**attrs, "default": argparse.SUPPRESS, "help": f"short for {OPTION_PREFIX}{alias[2:]}"})
        except (ValueError, argparse.ArgumentError):
            taken.append(alias)
    config.stash[_TAKEN_ALIASES_KEY] = taken
    _bind_helm_charts(config)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]):
    """Every plugin and initial conftest has added its options by now."""
    result = yield
    _after_every_plugin(parser, early_config)
    return result


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"chartproof: {alias} belongs to another plugin here; Chartproof's is {OPTION_PREFIX}{alias[2:]}"
            for alias in config.stash.get(_TAKEN_ALIASES_KEY, [])]


def _options(config: pytest.Config) -> RunOptions:
    report_dir = config.getoption("chartproof_report_dir") or str(Path(config.rootpath) / "reports")
    extra_args, extra_set_args = chart_testing.run_helm_args(Path(config.rootpath))  # ct.yaml's, as ct install
    return RunOptions(
        cluster=config.getoption("chartproof_cluster"),
        nodes=config.getoption("chartproof_nodes"),
        kube_context=config.getoption("chartproof_kube_context"),
        kubeconfig=config.getoption("chartproof_kubeconfig") or _helm_charts_kubeconfig(config),
        keep_cluster=config.getoption("chartproof_keep_cluster"),
        charts=chart_testing.run_charts(Path(config.rootpath), RunOptions.parse_pairs(config.getoption("--chart"), "--chart"),
                                        config.getoption("chart_versions")),  # ct.yaml's chart-dirs fill the rest
        chart_versions=RunOptions.parse_pairs(config.getoption("chart_versions"), "--chart-version"),
        tools=RunOptions.parse_pairs(config.getoption("chartproof_tool"), "--tool"),
        customer_values=RunOptions.parse_list(config.getoption("customer_values"), "--values"),
        report_dir=report_dir,
        helm_version=config.getoption("chartproof_helm_version"),
        kube_version=config.getoption("chartproof_kube_version"),
        pool_size=_pool_size(config),
        helm_extra_args=extra_args,
        helm_extra_set_args=extra_set_args,
    )


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (what ``nox -s conformance`` passes): two workers per core (chartproof.clusters.pool).
    ``-n logical`` and xdist's own PYTEST_XDIST_AUTO_NUM_WORKERS keep xdist's meaning."""
    if config.option.numprocesses != "auto" or os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return auto_workers()


def _pool_size(config: pytest.Config) -> int:
    """--chartproof-pool-size, else one cluster per xdist worker of the run (none without workers), capped at
    the machine's cores."""
    text = config.getoption("chartproof_pool_size")
    try:
        requested = None if text in (None, "") else int(text)
    except ValueError:
        raise UsageError(f"bad --chartproof-pool-size '{text}': expected a number of clusters (0: no pool)") from None
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")  # set in each worker
    if workers is None:
        workers = config.getoption("numprocesses", None) if config.pluginmanager.hasplugin("xdist") else None
    try:
        count = int(workers or 0)
    except (TypeError, ValueError):  # a spelling xdist has not resolved to a number
        count = 0
    return pool_size(requested, count)


def _run_id(text: str | None) -> str | None:
    if text is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", text):
        raise UsageError(f"bad --run-id '{text}': letters, digits, '.', '_' and '-' only")
    return text


def _fail_fast(err: ChartproofError) -> None:
    pytest.exit(err.one_line(), returncode=err.exit_code)


# -- pytest-helm-charts ------------------------------------------------------------------------------------
HELM_CHARTS_PLUGIN = "pytest_helm_charts.plugin"


def _helm_charts_loaded(config: pytest.Config) -> bool:
    return any(getattr(plugin, "__name__", None) == HELM_CHARTS_PLUGIN for plugin in config.pluginmanager.get_plugins())


def _bind_helm_charts(config: pytest.Config) -> None:
    """With pytest-helm-charts loaded, register chartproof.helmcharts_compat after it: its ``kube_config`` and
    ``kube_cluster`` then take the run's cluster (a conftest's own still win). Without it nothing changes."""
    if _helm_charts_loaded(config) and not config.pluginmanager.has_plugin("chartproof-helm-charts"):
        from chartproof import helmcharts_compat

        config.pluginmanager.register(helmcharts_compat, "chartproof-helm-charts")


def _helm_charts_kubeconfig(config: pytest.Config) -> str | None:
    """pytest-helm-charts' --kubeconfig (it holds that name when both are loaded) means what ours means, the file
    of the cluster under test: it serves --chartproof-cluster existing, and is refused where it would be ignored."""
    if "--kubeconfig" not in config.stash.get(_TAKEN_ALIASES_KEY, []) or not _helm_charts_loaded(config):
        return None
    value = config.getoption("--kubeconfig", None)
    if value and config.getoption("chartproof_cluster") != "existing":
        raise UsageError(f"--kubeconfig {value} names a cluster, but the run's cluster is "
                         f"'{config.getoption('chartproof_cluster')}' (pytest-helm-charts' kube_cluster is the run's): "
                         f"add {OPTION_PREFIX}cluster existing")
    return value


# -- configuration and the run -----------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)  # before junitxml's, which reads the --junitxml we default
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: needs a Kubernetes cluster (deselect with -m 'not cluster')")
    config.addinivalue_line("markers", "real_cluster(reason, needs='services'): needs what simulated nodes lack: "
                                       "'containers' (kind or real nodes), 'gpus' (real accelerators), 'services' "
                                       "(a provisioned cluster's storage, ingress, images); skipped, naming it, elsewhere")
    config.addinivalue_line("markers", "exclusive(name): needs a cluster to itself (cluster-scoped objects, kube-system): "
                                       "on the embedded provider it gets a cluster of the run's pool; elsewhere it never "
                                       "runs at the same time as another test holding the same name")
    config.addinivalue_line("markers", "contract(*ids, extension=False): the contract behaviours a test proves "
                                       "(extension=True: only their inferred parts, not README promises)")
    if not config.pluginmanager.has_plugin("chartproof-redaction"):
        config.pluginmanager.register(_Redaction(), "chartproof-redaction")
    config.pluginmanager.import_plugin("chartproof.operator_fixtures")  # real operators: external_secrets, ...
    config.pluginmanager.import_plugin("chartproof.keda_fixtures")  # KEDA: its generated CRDs on a cluster
    workerinput = getattr(config, "workerinput", None)
    try:
        options = _options(config)
        if workerinput is not None and "chartproof_run_id" in workerinput:
            run = Run(options, run_id=workerinput["chartproof_run_id"], run_dir=Path(workerinput["chartproof_run_dir"]),
                      controller_pid=workerinput["chartproof_controller_pid"], is_controller=False)
        else:
            run = Run(options, run_id=_run_id(config.getoption("chartproof_run_id")))
    except ChartproofError as err:
        config.stash[_CONFIG_ERROR_KEY] = err  # reported by pytest_sessionstart: pytest.exit here is an INTERNALERROR
        return
    _learn_customer_secrets(run)
    if run.is_controller:
        if not config.option.xmlpath:  # pytest's own JUnit, beside the other reports
            config.option.xmlpath = str(run.report_dir / "junit.xml")
        config.stash[_REPORT_KEY] = ReportWriter(run.report_dir, redactor=run.redactor)
        field_report = config.getoption("chartproof_field_report")
        if field_report:
            try:
                config.stash[_REPORT_KEY].field = json.loads(Path(field_report).read_text())
            except (OSError, ValueError) as exc:
                config.stash[_CONFIG_ERROR_KEY] = UsageError(f"cannot read --field-report {field_report}: {exc}")
                return
        global _report_writer
        _report_writer = config.stash[_REPORT_KEY]
        _install_signal_handlers()
    config.stash[_RUN_KEY] = run
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(run), "chartproof-xdist")


def _learn_customer_secrets(run: Run) -> None:
    """Every process (controller and each worker) knows the secrets of the --values files before any test,
    so that whichever process prints or writes them redacts them; bad files are reported by validate()."""
    for _chart, path in run.options.customer_values:
        try:
            run.redactor.add_values(load_values_file(Path(path)))
        except ChartproofError:
            pass


class _XdistHooks:
    def __init__(self, run: Run):
        self.run = run

    def pytest_configure_node(self, node) -> None:
        node.workerinput["chartproof_run_id"] = self.run.run_id
        node.workerinput["chartproof_run_dir"] = str(self.run.run_dir)
        node.workerinput["chartproof_controller_pid"] = self.run.controller_pid


def _install_signal_handlers() -> None:
    """SIGTERM and SIGHUP end the run like Ctrl-C does: teardown still runs."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, interrupt)
        except (ValueError, OSError):
            pass


def pytest_sessionstart(session: pytest.Session) -> None:
    error = session.config.stash.get(_CONFIG_ERROR_KEY, None)
    if error is not None:
        _fail_fast(error)
    run = session.config.stash[_RUN_KEY]
    if run.is_controller:
        try:
            run.validate()
        except ChartproofError as err:
            _fail_fast(err)
    if not (run.is_controller and getattr(session.config.option, "numprocesses", None)):
        run.warm_renderer()  # a process that runs tests: its renderer reads the charts while pytest collects


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)
    wanted = {cid.strip().upper() for opt in config.getoption("chartproof_contracts") for cid in opt.split(",") if cid.strip()}
    if wanted:
        keep, drop = [], []
        for item in items:
            (keep if wanted & set(verdicts.contract_ids(item)) else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    run = config.stash.get(_RUN_KEY, None)
    if run is not None and run.pool is not None:
        # xdist hands the first tests out in large runs of consecutive items and the last ones a few at a time:
        # tests that hold a cluster of the pool go last, so that every worker gets some and they run side by side.
        own = [item for item in items if _holds_pool_cluster(item)]
        if own:
            items[:] = [item for item in items if not _holds_pool_cluster(item)] + own


def _holds_pool_cluster(item: pytest.Item) -> bool:
    """Whether the test will be lent a cluster of the pool (see ``_exclusive``)."""
    return item.get_closest_marker("exclusive") is not None and "cluster" in getattr(item, "fixturenames", ())


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.getoption("chartproof_contract_coverage"):
        problems = verdicts.coverage_problems(session.items)
        if problems:
            for line in problems:
                session.config.get_terminal_writer().line(f"chartproof: {line}", red=True)
            pytest.exit(f"contract coverage: {len(problems)} problem(s)", returncode=1)
        session.config.get_terminal_writer().line("chartproof: every contract id has a test; every test names known ids")


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("real_cluster")
    if marker is not None:
        run = item.config.stash[_RUN_KEY]
        reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "needs a real cluster")
        try:
            needs = parse_needs(marker.kwargs.get("needs"))
        except ValueError as err:
            raise pytest.UsageError(f"{item.nodeid}: {err}") from None
        if run.options.cluster == "embedded":  # simulated nodes only: known without starting a cluster
            pytest.skip(f"{unmet('embedded', set(), needs)}: {reason}")
        cluster = run.cluster()
        missing = unmet(cluster.name, capabilities(cluster), needs)  # read from the nodes, not the provider's name
        if missing:
            pytest.skip(f"{missing}: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    verdicts.annotate(item, call, report)
    setattr(item, f"chartproof_rep_{report.when}", report)
    return report


class _Redaction:
    """Redaction at the source: the outermost wrappers of report making, in every process. A report is
    redacted (longrepr, captured output and logs, user properties) on the worker that made it, before
    pytest prints it, xdist sends it to the controller, or JUnit and our reports record it."""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        REDACTOR.redact_report(report)
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_make_collect_report(self, collector):
        report = yield
        REDACTOR.redact_report(report)
        return report


def pytest_report_teststatus(report, config):
    """A test that crashed with an unexpected exception is a defect of the suite: an error, not a failure."""
    if verdicts.is_suite_error(report):
        return "error", "E", ("ERROR", {"red": True})
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    writer = _report_writer
    if writer is not None:
        writer.add(report)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After pytest's own teardown of the remaining fixtures (their uninstalls still see the cluster)."""
    run = session.config.stash.get(_RUN_KEY, None)
    if run is None or not run.is_controller:
        return
    notes: list[str] = []
    cluster_info = run.cluster_info()
    writer = session.config.stash.get(_REPORT_KEY, None)
    try:
        charts = run.catalog.describe() if writer is not None else []  # before finish(): pulled charts live in the run dir
    except Exception:  # noqa: BLE001 - a report must not fail on a chart
        charts = []
    try:
        notes = run.finish()
    except ChartproofError as err:
        notes.append(err.one_line())
    if writer is not None and (writer.results or cluster_info or writer.field):
        path = writer.write(run_id=run.run_id, options=vars(run.options), charts=charts, cluster=cluster_info, notes=notes)
        session.config._chartproof_report = path  # type: ignore[attr-defined]
    for note in notes:
        print(f"\nchartproof: {REDACTOR(note)}")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    path = getattr(config, "_chartproof_report", None)
    if path:
        terminalreporter.write_line(f"chartproof report: {path} (page: {Path(path).with_name('report.html')})")


def pytest_unconfigure(config: pytest.Config) -> None:
    global _report_writer
    _report_writer = None


# -- fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def chartproof_run(pytestconfig: pytest.Config) -> Run:
    return pytestconfig.stash[_RUN_KEY]


@pytest.fixture
def helm(_exclusive, chartproof_run: Run) -> Helm:
    """The pinned helm; it talks to the test's cluster (the pool's one it holds, else the run's, once started)."""
    try:
        return chartproof_run.helm_for(_exclusive)
    except ChartproofError as err:
        _fail_fast(err)


@pytest.fixture(scope="session")
def charts(chartproof_run: Run):
    return chartproof_run.catalog


def run_catalog(config: pytest.Config):
    """The run's ChartCatalog (None before the run is configured), for a suite to parametrize over at collection."""
    run = config.stash.get(_RUN_KEY, None)
    return run.catalog if run else None


def customer_values(config: pytest.Config) -> list[tuple[str, Path]]:
    """The (chart, values file) pairs given with --values, for suites to parametrize over."""
    run = config.stash.get(_RUN_KEY, None)
    return [(chart, Path(path)) for chart, path in run.options.customer_values] if run else []


class Renderer:
    """``render(chart, values, set, ...)`` -> Manifest; ``render.error(...)`` -> helm's refusal message."""

    def __init__(self, helm: Helm):
        self.helm = helm

    def __call__(self, chart: str | Path, values: Any = (), set: dict | None = None, **kwargs) -> Manifest:
        return self.helm.template(chart, values, set, **kwargs)

    def scenario(self, chart: str | Path, values: Any = (), set: dict | None = None, **kwargs) -> Manifest:
        """The render of a scenario a test builds on; when the chart cannot render it, the test is skipped
        (the scenario's own failure, with helm's message, is reported once by suites/packaging)."""
        try:
            return self.helm.template(chart, values, set, **kwargs)
        except RenderError as err:
            pytest.skip(f"the scenario does not render (reported by suites/packaging): {err.message}")

    def error(self, chart: str | Path, values: Any = (), set: dict | None = None, **kwargs) -> str:
        try:
            manifest = self.helm.template(chart, values, set, **kwargs)
        except RenderError as err:
            return err.message
        raise AssertionError(f"expected helm to refuse this render, but it rendered {len(manifest)} objects")


@pytest.fixture
def render(helm: Helm) -> Renderer:
    return Renderer(helm)


@pytest.fixture(scope="session")
def run_cluster(chartproof_run: Run):
    """The run's shared cluster, started on first use: what fixtures wider than one test build on."""
    try:
        return chartproof_run.cluster()
    except ProviderUnavailableError as err:
        pytest.skip(err.message)
    except ChartproofError as err:
        _fail_fast(err)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, _exclusive):
    """The cluster this test runs on: the pool's cluster it holds (an ``exclusive`` test on the embedded
    provider), else the run's shared cluster."""
    if _exclusive is not None:
        return _exclusive
    return request.getfixturevalue("run_cluster")


def _failed(request: pytest.FixtureRequest) -> bool:
    node = request.node
    return any(getattr(getattr(node, f"chartproof_rep_{when}", None), "failed", False) for when in ("setup", "call"))


def _diagnostics_dir(run: Run, request: pytest.FixtureRequest, namespace: str) -> Path:
    return run.report_dir / "diagnostics" / diagnostics.folder_of(request.node.nodeid) / namespace


def _on_cluster(cluster, summary: str) -> str:
    """A diagnostics summary that names the cluster it was read from (a run may lend several)."""
    return f"cluster {cluster.name} ({cluster.provider}): {summary}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, cluster, helm: Helm, chartproof_run: Run):
    """A fresh namespace for this test, labelled as ours; diagnostics are collected if the test failed."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"cp-{base}-{secrets.token_hex(2)}"
    cluster.kubectl.create([{"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": name, "labels": {**MANAGED_BY, RUN_LABEL: chartproof_run.run_id}}}])
    chartproof_run.note("namespace", namespace=name, cluster=cluster.name)
    yield name
    where = _diagnostics_dir(chartproof_run, request, name)
    if _failed(request) and not (where / "describe.txt").exists():  # install_chart collected them before uninstalling
        summary = diagnostics.collect(cluster.kubectl, name, where, helm=helm)
        request.node.add_report_section("teardown", "chartproof diagnostics", _on_cluster(cluster, summary))
    try:
        cluster.kubectl.delete("namespace", name)
    except KubectlError:
        pass  # the run's end removes every namespace labelled with its id (Run._clean_leftovers)


@pytest.fixture
def install_chart(request: pytest.FixtureRequest, cluster, chartproof_run: Run, helm: Helm):
    """``install_chart(chart, values, set, release=, namespace=, wait=, timeout=)`` -> Release."""
    releases: list[Release] = []

    def install(chart, values: Any = (), set: dict | None = None, *, release: str | None = None,
                namespace: str | None = None, wait: bool = True, timeout: float = 300,
                args: tuple[str, ...] = ()) -> Release:
        ns = namespace or request.getfixturevalue("namespace")
        if ns == "kube-system" and cluster.provider == "existing" and not request.config.getoption("chartproof_allow_kube_system"):
            pytest.skip("installs into kube-system, which on a cluster Chartproof did not create needs --allow-kube-system "
                        "(Chartproof otherwise changes only the namespaces it creates and labels)")
        name = release or Path(str(chart)).name.replace("hyperpod", "dependencies")
        chartproof_run.note("installing", release=name, namespace=ns, cluster=cluster.name)
        result = helm.install(chart, name, ns, values, set, timeout=timeout, args=args, record=True)
        if not result.ok:
            # A failed install can still leave a release record: make sure nothing stays behind.
            if any(r.get("name") == name for r in helm.releases(ns)):
                Release(helm, cluster, chart, name, ns, run=chartproof_run).uninstall(check=False)
            raise RenderError(result.error)
        chartproof_run.note("installed", release=name, namespace=ns, cluster=cluster.name)
        rel = Release(helm, cluster, chart, name, ns, run=chartproof_run, record=result.release)
        releases.append(rel)
        if wait:
            rel.wait_ready(timeout)
        return rel

    yield install
    failed = _failed(request)
    for rel in reversed(releases):
        if failed:
            summary = diagnostics.collect(cluster.kubectl, rel.namespace,
                                          _diagnostics_dir(chartproof_run, request, rel.namespace),
                                          helm=helm, releases=[(rel.name, rel.namespace)])
            request.node.add_report_section("teardown", f"chartproof diagnostics ({rel.name})", _on_cluster(cluster, summary))
        try:
            leftovers = rel.uninstall(timeout=120, check=False)
        except RenderError as err:  # helm's uninstall failed; what it left was removed all the same
            request.node.add_report_section("teardown", f"chartproof cleanup ({rel.name})", err.message)
            leftovers = []
        if leftovers:
            request.node.add_report_section("teardown", f"chartproof cleanup ({rel.name})",
                                            "removed after uninstall left them behind: " + ", ".join(leftovers))
        chartproof_run.note("uninstalled", release=rel.name, namespace=rel.namespace, cluster=cluster.name)


@pytest.fixture(autouse=True)
def _exclusive(request: pytest.FixtureRequest):
    """What ``@pytest.mark.exclusive(name)`` gives a test. On the embedded provider with a pool (the default
    under xdist), a cluster lent to this test alone for its setup, call and teardown, yielded here and seen
    through ``cluster``, ``helm``, ``namespace`` and ``install_chart``; handed back when the test is done,
    and lent again only if no helm release is left on it. Otherwise (``existing``, ``kind``, a pool of 0,
    a test without a cluster) the run-wide lock of that name on the run's cluster. Yields None then."""
    marker = request.node.get_closest_marker("exclusive")
    if marker is None:
        yield None
        return
    run: Run = request.config.stash[_RUN_KEY]
    pool = run.pool
    if pool is None or not _holds_pool_cluster(request.node):
        with run.lock(f"exclusive-{marker.args[0] if marker.args else 'default'}"):
            yield None
        return
    try:
        own = pool.acquire(request.node.nodeid)
    except ProviderUnavailableError as err:
        pytest.skip(err.message)
    except ChartproofError as err:
        _fail_fast(err)
    request.node.user_properties.append(("chartproof_cluster", own.name))
    try:
        yield own
    finally:
        clean, why = run.clean_for_reuse(own)
        pool.release(own, clean=clean, why=why)
