"""A release a test installed: its live manifest, readiness, upgrade, and an uninstall that proves (and
makes sure) nothing of it is left behind.

"Uninstall and assert nothing is left" is one thing, here: ``Release.uninstall()`` records every object of
the release (manifest and hooks) first, uninstalls, waits for those objects to go, and when some stay it
deletes them itself, so one chart defect never poisons later tests (a stray ClusterRole would make every
later install of the chart fail on helm's ownership check), and then reports them as the defect they are.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from chartproof.errors import RenderError, WaitTimeout
from chartproof.helm import ReleaseRecord
from chartproof.kube import KubectlError, wait_for
from chartproof.manifest import Manifest, ref

# Kubernetes' namespace controller waits this long after a namespace's deletion before it empties it
# (namespaceDeletionGracePeriod in pkg/controller/namespace, a constant: no flag changes it).
NAMESPACE_DELETION_GRACE_S = 5.0

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
                  "StorageClass", "PriorityClass", "APIService", "MutatingWebhookConfiguration",
                  "ValidatingWebhookConfiguration", "ClusterIssuer", "ClusterSecretStore", "IngressClass",
                  "RuntimeClass", "CSIDriver", "ClusterTriggerAuthentication"}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
_KEEP = "helm.sh/resource-policy"


class Release:
    """A release a test installed; the ``install_chart`` fixture uninstalls it when the test ends."""

    def __init__(self, helm, cluster, chart, name: str, namespace: str, run=None, record: ReleaseRecord | None = None):
        self.helm = helm
        self.cluster = cluster
        self.chart = chart
        self.name = name
        self.namespace = namespace
        self.run = run
        self.installed = True
        self._record: tuple[ReleaseRecord, tuple[int, int]] | None = None
        self._remember(record)

    def _remember(self, record: ReleaseRecord | None) -> None:
        """Keep what helm printed of the release's revision, valid until the driver next changes the release."""
        self._record = (record, self.helm.changes(self.name, self.namespace)) if record else None

    def record(self) -> ReleaseRecord | None:
        """The stored release as the install or upgrade printed it, if no helm command changed it since."""
        if self._record and self._record[1] == self.helm.changes(self.name, self.namespace):
            return self._record[0]
        return None

    @property
    def manifest(self) -> Manifest:
        """What ``helm get manifest`` prints for the release."""
        record = self.record()
        return Manifest(record.manifest) if record else self.helm.get_manifest(self.name, self.namespace)

    def hooks(self) -> Manifest:
        """What ``helm get hooks`` prints for the release."""
        record = self.record()
        if record:
            return Manifest(record.hooks)
        result = self.helm.run("get", "hooks", self.name, "--namespace", self.namespace)
        return Manifest(result.stdout if result.ok else "")

    def workloads(self) -> list[tuple[str, str, str | None]]:
        return [(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace") or self.namespace)
                for o in self.manifest if o.get("kind") in WORKLOAD_KINDS]

    def wait_ready(self, timeout: float = 240) -> None:
        self.cluster.wait_ready(objects=self.workloads(), timeout=timeout)

    def upgrade(self, values: Any = (), set: dict | None = None, *, reuse_values: bool = False, wait: bool = True,
                timeout: float = 300):
        result = self.helm.upgrade(self.chart, self.name, self.namespace, values, set, reuse_values=reuse_values,
                                   timeout=timeout, record=True)
        self._remember(result.release)
        if not result.ok:
            raise RenderError(result.error)
        if wait:
            self.wait_ready(timeout)
        return result

    def objects(self) -> list[tuple[str, str, str | None]]:
        """(kind, name, namespace or None) of everything the release created, hooks included, except what
        the chart asks helm to keep (``helm.sh/resource-policy: keep``)."""
        out = []
        for manifest in (self.manifest, self.hooks()):
            for obj in manifest:
                meta = obj.get("metadata") or {}
                if (meta.get("annotations") or {}).get(_KEEP) == "keep":
                    continue
                namespace = None if obj["kind"] in CLUSTER_SCOPED else (meta.get("namespace") or self.namespace)
                out.append((obj["kind"], meta["name"], namespace))
        return out

    def uninstall(self, timeout: float = 300, *, check: bool = True) -> list[str]:
        """``helm uninstall``, then wait until every object of the release is gone.

        Returns the objects that stayed (and were then deleted by us); with ``check`` (the default) an
        AssertionError names them instead, so the test that uninstalled reports the defect.
        """
        if not self.installed:
            return []
        try:
            created = self.objects()
        except RenderError:
            created = []  # no release record: nothing to check against
        crds = [name for kind, name, _ in created if kind == "CustomResourceDefinition"]
        if crds:  # a CRD deleted before the API server serves it takes minutes to go (see wait_crds_served)
            try:
                self.cluster.wait_crds_served(crds, timeout=60)
            except WaitTimeout:
                pass  # the uninstall goes ahead; what it leaves is reported below
        # The suite waits itself, on the objects it recorded: helm's own --wait does not follow objects a
        # chart emits inside a v1 List, and would sit out its whole timeout on such a (valid) build.
        result = self.helm.uninstall(self.name, self.namespace, wait=False, timeout=timeout)
        self.installed = False
        failed = not result.ok and "not found" not in result.error
        left = self._wait_gone(created, timeout=5 if failed else timeout)
        if left:
            self._remove(left)
        names = [f"{kind} {ns + '/' if ns else ''}{name}" for kind, name, ns in left]
        if failed:
            raise RenderError(result.error + (f" (left behind, removed by the suite: {', '.join(names)})" if names else ""))
        if names and check:
            raise AssertionError(f"helm uninstall left {len(names)} object(s) of release {self.name} behind "
                                 f"(removed by the suite afterwards): {', '.join(names)}")
        return names

    def _namespace_grace_left(self, name: str) -> float | None:
        """None when namespace ``name`` is gone; else the seconds left of the namespace controller's grace
        (NAMESPACE_DELETION_GRACE_S after its deletionTimestamp, by this machine's clock, never more than the
        whole grace from now), 0 when it is not being deleted or its grace is over."""
        try:
            found = self.cluster.kubectl.get_json("namespace", name)
        except KubectlError as exc:
            if exc.not_found:
                return None
            raise
        stamp = (found.get("metadata") or {}).get("deletionTimestamp")
        if not stamp:
            return 0.0
        try:
            deleted = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
        return max(0.0, min(NAMESPACE_DELETION_GRACE_S, deleted + NAMESPACE_DELETION_GRACE_S - time.time()))

    def _exists(self, kind: str, name: str, namespace: str | None) -> bool:
        try:
            return self.cluster.kubectl.exists(kind, name, namespace)
        except KubectlError as exc:  # a kind whose CRD went with the release: its objects went too
            if "doesn't have a resource type" in exc.stderr or "no matches for kind" in exc.stderr:
                return False
            raise

    def _wait_gone(self, created, timeout: float) -> list[tuple[str, str, str | None]]:
        """Until every object of ``created`` is gone (or ``timeout``); what is still there then. A look stops
        at the first object still there, so looks are cheap and come every 0.1 s. The namespaces a release made
        go last: Kubernetes' namespace controller leaves a deleted namespace alone for 5 s before it empties it,
        so a namespace being deleted is not looked at again before then (one read, not fifty)."""
        pending = list(created)
        quiet_until = 0.0  # monotonic time before which a look would only find the namespace still there

        def gone() -> bool:
            nonlocal quiet_until
            if time.monotonic() < quiet_until:
                return False
            while pending:
                kind, name, namespace = pending[0]
                if kind == "Namespace":
                    left = self._namespace_grace_left(name)
                    if left is None:
                        pending.pop(0)
                        continue
                    quiet_until = time.monotonic() + left
                    return False
                if self._exists(kind, name, namespace):
                    return False
                pending.pop(0)
            return True

        try:
            wait_for(gone, timeout=timeout, what=f"objects of release {self.name} to go", interval=0.1)
        except Exception:  # noqa: BLE001 - what stays is the answer
            pass
        return [o for o in created if self._exists(*o)]  # every object again: none came back

    def _remove(self, objects) -> None:
        for kind, name, namespace in objects:
            where = ["-n", namespace] if namespace else []
            # Finalizers nobody will ever run (their controller went with the release) would keep it forever.
            self.cluster.kubectl("patch", kind, name, *where, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                                 check=False)
            self.cluster.kubectl("delete", kind, name, *where, "--ignore-not-found", "--wait=false", check=False)
        if self.run is not None:
            self.run.note("removed-leftovers", release=self.name, objects=[ref({"kind": k, "metadata": {
                "name": n, "namespace": ns}}) for k, n, ns in objects])

