"""Each mutant breaks one promise; the suite must catch it with a test that names the broken contract id.

The catalog is checked first (every edit matches its file exactly once and the mutant still renders with
default values), then each mutant is judged by an inner run of that contract's tests (``--full``: of the
chart's whole suite, to see which other ids fail too). A render-tier test that already fails on our
unmodified charts (the baseline, one inner run shared by all workers) catches nothing."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.selfcheck import runner
from tests.selfcheck.charttree import RENDER_ARGS, helm
from tests.selfcheck.mutants import CATALOG, TIERS, Mutant

RENDER_MUTANTS = [m for m in CATALOG if m.tier == "render"]
LIVE_MUTANTS = [m for m in CATALOG if m.tier == "live"]
OUTCOME_WORDS = {"passed": "passed", "skipped": "skipped", runner.SUITE_ERROR: "crashed (suite error, no verdict)",
                 runner.VERDICT_FAILURE: "failed on the unmodified chart too"}
CHART_SHARE = {"adaptive": 20, "monitoring": 7, "hyperpod": 15}


def test_catalog_covers_every_chart_with_enough_mutants():
    assert len(CATALOG) >= 40
    for chart, roughly in CHART_SHARE.items():
        assert len([m for m in CATALOG if m.chart == chart]) >= roughly - 2, chart
    assert {m.tier for m in CATALOG} == set(TIERS)
    assert all(m.description and m.old != m.new for m in CATALOG)


@pytest.mark.parametrize("mutant", CATALOG, ids=[m.name for m in CATALOG])
def test_mutant_edit_applies_and_still_renders(tmp_path, mutant: Mutant):
    root = mutant.build(tmp_path)
    release, *args = RENDER_ARGS[mutant.chart]
    result = helm("template", release, str(root), *args)
    if mutant.packaging:
        assert not result.ok, "a packaging mutant is expected to stop helm"
    else:
        assert result.ok, f"the mutant must still render with default values: {result.stderr.strip()[-1500:]}"


def test_stock_charts_pass_the_render_tests_of_the_catalog(stock_failures):
    """The baseline: without a mutation, the tests that judge the mutants pass (a failure here is a defect of
    a chart or a suite, and such a test cannot catch anything)."""
    assert not stock_failures, "failing on our unmodified charts:\n" + "\n".join(
        f"{r.get('outcome')}: {r.get('test')}" for r in stock_failures)


def judge_mutant(record_selfcheck, pytestconfig, tmp_path, mutant: Mutant, stock: list[dict] | None = None) -> None:
    full = pytestconfig.getoption("selfcheck_full", False)
    root = mutant.build(tmp_path)
    selection = ["-k", mutant.chart] if full else ["--contract", mutant.contract]
    tier = list(runner.RENDER_TIER) if mutant.tier == "render" else ([] if full else ["-x"])
    record = {"kind": "mutant", "name": mutant.name, "chart": mutant.chart, "contract": mutant.contract,
              "tier": mutant.tier, "description": mutant.description, "caught": False, "why": "", "own_tests": 0,
              "own_failed": [], "other_failed_ids": [], "suite_errors": [], "seconds": 0.0}
    try:
        run = runner.run_suites({mutant.chart: root}, [*selection, *tier], timeout=1500 if mutant.tier == "live" else 600)
    except runner.InnerRunError as err:
        record["why"] = f"inner run failed: {str(err).splitlines()[0]}"
        record_selfcheck(record)
        raise
    failing_anyway = {r.get("test") for r in stock or []}
    own = run.naming(mutant.contract)
    own_failed = [r for r in own if r.get("outcome") == runner.VERDICT_FAILURE and r.get("test") not in failing_anyway]
    errors = run.with_outcome(runner.SUITE_ERROR)
    if own_failed:
        why = ""
    elif not own:
        why = f"no test names {mutant.contract}"
    else:
        outcomes = Counter(r.get("outcome") for r in own)
        why = f"its {len(own)} test(s): " + ", ".join(
            f"{n} {OUTCOME_WORDS.get(o, o)}" for o, n in sorted(outcomes.items()))
    other_ids = {cid for r in run.with_outcome(runner.VERDICT_FAILURE) if r.get("test") not in failing_anyway
                 for cid in runner.entry_contracts(r)} - {mutant.contract}
    record.update(caught=bool(own_failed), why=why, own_tests=len(own), own_failed=run.summary(own_failed),
                  other_failed_ids=sorted(other_ids), suite_errors=run.summary(errors), seconds=round(run.seconds, 1))
    record_selfcheck(record)
    assert own_failed, (f"{mutant.name} ({mutant.description}) is not caught by {mutant.contract}: {why}"
                        + (f"\nother ids that failed: {record['other_failed_ids']}" if record["other_failed_ids"] else ""))


@pytest.mark.parametrize("mutant", RENDER_MUTANTS, ids=[m.name for m in RENDER_MUTANTS])
def test_render_mutant_is_caught_by_its_contract(record_selfcheck, pytestconfig, tmp_path, stock_failures,
                                                mutant: Mutant):
    judge_mutant(record_selfcheck, pytestconfig, tmp_path, mutant, stock_failures)


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.xdist_group("live")
@pytest.mark.parametrize("mutant", LIVE_MUTANTS, ids=[m.name for m in LIVE_MUTANTS])
def test_live_mutant_is_caught_by_its_contract(record_selfcheck, pytestconfig, tmp_path, mutant: Mutant):
    if mutant.slow and pytestconfig.getoption("selfcheck_live_scope", "smoke") != "full":
        pytest.skip("its tests notice it only when a wait runs out; run with --live-scope full")
    with runner.one_live_run_at_a_time():
        judge_mutant(record_selfcheck, pytestconfig, tmp_path, mutant)
