"""pytest fixtures that put real operators on the run's cluster (a plugin registered by chartproof.plugin).

``external_secrets_operator`` (session): on the embedded cluster, the pinned External Secrets release's
CRDs (generated from its API types) are installed and its controller is started, once per cluster,
whichever pytest-xdist worker asks first (under the run's lock; the others attach to it). The controller
belongs to the run's controller process: it is stopped at the end of the run, before the cluster goes,
and on Ctrl-C, SIGTERM or a crash of the run as well (``chartproof.operators`` watchdog). On kind and
existing clusters the cluster's own External Secrets is used, and tests that need it skip when the
cluster does not serve ``external-secrets.io/v1``.

``external_secrets`` (per test): the same on the test's cluster (the run's, or one lent to an
``exclusive`` test: once per cluster too), plus the controller's log in the failure diagnostics of the
test that used it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chartproof import diagnostics
from chartproof.crdgen import load_crds
from chartproof.errors import ChartproofError, ProviderUnavailableError
from chartproof.operators import (
    ESO_TOOL,
    ControllerError,
    ExternalSecretsPin,
    LocalController,
    crds_refused_by,
    external_secrets_crds,
    external_secrets_served,
    install_crds,
    start_external_secrets,
)
from chartproof.redaction import REDACTOR

LOG_LINES = 60  # of the controller's log, in a failing test's report


@dataclass
class Operator:
    """An operator a test can rely on: ours (``controller`` set) or the cluster's own (``controller`` None)."""

    name: str
    provider: str
    controller: LocalController | None = None
    crds: list[str] = field(default_factory=list)

    def log_tail(self, lines: int = LOG_LINES) -> str:
        if self.controller is None:
            return f"(the {self.provider} cluster's own {self.name}: its log is in the cluster)"
        return self.controller.log_tail(lines)


def operators_dir(run) -> Path:
    return Path(run.run_dir) / "operators"


def _start_once(run, name: str, start) -> Operator:
    """The operator ``name`` of the run: started by ``start()`` in the first process that asks, attached to in
    the others; a start that failed is not retried by every worker (its error is remembered)."""
    state_path = operators_dir(run) / f"{name}.json"
    with run.lock(f"operator-{name}"):
        if state_path.is_file():
            state = json.loads(state_path.read_text())
            if "error" in state:
                raise ControllerError(f"{name} could not be started for this run: {state['error']}")
            controller = LocalController.attach(state["controller"])
            if controller.alive:
                return Operator(name, "embedded", controller, state.get("crds", []))
        try:
            operator = start()
        except ChartproofError as err:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            state_path.write_text(json.dumps({"error": err.message}))
            raise
        state_path.write_text(json.dumps({"controller": operator.controller.state(), "crds": operator.crds}))
        return operator


def stop_operators(run) -> list[str]:
    """Stop every operator the run started (the run's controller process, at its end). Returns their names."""
    stopped = []
    for path in sorted(operators_dir(run).glob("*.json")):
        state = json.loads(path.read_text())
        if "controller" in state:
            LocalController.attach(state["controller"]).stop()
            stopped.append(state["controller"]["name"])
        path.unlink(missing_ok=True)
    return stopped


def external_secrets_on(cluster, run) -> Operator:
    """External Secrets serving external-secrets.io/v1 on ``cluster``: on an embedded cluster, ours (CRDs and
    controller, once per cluster for the whole run); elsewhere the cluster's own, or a skip saying it is absent."""
    if cluster.provider != "embedded":
        if external_secrets_served(cluster.kubectl):
            return Operator(ESO_TOOL, cluster.provider)
        pytest.skip(f"External Secrets is absent on the {cluster.provider} cluster {cluster.name}: it serves no "
                    f"external-secrets.io/v1 ExternalSecret (install the operator there; the embedded cluster runs its own)")
    known = _STARTED.get(cluster.name)
    if known is not None and known.controller is not None and known.controller.alive:
        return known
    crd_dir = external_secrets_crds(run.toolchain)
    server = cluster.server_version()  # the API server's own word, not the version the run asked for
    refused = crds_refused_by(load_crds(crd_dir), server)
    if refused:
        pytest.skip(f"External Secrets {ExternalSecretsPin.of(run.toolchain).version} cannot run on the {cluster.provider} "
                    f"cluster {cluster.name}: its API server ({server}) refuses the release's CRDs: {refused[0]}"
                    + (f" and {len(refused) - 1} more" if len(refused) > 1 else ""))

    def start() -> Operator:
        crds = install_crds(cluster.kubectl, crd_dir)
        controller = start_external_secrets(run.toolchain, cluster.kubeconfig,
                                            operators_dir(run) / f"{ESO_TOOL}-{cluster.name}.log",
                                            owner_pid=run.controller_pid)
        return Operator(ESO_TOOL, "embedded", controller, crds)

    _STARTED[cluster.name] = operator = _start_once(run, f"{ESO_TOOL}-{cluster.name}", start)
    return operator


_STARTED: dict[str, Operator] = {}  # this process's operators, by cluster name


@pytest.fixture(scope="session")
def external_secrets_operator(chartproof_run) -> Operator:
    """External Secrets on the run's shared cluster, for the whole session (see external_secrets_on)."""
    try:
        cluster = chartproof_run.cluster()
    except ProviderUnavailableError as err:
        pytest.skip(err.message)
    return external_secrets_on(cluster, chartproof_run)


def _test_failed(request: pytest.FixtureRequest) -> bool:
    node = request.node
    return any(getattr(getattr(node, f"chartproof_rep_{when}", None), "failed", False) for when in ("setup", "call"))


@pytest.fixture
def external_secrets(request: pytest.FixtureRequest, cluster, chartproof_run):
    """External Secrets on the test's cluster (the run's, or the one the test holds); when the test fails, the
    controller's log goes into its report (the last lines) and its diagnostics folder (the whole log, redacted)."""
    if request.getfixturevalue("_exclusive") is cluster:  # a cluster lent to this test alone
        operator = external_secrets_on(cluster, chartproof_run)
    else:
        operator = request.getfixturevalue("external_secrets_operator")
    yield operator
    if _test_failed(request):
        if operator.controller is not None:
            where = chartproof_run.report_dir / "diagnostics" / diagnostics.folder_of(request.node.nodeid)
            where.mkdir(parents=True, exist_ok=True)
            (where / f"{ESO_TOOL}.log").write_text(REDACTOR(operator.controller.log_text()))
        request.node.add_report_section("teardown", f"{ESO_TOOL} log (last {LOG_LINES} lines)", operator.log_tail())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run's controller process stops the operators before chartproof.plugin removes the cluster."""
    from chartproof.plugin import _RUN_KEY

    run = session.config.stash.get(_RUN_KEY, None)
    if run is not None and run.is_controller:
        stop_operators(run)
