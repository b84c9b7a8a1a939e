"""Set-up of the self-check: it runs only when asked for (``pytest tests/selfcheck``), its options, and the
two figures it reports at the end (also written to ``reports/selfcheck.json``)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.selfcheck.charttree import REPO
from tests.selfcheck.mutants import CATALOG
from tests.selfcheck.runner import RENDER_TIER, failing_on_stock_charts

HERE = Path(__file__).resolve().parent
# Each judged build leaves a JSON record in a directory the controller makes (xdist workers inherit its path):
# files, not report properties, so nothing on the way (JUnit, redaction) reshapes them.
RECORDS_ENV = "CHARTPROOF_SELFCHECK_RECORDS"
_STARTED = pytest.StashKey[float]()
_RECORDS = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("selfcheck", "Chartproof self-check (tests/selfcheck)")
    group.addoption("--full", action="store_true", dest="selfcheck_full",
                    help="mutants: run the chart's whole suite (not only the broken contract's tests) and report "
                         "every contract id that fails")
    group.addoption("--live-scope", choices=("smoke", "full"), default="smoke", dest="selfcheck_live_scope",
                    help="on the cluster: each variant's smoke installs and the fast live mutants (default), or "
                         "each variant's whole live tier and every live mutant, slow ones included")
    group.addoption("--selfcheck-json", default=str(REPO / "reports" / "selfcheck.json"), dest="selfcheck_json",
                    help="where the self-check figures are written (default: reports/selfcheck.json)")


def _requested(config: pytest.Config) -> bool:
    """True when the command line names this directory or something in it."""
    for arg in config.args:
        path = Path(str(arg).split("::")[0])
        path = (path if path.is_absolute() else Path(config.invocation_params.dir) / path).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``pytest tests`` (the engine's own tests) leaves the self-check out: it takes minutes."""
    return True if not _requested(config) else None


def pytest_configure(config: pytest.Config) -> None:
    # Live runs share one xdist worker under --dist loadgroup; without xdist the marker must still be known.
    config.addinivalue_line("markers", "xdist_group(name): run in the same xdist worker as the rest of the group")
    config.stash[_STARTED] = time.time()
    if not hasattr(config, "workerinput") and _requested(config):
        directory = Path(tempfile.mkdtemp(prefix="chartproof-selfcheck-records-"))
        os.environ[RECORDS_ENV] = str(directory)
        config.stash[_RECORDS] = directory


@pytest.fixture
def record_selfcheck():
    """``record_selfcheck(dict)``: what a test found about one build, for the figures at the end."""
    directory = Path(os.environ[RECORDS_ENV])

    def record(data: dict) -> None:
        (directory / f"{uuid.uuid4().hex}.json").write_text(json.dumps(data))

    return record


@pytest.fixture(scope="session")
def stock_failures(pytestconfig: pytest.Config):
    """The render-tier tests that already fail on our unmodified charts (for the contracts of the catalog, or
    for the whole suites with --full); a mutant is not "caught" by one of those."""
    if pytestconfig.getoption("selfcheck_full", False):
        name, args = "render-all", list(RENDER_TIER)
    else:
        name, args = "render-catalog", ["--contract", ",".join(sorted({m.contract for m in CATALOG})), *RENDER_TIER]
    return failing_on_stock_charts(Path(os.environ[RECORDS_ENV]) / "stock" / f"{name}.json", args)


def _read_records(config: pytest.Config) -> list[dict]:
    directory = config.stash.get(_RECORDS, None)
    if directory is None or not directory.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Live runs first: they take turns on one worker, so they set the pace; render runs fill the others."""
    items.sort(key=lambda item: item.get_closest_marker("cluster") is None)


def figures(records: list[dict]) -> dict:
    variants = [r for r in records if r["kind"] == "variant"]
    mutants = [r for r in records if r["kind"] == "mutant"]
    clean = [r for r in variants if r["clean"]]
    caught = [r for r in mutants if r["caught"]]
    return {
        "variants": {"runs": len(variants), "clean": len(clean),
                     "false_alarms": sum(len(r["false_alarms"]) for r in variants)},
        "mutants": {"total": len(mutants), "caught": len(caught),
                    "percent": round(100 * len(caught) / len(mutants), 1) if mutants else 0.0,
                    "uncaught": sorted(f"{r['contract']} {r['name']}: {r['why']}" for r in mutants if not r["caught"])},
    }


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    records = _read_records(config)
    if not records:
        return
    result = figures(records)
    v, m = result["variants"], result["mutants"]
    write = terminalreporter.write_line
    terminalreporter.section("chartproof self-check")
    write(f"self-check: variants {v['clean']}/{v['runs']} clean ({v['false_alarms']} false alarms)")
    write(f"self-check: mutants caught by their own contract: {m['caught']}/{m['total']} ({m['percent']}%)")
    for line in m["uncaught"]:
        write(f"  not caught: {line}")
    for r in records:
        if r["kind"] == "variant" and not r["clean"]:
            for alarm in r["false_alarms"]:
                write(f"  false alarm ({r['variant']} {r['chart']} {r['tier']}): {alarm}")
    path = Path(config.getoption("selfcheck_json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**result, "seconds": round(time.time() - config.stash.get(_STARTED, time.time()), 1),
               "records": sorted(records, key=lambda r: (r["kind"], r.get("chart", ""), r.get("name", r.get("variant", ""))))}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    write(f"self-check figures: {path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_RECORDS, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
