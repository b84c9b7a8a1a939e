"""One test run: its options, its private work directory, the cluster it brings up lazily and shares
with every pytest-xdist worker (the first worker that needs it starts it under a file lock), and, on the
embedded provider, the pool of clusters lent to tests that need one of their own
(``chartproof.clusters.pool``). The controller process tears them all down at the very end, on failure
and on Ctrl-C too."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chartproof import render_server
from chartproof.charts import ChartCatalog
from chartproof.clusters import Cluster, ClusterRecord, provider_for
from chartproof.clusters.existing import detect_simulated
from chartproof.clusters.pool import ClusterPool
from chartproof.errors import ChartproofError, UsageError
from chartproof.helm import Helm, load_values_file, skips_client_validation
from chartproof.kube import KubectlError
from chartproof.paths import REPORTS
from chartproof.redaction import REDACTOR
from chartproof.toolchain import Toolchain
from chartproof.versions import control_plane_pins, helm_pin

RUN_LABEL = "chartproof.dev/run"


@dataclass
class RunOptions:
    cluster: str = "embedded"
    nodes: str | None = None
    kube_context: str | None = None
    kubeconfig: str | None = None
    keep_cluster: bool = False
    charts: dict[str, str] = field(default_factory=dict)
    chart_versions: dict[str, str] = field(default_factory=dict)  # --chart-version NAME=VERSION (helm's --version)
    tools: dict[str, str] = field(default_factory=dict)
    customer_values: list[tuple[str, str]] = field(default_factory=list)
    report_dir: str = str(REPORTS)
    helm_version: str | None = None  # --chartproof-helm MINOR: the pin helm-MINOR for every helm call (versions.py)
    kube_version: str | None = None  # --chartproof-kube-version MINOR: the embedded control plane's Kubernetes
    pool_size: int = 0  # embedded clusters lent to exclusive tests (0: they share the run's cluster, one at a time)
    helm_extra_args: tuple[str, ...] = ()  # ct.yaml's helm-extra-args (chart_testing.run_helm_args)
    helm_extra_set_args: tuple[str, ...] = ()  # ct.yaml's helm-extra-set-args

    @staticmethod
    def parse_pairs(items: list[str] | None, what: str) -> dict[str, str]:
        return dict(RunOptions.parse_list(items, what))

    @staticmethod
    def parse_list(items: list[str] | None, what: str) -> list[tuple[str, str]]:
        """NAME=VALUE items in order; a name may repeat (several values files for one chart)."""
        out = []
        for item in items or []:
            name, sep, value = item.partition("=")
            if not sep or not name or not value:
                raise UsageError(f"bad {what} '{item}': expected NAME=VALUE")
            out.append((name.strip(), value.strip()))
        return out


class Run:
    def __init__(self, options: RunOptions, *, run_id: str | None = None, run_dir: Path | None = None,
                 controller_pid: int | None = None, is_controller: bool = True):
        self.options = options
        self.run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        self.run_dir = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix=f"chartproof-{self.run_id}-"))
        self.controller_pid = controller_pid or os.getpid()
        self.is_controller = is_controller
        self.report_dir = Path(options.report_dir) / self.run_id
        self.toolchain = Toolchain(explicit=options.tools)
        proc_dir = self.run_dir / f"proc-{os.getpid()}"
        self.catalog = ChartCatalog(options.charts, workdir=proc_dir, pull=lambda ref, dest: self.helm.pull(ref, dest),
                                    versions=options.chart_versions)
        self._helm: Helm | None = None
        self._helms: dict[str, Helm] = {}
        self._cluster: Cluster | None = None
        self._pool: ClusterPool | None = None
        self.redactor = REDACTOR

    # -- validation (before any test) -------------------------------------------------------------------
    def validate(self) -> None:
        """Fail fast, in one line, on bad options: unknown chart, bad --nodes, wrong context, unreachable cluster."""
        from chartproof.clusters.nodes import parse_shape

        for name, ref in self.catalog.refs.items():
            if ref.kind != "dir":
                self.catalog.local_dir(name)  # an unknown oci version or a broken .tgz stops the run here
        for chart, path in self.options.customer_values:
            self.catalog.ref(chart)  # unknown chart name: exit 4
            self.redactor.add_values(load_values_file(Path(path)))  # unreadable or malformed: exit 3
        helm_pin(self.toolchain.pins, self.options.helm_version)  # a helm or Kubernetes that is not pinned: exit 2
        if self.options.kube_version and self.options.cluster != "embedded":
            raise UsageError(f"--chartproof-kube-version chooses the embedded control plane's version; "
                             f"the {self.options.cluster} cluster's is its own")
        control_plane_pins(self.toolchain.pins, self.options.kube_version)
        if self.options.cluster not in ("embedded", "kind", "existing"):
            raise UsageError(f"unknown --cluster '{self.options.cluster}'; choose embedded, kind or existing")
        if self.options.cluster == "existing":
            if self.options.nodes:
                raise UsageError("--nodes does not apply to --cluster existing")
            self.provider().up(None, None)  # context exists and answers, or exit now
        elif self.options.nodes:
            parse_shape(self.options.nodes)

    # -- engine parts ----------------------------------------------------------------------------------
    @property
    def helm(self) -> Helm:
        if self._helm is None:
            pin = helm_pin(self.toolchain.pins, self.options.helm_version)
            # One render cache for every process of the run (xdist workers included). chartproof-render links
            # the current helm's SDK: an older helm of the matrix renders by itself.
            self._helm = Helm(self.toolchain.path(pin), self.catalog, workdir=self.run_dir / f"proc-{os.getpid()}",
                              render_cache=self.run_dir / "render-cache", use_renderer=pin == "helm")
            self._helm.extra_args = tuple(self.options.helm_extra_args)
            self._helm.extra_set_args = tuple(self.options.helm_extra_set_args)
        return self._helm

    def warm_renderer(self) -> threading.Thread | None:
        """Start this process's renderer and load the run's local charts into it, in a background thread (while
        pytest collects); None when renders do not go through the renderer."""
        try:
            helm = self.helm
            charts = [self.catalog.local_dir(name) for name, ref in self.catalog.refs.items() if ref.kind == "dir"]
        except ChartproofError:
            return None  # the same error comes back, reported, where a test asks for helm
        if not helm.use_renderer or render_server.choice() != render_server.TOOL:
            return None
        thread = threading.Thread(target=render_server.CLIENT.warm, args=(charts,), name="chartproof-render-warm",
                                  kwargs={"env": helm.env(), "log_path": helm.workdir / "chartproof-render.log"},
                                  daemon=True)
        thread.start()
        return thread

    def helm_for(self, cluster: Cluster | None) -> Helm:
        """The run's helm, driven against ``cluster`` (a cluster of the pool); the run's own for None.
        Renders stay shared: a copy differs only in the cluster it talks to."""
        if cluster is None:
            return self.helm
        if cluster.name not in self._helms:
            bound = copy.copy(self.helm)
            self._bind(bound, cluster)
            self._helms[cluster.name] = bound
        return self._helms[cluster.name]

    def provider(self):
        return provider_for(self.options.cluster, toolchain=self.toolchain,
                            kubeconfig=self.options.kubeconfig, context=self.options.kube_context,
                            kube_version=self.options.kube_version)

    @contextmanager
    def lock(self, name: str):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / f"{name}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @property
    def cluster_state(self) -> Path:
        return self.run_dir / "cluster.json"

    def cluster(self) -> Cluster:
        """The run's cluster, started on first use. Raises ProviderUnavailableError where it cannot run."""
        if self._cluster is not None:
            return self._cluster
        provider = self.provider()
        reason = provider.unavailable()
        if reason:
            from chartproof.errors import ProviderUnavailableError
            raise ProviderUnavailableError(reason)
        with self.lock("cluster"):
            if self.cluster_state.is_file():
                data = json.loads(self.cluster_state.read_text())
                if "error" in data:
                    raise ChartproofError(f"the run's cluster could not be started: {data['error']}")
                cluster = provider.attach(ClusterRecord(**data["record"]))
            else:
                try:
                    cluster = provider.up(None, self.options.nodes, owner=self.run_id, keep=self.options.keep_cluster)
                except ChartproofError as exc:
                    self.cluster_state.write_text(json.dumps({"error": exc.one_line()}))
                    raise
                record = cluster.record or ClusterRecord(name=cluster.name, provider=provider.name,
                                                         kubeconfig=str(cluster.kubeconfig), owner=self.run_id, keep=True)
                record.owner_pid = self.controller_pid
                if cluster.record is not None:
                    record.save()
                info = cluster.describe()
                if provider.name == "existing":
                    info["simulated"] = cluster.simulated = detect_simulated(cluster)
                self.cluster_state.write_text(json.dumps({"record": asdict(record), "info": info}, indent=2))
        if provider.name == "existing":
            cluster.simulated = json.loads(self.cluster_state.read_text())["info"].get("simulated", False)
        self._cluster = cluster
        self._bind(self.helm, cluster)
        return cluster

    def _bind(self, helm: Helm, cluster: Cluster) -> None:
        """Point ``helm`` at ``cluster``, and tell it whether that cluster validates fields for it."""
        helm.kubeconfig, helm.context = cluster.kubeconfig, cluster.context
        try:
            server = cluster.server_version()
        except ChartproofError:
            server = ""  # unreachable now: helm's own check stays, and helm reports the cluster itself
        version = self.toolchain.pins[helm_pin(self.toolchain.pins, self.options.helm_version)].version
        helm.server_checks_fields = skips_client_validation(version, server)

    def _cluster_pool(self) -> ClusterPool:
        if self._pool is None:
            size = self.options.pool_size if self.options.cluster == "embedded" else 0
            self._pool = ClusterPool(self.run_dir, self.lock, self.provider(), size=size, shape=self.options.nodes,
                                     owner=self.run_id, owner_pid=self.controller_pid)
        return self._pool

    @property
    def pool(self) -> ClusterPool | None:
        """The run's cluster pool: embedded provider with a pool size above 0, else None (exclusive tests then
        take the name lock on the run's cluster)."""
        pool = self._cluster_pool()
        return pool if pool.size > 0 else None

    def clean_for_reuse(self, cluster: Cluster) -> tuple[bool, str]:
        """Whether a pool cluster can be lent again (no helm release left on it in any namespace), and why not."""
        try:
            left = [f"{r.get('name')} in {r.get('namespace')}" for r in self.helm_for(cluster).releases()]
        except ChartproofError as err:
            return False, f"helm list failed: {err.message}"
        return not left, ("releases left: " + ", ".join(left)) if left else ""

    def cluster_info(self) -> dict | None:
        """The report's cluster: the run's shared one (else the pool's first), with the pool's clusters and
        the tests each one was lent to under ``pool``."""
        info = None
        if self.cluster_state.is_file():
            data = json.loads(self.cluster_state.read_text())
            info = data.get("info") or {"error": data.get("error")}
        pool = self._cluster_pool()
        lent = pool.lent() if pool.state_file.is_file() else []
        if lent:
            info = dict(info or pool.info() or {"provider": self.options.cluster})
            info["pool"] = lent
        elif info is None and pool.state_file.is_file() and pool.error():
            info = {"error": pool.error()}
        return info

    # -- bookkeeping of what the run created ----------------------------------------------------------
    def note(self, what: str, **fields) -> None:
        with self.lock("ledger"), open(self.run_dir / "ledger.jsonl", "a") as fh:
            fh.write(json.dumps({"what": what, **fields}) + "\n")

    def ledger(self) -> list[dict]:
        path = self.run_dir / "ledger.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    def open_releases(self, cluster: str | None = None) -> list[tuple[str, str]]:
        """(release, namespace) installed and not uninstalled, on ``cluster`` (by name) when given."""
        open_: dict[tuple[str, str], bool] = {}
        for entry in self.ledger():
            if cluster is not None and entry.get("cluster", cluster) != cluster:
                continue
            key = (entry.get("release", ""), entry.get("namespace", ""))
            if entry["what"] == "installed":
                open_[key] = True
            elif entry["what"] == "uninstalled":
                open_.pop(key, None)
        return list(open_)

    # -- the end -----------------------------------------------------------------------------------------
    def finish(self) -> list[str]:
        """Controller only: stop the pool's clusters, remove what the run left, then the cluster (unless kept).
        Returns notes."""
        notes: list[str] = []
        try:
            notes += self._cluster_pool().close(keep=self.options.keep_cluster)
        except ChartproofError as err:
            notes.append(err.one_line())
        if not self.cluster_state.is_file():
            shutil.rmtree(self.run_dir, ignore_errors=True)
            return notes
        data = json.loads(self.cluster_state.read_text())
        if "record" not in data:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            return notes
        record = ClusterRecord(**data["record"])
        provider = self.provider()
        try:
            if record.provider == "existing" or self.options.keep_cluster:
                cluster = self.cluster()
                notes += self._clean_leftovers(cluster)
            if self.options.keep_cluster and record.provider != "existing":
                notes.append(f"cluster {record.name} kept: KUBECONFIG={record.kubeconfig} "
                             f"(remove it with: chartproof cluster down {record.name})")
            elif record.provider != "existing":
                provider.down(record.name)
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return notes

    def _clean_leftovers(self, cluster: Cluster) -> list[str]:
        notes = []
        for release, namespace in self.open_releases(cluster.name):
            self.helm.uninstall(release, namespace, wait=True, timeout=120)
            notes.append(f"uninstalled leftover release {release} in {namespace}")
        try:
            cluster.kubectl("delete", "namespace", "-l", f"{RUN_LABEL}={self.run_id}", "--wait=true", "--timeout=120s")
        except KubectlError as exc:
            notes.append(f"could not delete the run's namespaces: {exc}")
        return notes
