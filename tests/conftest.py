from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chartproof", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=REPO)


def run_pytest(tmp_path: Path, test_source: str, *args: str, env: dict | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """An inner pytest session with the Chartproof plugin, in its own directory."""
    (tmp_path / "test_inner.py").write_text(test_source)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path),
                           "--report-dir", str(tmp_path / "reports"), str(tmp_path / "test_inner.py"), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout,
                          cwd=tmp_path)


@contextlib.contextmanager
def embedded_cluster(purpose: str, shape: str) -> Iterator:
    """An embedded cluster of ``shape`` for the block (a test module's fixture yields inside it), named
    ``cp-PURPOSE-PID`` and owned by the tests; it is stopped after the block, whatever happened in it."""
    from chartproof.clusters.embedded import EmbeddedProvider

    provider = EmbeddedProvider()
    name = f"cp-{purpose}-{os.getpid()}"
    cluster = provider.up(name, shape, owner="test")
    try:
        yield cluster
    finally:
        provider.down(name)


@pytest.fixture(autouse=True)
def _benches_do_not_wait_for_an_idle_machine(monkeypatch):
    """The benches' timed runs wait for an idle machine first; under the engine's own tests (several workers)
    it never is, and what those tests check is the figures' shape, not their speed."""
    from chartproof import bench_render

    monkeypatch.setattr(bench_render, "SETTLE_LIMIT", 0)


@pytest.fixture
def tiny_chart(tmp_path: Path) -> Path:
    """A minimal chart with a Secret fed from values and one Deployment."""
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\nappVersion: \"1.0\"\n")
    (chart / "values.yaml").write_text("replicas: 1\npassword: \"\"\n")
    (chart / "templates" / "all.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-secret\n"
        "stringData:\n  password: {{ required \"password is required\" .Values.password | quote }}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n"
        "  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: tiny}\n  template:\n"
        "    metadata:\n      labels: {app: tiny}\n    spec:\n      containers:\n      - name: app\n"
        "        image: busybox\n")
    return chart


def interruptible() -> None:
    """preexec_fn for children a test will Ctrl-C: a job started in the background by a non-interactive
    shell inherits SIGINT as ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
