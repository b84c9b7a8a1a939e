"""Readiness of workloads, claims and pods, and waiting for it: with a useful explanation on timeout, and
stopping early, with the reason, when an object has clearly failed."""

from __future__ import annotations

import time
from collections.abc import Callable

from chartproof.kube import ALL_NAMESPACES, Kubectl, wait_for

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def workload_ready(obj: dict) -> tuple[bool, str]:
    """Whether a Deployment, StatefulSet, DaemonSet, Job, PVC or Pod is ready, and a one-line why-not."""
    kind = obj.get("kind")
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    meta = obj.get("metadata") or {}
    generation_seen = status.get("observedGeneration", 0) >= meta.get("generation", 0)
    if kind == "Deployment":
        want = spec.get("replicas", 1)
        ready = status.get("readyReplicas", 0)
        updated = status.get("updatedReplicas", 0)
        ok = generation_seen and ready >= want and updated >= want and status.get("replicas", 0) == want
        return ok, f"{ready}/{want} ready, {updated} updated"
    if kind == "StatefulSet":
        want = spec.get("replicas", 1)
        ready = status.get("readyReplicas", 0)
        ok = generation_seen and ready >= want and status.get("updatedReplicas", want) >= want
        return ok, f"{ready}/{want} ready"
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        ready = status.get("numberReady", 0)
        ok = generation_seen and ready == want and status.get("updatedNumberScheduled", 0) == want
        return ok, f"{ready}/{want} ready on their nodes"
    if kind == "Job":
        want = spec.get("completions", 1) or 1
        done = status.get("succeeded", 0)
        return done >= want, f"{done}/{want} completions"
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase", "Pending")
        return phase == "Bound", phase
    if kind == "Pod":
        phase = status.get("phase", "Pending")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        return phase == "Succeeded" or (phase == "Running" and ready), phase
    return True, "no readiness notion"


def pending_reasons(kubectl: Kubectl, namespace: str | None) -> list[str]:
    """For each unscheduled pod, the scheduler's own message (e.g. ``Insufficient nvidia.com/gpu``)."""
    return pending_among(kubectl.items("pods", namespace=namespace, all_namespaces=namespace is None))


def pending_among(pods: list[dict]) -> list[str]:
    """``pending_reasons`` of pods already read."""
    reasons = []
    for pod in pods:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                reasons.append(f"pod {pod['metadata']['name']}: {cond.get('message') or cond.get('reason')}")
    return reasons


HOPELESS_WAITING = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CrashLoopBackOff"}
STUCK_WAITING = {"CreateContainerConfigError", "CreateContainerError"}  # hopeless once they persist
STUCK_AFTER_S = 45
# On a cluster with a fixed set of nodes (embedded, kind: no autoscaler adds any), a pod the scheduler
# cannot place for this long will not be placed by waiting longer.
UNSCHEDULABLE_AFTER_S = 30


def hopeless(kubectl: Kubectl, namespace: str | None, first_seen: dict[str, float] | None = None, *,
             fixed_nodes: bool = False) -> str | None:
    """Why the pods of ``namespace`` will not become ready by waiting, or None while they still might.
    ``fixed_nodes``: no autoscaler can add a node, so a pod that stays unschedulable is hopeless too."""
    every = namespace is None
    return hopeless_among(lambda: kubectl.items("pods", namespace=namespace, all_namespaces=every),
                          lambda: kubectl.items("jobs", namespace=namespace, all_namespaces=every),
                          first_seen, fixed_nodes=fixed_nodes)


def hopeless_among(pods: Callable[[], list[dict]], jobs: Callable[[], list[dict]],
                   first_seen: dict[str, float] | None = None, *, fixed_nodes: bool = False) -> str | None:
    """``hopeless`` of the pods and Jobs these read (the Jobs are read only when no pod is hopeless)."""
    first_seen = first_seen if first_seen is not None else {}
    now = time.monotonic()
    for pod in pods():
        name = pod["metadata"]["name"]
        if fixed_nodes:
            unschedulable = next((c for c in (pod.get("status") or {}).get("conditions") or []
                                  if c.get("type") == "PodScheduled" and c.get("status") == "False"
                                  and c.get("reason") == "Unschedulable"), None)
            if unschedulable:
                since = first_seen.setdefault(f"{name}/unschedulable", now)
                if now - since >= UNSCHEDULABLE_AFTER_S:
                    return (f"pod {name} cannot be placed on this cluster's fixed nodes (no autoscaler): "
                            f"{(unschedulable.get('message') or '')[:300]}")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        statuses += (pod.get("status") or {}).get("initContainerStatuses") or []
        for status in statuses:
            waiting = (status.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            detail = f"pod {name} container {status.get('name')}: {reason}" + (
                f" ({waiting['message'][:200]})" if waiting.get("message") else "")
            if reason in HOPELESS_WAITING:
                return detail
            if reason in STUCK_WAITING:
                since = first_seen.setdefault(f"{name}/{status.get('name')}", now)
                if now - since >= STUCK_AFTER_S:
                    return detail
    for job in jobs():
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Failed" and cond.get("status") == "True":
                return f"Job {job['metadata']['name']} failed: {cond.get('reason')}: {cond.get('message', '')[:200]}"
    return None


def wait_ready(kubectl: Kubectl, *, namespace: str | None = None, objects: list[tuple[str, str, str | None]] | None = None,
               timeout: float = 180, fixed_nodes: bool = False) -> None:
    """Wait until the given (kind, name, namespace) objects, or every workload of ``namespace``, are ready.

    The objects are looked at through one list-and-watch per kind and namespace (``Kubectl.watches``):
    each change is evaluated when it arrives, and every half second regardless (the time-based rules:
    UNSCHEDULABLE_AFTER_S, STUCK_AFTER_S)."""
    with kubectl.watches() as watches:

        def targets() -> list[tuple[str, str, str | None, dict | None]]:
            """(kind, name, namespace, live object or None) of everything waited for."""
            if objects is not None:
                return [(kind, name, ns, watches.of(kind, ns).get(name, ns)) for kind, name, ns in objects]
            found = []
            for kind in WORKLOAD_KINDS:
                found += [(kind, item["metadata"]["name"], item["metadata"].get("namespace"), dict(item, kind=kind))
                          for item in watches.of(kind, namespace).items()]
            return found

        def unready() -> list[str]:
            out = []
            for kind, name, ns, obj in targets():
                ok, why = workload_ready(obj) if obj is not None else (False, "not found")
                if not ok:
                    where = f" in {ns}" if ns and ns != namespace else ""
                    out.append(f"{kind} {name}{where}: {why}")
            return out

        def explain() -> str:
            items = unready()
            items += pending_reasons(kubectl, namespace)[:5]
            return "; ".join(items) or "everything became ready at the last moment"

        what = f"readiness of {len(objects)} objects" if objects is not None else f"readiness of namespace {namespace}"
        namespaces = {ns for _, _, ns in objects} if objects is not None else {namespace}
        seen: dict[str, float] = {}

        def give_up() -> str | None:
            for ns in sorted(namespaces, key=str):
                where = ns if ns is not None else ALL_NAMESPACES
                reason = hopeless_among(watches.of("pods", where).items, watches.of("jobs", where).items, seen,
                                        fixed_nodes=fixed_nodes)
                if reason:
                    return reason
            return None

        wait_for(lambda: not unready(), timeout=timeout, what=what, explain=explain, interval=0.5, give_up=give_up,
                 pause=watches.pause)
