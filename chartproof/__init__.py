"""Chartproof: a conformance and smoke-test engine for GPU ML Helm charts.

The engine (toolchain, cluster providers, helm driver, waiters, diagnostics, reports) lives here;
pytest sees it through :mod:`chartproof.plugin`.
"""

__version__ = "0.1.0"
