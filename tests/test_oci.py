"""Charts from an OCI registry: packaged, pushed to a loopback registry, and tested unchanged by reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from chartproof.oci import LocalRegistry, is_loopback_registry
from chartproof.toolchain import Toolchain
from tests.conftest import REPO


@pytest.fixture(scope="module")
def pushed_adaptive(tmp_path_factory):
    helm = Toolchain().path("helm")
    out = tmp_path_factory.mktemp("pkg")
    subprocess.run([str(helm), "package", str(REPO / "charts" / "adaptive"), "-d", str(out)], check=True,
                   capture_output=True)
    with LocalRegistry() as registry:
        yield registry.push(helm, out / "adaptive-0.6.2.tgz")


def suite(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--report-dir",
                           str(tmp_path / "reports"), *args], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ), timeout=600)


def test_loopback_detection():
    assert is_loopback_registry("oci://127.0.0.1:5000/charts/adaptive")
    assert is_loopback_registry("oci://localhost/charts/x")
    assert not is_loopback_registry("oci://ghcr.io/adaptive-ml/adaptive")


def test_render_suite_runs_unchanged_against_an_oci_reference(tmp_path, pushed_adaptive):
    ref = f"{pushed_adaptive}@0.6.2"
    proc = suite(tmp_path, "suites/adaptive", "-m", "not cluster", "--contract", "ADP-POOL-02,ADP-AUTOSCALE-01,ADP-SECRET-02",
                 "--chart", f"adaptive={ref}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
    report = json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())
    row = next(c for c in report["charts"] if c["name"] == "adaptive")
    assert row["kind"] == "oci" and row["reference"] == ref and row["version"] == "0.6.2"


def test_unknown_oci_version_stops_the_run_with_exit_4(tmp_path, pushed_adaptive):
    proc = suite(tmp_path, "suites/adaptive", "-m", "not cluster", "--chart", f"adaptive={pushed_adaptive}@9.9.9")
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "cannot pull" in proc.stdout + proc.stderr
    assert " passed" not in proc.stdout
