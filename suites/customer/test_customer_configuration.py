"""A customer's own configuration, reproduced: each values file given with `--values CHART=FILE`
renders, lints, installs on the chosen cluster shape (`--nodes`), becomes ready, and uninstalls cleanly.

    nox -s conformance -- suites/customer --values adaptive=their-values.yaml --nodes ml.p5.48xlarge=2,cpu=2

Nothing here runs when no --values is given. Their secrets are redacted from the report.
"""

from __future__ import annotations

import pytest

from chartproof.errors import RenderError
from chartproof.plugin import customer_values

# Charts with fixed cluster-scoped names install one at a time, under the lock their own suite holds.
LOCKS = {"hyperpod": "hyperpod", "monitoring": "adaptive-monitoring", "adaptive": "keda"}
NAMESPACES = {"hyperpod": "kube-system"}  # HyperPod's dependencies live in kube-system


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "customer_case" in metafunc.fixturenames:
        cases = customer_values(metafunc.config)
        metafunc.parametrize("customer_case", cases, ids=[f"{chart}-{path.name}" for chart, path in cases])


@pytest.fixture
def chart_lock(chartproof_run, customer_case):
    """Held for the whole test, teardown (the fixture's uninstall) included: ask for it before install_chart."""
    chart, _ = customer_case
    with chartproof_run.lock(f"exclusive-{LOCKS.get(chart, chart)}"):
        yield


def test_customer_values_render_and_lint(render, helm, customer_case):
    chart, values = customer_case
    try:
        manifest = render(chart, [values])
    except RenderError as err:
        raise AssertionError(f"{chart} refuses {values.name}: helm says: {err.message}") from None
    assert len(manifest) > 0, f"{chart} renders no object with {values.name}"
    lint = helm.lint(chart, [values])
    errors = [line for line in lint.output.splitlines() if "[ERROR]" in line]
    assert lint.ok and not errors, f"helm lint of {chart} with {values.name}:\n" + "\n".join(errors or [lint.output[-2000:]])


def test_customer_values_install_become_ready_and_uninstall_cleanly(chart_lock, install_chart, render, namespace,
                                                                    customer_case):
    chart, values = customer_case
    try:
        render(chart, [values])
    except RenderError as err:  # reported once, by test_customer_values_render_and_lint
        pytest.skip(f"{values.name} does not render (see test_customer_values_render_and_lint): {err.message}")
    release = install_chart(chart, [values], namespace=NAMESPACES.get(chart, namespace), timeout=300)
    release.uninstall()  # waits for every object of the release to go, and names any that stayed
