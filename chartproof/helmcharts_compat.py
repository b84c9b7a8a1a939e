"""pytest-helm-charts beside Chartproof: its cluster fixtures bound to the run's cluster.

``chartproof.plugin`` registers this module only when pytest-helm-charts is loaded, after it, so these
fixtures take precedence over its own (a conftest's still win). ``kube_config`` and ``kube_cluster``, and
every fixture built on them (``namespace_factory``, ``random_namespace``, the Flux and App Platform
factories), then use the run's cluster: Chartproof's embedded GPU cluster by default, or the one
``--chartproof-cluster`` names. A suite written for pytest-helm-charts runs unchanged, and its tests are
cluster tests (``-m cluster``), started, shared and torn down like Chartproof's own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_helm_charts.clusters import ExistingCluster

from chartproof.clusters.base import Cluster
from chartproof.clusters.existing import single_context_kubeconfig
from chartproof.run import Run


class RunCluster(ExistingCluster):
    """pytest-helm-charts' cluster on a kubeconfig file; its ``kubectl()`` runs the run's pinned kubectl."""

    def __init__(self, kube_config_path: str, kubectl_binary: Path):
        super().__init__(kube_config_path)
        self.kubectl_binary = Path(kubectl_binary)
        self._link_dir: Path | None = None

    def _kubectl_dir(self) -> Path:
        """A directory whose ``kubectl`` is the run's binary (pytest-helm-charts looks it up by that name)."""
        if self.kubectl_binary.name == "kubectl":
            return self.kubectl_binary.parent
        if self._link_dir is None:
            self._link_dir = Path(tempfile.mkdtemp(prefix="chartproof-kubectl-"))
            (self._link_dir / "kubectl").symlink_to(self.kubectl_binary)
        return self._link_dir

    def kubectl(self, *args: Any, **kwargs: Any) -> Any:
        """pytest-helm-charts' ``kubectl(subcmd_string, ...)``, with the run's binary first on PATH for the call."""
        saved = os.environ.get("PATH", "")
        os.environ["PATH"] = str(self._kubectl_dir()) + os.pathsep + saved
        try:
            return super().kubectl(*args, **kwargs)
        finally:
            os.environ["PATH"] = saved

    def destroy(self) -> None:
        super().destroy()
        if self._link_dir is not None:
            shutil.rmtree(self._link_dir, ignore_errors=True)
            self._link_dir = None


@pytest.fixture(scope="module")
def kube_config(run_cluster: Cluster) -> str:
    """The kubeconfig file of the run's cluster, its current context the run's (pytest-helm-charts' fixture)."""
    return str(single_context_kubeconfig(run_cluster.kubeconfig, run_cluster.context))


@pytest.fixture(scope="module")
def kube_cluster(kube_config: str, chartproof_run: Run) -> Iterator[RunCluster]:
    """pytest-helm-charts' connected cluster (``.kube_client`` is pykube's HTTPClient), on ``kube_config``."""
    bound = RunCluster(kube_config, chartproof_run.toolchain.path("kubectl"))
    bound.create()
    try:
        yield bound
    finally:
        bound.destroy()
