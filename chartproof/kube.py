"""How Chartproof talks to a cluster: every call names its kubeconfig and context explicitly.

``Kubectl`` is the one handle. Reads (``get_json``, ``items``, ``exists``) and watches go through the
official ``kubernetes`` Python client (``ApiReader``: about a millisecond a read on a kept-alive connection,
where a ``kubectl get`` process costs about 50 ms of CPU); they return what ``kubectl get -o json`` prints
and fail with the same ``KubectlError``. Bulk creation (``create``: a thousand simulated nodes) posts through
the same client, several requests at once. Everything else (apply, delete, patch, diagnostics, every command
the report prints for a person to rerun) runs the real kubectl binary. ``CHARTPROOF_READS=kubectl`` sends
the reads to kubectl too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chartproof import yamlio
from chartproof.errors import ClusterUnreachableError, WaitTimeout

MANAGED_BY = {"app.kubernetes.io/managed-by": "chartproof"}


class KubectlError(Exception):
    """A kubectl command, or a read made in its place, that failed; ``stderr`` is what kubectl prints."""

    def __init__(self, args: list[str], returncode: int, stderr: str):
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"kubectl {' '.join(args)} failed ({returncode}): {self.stderr.splitlines()[-1] if self.stderr else ''}")

    @property
    def not_found(self) -> bool:
        return "NotFound" in self.stderr or "not found" in self.stderr


def _get_args(kind: str, name: str | None, namespace: str | None, selector: str | None,
              all_namespaces: bool) -> list[str]:
    """The ``kubectl get`` arguments of a read (also the command an error message names)."""
    args = ["get", kind]
    if name:
        args.append(name)
    if all_namespaces:
        args.append("--all-namespaces")
    elif namespace:
        args += ["-n", namespace]
    if selector:
        args += ["-l", selector]
    return args


class Kubectl:
    """The cluster of ``kubeconfig``/``context``: reads through the API client, the rest through kubectl."""

    def __init__(self, binary: Path, kubeconfig: Path, context: str | None = None, redact: Callable[[str], str] | None = None):
        self.binary = Path(binary)
        self.kubeconfig = Path(kubeconfig)
        self.context = context
        self.redact = redact or (lambda text: text)
        self._api: ApiReader | None = None

    def base(self) -> list[str]:
        cmd = [str(self.binary), "--kubeconfig", str(self.kubeconfig)]
        if self.context:
            cmd += ["--context", self.context]
        return cmd

    def __call__(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run([*self.base(), *args], input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(list(args), proc.returncode, self.redact(proc.stderr))
        return proc.stdout

    @property
    def api(self) -> ApiReader | None:
        """The API client for reads, or None when reads go to kubectl (``CHARTPROOF_READS=kubectl``, or a
        kubeconfig the Python client cannot load: kubectl then reads it and says what is wrong)."""
        if os.environ.get("CHARTPROOF_READS") == "kubectl":
            return None
        if self._api is None:
            self._api = ApiReader(self.kubeconfig, self.context, self.redact)
        return self._api if self._api.usable else None

    def _api_for(self, kind: str) -> ApiReader | None:
        """The API client for a request on ``kind``: None without one, or for what only kubectl takes (a list of
        kinds ``a,b`` or a ``kind/name``)."""
        return None if any(c in kind for c in ",/") else self.api

    def get_json(self, kind: str, name: str | None = None, namespace: str | None = None,
                 selector: str | None = None, all_namespaces: bool = False) -> dict[str, Any]:
        api = self._api_for(kind)
        if api is not None:
            return api.get_json(kind, name, namespace=namespace, selector=selector, all_namespaces=all_namespaces)
        return json.loads(self(*_get_args(kind, name, namespace, selector, all_namespaces), "-o", "json"))

    def items(self, kind: str, namespace: str | None = None, selector: str | None = None,
              all_namespaces: bool = False) -> list[dict]:
        return self.get_json(kind, namespace=namespace, selector=selector, all_namespaces=all_namespaces)["items"]

    def lists_whole(self, kind: str) -> bool:
        """Whether the API server answers an unpaged list of every ``kind`` object: it serves such a list from
        its watch cache, which a type nobody has read yet (a CRD just made) is still filling. A no comes at
        once through the client; through kubectl, which waits the server's Retry-After, after a second."""
        api = self.api
        if api is not None:
            return api.lists_whole(kind)
        try:
            self("get", kind, "--all-namespaces", "--chunk-size=0", "-o", "name", "--request-timeout=10s", timeout=30)
        except KubectlError:
            return False
        return True

    def wait_established(self, crds: list[str], timeout: float = 60) -> None:
        """Until every CRD of ``crds`` (names) has its Established condition True. Unlike ``kubectl wait
        --for=condition=Established``, which fails at once on a CRD the API server has stored but not yet given
        a status ("<nil> is of the type <nil>"), a CRD without conditions is simply not there yet. Stops at once
        when the server refuses a CRD's names (NamesAccepted False: another CRD owns them), with its message."""
        pending = list(crds)
        conditions: dict[str, dict[str, dict]] = {}

        def established() -> bool:
            for name in pending:
                status = self.get_json("customresourcedefinition", name).get("status") or {}
                conditions[name] = {c.get("type"): c for c in status.get("conditions") or []}
            pending[:] = [name for name in pending if conditions[name].get("Established", {}).get("status") != "True"]
            return not pending

        def give_up() -> str | None:
            refused = [(name, conditions.get(name, {}).get("NamesAccepted", {})) for name in pending]
            return "; ".join(f"{name}: {c.get('reason')}: {c.get('message')}" for name, c in refused
                             if c.get("status") == "False") or None

        def explain() -> str:
            def shown(name: str) -> str:
                found = conditions.get(name) or {}
                return ", ".join(f"{kind}={c.get('status')}" for kind, c in found.items()) or "no conditions yet"
            return "; ".join(f"{name}: {shown(name)}" for name in pending)

        wait_for(established, timeout=timeout, what=f"CRDs {', '.join(crds)} Established", interval=0.05,
                 explain=explain, give_up=give_up)

    def exists(self, kind: str, name: str, namespace: str | None = None) -> bool:
        api = self._api_for(kind)
        if api is not None:
            return api.exists(kind, name, namespace)
        args = ["get", kind, name, "--ignore-not-found", "-o", "name"]
        if namespace:
            args += ["-n", namespace]
        return bool(self(*args).strip())

    def watches(self) -> Watches:
        """A set of list-and-watch caches, closed with the ``with`` block (see ``Watches``)."""
        return Watches(self)

    def apply(self, obj: dict | list | str, namespace: str | None = None, server_side: bool = False) -> str:
        if isinstance(obj, str):
            text = obj
        elif isinstance(obj, list):
            text = yamlio.dump_all(obj, sort_keys=False)
        else:
            text = yamlio.dump(obj, sort_keys=False)
        args = ["apply", "-f", "-"]
        if server_side:
            args += ["--server-side", "--force-conflicts", "--field-manager", "chartproof"]
        if namespace:
            args += ["-n", namespace]
        return self(*args, input=text)

    def create(self, objects: list[dict], *, workers: int = 8, progress: Callable[[int], None] | None = None) -> None:
        """Create many objects at once, ``workers`` requests in flight (a kubectl process sends one at a time,
        about 15 nodes a second on a busy control plane); an object that already exists counts as made.
        ``progress`` hears how many are done. Without the API client, kubectl applies them."""
        api = self.api
        if api is None:
            self.apply(objects)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done, _ in enumerate(pool.map(api.create, objects), start=1):
                if progress and (done % 100 == 0 or done == len(objects)):
                    progress(done)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        """Ask for ``kind/name`` to go, without waiting for it and without minding that it is gone already
        (``kubectl delete --wait=false --ignore-not-found``); through the API client when there is one."""
        api = self._api_for(kind)
        if api is not None:
            api.delete(kind, name, namespace)
            return
        self("delete", kind, name, *(["-n", namespace] if namespace else []), "--wait=false", "--ignore-not-found")

    def server_version(self, timeout: float = 15) -> str:
        try:
            out = self("version", "-o", "json", f"--request-timeout={int(timeout)}s", timeout=timeout + 5)
        except (KubectlError, subprocess.TimeoutExpired) as exc:
            detail = exc.stderr.splitlines()[-1] if isinstance(exc, KubectlError) and exc.stderr else str(exc)
            raise ClusterUnreachableError(f"cannot reach the API server of {self.kubeconfig}"
                                          + (f" (context {self.context})" if self.context else "")
                                          + f": {detail}") from None
        data = json.loads(out)
        return data.get("serverVersion", {}).get("gitVersion", "unknown")


