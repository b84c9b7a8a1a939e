"""``nox -s bench``: the speed and memory goals of the embedded cluster, measured in one run.

0. Resolving every pinned tool from a warm cache (goal: under a second).
1. ``cluster up`` to a usable API with every node Ready, warm cache, default 10-node shape
   (goal: under 10 s on 2 cores; kind takes 12-17 s on a fast laptop). Median of ``--repeat`` runs.
2. Scheduling 100 GPU pods (a Deployment asking 1 ``nvidia.com/gpu`` each) until all are Running.
3. The same at scale: 1,000 simulated ml.p5.48xlarge nodes (8,000 GPUs) and 1,000 GPU pods,
   with the control plane's resident memory afterwards (goal: under 30 s for both).
4. The render tier against helm-unittest on charts/adaptive (chartproof.bench_render; goal: ratio <= 1).
5. Install, readiness and uninstall of each scenario against ``ct install`` of the same values file on the
   same cluster (chartproof.bench_install; goal: every ratio under 0.5).
6. The conformance run, ``pytest suites`` with the default workers and serially (chartproof.bench_conformance;
   goals: under 2 minutes, and at least 1.6 times faster than serial).

``--only cluster,render,installs,conformance`` runs some of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from chartproof.clusters.base import Cluster
from chartproof.clusters.embedded import EmbeddedProvider
from chartproof.clusters.nodes import NODE_LEASES, node_objects, parse_shape, taken_nodes
from chartproof.kube import wait_for
from chartproof.progress import Progress
from chartproof.toolchain import Toolchain

PARTS = ("cluster", "render", "installs", "conformance")


def gpu_deployment(name: str, replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "cuda", "image": "nvidia/cuda:12.4.1-base-ubuntu22.04",
                                                       "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}},
    }


def running_pods(cluster: Cluster, app: str) -> int:
    pods = cluster.kubectl.items("pods", namespace="default", selector=f"app={app}")
    return sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")


def time_pods(cluster: Cluster, count: int, timeout: float) -> float:
    started = time.monotonic()
    cluster.apply(gpu_deployment(f"gpu-{count}", count))
    wait_for(lambda: running_pods(cluster, f"gpu-{count}") >= count, timeout=timeout, what=f"{count} GPU pods Running",
             interval=0.25)
    return time.monotonic() - started


def control_plane_cpu_s(name: str) -> dict[str, float]:
    """CPU seconds (user + system) each of the cluster's processes has used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    usage: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if f"clusters/{name}/" not in cmdline:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        exe = Path(cmdline.split()[0]).name
        usage[exe] = usage.get(exe, 0) + (int(fields[11]) + int(fields[12])) / tick
    return usage


def time_large(cluster: Cluster, node_count: int, pod_count: int) -> dict[str, object]:
    """``node_count`` GPU nodes Ready, then ``pod_count`` GPU pods Running on them: the seconds of each, and
    the CPU seconds spent meanwhile by the control plane and by this benchmark (its readers and kubectl).
    Readiness is followed through one watch of the nodes and one of the pods: a list of 1,000 nodes or pods
    is megabytes, and polling it took CPU from the control plane it measures."""
    out: dict[str, object] = {}
    cpu_before, own_before = control_plane_cpu_s(cluster.name), os.times()
    began = time.monotonic()
    with Progress("bench", f"{node_count} nodes Ready, then {pod_count} GPU pods Running", every=15) as progress, \
            cluster.kubectl.watches() as watches:
        nodes = node_objects(parse_shape(f"ml.p5.48xlarge={node_count}"))
        cluster.kubectl.create(nodes, progress=lambda done: progress.update(f"{done}/{node_count} nodes created"))
        watched_nodes, watched_leases = watches.of("nodes"), watches.of("leases", NODE_LEASES)

        def taken() -> bool:  # Ready, and taken by kwok
            count = taken_nodes(watched_nodes.items(), watched_leases.items())
            progress.update(f"{count} nodes Ready and leased")
            return count >= node_count + 1

        wait_for(taken, timeout=900, what=f"{node_count} nodes Ready and leased", interval=1, pause=watches.pause)
        out[f"nodes_{node_count}_ready_s"] = round(time.monotonic() - began, 2)
        pods_began = time.monotonic()
        name = f"gpu-{pod_count}"
        watched_pods = watches.of("pods", "default")
        cluster.apply(gpu_deployment(name, pod_count))

        def running() -> int:
            count = sum(1 for p in watched_pods.items() if (p["metadata"].get("labels") or {}).get("app") == name
                        and (p.get("status") or {}).get("phase") == "Running")
            progress.update(f"{count}/{pod_count} pods Running")
            return count

        wait_for(lambda: running() >= pod_count, timeout=900, what=f"{pod_count} GPU pods Running", interval=1,
                 pause=watches.pause)
        out[f"schedule_{pod_count}_gpu_pods_on_{node_count}_nodes_s"] = round(time.monotonic() - pods_began, 2)
    cpu_after, own_after = control_plane_cpu_s(cluster.name), os.times()
    out["large_control_plane_cpu_s"] = {k: round(v - cpu_before.get(k, 0), 1) for k, v in sorted(cpu_after.items())}
    out["large_bench_cpu_s"] = round(sum(own_after[i] - own_before[i] for i in range(4)), 1)  # itself + kubectl
    out["control_plane_rss_mib"] = {k: round(v) for k, v in sorted(control_plane_rss_mib(cluster.name).items())}
    return out


