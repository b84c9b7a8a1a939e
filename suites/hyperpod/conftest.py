"""Fixtures of the HyperPod suite: renders as the README installs the chart (release `dependencies` in
`kube-system`), the unpacked chart and its local subcharts, and the team namespaces HyperPod task
governance would create on a real cluster."""

from __future__ import annotations

import re
from pathlib import Path

import hyperpod_facts as F
import pytest

from chartproof.errors import RenderError
from chartproof.kube import MANAGED_BY
from chartproof.manifest import Manifest

CHART = "hyperpod"
CRDS = ("--include-crds",)


_UNFETCHED = re.compile(r"missing in charts/ directory: (?P<names>[\w\-, ]+)")


def skip_if_unfetched(message: str, chart_dir: Path) -> None:
    """A build whose Chart.yaml fetches dependencies from remote repositories and does not ship them cannot
    render here (no internet): that is skipped with the reason, not a verdict on the chart."""
    match = _UNFETCHED.search(message or "")
    if not match:
        return
    names = {n.strip() for n in match["names"].split(",") if n.strip()}
    remote = F.remote_dependencies(chart_dir)
    if names and names <= set(remote):
        pytest.skip(f"the chart needs {', '.join(sorted(names))} from {', '.join(sorted({remote[n] for n in names}))} "
                    f"(not shipped in charts/, no internet here to fetch them)")


@pytest.fixture
def hp(render, chart_dir):
    """``hp(values, set, namespace=, chart=, crds=)``: render() of the umbrella as the README installs it
    (release dependencies, kube-system, CRDs included). ``hp.error(...)`` expects a refusal."""

    def run(values=(), set=None, *, namespace=F.NAMESPACE, chart=CHART, crds=True):
        try:
            return render(chart, values, set, release=F.RELEASE, namespace=namespace, args=CRDS if crds else ())
        except RenderError as err:
            skip_if_unfetched(err.message, chart_dir)
            raise

    def error(values=(), set=None, *, namespace=F.NAMESPACE, chart=CHART):
        message = render.error(chart, values, set, release=F.RELEASE, namespace=namespace)
        skip_if_unfetched(message, chart_dir)
        return message

    run.error = error
    return run


@pytest.fixture(scope="session")
def chart_dir(charts) -> Path:
    return charts.local_dir(CHART)


@pytest.fixture
def team_namespaces(cluster):
    """``ensure(manifest)`` creates the hyperpod-ns-<id> namespaces a render uses (HyperPod task governance
    makes them on a real cluster); they are removed afterwards."""
    created: list[str] = []

    def ensure(manifest: Manifest) -> None:
        for obj in manifest:
            ns = (obj.get("metadata") or {}).get("namespace") or ""
            if ns.startswith("hyperpod-ns-") and ns not in created and not cluster.kubectl.exists("namespace", ns):
                cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(MANAGED_BY)}})
                created.append(ns)

    yield ensure
    for ns in created:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
