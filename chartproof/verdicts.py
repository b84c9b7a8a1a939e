"""What a test's outcome means: which promises it proves, and whether a failure is a verdict on the chart
or a defect of the suite.

- A test names the contract behaviours it proves with ``@pytest.mark.contract("ADP-POOL-02", ...)``;
  ``extension=True`` says it checks only their inferred parts (our design decisions, not README promises).
- A failure is a *verdict* when the test stopped on an assertion, a helm refusal, a wait that ran out, or a
  render that is not valid YAML. Any other exception is a *suite error*: the test could not judge the chart.
  Suite errors are counted apart (pytest shows them as ERROR) and the aim is to have none.
- Every failing test's report carries the promise it checks: contract id and README statement.
"""

from __future__ import annotations

import pytest

from chartproof.contracts import ID_PATTERN, catalog
from chartproof.errors import RenderError, WaitTimeout

VERDICT_EXCEPTIONS: tuple[type[BaseException], ...] = (AssertionError, RenderError, WaitTimeout,
                                                       pytest.fail.Exception)
PROPERTY_CONTRACTS = "contracts"
PROPERTY_EXTENSION = "extension"
PROPERTY_OUTCOME = "chartproof_outcome"


def contract_ids(item: pytest.Item) -> list[str]:
    ids: list[str] = []
    for marker in item.iter_markers("contract"):
        ids += [str(a) for a in marker.args if str(a) not in ids]
    return ids


def is_extension(item: pytest.Item) -> bool:
    """The test checks only extensions: it says so, or every id it names is wholly inferred."""
    if any(m.kwargs.get("extension") for m in item.iter_markers("contract")):
        return True
    ids = contract_ids(item)
    known = catalog()
    return bool(ids) and all(cid in known and known[cid].inferred for cid in ids)


def _set_property(report, name: str, value: str) -> None:
    props = [(k, v) for k, v in report.user_properties if k != name]
    props.append((name, value))
    report.user_properties[:] = props


def annotate(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
    ids = contract_ids(item)
    if ids:
        _set_property(report, PROPERTY_CONTRACTS, ",".join(ids))
        if is_extension(item):
            _set_property(report, PROPERTY_EXTENSION, "true")
    if not report.failed or report.when != "call" or call.excinfo is None:
        return
    if isinstance(call.excinfo.value, VERDICT_EXCEPTIONS):
        if ids:
            report.sections.append(("chartproof promise", promise_text(ids, is_extension(item))))
        return
    _set_property(report, PROPERTY_OUTCOME, "error")
    report.sections.append(("chartproof", f"suite error: the test ended in an unexpected "
                                          f"{call.excinfo.type.__name__}, so it could not judge the chart; "
                                          f"this is a defect of the suite, not a verdict"))


def promise_text(ids: list[str], extension: bool = False) -> str:
    known = catalog()
    lines = []
    for cid in ids:
        contract = known.get(cid)
        kind = "extension (inferred, not a README promise)" if extension or (contract and contract.inferred) else "promise"
        lines.append(f"{cid} [{kind}]: {contract.quote() if contract else 'unknown contract id'}")
    return "\n".join(lines)


def is_suite_error(report) -> bool:
    return report.when == "call" and report.failed and (PROPERTY_OUTCOME, "error") in report.user_properties


def report_contracts(report) -> list[str]:
    for name, value in report.user_properties:
        if name == PROPERTY_CONTRACTS:
            return [v for v in str(value).split(",") if v]
    return []


def report_is_extension(report) -> bool:
    return (PROPERTY_EXTENSION, "true") in report.user_properties


def outcome(report) -> str:
    """passed | failed | error | skipped, where error is a suite error (or a failed setup/teardown)."""
    if report.skipped:
        return "skipped"
    if report.failed:
        return "error" if report.when != "call" or is_suite_error(report) else "failed"
    return "passed"


def coverage_problems(items: list[pytest.Item], charts: set[str] | None = None) -> list[str]:
    """Unknown or malformed ids named by tests, and contract ids no test names."""
    known = catalog()
    named: dict[str, list[str]] = {}
    problems: list[str] = []
    for item in items:
        if item.get_closest_marker("contract") is None:
            continue
        for cid in contract_ids(item):
            if not ID_PATTERN.match(cid) or cid not in known:
                problems.append(f"{item.nodeid} names unknown contract id {cid!r}")
            named.setdefault(cid, []).append(item.nodeid)
    for cid, contract in known.items():
        if (charts is None or contract.chart in charts) and cid not in named:
            problems.append(f"{cid} has no test ({contract.section}: {contract.quote(120)})")
    return problems
