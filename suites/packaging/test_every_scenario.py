"""Promises every chart keeps under every one of its scenario files (`fixtures/<chart>/*.yaml`): the scenario
renders, the render is deterministic (same input, same bytes), and a strict lint has no finding.

A chart that cannot render a scenario is reported once, here, by `test_scenario_renders[...]` with helm's
message; the other tests of that scenario (here and in the chart suites, through `render.scenario`) skip.
"""

from __future__ import annotations

import pytest

from chartproof.errors import RenderError
from chartproof.paths import scenarios

CHARTS = ("adaptive", "monitoring", "hyperpod")
CASES = [pytest.param(chart, path, id=f"{chart}-{path.stem}") for chart in CHARTS for path in scenarios(chart)]


@pytest.mark.parametrize("chart, values", CASES)
def test_scenario_renders(render, chart, values):
    try:
        manifest = render(chart, [values])
    except RenderError as err:
        raise AssertionError(f"{chart} cannot render scenario {values.name}: helm says: {err.message}") from None
    assert len(manifest) > 0, f"{chart} renders no object for scenario {values.name}"


@pytest.mark.parametrize("chart, values", CASES)
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


@pytest.mark.parametrize("chart, values", CASES)
def test_strict_lint_is_clean(helm, render, chart, values):
    render.scenario(chart, [values])
    result = helm.lint(chart, [values], strict=True)
    findings = [line for line in result.output.splitlines() if "[ERROR]" in line or "[WARNING]" in line]
    assert result.ok and not findings, \
        f"helm lint --strict with {values.name}: expected no finding, found:\n" + "\n".join(findings or [result.output[-2000:]])
