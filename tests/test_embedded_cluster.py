"""The embedded cluster starts even when a component loses a race at start: the attempt is detected as
dead (not waited out), its logs are kept, and a fresh attempt brings the cluster up."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from chartproof.clusters.base import ClusterRecord
from chartproof.clusters.embedded import EmbeddedProvider
from chartproof.paths import cache_dir
from tests.conftest import embedded_cluster


def test_a_node_controller_that_dies_at_start_is_retried_not_waited_out():
    provider = EmbeddedProvider()
    name = f"cp-retry-{os.getpid()}"
    pidfile = cache_dir() / "kwok" / "clusters" / name / "pids" / "kwok-controller.pid"
    killed: list[int] = []
    stop = threading.Event()

    def kill_first_node_controller():
        # A real fault, injected once: the first kwok controller is killed as soon as it runs.
        while not stop.is_set() and not killed:
            try:
                pid = int(pidfile.read_text().strip())
                os.kill(pid, 9)
                killed.append(pid)
            except (OSError, ValueError):
                time.sleep(0.05)

    killer = threading.Thread(target=kill_first_node_controller, daemon=True)
    killer.start()
    started = time.monotonic()
    try:
        cluster = provider.up(name, "ml.p5.48xlarge=1,cpu=1", owner="test")
        seconds = time.monotonic() - started
        ready = [n["metadata"]["name"] for n in cluster.nodes()
                 if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))]
        log = (ClusterRecord.root() / name / "kwokctl.log").read_text()
    finally:
        stop.set()
        provider.down(name)
    assert killed, "the fault was never injected (no kwok controller pid file appeared)"
    assert sorted(ready) == ["cpu-0", "ml-p5-48xlarge-0"], f"expected both nodes Ready after the retry, found {ready}"
    assert "attempt 1 failed" in log and "kwok-controller exited" in log, log[-2000:]
    assert seconds < 90, f"the dead controller was waited out instead of detected: start took {seconds:.0f}s"
    assert (cache_dir() / "failed-clusters" / f"{name}-attempt-1").is_dir(), "the failed attempt's logs were not kept"


@pytest.fixture(scope="module")
def two_node_cluster():
    """One GPU node and one CPU node, shared by the tests below that only read nodes or use a namespace of their own."""
    with embedded_cluster("fixed", "ml.p5.48xlarge=1,cpu=1") as cluster:
        yield cluster


def test_a_pod_that_cannot_fit_the_fixed_nodes_stops_the_wait_early_with_the_schedulers_reason(two_node_cluster):
    from chartproof.errors import WaitTimeout
    from chartproof.kube import KubectlError

    cluster = two_node_cluster
    try:
        cluster.kubectl("create", "namespace", "fit")
        cluster.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big", "namespace": "fit"},
                       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "big"}},
                                "template": {"metadata": {"labels": {"app": "big"}}, "spec": {
                                    "tolerations": [{"operator": "Exists"}],
                                    "containers": [{"name": "c", "image": "busybox",
                                                    "resources": {"limits": {"nvidia.com/gpu": "9"}}}]}}}})
        started = time.monotonic()
        try:
            cluster.wait_ready(objects=[("Deployment", "big", "fit")], timeout=240)
        except WaitTimeout as exc:
            message, seconds = exc.message, time.monotonic() - started
        else:
            raise AssertionError("a pod asking for 9 GPUs on an 8-GPU cluster became ready")
    finally:
        try:
            cluster.kubectl.delete("namespace", "fit")  # not waited for: the next test only reads nodes
        except KubectlError:
            pass  # the module's cluster goes down with it
    assert "cannot be placed on this cluster's fixed nodes" in message and "Insufficient nvidia.com/gpu" in message, message
    assert seconds < 90, f"the wait ran {seconds:.0f}s instead of stopping once the pod stayed unschedulable"


def test_a_simulated_node_is_written_once_and_no_controller_rewrites_it(two_node_cluster):
    """At 1,000 nodes, controllers rewriting every Node (the TTL controller's annotation, the node lifecycle
    controller adding the beta os/arch labels a kubelet sets itself) were a fifth of the API server's writes."""
    time.sleep(3)  # the TTL and node lifecycle controllers act within a second of a node's creation
    nodes = json.loads(two_node_cluster.kubectl("get", "nodes", "-o", "json", "--show-managed-fields"))["items"]
    writers = {n["metadata"]["name"]: sorted({f["manager"] for f in n["metadata"].get("managedFields", [])}) for n in nodes}
    assert len(writers) == 2 and all(len(managers) == 1 for managers in writers.values()), (
        f"expected each Node written by its creator alone, found writers {writers}")
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert labels.get("beta.kubernetes.io/os") == "linux" and labels.get("beta.kubernetes.io/arch") == "amd64", labels
        assert "node.alpha.kubernetes.io/ttl" not in node["metadata"].get("annotations", {}), node["metadata"]
