"""The certification smoke check of a real GPU cluster: on every GPU instance type, a pod that asks for one
GPU is scheduled, starts, and sees its GPU from inside (``nvidia-smi -L``). Simulated nodes have no GPU
to see, so there it is skipped with that reason; `chartproof certify` runs it on the cluster under test."""

from __future__ import annotations

import pytest

from chartproof.manifest import dig

INSTANCE_TYPE = "node.kubernetes.io/instance-type"
IMAGE = "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"  # nvidia-smi comes from the NVIDIA container toolkit


def gpu_instance_types(cluster) -> dict[str, str]:
    """Instance type -> one of its nodes, for nodes that offer allocatable NVIDIA GPUs."""
    found: dict[str, str] = {}
    for node in cluster.nodes():
        gpus = int(str(dig(node, "status.allocatable", {}).get("nvidia.com/gpu", "0") or "0"))
        kind = (dig(node, "metadata.labels", {}) or {}).get(INSTANCE_TYPE, "unlabelled")
        if gpus > 0:
            found.setdefault(kind, dig(node, "metadata.name"))
    return found


def pod_name(kind: str) -> str:
    return "gpu-smoke-" + "".join(c if c.isalnum() else "-" for c in kind.lower())[:40].strip("-")


@pytest.mark.real_cluster("needs real NVIDIA GPUs and a container runtime to run nvidia-smi in a pod", needs="gpus")
def test_each_gpu_instance_type_runs_a_pod_that_sees_its_gpu(cluster, namespace):
    kinds = gpu_instance_types(cluster)
    if not kinds:
        pytest.skip("the cluster has no node with allocatable nvidia.com/gpu")
    problems = []
    for kind, node in sorted(kinds.items()):
        spec = {"restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "smi", "image": IMAGE, "command": ["nvidia-smi", "-L"],
                                "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
        # By instance type, so the scheduler picks any node of it; a node without the label is named.
        spec.update({"nodeSelector": {INSTANCE_TYPE: kind}} if kind != "unlabelled" else {"nodeName": node})
        cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name(kind)}, "spec": spec},
                      namespace=namespace)
    for kind in sorted(kinds):
        name = pod_name(kind)

        def finished(name=name):
            phase = dig(cluster.get_json("pod", name, namespace=namespace), "status.phase")
            return phase if phase in ("Succeeded", "Failed") else None

        try:
            phase = cluster.wait_for(finished, timeout=600, what=f"GPU smoke pod on {kind}")
        except Exception as exc:  # noqa: BLE001 - a pod that never finishes is this instance type's failure
            problems.append(f"{kind}: the pod asking for 1 GPU did not finish: {exc}")
            continue
        logs = cluster.kubectl("logs", name, "-n", namespace, check=False)
        if phase != "Succeeded" or "GPU 0:" not in logs:
            problems.append(f"{kind}: nvidia-smi -L in a pod with 1 GPU ended {phase}, printed {logs.strip()[:300]!r}")
    assert not problems, "GPU smoke: a pod asking for one GPU must see it on every GPU instance type:\n" + \
        "\n".join(problems)
