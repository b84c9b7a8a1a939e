"""The contract catalog: every numbered behaviour of the charts, with its README statement.

The catalog ships with the suite (``chartproof/contracts/*.md``, copies of the project's contracts), so a
report can quote what a failing test was checking. A behaviour whose whole statement is marked
"(inferred)" is an *extension*: our design decision, not a README promise. A test that checks only the
inferred part of a mixed behaviour says so with ``@pytest.mark.contract(ID, extension=True)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CONTRACTS_DIR = Path(__file__).resolve().parent
ID_PATTERN = re.compile(r"^[A-Z]+(?:-[A-Z0-9]+)*-\d{2}$")
_ITEM = re.compile(r"^- \*\*(?P<id>[A-Z][A-Z0-9-]+-\d{2})\*\* (?:\[(?P<tiers>[^\]]+)\] )?(?P<statement>.+)$")
_CHARTS = {"ADP": "adaptive", "MON": "monitoring", "HYP": "hyperpod"}


@dataclass(frozen=True)
class Contract:
    id: str
    chart: str       # adaptive | monitoring | hyperpod
    section: str     # the heading it sits under, e.g. "Pools and autoscaling"
    tiers: str       # "R", "C", "R/C", "HP" ...
    statement: str   # the behaviour as the contract states it (markdown)

    @property
    def inferred(self) -> bool:
        """The whole behaviour is our deduction (an extension), not something the README states."""
        return self.statement.rstrip(". ").endswith("(inferred)")

    def quote(self, limit: int = 400) -> str:
        text = re.sub(r"\s+", " ", self.statement).strip()
        return text if len(text) <= limit else text[: limit - 1] + "…"


def parse(text: str) -> list[Contract]:
    items: list[Contract] = []
    section = ""
    for line in text.splitlines():
        if line.startswith("### "):
            section = line[4:].strip()
            continue
        match = _ITEM.match(line.strip())
        if match:
            cid = match["id"]
            chart = _CHARTS.get(cid.split("-")[0], cid.split("-")[0].lower())
            items.append(Contract(cid, chart, section, match["tiers"] or "", match["statement"].strip()))
    return items


@cache
def catalog(directory: Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """Every contract id of the shipped contract files, in file order."""
    out: dict[str, Contract] = {}
    for path in sorted(directory.glob("*.md")):
        for item in parse(path.read_text()):
            out[item.id] = item
    return out


def lookup(cid: str) -> Contract | None:
    return catalog().get(cid)
