"""Where things are: the repository's fixtures and charts, and the cache outside the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
CHARTS = REPO / "charts"
REPORTS = REPO / "reports"


def cache_dir() -> Path:
    """The tool and cluster cache: ``$CHARTPROOF_CACHE``, else ``$XDG_CACHE_HOME/chartproof``, else ``~/.cache/chartproof``."""
    explicit = os.environ.get("CHARTPROOF_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chartproof"


def scenario(chart: str, name: str) -> Path:
    """The scenario values file ``fixtures/<chart>/<name>.yaml`` (it must exist)."""
    path = FIXTURES / chart / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (FIXTURES / chart).glob("*.yaml"))
        raise FileNotFoundError(f"no scenario {chart}/{name}; known: {', '.join(known) or 'none'}")
    return path


def scenarios(chart: str) -> list[Path]:
    """Every scenario values file of a chart, sorted by name."""
    return sorted((FIXTURES / chart).glob("*.yaml"))
