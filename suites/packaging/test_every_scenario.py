"""Promises every chart keeps under every one of its scenario files (`fixtures/<chart>/*.yaml`, and the
chart-testing `ci/*-values.yaml` of the chart directory under test, `--chart` builds included): the scenario
renders, the render is deterministic (same input, same bytes), and a strict lint has no finding.

A chart that cannot render a scenario is reported once, here, by `test_scenario_renders[...]` with helm's
message; the other tests of that scenario (here and in the chart suites, through `render.scenario`) skip.
"""

from __future__ import annotations

import pytest

from chartproof.chart_testing import scenario_cases
from chartproof.errors import RenderError
from chartproof.plugin import run_catalog

CHARTS = ("adaptive", "monitoring", "hyperpod")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per scenario of each chart of the run's catalog (ids `<chart>-<stem>`, `<chart>-ci-<stem>`)."""
    if {"chart", "values"} <= set(metafunc.fixturenames):
        cases = scenario_cases(run_catalog(metafunc.config), CHARTS)
        metafunc.parametrize("chart, values", [pytest.param(chart, path, id=case_id) for chart, path, case_id in cases])


def test_scenario_renders(render, chart, values):
    try:
        manifest = render(chart, [values])
    except RenderError as err:
        raise AssertionError(f"{chart} cannot render scenario {values.name}: helm says: {err.message}") from None
    assert len(manifest) > 0, f"{chart} renders no object for scenario {values.name}"


def test_template_is_deterministic(helm, render, chart, values):
    """Rendered twice by helm itself (not through the render cache): byte-identical."""
    render.scenario(chart, [values])
    args = ["template", "release-a", str(helm.chart_dir(chart)), "--namespace", "team-a", "-f", str(values)]
    first, second = helm.run(*args), helm.run(*args)
    assert first.ok and second.ok, f"helm template (release release-a, namespace team-a) failed: {first.error or second.error}"
    if first.stdout != second.stdout:
        diff = next((i for i, (a, b) in enumerate(zip(first.stdout.splitlines(), second.stdout.splitlines(), strict=False))
                     if a != b), None)
        line = (f"line {diff + 1}: {first.stdout.splitlines()[diff]!r} then {second.stdout.splitlines()[diff]!r}"
                if diff is not None else f"lengths {len(first.stdout)} and {len(second.stdout)}")
        raise AssertionError(f"two renders of the same input differ, first at {line}")


def test_strict_lint_is_clean(helm, render, chart, values):
    render.scenario(chart, [values])
    result = helm.lint(chart, [values], strict=True)
    findings = [line for line in result.output.splitlines() if "[ERROR]" in line or "[WARNING]" in line]
    assert result.ok and not findings, \
        f"helm lint --strict with {values.name}: expected no finding, found:\n" + "\n".join(findings or [result.output[-2000:]])
