"""In-pod checks with testinfra where real containers run (kind, existing clusters).

``pod_host(cluster, namespace, pod, container)`` is a testinfra Host whose commands run in that container
through ``kubectl exec`` (testinfra's kubectl backend), with the run's kubeconfig and context and the pinned
kubectl: ``host.file("/logdir/marker").content_string``, ``host.mount_point("/prometheus").exists``.
"""

from __future__ import annotations

import os
from urllib.parse import urlencode

from chartproof.capabilities import capabilities


def _pinned_kubectl_on_path(cluster) -> None:
    """testinfra runs ``kubectl`` from PATH: put the run's pinned kubectl first."""
    directory = str(cluster.kubectl.binary.parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[:1] != [directory]:
        os.environ["PATH"] = os.pathsep.join([directory, *[p for p in parts if p != directory]])


def pod_host(cluster, namespace: str, pod: str, container: str | None = None):
    """A testinfra Host for one container of a pod of ``cluster``. Only where containers really run."""
    if "containers" not in capabilities(cluster):
        raise RuntimeError(f"cluster {cluster.name} runs no real containers: in-pod checks cannot run there")
    import testinfra  # the extra 'inpod' (pytest-testinfra); imported here so the engine needs it only for these checks

    _pinned_kubectl_on_path(cluster)
    params = {"namespace": namespace, "kubeconfig": str(cluster.kubeconfig)}
    if container:
        params["container"] = container
    if cluster.context:
        params["context"] = cluster.context
    return testinfra.get_host(f"kubectl://{pod}?{urlencode(params)}")

