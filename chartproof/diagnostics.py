"""What a failed test leaves behind for a human (chart-testing style): events, describe output, pod logs,
helm status, all redacted. Secrets themselves are never dumped."""

from __future__ import annotations

import re
from pathlib import Path

from chartproof.kube import Kubectl, KubectlError
from chartproof.redaction import REDACTOR, Redactor


def folder_of(nodeid: str) -> str:
    """The folder of a test's diagnostics under ``<report dir>/diagnostics/`` (the HTML report links it)."""
    return re.sub(r"[^\w.-]+", "_", nodeid)[-120:]


DESCRIBED = "pods,deployments,statefulsets,daemonsets,jobs,services,persistentvolumeclaims,configmaps"


def collect(kubectl: Kubectl, namespace: str, dest: Path, *, helm=None, releases: list[tuple[str, str]] = (),
            redactor: Redactor = REDACTOR, max_logs: int = 20) -> str:
    """Write diagnostics of ``namespace`` into ``dest``; return a short summary for the test report."""
    dest.mkdir(parents=True, exist_ok=True)

    def save(name: str, text: str) -> None:
        (dest / name).write_text(redactor(text))  # each process's redactor knows what it rendered

    def run(*args: str) -> str:
        try:
            return kubectl(*args, timeout=60)
        except KubectlError as exc:
            return redactor(f"(kubectl {' '.join(args)} failed: {exc.stderr})\n")

    events = run("get", "events", "-n", namespace, "--sort-by=.lastTimestamp",
                 "-o", "custom-columns=TIME:.lastTimestamp,TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message")
    save("events.txt", events)
    save("describe.txt", run("describe", DESCRIBED, "-n", namespace))
    save("resources.txt", run("get", "all,pvc,configmaps,secrets,serviceaccounts,ingresses", "-n", namespace, "-o", "wide"))
    logs = []
    try:
        pods = kubectl.items("pods", namespace=namespace)[:max_logs]
    except KubectlError:
        pods = []
    for pod in pods:
        name = pod["metadata"]["name"]
        for ctr in (pod["spec"].get("containers") or []):
            text = run("logs", name, "-c", ctr["name"], "-n", namespace, "--tail=200")
            logs.append(f"==> {name}/{ctr['name']} <==\n{text}")
    save("logs.txt", "\n".join(logs) or "(no pods)\n")
    if helm is not None:
        for release, ns in releases:
            result = helm.run("status", release, "--namespace", ns, "--show-resources")
            save(f"helm-status-{release}.txt", result.stdout + result.stderr)
    warnings = [ln for ln in redactor(events).splitlines() if "Warning" in ln][-8:]
    summary = redactor(f"diagnostics for namespace {namespace}: {dest}")
    if warnings:
        summary += "\nlast warning events:\n" + "\n".join(warnings)
    return summary
