"""A customer's own configuration, reproduced: each values file given with `--values CHART=FILE`
renders, lints, installs on the chosen cluster shape (`--nodes`), becomes ready, and uninstalls cleanly.

    nox -s conformance -- suites/customer --values adaptive=their-values.yaml --nodes ml.p5.48xlarge=2,cpu=2

Nothing here runs when no --values is given. Their secrets are redacted from the report.
"""

from __future__ import annotations

import pytest

from chartproof.plugin import customer_values


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "customer_case" in metafunc.fixturenames:
        cases = customer_values(metafunc.config)
        metafunc.parametrize("customer_case", cases, ids=[f"{chart}-{path.name}" for chart, path in cases])


def test_customer_values_render_and_lint(helm, customer_case):
    chart, values = customer_case
    manifest = helm.template(chart, [values])
    assert len(manifest) > 0, "the customer's values render no object"
    lint = helm.lint(chart, [values])
    assert lint.ok, lint.output[-2000:]


@pytest.mark.exclusive("hyperpod")
def test_customer_values_install_become_ready_and_uninstall_cleanly(install_chart, cluster, namespace, customer_case):
    chart, values = customer_case
    target = "kube-system" if chart == "hyperpod" else namespace
    release = install_chart(chart, [values], namespace=target, timeout=300)
    workloads = release.workloads()
    release.uninstall()
    for kind, name, ns in workloads:
        cluster.wait_for(lambda k=kind, n=name, s=ns: not cluster.kubectl.exists(k, n, s), timeout=120,
                         what=f"{kind} {name} to be removed")