def control_plane_rss_mib(name: str) -> dict[str, float]:
    """Resident memory of the cluster's processes (found by their kwokctl work directory on the command line)."""
    usage: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if f"clusters/{name}/" not in cmdline:
                continue
            exe = Path(cmdline.split()[0]).name
            rss = next(int(ln.split()[1]) for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if ln.startswith("VmRSS:"))
            usage[exe] = usage.get(exe, 0) + rss / 1024
        except (OSError, StopIteration, IndexError):
            continue
    return usage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chartproof-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="cluster starts to take the median of")
    parser.add_argument("--large-nodes", type=int, default=1000)
    parser.add_argument("--large-pods", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--only", default=",".join(PARTS), help=f"which parts: {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    results: dict[str, object] = {"cores": os.cpu_count(), "load_at_start": round(os.getloadavg()[0], 2)}
    goals: list[str] = []
    if "cluster" in parts:
        _cluster_figures(args, results, goals)
    if "render" in parts:
        from chartproof.bench_render import measure_render_tier, summary
        render = measure_render_tier()
        results["render_tier_vs_helm_unittest"] = {k: render[k] for k in ("ratio", "cpu_ratio", "wall_ratio", "mirror_ratio", "mirror_cpu_ratio", "mirror_wall_ratio") if k in render}
        goals += summary(render)
    if "installs" in parts:
        from chartproof.bench_install import measure_installs, table
        installs = measure_installs()
        results["installs_vs_ct_install_worst_ratio"] = installs.get("worst")
        goals += table(installs).splitlines()
    if "conformance" in parts:
        from chartproof.bench_conformance import measure_conformance
        from chartproof.bench_conformance import summary as conformance_summary
        conformance = measure_conformance()
        results["conformance_wall_s"] = conformance["parallel"]["wall_s"]
        results["conformance_serial_over_parallel"] = conformance.get("speedup")
        goals += conformance_summary(conformance)

    width = max(len(k) for k in results)
    print("\nChartproof benchmarks (embedded cluster, warm toolchain cache)")
    for key, value in results.items():
        print(f"  {key:<{width}}  {value}")
    print()
    for line in goals:
        print(f"  {line}")
    if args.json:
        print(json.dumps(results))
    return 0


def _cluster_figures(args, results: dict, goals: list[str]) -> None:
    """Cluster start, 100 GPU pods, and 1,000 nodes with 1,000 GPU pods."""

    provider = EmbeddedProvider()
    provider.toolchain.install()  # every pinned tool first: what is timed is the cluster, never a build

    began = time.monotonic()
    fresh = Toolchain()
    missing = [tool for tool in fresh.pins if fresh.find(tool) is None]
    results["toolchain_warm_resolve_all_s"] = round(time.monotonic() - began, 4)
    if missing:
        results["toolchain_missing"] = missing

    starts = []
    for _ in range(args.repeat):
        began = time.monotonic()
        cluster = provider.up(None, "default", owner="bench")
        starts.append(time.monotonic() - began)
        provider.down(cluster.name)
    results["cluster_up_10_nodes_s"] = round(statistics.median(starts), 2)
    results["cluster_up_runs_s"] = [round(s, 2) for s in starts]

    cluster = provider.up(None, "ml.p5.48xlarge=13,cpu=1", owner="bench")
    try:
        results["schedule_100_gpu_pods_s"] = round(time_pods(cluster, 100, timeout=300), 2)
    finally:
        provider.down(cluster.name)

    cluster = provider.up(None, "cpu=1", owner="bench")
    try:
        results.update(time_large(cluster, args.large_nodes, args.large_pods))
    finally:
        provider.down(cluster.name)

    goal = results["cluster_up_10_nodes_s"]
    goals.append(f"goal: 10-node cluster usable in under 10 s -> {'met' if goal < 10 else 'NOT met'} ({goal} s)")
    large = results[f"nodes_{args.large_nodes}_ready_s"] + results[
        f"schedule_{args.large_pods}_gpu_pods_on_{args.large_nodes}_nodes_s"]
    goals.append(f"goal: {args.large_nodes} GPU nodes Ready and {args.large_pods} GPU pods Running in under 30 s -> "
                 f"{'met' if large < 30 else 'NOT met'} ({large:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
