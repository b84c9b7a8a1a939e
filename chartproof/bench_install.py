"""The install peer of ``nox -s bench``: Chartproof against chart-testing's ``ct install``, scenario by scenario.

For each scenario of ``fixtures/adaptive`` and ``fixtures/monitoring`` and one of ``fixtures/hyperpod``, on one
embedded cluster, one after the other, timed the same way (wall clock around the whole step):

- Chartproof: ``helm install`` of the scenario's values file, readiness of every workload of the release, and
  ``Release.uninstall()`` (uninstall, wait for every object to go, leftovers checked): what ``install_chart``
  and a test's ``rel.wait_ready()`` / ``rel.uninstall()`` do;
- ct: ``ct install --charts DIR --namespace NS --release-name NAME --helm-extra-set-args "--values=FILE"``
  (helm dependency build, helm install --wait, helm test, helm uninstall), with the pinned ct, helm and
  kubectl, on a copy of the chart in a throwaway git repository (ct reads charts from one) without its
  ``ci/`` folder, so ct installs exactly this values file, under the same release name.

Both install into a namespace made for the step beforehand and removed after it, outside the clock (HyperPod:
``kube-system``, as its README installs it). The ratio is Chartproof's seconds over ct's; the goal is every
ratio under 0.5. ``python3 -m chartproof.bench_install [--scenario CHART/NAME ...] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from chartproof.charts import ChartCatalog
from chartproof.clusters.base import Cluster
from chartproof.clusters.embedded import EmbeddedProvider
from chartproof.errors import ChartproofError, RenderError
from chartproof.helm import Helm, load_values_file
from chartproof.kube import MANAGED_BY
from chartproof.paths import FIXTURES
from chartproof.progress import Progress
from chartproof.redaction import Redactor
from chartproof.releases import Release
from chartproof.toolchain import Toolchain

GOAL = 0.5
# Release name and namespace as each chart's README installs it (None: a namespace of the step's own).
INSTALLS = {"adaptive": ("adaptive", None), "monitoring": ("adaptive-monitoring", None),
            "hyperpod": ("dependencies", "kube-system")}
HYPERPOD_SCENARIO = "defaults"
TIMEOUT = 600
SLOW_CT_S = 60.0  # a ct run past this (its usual run is 4-14 s here) keeps its last lines in the result
# The external-secrets scenario installs where the external-secrets.io/v1 API is served (ESO already on the
# cluster); the simulated cluster has no ESO, so both tools get the same stand-in API: these CRDs, unvalidated.
ESO_KINDS = (("SecretStore", "secretstores"), ("ExternalSecret", "externalsecrets"))


def default_scenarios() -> list[str]:
    """``CHART/NAME`` for every scenario of fixtures/adaptive and fixtures/monitoring, and HyperPod's defaults."""
    found = [f"{chart}/{p.stem}" for chart in ("adaptive", "monitoring") for p in sorted((FIXTURES / chart).glob("*.yaml"))]
    return [*found, f"hyperpod/{HYPERPOD_SCENARIO}"]


def stand_in_crds() -> list[dict]:
    return [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
             "metadata": {"name": f"{plural}.external-secrets.io", "labels": dict(MANAGED_BY)},
             "spec": {"group": "external-secrets.io", "scope": "Namespaced",
                      "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
                      "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                    "schema": {"openAPIV3Schema": {"type": "object",
                                                                   "x-kubernetes-preserve-unknown-fields": True}}}]}}
            for kind, plural in ESO_KINDS]


@dataclass
class Tools:
    helm: Path
    kubectl: Path
    ct: Path

    @classmethod
    def pinned(cls, toolchain: Toolchain) -> Tools:
        return cls(helm=toolchain.path("helm"), kubectl=toolchain.path("kubectl"), ct=toolchain.path("ct"))

    def env(self, cluster: Cluster, home: Path) -> dict[str, str]:
        """ct's environment: the pinned helm and kubectl first on PATH, the cluster's kubeconfig, private helm homes."""
        bin_dir = home / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name, target in (("helm", self.helm), ("kubectl", self.kubectl)):
            link = bin_dir / name
            if not link.exists():
                link.symlink_to(target)
        return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "KUBECONFIG": str(cluster.kubeconfig), "HELM_CACHE_HOME": str(home / "helm-cache"),
                "HELM_CONFIG_HOME": str(home / "helm-config"), "HELM_DATA_HOME": str(home / "helm-data")}


def ct_repository(charts: dict[str, Path], dest: Path) -> Path:
    """A git repository holding ``charts/<name>`` for each chart, without its ``ci/`` values: what ct reads."""
    for name, source in charts.items():
        shutil.copytree(source, dest / "charts" / name, ignore=shutil.ignore_patterns("ci"), symlinks=True)
    identity = ["-c", "user.name=chartproof-bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*identity, "commit", "-q", "-m", "charts under test"]):
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True, text=True)
    return dest