# -- reads through the API client -----------------------------------------------------------------------

_DISCOVERY_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                     "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
READ_TIMEOUT = (10, 60)  # seconds: connect, read
LIST_CHUNK = 500  # objects per page of a list, as ``kubectl get`` reads (its --chunk-size default)
WATCH_SECONDS = 30  # the server ends each watch after this long; it is resumed from the last resourceVersion


@dataclass(frozen=True)
class ApiResource:
    """One resource type the API server serves, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def names(self) -> set[str]:
        """What ``kubectl get NAME`` accepts for it: plural, singular, short names and the Kind, any case."""
        return {self.plural, self.singular or self.kind.lower(), self.kind.lower(), *self.short_names}

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        where = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{root}{where}/{self.plural}" + (f"/{name}" if name else "")


_SAID_NO_CLIENT: list[bool] = []  # the missing-package notice, once per process


class ApiReader:
    """Reads and watches with the official ``kubernetes`` client, configured from the kubeconfig and context
    exactly as kubectl uses them (tokens, client certificates, exec credential plugins, the context's
    namespace). Resource names are resolved with API discovery, cached here and refreshed on a miss, so
    a CRD created mid-run is found."""

    def __init__(self, kubeconfig: Path, context: str | None, redact: Callable[[str], str] | None = None):
        self.kubeconfig = Path(kubeconfig)
        self.context = context
        self.redact = redact or (lambda text: text)
        self._lock = threading.Lock()
        self._client: Any = None
        self._client_pid = 0
        self._namespace = "default"
        self._load_error: str | None = None
        self._resources: list[ApiResource] | None = None

    # -- configuration ---------------------------------------------------------------------------------
    def _api_client(self):
        """The ``ApiClient`` of this process (a forked child makes its own connections)."""
        with self._lock:
            if self._client is None or self._client_pid != os.getpid():
                from kubernetes import client as k8s_client
                from kubernetes import config as k8s_config

                configuration = k8s_client.Configuration()
                k8s_config.load_kube_config(config_file=str(self.kubeconfig), context=self.context,
                                            client_configuration=configuration, persist_config=False)
                contexts, current = k8s_config.list_kube_config_contexts(str(self.kubeconfig))
                chosen = next((c for c in contexts if c.get("name") == self.context), current) if self.context else current
                self._namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
                self._client = k8s_client.ApiClient(configuration)
                self._client_pid = os.getpid()
            return self._client

    @property
    def usable(self) -> bool:
        """Whether the Python client can load this kubeconfig (if not, kubectl is asked and explains). Without
        the ``kubernetes`` package at all, every read is a kubectl process (about 40 ms, not 1.5): said once."""
        if self._load_error is None and self._client is None:
            try:
                self._api_client()
            except Exception as exc:  # noqa: BLE001 - any loading failure hands the reads back to kubectl
                self._load_error = str(exc) or type(exc).__name__
                if isinstance(exc, ImportError) and not _SAID_NO_CLIENT:
                    _SAID_NO_CLIENT.append(True)
                    print("chartproof: reads go through kubectl, not the API client: the kubernetes package is not "
                          "installed (pip install 'kubernetes>=37', or pip install -e . in this repository)",
                          file=sys.stderr, flush=True)
        return self._load_error is None

    @property
    def namespace(self) -> str:
        """The namespace kubectl uses when none is given: the context's, else ``default``."""
        self._api_client()
        return self._namespace

    # -- HTTP ------------------------------------------------------------------------------------------
    def request(self, path: str, query: list[tuple[str, str]] | None = None, *, args: list[str],
                accept: str = "application/json", stream: bool = False, timeout: tuple[float, float] = READ_TIMEOUT,
                method: str = "GET", body: dict | None = None, retry: bool = True):
        """``method`` (GET unless told) on ``path``: the parsed JSON body (or, with ``stream``, the open urllib3
        response). An HTTP error or an unreachable server raises ``KubectlError`` worded as kubectl words it.
        Without ``retry`` a GET (no body) is sent once: a 429 is an error at once, not a wait for its Retry-After."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        api_client = self._api_client()
        headers = {"Accept": accept, **({"Content-Type": "application/json"} if body is not None else {})}
        _, url, headers, payload, _ = api_client.param_serialize(method, path, query_params=query or [],
                                                                header_params=headers, body=body,
                                                                auth_settings=["BearerToken"])
        try:
            if retry:
                response = api_client.rest_client.request(method, url, headers=headers, body=payload,
                                                          _request_timeout=timeout).response
            else:
                response = api_client.rest_client.pool_manager.request(
                    method, url, headers=headers, timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                    preload_content=False, retries=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(args, exc) from None
        except ApiException as exc:  # how the client reports a TLS failure
            raise KubectlError(args, 1, self.redact(f"Unable to connect to the server: {exc}")) from None
        if response.status >= 400:
            try:
                body = response.data
            finally:
                response.release_conn()
            raise KubectlError(args, 1, self.redact(_server_error(response.status, body)))
        if stream:
            return response
        try:
            body = response.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(args, exc) from None
        finally:
            response.release_conn()
        return json.loads(body)

    def _unreachable(self, args: list[str], exc: Exception) -> KubectlError:
        host = self._api_client().configuration.host
        if "refused" in str(exc).lower():
            text = f"The connection to the server {host.split('://')[-1]} was refused - did you specify the right host or port?"
        else:
            text = f"Unable to connect to the server: {host}: {exc}"
        return KubectlError(args, 1, self.redact(text))

    # -- discovery -------------------------------------------------------------------------------------
    def resources(self, refresh: bool = False) -> list[ApiResource]:
        """Every resource type served, in kubectl's order of preference: the core group first, then the
        groups in the order the server lists them, each group's preferred version first."""
        if self._resources is None or refresh:
            found: list[ApiResource] = []
            for root in ("/api", "/apis"):
                doc = self.request(root, accept=_DISCOVERY_ACCEPT, args=["api-resources"])
                if doc.get("kind") == "APIGroupDiscoveryList":
                    found += _aggregated_resources(doc)
                else:
                    found += self._legacy_resources(root, doc)
            self._resources = found
        return self._resources

    def _legacy_resources(self, root: str, doc: dict) -> list[ApiResource]:
        """Discovery for servers without the aggregated form: one request per group version."""
        if root == "/api":
            versions = [("", v) for v in doc.get("versions") or []]
        else:
            versions = []
            for group in doc.get("groups") or []:
                preferred = (group.get("preferredVersion") or {}).get("version")
                listed = [v["version"] for v in group.get("versions") or []]
                versions += [(group["name"], v) for v in sorted(listed, key=lambda v: v != preferred)]
        found = []
        for group, version in versions:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                listing = self.request(path, args=["api-resources"])
            except KubectlError:
                continue  # an aggregated API that is down: kubectl skips it too
            for res in listing.get("resources") or []:
                if "/" in res["name"]:
                    continue
                found.append(ApiResource(group, version, res["name"], res["kind"], bool(res.get("namespaced")),
                                         res.get("singularName") or "", tuple(res.get("shortNames") or ())))
        return found

    def resolve(self, kind: str) -> ApiResource:
        """The resource type ``kubectl get KIND`` would read: ``pods``, ``pod``, ``po``, ``Pod``,
        ``deployments.apps``, ``deployments.v1.apps``, ``scaledobjects.keda.sh``, ``crd`` ..."""
        for refresh in (False, True):  # a miss may be a type created since discovery ran (a new CRD)
            match = _match(self.resources(refresh=refresh), kind.lower())
            if match:
                return match
        raise KubectlError(["get", kind], 1, f'error: the server doesn\'t have a resource type "{kind}"')

    # -- reads -----------------------------------------------------------------------------------------
    def get_json(self, kind: str, name: str | None = None, namespace: str | None = None,
                 selector: str | None = None, all_namespaces: bool = False) -> dict[str, Any]:
        """What ``kubectl get KIND [NAME] -o json`` prints: the object, or a ``List`` whose items carry
        their ``apiVersion`` and ``kind``."""
        args = [*_get_args(kind, name, namespace, selector, all_namespaces), "-o", "json"]
        resource = self.resolve(kind)
        if name:
            if selector:
                raise KubectlError(args, 1, "error: name cannot be provided when a selector is specified")
            try:
                return _as_printed(self.request(resource.path(namespace or self.namespace, name), args=args))
            except KubectlError as exc:
                raise self._type_gone(kind, exc) from None
        try:
            items, _ = self.list(resource, None if all_namespaces else (namespace or self.namespace), selector, args=args)
        except KubectlError as exc:
            raise self._type_gone(kind, exc) from None
        return {"apiVersion": "v1", "items": [_as_printed(item) for item in items], "kind": "List",
                "metadata": {"resourceVersion": ""}}

    def exists(self, kind: str, name: str, namespace: str | None = None) -> bool:
        args = ["get", kind, name, "--ignore-not-found", "-o", "name"] + (["-n", namespace] if namespace else [])
        resource = self.resolve(kind)
        try:
            self.request(resource.path(namespace or self.namespace, name), args=args)
        except KubectlError as exc:
            if exc.not_found and "Error from server (NotFound)" in exc.stderr:
                return False
            raise self._type_gone(kind, exc) from None
        return True

    def lists_whole(self, kind: str) -> bool:
        """Whether the server answers an unpaged list of every ``kind`` object now (from its watch cache; a 429
        while the cache fills, said here at once instead of after the client waited the Retry-After second)."""
        try:
            resource = self.resolve(kind)
            self.request(resource.path(None), args=_get_args(kind, None, None, None, True), retry=False)
        except KubectlError:
            return False
        return True

    def _type_gone(self, kind: str, exc: KubectlError) -> KubectlError:
        """A bare 404 (no Status) means the path itself is unknown: the resource type went since discovery
        (its CRD was deleted). Then the error is kubectl's for an unknown type; any other error stays as it was."""
        if "the server responded with status 404" in exc.stderr and not _match(self.resources(refresh=True), kind.lower()):
            return KubectlError(["get", kind], 1, f'error: the server doesn\'t have a resource type "{kind}"')
        return exc

    def list(self, resource: ApiResource, namespace: str | None, selector: str | None = None, *,
             args: list[str] | None = None, chunk: int = LIST_CHUNK) -> tuple[list[dict], str]:
        """The objects of ``resource`` in ``namespace`` (None: every namespace), each with its
        ``apiVersion`` and ``kind``, and the list's resourceVersion (where a watch starts); read ``chunk``
        objects a page (0: in one piece)."""
        query = [("labelSelector", selector)] if selector else []
        args = args or _get_args(resource.plural, None, namespace, selector, namespace is None)
        found: list[dict] = []
        version, token = None, ""
        while True:  # in pages, as kubectl reads: a type whose watch cache is still filling is read from etcd
            page = [*query, *([("limit", str(chunk))] if chunk else []), *([("continue", token)] if token else [])]
            try:
                body = self.request(resource.path(namespace), page, args=args)
            except KubectlError as exc:
                if not token or "410" not in exc.stderr:
                    raise
                return self.list(resource, namespace, selector, args=args, chunk=0)  # continue expired: whole
            meta = body.get("metadata") or {}
            version = meta.get("resourceVersion", "") if version is None else version
            found += body.get("items") or []
            token = meta.get("continue") or ""
            if not token or not chunk:
                break
        items = [{"apiVersion": resource.api_version, "kind": resource.kind, **item} for item in found]
        return items, version

    def create(self, obj: dict) -> None:
        """POST one object to its collection, as ``kubectl create`` does; one that already exists counts as made."""
        group, _, version = obj["apiVersion"].rpartition("/")
        resource = self.resolve(f"{obj['kind']}.{version}.{group}" if group else obj["kind"])
        namespace = (obj.get("metadata") or {}).get("namespace") or self.namespace
        try:
            self.request(resource.path(namespace), method="POST", body=obj, args=["create", "-f", "-"])
        except KubectlError as exc:
            if "(AlreadyExists)" not in exc.stderr:
                raise

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        """DELETE one object (background propagation, as kubectl's default); one already gone counts as deleted."""
        resource = self.resolve(kind)
        args = ["delete", kind, name, *(["-n", namespace] if namespace else [])]
        try:
            self.request(resource.path(namespace, name), method="DELETE",
                         body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
                         args=args)
        except KubectlError as exc:
            if "(NotFound)" not in exc.stderr:
                raise

    def watch(self, resource: ApiResource, namespace: str | None, resource_version: str,
              selector: str | None = None):
        """An open watch from ``resource_version`` (bookmarks on; the server ends it after WATCH_SECONDS)."""
        query = [("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(WATCH_SECONDS))]
        if selector:
            query.append(("labelSelector", selector))
        return self.request(resource.path(namespace), query, stream=True, timeout=(10, WATCH_SECONDS + 30),
                            args=[*_get_args(resource.plural, None, namespace, selector, namespace is None), "--watch"])


def _as_printed(obj: dict) -> dict:
    """An object as ``kubectl get -o json`` prints it: without ``metadata.managedFields``."""
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


def _server_error(status: int, body: bytes) -> str:
    """kubectl's wording of an API error: ``Error from server (NotFound): pods "x" not found``."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        reason = doc.get("reason") or ""
        return f"Error from server{f' ({reason})' if reason else ''}: {doc.get('message', '')}"
    text = body.decode(errors="replace").strip()[:300] if body else ""
    return f"Error from server: the server responded with status {status}" + (f": {text}" if text else "")


def _aggregated_resources(doc: dict) -> list[ApiResource]:
    found = []
    for group in doc.get("items") or []:
        name = (group.get("metadata") or {}).get("name") or ""
        for version in group.get("versions") or []:  # listed preferred first
            for res in version.get("resources") or []:
                kind = (res.get("responseKind") or {}).get("kind") or ""
                found.append(ApiResource(name, version["version"], res["resource"], kind, res.get("scope") == "Namespaced",
                                         res.get("singularResource") or "", tuple(res.get("shortNames") or ())))
    return found


def _match(resources: list[ApiResource], wanted: str) -> ApiResource | None:
    """kubectl's resolution of a resource argument: ``NAME``, ``NAME.GROUP`` or ``NAME.VERSION.GROUP``,
    the first match in discovery order winning."""
    forms: list[tuple[str, str | None, str | None]] = [(wanted, None, None)]
    if "." in wanted:  # RESOURCE.VERSION.GROUP is tried before RESOURCE.GROUP, as kubectl does
        name, rest = wanted.split(".", 1)
        forms = [(name, None, rest)]
        if "." in rest:
            version, group = rest.split(".", 1)
            forms.insert(0, (name, version, group))
    for name, version, group in forms:
        for res in resources:
            if group is not None and res.group != group:
                continue
            if version is not None and res.version != version:
                continue
            if name in res.names():
                return res
    return None


# -- watches ----------------------------------------------------------------------------------------------

ALL_NAMESPACES = "*"


class Watched:
    """The live objects of one resource type in one namespace (or cluster-wide, or in every namespace):
    listed once, then kept current by a watch from the list's resourceVersion, re-listed when the watch
    expires or breaks. ``changed`` is set on every change."""

    def __init__(self, api: ApiReader, kind: str, namespace: str | None, changed: threading.Event):
        self.api = api
        self.kind = kind
        self.namespace = namespace
        self.changed = changed
        self._objects: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listed = threading.Event()
        self._error: KubectlError | None = None
        self._response: Any = None
        self._resource: ApiResource | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Watched:
        """List now (so the first evaluation sees the current state), then watch in the background."""
        version = self._relist()
        self._thread = threading.Thread(target=self._run, args=(version,), name=f"watch {self.kind}", daemon=True)
        self._thread.start()
        return self

    @property
    def _where(self) -> str | None:
        if self.namespace == ALL_NAMESPACES:
            return None
        return self.namespace or self.api.namespace

    def _relist(self) -> str | None:
        """Replace the cache with a fresh list; its resourceVersion, or None when the list failed."""
        try:
            if self._resource is None:
                self._resource = self.api.resolve(self.kind)
            items, version = self.api.list(self._resource, self._where)
        except KubectlError as exc:
            self._error = exc
            return None
        with self._lock:
            self._objects = {_key(item): item for item in items}
            self._error = None
        self._listed.set()
        self.changed.set()
        return version

    def _run(self, version: str | None) -> None:
        while not self._stop.is_set():
            if version is None:
                version = self._relist()
                if version is None:
                    self._stop.wait(0.5)
                    continue
            try:
                self._response = self.api.watch(self._resource, self._where, version)
                if self._stop.is_set():  # stop() ran before the response existed to be shut down
                    break
                version = self._follow(self._response, version)
            except Exception:  # noqa: BLE001 - a broken watch is listed afresh
                version = None
                self._stop.wait(0.2)
            finally:
                response, self._response = self._response, None
                if response is not None:  # never back to the pool: a watch may end with unread bytes
                    response.close()
                    response.release_conn()

    def _follow(self, response, version: str) -> str | None:
        """Apply the events of one watch; the resourceVersion to resume from (None: list afresh)."""
        for line in _lines(response):
            if self._stop.is_set():
                return version
            event = json.loads(line)
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":  # 410 Gone: the version is too old to resume from
                return None
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            if event.get("type") == "BOOKMARK":
                continue
            with self._lock:
                if event.get("type") == "DELETED":
                    self._objects.pop(_key(obj), None)
                else:
                    self._objects[_key(obj)] = obj
            self.changed.set()
        return version

    def _check(self) -> None:
        """Raise the list's KubectlError while no list has succeeded yet."""
        if not self._listed.is_set() and self._error is not None:
            raise self._error

    def items(self) -> list[dict]:
        """The current objects."""
        self._check()
        with self._lock:
            return list(self._objects.values())

    def get(self, name: str, namespace: str | None = None) -> dict | None:
        """The object ``name`` (in ``namespace``, default the watch's), or None when there is none."""
        self._check()
        namespaced = self._resource is None or self._resource.namespaced
        with self._lock:
            return self._objects.get(((namespace or self._where or "") if namespaced else "", name))

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            shutdown = getattr(response, "shutdown", None)  # urllib3 >= 2.3 interrupts a blocked read
            try:
                (shutdown or response.close)()
            except Exception:  # noqa: BLE001 - already closed
                pass

    def join(self, timeout: float = 2) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)


class Polled:
    """The same face as ``Watched`` for reads through kubectl (``CHARTPROOF_READS=kubectl``): every
    look is a fresh ``kubectl get``."""

    def __init__(self, kubectl: Kubectl, kind: str, namespace: str | None):
        self.kubectl, self.kind, self.namespace = kubectl, kind, namespace

    def items(self) -> list[dict]:
        if self.namespace == ALL_NAMESPACES:
            return self.kubectl.items(self.kind, all_namespaces=True)
        return self.kubectl.items(self.kind, namespace=self.namespace)

    def get(self, name: str, namespace: str | None = None) -> dict | None:
        try:
            return self.kubectl.get_json(self.kind, name, namespace=namespace or self.namespace)
        except KubectlError as exc:
            if exc.not_found:
                return None
            raise


class Watches:
    """List-and-watch caches of several resource types, one watch per (kind, namespace), sharing one
    "something changed" signal; ``pause(seconds)`` returns on the next change or after ``seconds``.
    A context manager: the watches stop with the ``with`` block."""

    def __init__(self, kubectl: Kubectl):
        self.kubectl = kubectl
        self.api = kubectl.api
        self.changed = threading.Event()
        self._sets: dict[tuple, Watched | Polled] = {}

    def of(self, kind: str, namespace: str | None = None) -> Watched | Polled:
        """The objects of ``kind`` in ``namespace`` (None: the context's; ALL_NAMESPACES: every one)."""
        if self.api is None:
            key: tuple = (kind, namespace)
        else:  # "Job" and "jobs" are one watch; a cluster-scoped type has no namespace
            resource = self.api.resolve(kind)
            namespace = namespace if resource.namespaced else None
            key = (resource.group, resource.plural, namespace)
        if key not in self._sets:
            self._sets[key] = (Watched(self.api, kind, namespace, self.changed).start() if self.api is not None
                               else Polled(self.kubectl, kind, namespace))
        return self._sets[key]

    def pause(self, seconds: float) -> None:
        if self.api is None:
            time.sleep(seconds)
            return
        self.changed.wait(seconds)
        self.changed.clear()

    def close(self) -> None:
        watched = [w for w in self._sets.values() if isinstance(w, Watched)]
        for w in watched:
            w.stop()
        for w in watched:
            w.join()

    def __enter__(self) -> Watches:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _lines(response) -> Iterator[bytes]:
    """The newline-separated JSON events of a watch response, as they arrive."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.5,
             explain: Callable[[], str] | None = None, give_up: Callable[[], str | None] | None = None,
             pause: Callable[[float], None] = time.sleep) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise WaitTimeout naming ``what`` otherwise.

    ``give_up`` returns a reason when waiting longer cannot help (an image that cannot be pulled, a crash
    loop, a failed Job): the wait then stops at once with that reason instead of running out the clock.
    ``pause(interval)`` waits between looks (``Watches.pause`` returns early when a watched object changes).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
            reason = give_up() if give_up else None
            if reason:
                raise WaitTimeout(f"{what} cannot be reached: {reason}")
        except KubectlError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = explain() if explain else (str(last_error) if last_error else "")
            raise WaitTimeout(f"{what} not reached within {timeout:.0f}s" + (f": {detail}" if detail else ""))
        pause(min(interval, max(0.0, deadline - time.monotonic())))
