"""Sessions: `tests` (the engine's own tests), `lint` (ruff, contract coverage, helm lint), `selfcheck` (the suite tested on variants and mutants), `conformance` (the main job:
the suites against the charts, on the embedded cluster by default), `certify` and `reproduce` (the field
workflows of release and support engineers), `bench` (speed goals), `stability` (verdicts run to run).

Extra pytest arguments go after `--`, e.g. `nox -s conformance -- --cluster existing --kube-context prod -k hyperpod`.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "tests", "selfcheck", "conformance"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True

PYTHON = "3.11"
CHARTS = ["charts/adaptive", "charts/monitoring", "charts/hyperpod"]


def _install(session: nox.Session, *extra: str) -> None:
    session.install("-e", ".[parallel,helm-charts,chart-testing]" if session.name == "tests" else ".[parallel]", *extra)


def _toolchain(session: nox.Session) -> None:
    """Obtain every pinned binary first, with progress (a cold cache builds them from their Go modules)."""
    session.run("chartproof", "toolchain", "install")


def _workers(default: str = "2") -> list[str]:
    """pytest-xdist workers: ``default`` (the conformance run's is ``auto``: two per core, see
    chartproof.clusters.pool), or CHARTPROOF_WORKERS (a number or auto); CHARTPROOF_WORKERS=0 runs serially."""
    workers = os.environ.get("CHARTPROOF_WORKERS", default)
    return ["-n", workers] if workers and workers != "0" else []


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The engine's own tests: toolchain, providers, helm driver, plugin, CLI errors."""
    _install(session)
    _toolchain(session)
    session.run("pytest", "tests", "--ignore", "tests/selfcheck", *_workers(), *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on the Python, `helm lint --strict` on every chart, then chart-testing's `ct lint` (helm lint,
    yamllint and yamale, with ct.yaml) as a chart repository's CI runs it."""
    session.install("-e", ".[parallel,chart-testing]", "ruff")  # ct runs yamllint and yamale from PATH
    session.run("ruff", "check", "chartproof", "tests", "suites", "noxfile.py", "conftest.py")
    # Every contract id has a test, and every test names known ids.
    session.run("pytest", "suites", "--collect-only", "-q", "--contract-coverage", "-p", "no:cacheprovider",
                "--report-dir", str(session.create_tmp()), silent=True)
    session.run("chartproof", "toolchain", "install", "helm", "ct")  # visible progress if they must be built
    # silent=True folds stderr into the output: the path is its last line.
    helm = session.run("chartproof", "toolchain", "path", "helm", silent=True).strip().splitlines()[-1]
    for chart in CHARTS:
        if os.path.isdir(chart):
            session.run(helm, "lint", "--strict", chart, external=True)
    session.run("python", "-m", "chartproof.chart_testing", "lint", *[c for c in CHARTS if os.path.isdir(c)])


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """The main job: every promise in suites/, against charts/ (or --chart NAME=REF), embedded cluster by default."""
    _install(session)
    _toolchain(session)
    session.run("pytest", "suites", *_workers("auto"), *session.posargs)


@nox.session(python=PYTHON)
def certify(session: nox.Session) -> None:
    """Certify a chart build on a real GPU cluster: read-only preflight, then a smoke certification.
    `nox -s certify -- --kube-context gpu-prod --chart adaptive=oci://REF@0.6.2 [--read-only]`."""
    _install(session)
    _toolchain(session)
    session.run("chartproof", "certify", *session.posargs)


@nox.session(python=PYTHON)
def reproduce(session: nox.Session) -> None:
    """A customer's values on their node shape, with a report and a bundle to share.
    `nox -s reproduce -- their-values.yaml --chart adaptive[=./their-build.tgz] [--nodes ml.p5.48xlarge=2,cpu=1]`."""
    _install(session)
    _toolchain(session)
    session.run("chartproof", "reproduce", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Speed goals: cluster start, scheduling 100 GPU pods, 1,000 nodes with 1,000 pods."""
    _install(session)
    _toolchain(session)
    session.run("python", "-m", "chartproof.bench", *session.posargs)


@nox.session(python=PYTHON)
def stability(session: nox.Session) -> None:
    """Run the suites N times and compare verdicts: `nox -s stability -- --runs 10 -- -n 2`."""
    _install(session)
    _toolchain(session)
    session.run("python", "-m", "chartproof.stability", *session.posargs)


@nox.session(python=PYTHON)
def selfcheck(session: nox.Session) -> None:
    """The suite tests itself: variant builds that keep every promise must pass (no false alarm), mutant
    builds that break one promise each must be caught by that contract's tests. `-- --full`: each mutant
    against its chart's whole suite; `-- -m "not cluster"`: render tier only."""
    _install(session)
    _toolchain(session)
    # Live runs share one worker (--dist loadgroup) while the render runs use the others.
    session.run("pytest", "tests/selfcheck", "-p", "no:cacheprovider", *(_workers() or ["-n", "2"]),
                "--dist", "loadgroup", *session.posargs)


@nox.session(python=PYTHON)
def matrix(session: nox.Session) -> None:
    """The versions the READMEs promise: the suites on helm 3.8.2 and the current helm, each on a Kubernetes 1.26
    and a current embedded control plane, one report per cell and one matrix report
    (`nox -s matrix -- --cells 3.8:1.26 current:current -- -k packaging`)."""
    _install(session)
    _toolchain(session)
    session.run("python", "-m", "chartproof.matrix", *session.posargs)