class InstallBench:
    """The two install paths on one cluster."""

    def __init__(self, cluster: Cluster, tools: Tools, workdir: Path):
        self.cluster = cluster
        self.tools = tools
        self.workdir = workdir
        self.catalog = ChartCatalog(None, workdir=workdir / "catalog")
        self.helm = Helm(tools.helm, self.catalog, workdir=workdir / "helm", kubeconfig=cluster.kubeconfig,
                         context=cluster.context)
        self.repo = ct_repository({name: self.catalog.local_dir(name) for name in INSTALLS}, workdir / "ct-repo")
        self._steps = 0

    def _namespace(self, chart: str) -> tuple[str, bool]:
        """The step's namespace and whether the bench made it (and removes it afterwards)."""
        fixed = INSTALLS[chart][1]
        if fixed:
            return fixed, False
        self._steps += 1
        name = f"bench-{chart}-{self._steps}"
        self.cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(MANAGED_BY)}})
        return name, True

    def _drop(self, namespace: str, made: bool) -> None:
        if made:
            self.cluster.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=180s", check=False,
                                 timeout=200)

    def chartproof(self, chart: str, values: Path) -> tuple[float, dict[str, float]]:
        """Seconds of Chartproof's install, readiness and checked uninstall of ``values``, and of each phase."""
        release = INSTALLS[chart][0]
        namespace, made = self._namespace(chart)
        try:
            started = time.monotonic()
            result = self.helm.install(chart, release, namespace, [values], timeout=TIMEOUT, record=True)
            if not result.ok:
                raise RenderError(f"{chart} {values.name}: helm install failed: {result.error}")
            installed = time.monotonic()
            rel = Release(self.helm, self.cluster, chart, release, namespace, record=result.release)
            rel.wait_ready(TIMEOUT)
            ready = time.monotonic()
            left = rel.uninstall(timeout=TIMEOUT, check=False)
            ended = time.monotonic()
            if left:
                raise ChartproofError(f"{chart} {values.name}: uninstall left {', '.join(left)}")
            phases = {"install_s": installed - started, "ready_s": ready - installed, "uninstall_s": ended - ready}
            return ended - started, {name: round(value, 2) for name, value in phases.items()}
        finally:
            self._drop(namespace, made)

    def ct(self, chart: str, values: Path) -> tuple[float, str]:
        """Seconds of ``ct install`` of ``values`` (install --wait, helm test, uninstall), and, when it took more
        than ``SLOW_CT_S``, where it waited longest and the last lines of what it printed, each line stamped
        with its second (secrets of ``values`` masked), to explain it."""
        namespace, made = self._namespace(chart)
        cmd = [str(self.tools.ct), "install", "--charts", f"charts/{chart}", "--namespace", namespace,
               "--release-name", INSTALLS[chart][0], "--helm-extra-set-args", f"--values={values}",
               "--helm-extra-args", f"--timeout {TIMEOUT}s", "--helm-dependency-extra-args", "--skip-refresh",
               "--target-branch", "main"]
        try:
            returncode, output, seconds = stamped_run(cmd, cwd=self.repo, timeout=TIMEOUT * 3,
                                                      env=self.tools.env(self.cluster, self.workdir / "ct-home"))
            if returncode != 0:
                tail = last_lines(output, values, 6)
                raise ChartproofError(f"ct install of {chart} {values.name} failed ({returncode}): {tail}")
            if seconds <= SLOW_CT_S:
                return seconds, ""
            return seconds, f"{longest_silence(output, values)}; its last lines: {last_lines(output, values)}"
        finally:
            self._drop(namespace, made)


