"""Fixtures of suites/customer: each `--values CHART=FILE` as a ``Customer`` (the file, the file merged over the
chart's own values.yaml, and its render), for tests that check the contract's promises as functions of the
customer's values. A test asks for ``adaptive_customer``, ``monitoring_customer`` or ``hyperpod_customer`` and
runs once per values file given for that chart; without one it is skipped, saying so."""

from __future__ import annotations

from pathlib import Path

import customer_facts as C
import pytest

from chartproof.errors import RenderError
from chartproof.helm import load_values_file, merge_values
from chartproof.plugin import customer_values

CHARTS = ("adaptive", "monitoring", "hyperpod")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for chart in CHARTS:
        name = f"{chart}_values"
        if name not in metafunc.fixturenames:
            continue
        files = [path for c, path in customer_values(metafunc.config) if c == chart]
        if files:
            metafunc.parametrize(name, files, ids=[path.name for path in files])
        else:
            metafunc.parametrize(name, [pytest.param(None, marks=pytest.mark.skip(
                reason=f"no customer values for the {chart} chart (give --values {chart}=FILE)"))], ids=["no-values"])


def _customer(chart: str, path: Path, charts, render) -> C.Customer:
    defaults_file = charts.local_dir(chart) / "values.yaml"
    defaults = load_values_file(defaults_file) if defaults_file.is_file() else {}
    own = load_values_file(path)
    release = C.RELEASES[chart]
    try:
        manifest = render(chart, [path], release=release, **C.RENDER_OPTIONS.get(chart, {}))
    except RenderError as err:  # reported once, by test_customer_values_render_and_lint
        pytest.skip(f"{path.name} does not render (see test_customer_values_render_and_lint): {err.message}")
    return C.Customer(chart, path, own, merge_values(defaults, own), manifest, release=release)


@pytest.fixture
def adaptive_customer(adaptive_values, charts, render) -> C.Customer:
    return _customer("adaptive", adaptive_values, charts, render)


@pytest.fixture
def monitoring_customer(monitoring_values, charts, render) -> C.Customer:
    return _customer("monitoring", monitoring_values, charts, render)


@pytest.fixture
def hyperpod_customer(hyperpod_values, charts, render) -> C.Customer:
    return _customer("hyperpod", hyperpod_values, charts, render)
