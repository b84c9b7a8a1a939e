"""Promises every chart keeps under every one of its scenario files: a deterministic render (same input,
same bytes) and a strict lint with no finding."""

from __future__ import annotations

import pytest

from chartproof.paths import scenarios

CASES = [(chart, path) for chart in ("adaptive", "monitoring", "hyperpod") for path in scenarios(chart)]


@pytest.mark.parametrize("chart, values", CASES, ids=[f"{c}-{p.stem}" for c, p in CASES])
def test_template_is_deterministic(helm, chart, values):
    """Rendered twice by helm itself (not through the render cache): byte-identical."""
    directory = helm.chart_dir(chart)
    args = ["template", "release-a", str(directory), "--namespace", "team-a", "-f", str(values)]
    first, second = helm.run(*args), helm.run(*args)
    assert first.ok, first.error
    assert first.stdout == second.stdout
    assert len(first.stdout) > 1000, "a scenario renders real objects"


@pytest.mark.parametrize("chart, values", CASES, ids=[f"{c}-{p.stem}" for c, p in CASES])
def test_strict_lint_is_clean(helm, chart, values):
    result = helm.lint(chart, [values], strict=True)
    assert result.ok, result.output[-2000:]
    assert "[WARNING]" not in result.output and "[ERROR]" not in result.output