def stamped_run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str, float]:
    """Run ``cmd`` (stderr with stdout) to the end, each line it prints stamped with the seconds since its start
    (``[  12.3s] Deleting release ...``): its exit code, the stamped output and its wall seconds. Killed after
    ``timeout`` seconds (exit code -9)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(f"[{time.monotonic() - started:6.1f}s] {line.rstrip()}")
        returncode = proc.wait()
    finally:
        watchdog.cancel()
        proc.stdout.close()
    return returncode, "\n".join(lines), time.monotonic() - started


_STAMP = re.compile(r"^\[\s*([0-9.]+)s\] ")


def longest_silence(stamped: str, values: Path) -> str:
    """Where a stamped output (``stamped_run``) waited longest: "longest silence 231.4 s, between '...' and '...'"
    (secrets of ``values`` masked)."""
    lines = [(float(m.group(1)), line[m.end():]) for line in stamped.splitlines() if (m := _STAMP.match(line))]
    if len(lines) < 2:
        return "no output to time"
    gap, before, after = max(((b[0] - a[0], a[1], b[1]) for a, b in zip(lines, lines[1:], strict=False)),
                             key=lambda item: item[0])
    return values_redactor(values)(f"longest silence {gap:.1f} s, between {before.strip()[:120]!r} and {after.strip()[:120]!r}")


def last_lines(output: str, values: Path, count: int = 12) -> str:
    """The last ``count`` lines of ``output`` joined by " | ", every secret of the values file masked."""
    return values_redactor(values)(" | ".join(output.strip().splitlines()[-count:]))


def values_redactor(values: Path) -> Redactor:
    """A redactor that masks every secret of the values file ``values``."""
    redactor = Redactor()
    redactor.add_values(load_values_file(values))
    return redactor


def measure_installs(scenarios: list[str] | None = None, *, shape: str | None = None,
                     toolchain: Toolchain | None = None) -> dict:
    """Per scenario (``CHART/NAME``): Chartproof's and ct's seconds and their ratio, on one embedded cluster.

    Returns ``{"cluster", "goal", "scenarios": {id: {"chartproof_s", "ct_s", "ratio"}}, "worst", "met"}``;
    a scenario either tool could not install has ``"error"`` instead of the figures, and the goal is not met.
    """
    toolchain = toolchain or Toolchain()
    toolchain.install()  # every pinned tool first: what is timed is installing, never a build
    tools = Tools.pinned(toolchain)
    provider = EmbeddedProvider(toolchain)
    cluster = provider.up(None, shape, owner="bench-install")
    out: dict = {"cluster": cluster.name, "goal": GOAL, "scenarios": {}}
    workdir = Path(tempfile.mkdtemp(prefix="chartproof-bench-install-"))
    try:
        bench = InstallBench(cluster, tools, workdir)
        cluster.apply(stand_in_crds())
        for item in scenarios or default_scenarios():
            chart, _, name = item.partition("/")
            values = FIXTURES / chart / f"{name}.yaml"
            with Progress("bench install", f"{item}: chartproof, then ct install", every=20) as progress:
                try:
                    ours, phases = bench.chartproof(chart, values)
                    progress.update(f"chartproof {ours:.1f}s; ct install")
                    theirs, slow = bench.ct(chart, values)
                except ChartproofError as err:
                    out["scenarios"][item] = {"error": err.message}
                    continue
            out["scenarios"][item] = {"chartproof_s": round(ours, 2), "ct_s": round(theirs, 2),
                                      "ratio": round(ours / theirs, 3), "chartproof_phases": phases,
                                      **({"ct_slow_output": slow} if slow else {})}
    finally:
        provider.down(cluster.name)
        shutil.rmtree(workdir, ignore_errors=True)
    ratios = [s["ratio"] for s in out["scenarios"].values() if "ratio" in s]
    out["worst"] = max(ratios) if ratios else None
    out["met"] = bool(ratios) and len(ratios) == len(out["scenarios"]) and max(ratios) < GOAL
    return out


def table(result: dict) -> str:
    lines = [f"{'scenario':<40} {'chartproof':>10} {'ct install':>10} {'ratio':>6}   chartproof's install / ready / uninstall"]
    for item, row in result["scenarios"].items():
        if "error" in row:
            lines.append(f"{item:<40} error: {row['error']}")
        else:
            phases = row.get("chartproof_phases", {})
            split = " / ".join(f"{phases[k]:.1f}s" for k in ("install_s", "ready_s", "uninstall_s") if k in phases)
            lines.append(f"{item:<40} {row['chartproof_s']:>9.1f}s {row['ct_s']:>9.1f}s {row['ratio']:>6.2f}   {split}")
            if row.get("ct_slow_output"):
                lines.append(f"  ct took over {SLOW_CT_S:.0f} s: {row['ct_slow_output']}")
    verdict = "met" if result["met"] else "NOT met"
    lines.append(f"goal: every ratio under {result['goal']} ({verdict}; worst {result['worst']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chartproof.bench_install", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", default=None, metavar="CHART/NAME",
                        help="a scenario to time (repeatable; default: every adaptive and monitoring scenario "
                             f"and hyperpod/{HYPERPOD_SCENARIO})")
    parser.add_argument("--nodes", default=None, metavar="SHAPE", help="the cluster's shape (default: the run's default)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args(argv)
    try:
        result = measure_installs(args.scenario, shape=args.nodes)
    except ChartproofError as err:
        print(err.one_line(), file=sys.stderr)
        return err.exit_code
    print(table(result))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
