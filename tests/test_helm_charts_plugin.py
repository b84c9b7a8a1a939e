"""pytest-helm-charts beside Chartproof, in inner pytest sessions: both plugins load, each keeps its options
(Chartproof's prefixed names always, today's short ones where free), and a test written for pytest-helm-charts
(its ``kube_cluster``, its pykube client, its namespace fixture) runs unchanged on Chartproof's embedded GPU
cluster; with pytest-helm-charts disabled nothing of it appears."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chartproof.clusters.base import ClusterRecord
from chartproof.paths import cache_dir
from tests.conftest import run_pytest

HELM_CHARTS = "pytest-helm-charts==1.3.5"
# Installed with --no-deps into a private directory: pytest-helm-charts and what it needs that is not here already.
PRIVATE_REQUIREMENTS = {"pytest_helm_charts": HELM_CHARTS, "pykube": "pykube-ng==23.6.0", "deprecated": "deprecated==1.3.1",
                        "wrapt": "wrapt", "requests": "requests"}


@pytest.fixture(scope="module")
def helm_charts_env() -> dict[str, str]:
    """The environment of inner sessions that load pytest-helm-charts: the installed one (chartproof[helm-charts]),
    else a private install under the cache, seen only by those sessions; skipped when neither can be had."""
    if importlib.util.find_spec("pytest_helm_charts") is not None:
        return {}
    target = cache_dir() / "python" / HELM_CHARTS.replace("==", "-")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install when pytest-xdist workers ask at once
        if not (target / "pytest_helm_charts").is_dir():
            wanted = [req for module, req in PRIVATE_REQUIREMENTS.items() if importlib.util.find_spec(module) is None]
            staging = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                   "--no-deps", "--target", str(staging), *wanted],
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                lines = (proc.stderr or proc.stdout).strip().splitlines()
                pytest.skip(f"pytest-helm-charts cannot be installed here: {lines[-1] if lines else proc.returncode}")
            os.replace(staging, target)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH", "")) if p)}


def results(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())


def dead_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "dead-kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
                    "clusters:\n- name: dead\n  cluster: {server: 'https://127.0.0.1:1'}\n"
                    "users:\n- name: u\n  user: {token: abc}\n"
                    "contexts:\n- name: dead\n  context: {cluster: dead, user: u}\n")
    return path


def test_both_plugins_load_and_share_the_command_line(helm_charts_env, tmp_path):
    both = run_pytest(tmp_path, """
def test_ok(pytestconfig):
    plugins = pytestconfig.pluginmanager
    assert plugins.has_plugin("helm-charts") and plugins.has_plugin("chartproof-helm-charts")
    assert pytestconfig.getoption("chartproof_nodes") == "cpu=1"
""", "--nodes", "cpu=1", "-v", env=helm_charts_env)  # -v against run_pytest's -q: the header is printed
    assert both.returncode == 0, both.stdout + both.stderr
    assert "1 passed" in both.stdout
    assert "chartproof: --kubeconfig belongs to another plugin here; Chartproof's is --chartproof-kubeconfig" in both.stdout
    dead = dead_kubeconfig(tmp_path)
    # pytest-helm-charts' --kubeconfig names the cluster under test for Chartproof as well ...
    shared = run_pytest(tmp_path, "def test_never(): pass\n", "--cluster", "existing", "--kubeconfig", str(dead),
                        env=helm_charts_env)
    assert shared.returncode == 5 and f"cannot reach the API server of {dead}" in shared.stdout + shared.stderr
    # ... and is refused where the run's cluster would silently be another one.
    ignored = run_pytest(tmp_path, "def test_never(): pass\n", "--kubeconfig", str(dead), env=helm_charts_env)
    assert ignored.returncode == 2, ignored.stdout + ignored.stderr
    assert "add --chartproof-cluster existing" in ignored.stdout + ignored.stderr
    prefixed = run_pytest(tmp_path, "def test_never(): pass\n", "--chartproof-cluster", "existing",
                          "--chartproof-kubeconfig", str(dead), "--chartproof-kube-context", "prod", env=helm_charts_env)
    assert prefixed.returncode == 6 and "known: dead" in prefixed.stdout + prefixed.stderr


HELM_CHARTS_STYLE_TEST = '''
import pykube
from pytest_helm_charts.clusters import Cluster


def test_gpu_nodes_and_a_configmap(kube_cluster: Cluster, random_namespace: pykube.Namespace):
    nodes = list(pykube.Node.objects(kube_cluster.kube_client))
    gpu_nodes = [n.name for n in nodes if n.obj["status"]["allocatable"].get("nvidia.com/gpu") == "8"]
    assert gpu_nodes, [n.name for n in nodes]
    assert len(kube_cluster.kubectl("get nodes")) == len(nodes)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"model": "llama"},
            "metadata": {"name": "from-helm-charts", "namespace": random_namespace.name}}
    pykube.ConfigMap(kube_cluster.kube_client, body).create()
    found = pykube.ConfigMap.objects(kube_cluster.kube_client, namespace=random_namespace.name).get(name="from-helm-charts")
    assert found.obj["data"] == {"model": "llama"}
    found.delete()
    assert not pykube.ConfigMap.objects(kube_cluster.kube_client, namespace=random_namespace.name).filter(
        field_selector={"metadata.name": "from-helm-charts"})
'''


def test_a_helm_charts_test_runs_on_the_embedded_gpu_cluster(helm_charts_env, tmp_path):
    proc = run_pytest(tmp_path, HELM_CHARTS_STYLE_TEST, "-m", "cluster", "--chartproof-nodes", "ml.p5.48xlarge=1,cpu=1",
                      env=helm_charts_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = results(tmp_path)
    assert report["counts"] == {"passed": 1}, "selected by -m cluster, and passed"
    assert report["cluster"]["provider"] == "embedded" and report["cluster"]["simulated"] is True
    assert any(n["nvidia.com/gpu"] == "8" for n in report["cluster"]["nodes"])
    assert not {r.name for r in ClusterRecord.load_all() if r.owner == report["run"]}, "the run's cluster was removed"


def test_with_helm_charts_disabled_nothing_of_it_appears(helm_charts_env, tmp_path):
    proc = run_pytest(tmp_path, "def test_uses_it(kube_cluster): pass\n", "-p", "no:helm-charts", env=helm_charts_env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "fixture 'kube_cluster' not found" in proc.stdout
    assert "belongs to another plugin" not in proc.stdout


def test_loaded_by_a_conftest_both_plugins_still_load(helm_charts_env, tmp_path):
    """A checkout without the entry point loads Chartproof from a conftest, after every other plugin."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["chartproof.plugin"]\n')
    proc = run_pytest(tmp_path, """
def test_ok(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("chartproof-helm-charts")
    assert pytestconfig.getoption("chartproof_kube_context") == "ctx-1"
""", "-p", "no:chartproof", "--kube-context", "ctx-1", env=helm_charts_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
