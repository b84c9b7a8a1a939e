"""Variants keep every promise, so the suites must pass on them: any failing test is a false alarm.

First each variant build is checked on its own (it renders, lints clean, has the same objects as our chart
by meaning, and really differs in spelling); then each chart's suite runs against it, render tier and
live tier."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.selfcheck import runner
from tests.selfcheck.charttree import (
    CHART_NAMES,
    CHARTS,
    helm,
    manifest_of,
    object_keys,
    render_default,
    sources,
)
from tests.selfcheck.variants import EXTRA_KEY, VARIANT_NAMES, build_variant

CASES = [(v, c) for v in VARIANT_NAMES for c in CHART_NAMES]
IDS = [f"{v}-{c}" for v, c in CASES]
EXTRA_OBJECT_NAME = ("-vx-extra", ".variant.chartproof.dev")
IGNORED_ANNOTATION_PREFIX = "checksum/"  # digests of template files: they change with the files' text

# The live tier of all charts takes ~6 minutes; per variant build the smoke selection installs each chart the
# ways that exercise what the variants change (hooks, Lists, namespaces, CRDs). --live-scope full runs all.
LIVE_SMOKE = {
    "adaptive": "(test_install_scenario and defaults-with-secrets) or test_install_autoscaling_on",
    "monitoring": "monitoring",
    "hyperpod": "test_hyp_install_01 and (defaults or everything-on)",
}


@pytest.fixture(scope="session")
def variant_build(tmp_path_factory):
    built: dict[tuple[str, str], Path] = {}
    base = tmp_path_factory.mktemp("variants")

    def build(variant: str, chart: str) -> Path:
        if (variant, chart) not in built:
            built[variant, chart] = build_variant(variant, chart, base)
        return built[variant, chart]

    return build


def is_extra(obj: dict) -> bool:
    return str((obj.get("metadata") or {}).get("name", "")).endswith(EXTRA_OBJECT_NAME)


def without_variant_marks(node):
    """The object as our chart renders it: the variant's label and annotation removed, and template-file
    checksums (which follow the files' text) left out."""
    if isinstance(node, dict):
        kept = {k: without_variant_marks(v) for k, v in node.items()
                if k != EXTRA_KEY and not str(k).startswith(IGNORED_ANNOTATION_PREFIX)}
        return {k: v for k, v in kept.items() if not (k in ("labels", "annotations") and v == {})}
    if isinstance(node, list):
        return [without_variant_marks(v) for v in node]
    return node


def canonical(obj: dict) -> str:
    return json.dumps(without_variant_marks(obj), sort_keys=True, default=str)


@pytest.mark.parametrize("variant, chart", CASES, ids=IDS)
def test_variant_build_is_the_same_chart_spelt_differently(variant_build, variant, chart):
    root = variant_build(variant, chart)
    original_text, text = render_default(chart, CHARTS / chart), render_default(chart, root)
    original, rendered = manifest_of(original_text), manifest_of(text)

    extras = [o for o in rendered if is_extra(o)]
    assert sorted(o["kind"] for o in extras) == ["ConfigMap", "CustomResourceDefinition"], "the two extra objects"
    assert Counter(canonical(o) for o in rendered if not is_extra(o)) == Counter(canonical(o) for o in original), \
        "apart from the extra objects, label and annotation, the variant must render the same objects by meaning"
    crd_text = text[text.index("kind: CustomResourceDefinition\nmetadata:\n  name: widgets."):]
    assert "\n            ---\n" in crd_text, "the extra CRD keeps its indented '---' description lines"

    if variant == "restructured":
        assert not sources(text) & sources(original_text), "every template file has a new name"
        order = [k for k in object_keys(rendered) if not k[2].endswith(EXTRA_OBJECT_NAME)]
        assert order != object_keys(original), "objects come in another order"
        unmarked = [k for k, o in zip(object_keys(rendered), rendered, strict=True)
                    if not is_extra(o) and ((o.get("metadata") or {}).get("labels") or {}).get(EXTRA_KEY) != "yes"]
        assert not unmarked, f"objects without the extra label: {unmarked}"
    else:
        assert "\nkind: List\n" in text, "objects are emitted as v1 Lists"
        assert text.count("\nkind: List\n") >= 3
    lint = helm("lint", "--strict", str(root))
    assert lint.ok and "[WARNING]" not in lint.stdout and "[ERROR]" not in lint.stdout, lint.stdout[-3000:]


def naive_top_level_kinds(text: str) -> Counter:
    """Kinds as a reader that ignores v1 Lists sees them."""
    return Counter(d.get("kind") for d in yaml.safe_load_all(text) if isinstance(d, dict))


def naive_split_parses(text: str) -> bool:
    """Whether a reader that splits on any '---' line, indented or not, still gets valid YAML."""
    try:
        for chunk in re.split(r"^\s*---\s*$", text, flags=re.MULTILINE):
            yaml.safe_load(chunk)
    except yaml.YAMLError:
        return False
    return True


def first_labels_by_source(text: str, source: str) -> dict | None:
    """The labels of the first object helm attributes to template ``source`` (a reader keyed on file names)."""
    for chunk in re.split(r"^---$", text, flags=re.MULTILINE):
        if f"# Source: {source}\n" in chunk:
            doc = yaml.safe_load(chunk)
            return (doc.get("metadata") or {}).get("labels")
    return None


@pytest.mark.parametrize("variant, chart", CASES, ids=IDS)
def test_variant_build_trips_naive_readers(variant_build, variant, chart):
    """The variants have teeth: readers that rely on what the contracts leave open pass on our chart and
    fail on the variant (so a suite passing on the variant does not rely on those things)."""
    original_text, text = render_default(chart, CHARTS / chart), render_default(chart, variant_build(variant, chart))
    assert naive_split_parses(original_text) and not naive_split_parses(text), "indented '---' in the extra CRD"
    if variant == "restructured":
        source = sorted(sources(original_text))[0]
        labels = first_labels_by_source(original_text, source)
        assert labels is not None and first_labels_by_source(text, source) is None, "template file names change"
    else:
        workloads = ("Deployment", "StatefulSet", "DaemonSet")
        assert sum(naive_top_level_kinds(original_text)[k] for k in workloads) > 0
        assert sum(naive_top_level_kinds(text)[k] for k in workloads) == 0, "workloads sit inside v1 Lists"


def judge_variant(record_selfcheck, variant: str, chart: str, tier: str, charts: dict[str, Path], args: list[str]) -> None:
    record = {"kind": "variant", "variant": variant, "chart": chart, "tier": tier, "clean": False,
              "false_alarms": [], "ran": 0, "seconds": 0.0}
    try:
        run = runner.run_suites(charts, args, timeout=1500 if tier == "live" else 600)
    except runner.InnerRunError as err:
        record["false_alarms"] = [f"inner run failed: {str(err).splitlines()[0]}"]
        record_selfcheck(record)
        raise
    alarms = run.with_outcome(runner.VERDICT_FAILURE, runner.SUITE_ERROR)
    slowest = sorted(run.ran, key=lambda r: -float(r.get("seconds") or 0))[:3]
    record.update(clean=not alarms and bool(run.ran), false_alarms=run.summary(alarms, limit=50), ran=len(run.ran),
                  seconds=round(run.seconds, 1), slowest=[f"{r.get('seconds')} s {r.get('test')}" for r in slowest])
    record_selfcheck(record)
    assert run.ran, f"the {tier} tier selected no test of {chart} ({' '.join(args)}): update the selection"
    assert not alarms, f"{len(alarms)} false alarm(s) on the {variant} build of {chart}:\n" + "\n".join(run.summary(alarms))


@pytest.mark.parametrize("variant, chart", CASES, ids=IDS)
def test_render_tier_passes_on_variant(variant_build, record_selfcheck, variant, chart):
    judge_variant(record_selfcheck, variant, chart, "render", {chart: variant_build(variant, chart)},
                  ["-k", chart, *runner.RENDER_TIER])


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.xdist_group("live")
@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_live_tier_passes_on_variant(variant_build, record_selfcheck, pytestconfig, variant):
    """One inner run per variant build, all three charts swapped in: one cluster start, two workers."""
    full = pytestconfig.getoption("selfcheck_live_scope", "smoke") == "full"
    selection = " or ".join(chart if full else f"({chart} and ({LIVE_SMOKE[chart]}))" for chart in CHART_NAMES)
    charts = {chart: variant_build(variant, chart) for chart in CHART_NAMES}
    with runner.one_live_run_at_a_time():
        judge_variant(record_selfcheck, variant, "all", "live", charts, ["-k", selection, *runner.LIVE_TIER, "-n", "2"])
