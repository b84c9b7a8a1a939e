"""What a customer's values file asks of our charts, read as the charts read it, and small readers of a render
that find what the contracts (chartproof/contracts/*.md) promise for those values.

A customer's file is merged over the chart's own ``values.yaml`` the way helm merges values (maps merge, a
``null`` removes the default, lists and scalars replace), so a test knows both what the customer set and what
the chart defaults fill in. Renders are read by what the contracts promise: pools by their `inference-pool`
label, workloads by their `app.kubernetes.io/component` label or fixed names, data paths by what is mounted at
them, Secret keys by name only (never their values).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from chartproof.helm import merge_values
from chartproof.manifest import Manifest, all_containers, dig, env_map, pod_spec, quantity, ref
from chartproof.values_check import dotted as values_dotted

# How suites/customer renders each chart: the README's release names, HyperPod in kube-system with its CRDs.
RELEASES = {"adaptive": "adaptive", "monitoring": "adaptive-monitoring", "hyperpod": "dependencies"}
RENDER_OPTIONS: dict[str, dict[str, Any]] = {"hyperpod": {"namespace": "kube-system", "args": ("--include-crds",)}}

_MISSING = object()


# -- values -------------------------------------------------------------------------------------------------
def lookup(node: Any, path: str | tuple, default: Any = None) -> Any:
    """The value at ``path`` ("a.b.c", or a tuple of keys and list indices), ``default`` when absent or null."""
    found = _walk(node, path)
    return default if found is _MISSING or found is None else found


def _walk(node: Any, path: str | tuple) -> Any:
    parts = tuple(path.split(".")) if isinstance(path, str) else path
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            return _MISSING
    return node


def dotted(path: str | tuple) -> str:
    """``("harmony", "computePool", 1, "name")`` -> ``harmony.computePool[1].name``."""
    return path if isinstance(path, str) else values_dotted(path)


@dataclass
class Customer:
    """A customer's values file for one chart, with the chart's defaults underneath, and its render."""

    chart: str
    path: Path
    own: dict                 # the customer's file as written
    values: dict              # merged over the chart's values.yaml
    manifest: Manifest
    release: str = ""

    def get(self, path: str | tuple, default: Any = None) -> Any:
        return lookup(self.values, path, default)

    def given(self, path: str | tuple) -> bool:
        """The customer's file sets this key (to anything, null included)."""
        return _walk(self.own, path) is not _MISSING

    def said(self, path: str | tuple, default: Any = None) -> str:
        """For failure messages: ``key=value (yours)``, ``key=value (chart default)`` or ``key unset``. Never
        used for secret keys."""
        name = dotted(path)
        if self.given(path):
            return f"{name}={shown(_walk(self.own, path))} (in {self.path.name})"
        value = _walk(self.values, path)
        if value is not _MISSING and value is not None:
            return f"{name}={shown(value)} (chart default)"
        return f"{name} unset" + (f" (contract default {shown(default)})" if default is not None else "")


def shown(value: Any) -> str:
    """A value as the customer wrote it in YAML/JSON terms: null, true, "text", {"a": 1}."""
    return json.dumps(value, default=str)


# -- numbers ------------------------------------------------------------------------------------------------
def count(value: Any) -> Decimal:
    """A GPU or replica count as the charts read it: null, "" and 0 are 0."""
    if value in (None, "", False):
        return Decimal(0)
    return quantity(value)


def text(number: Decimal) -> str:
    """``Decimal(4)`` -> ``"4"``: how an integral count is written in env."""
    return str(int(number)) if number == number.to_integral_value() else str(number)


# -- adaptive: what the contract (adaptive.md C.1, D) says the values mean ------------------------------------
COMPONENT = "app.kubernetes.io/component"
POOL_LABEL = "inference-pool"
GPU = "nvidia.com/gpu"
POOL_DEFAULTS = {"minReplicaCount": 1, "maxReplicaCount": 2}   # C.1 / ADP-AUTOSCALE-03
TB_DEFAULT_SIZE = "10Gi"                                         # C.1 (inferred)
PROMETHEUS_DEFAULT = "adaptive-prometheus"


def pools(customer: Customer) -> list[dict]:
    return [p for p in customer.get("harmony.computePool", []) or [] if isinstance(p, dict)]


def pool_path(index: int, key: str | None = None) -> tuple:
    return ("harmony", "computePool", index) + ((key,) if key else ())


@dataclass(frozen=True)
class PoolSetting:
    """A harmony key as one pool sees it: its own value, or harmony's when the pool does not set it; ``null``
    in a pool entry (inherit, or clear?) is left open by the contract: ``ambiguous``."""

    value: Any
    source: str        # "pool" | "harmony" | "ambiguous"
    said: str          # for failure messages


def pool_setting(customer: Customer, index: int, key: str) -> PoolSetting:
    entry = pools(customer)[index]
    name = entry.get("name")
    if key in entry and entry[key] is None:
        return PoolSetting(None, "ambiguous", f"{dotted(pool_path(index, key))}=null (pool {name!r})")
    if key in entry:
        value = entry[key]
        if isinstance(value, dict) and isinstance(customer.get(("harmony", key)), dict):
            value = merge_values(customer.get(("harmony", key)), value)   # maps deep-merge (C.1)
        return PoolSetting(value, "pool", f"{dotted(pool_path(index, key))}={shown(entry[key])} (pool {name!r})")
    return PoolSetting(customer.get(("harmony", key)), "harmony",
                       f"pool {name!r} sets no {key}, so {customer.said(('harmony', key))}")


def kebab_forms(name: Any) -> set[str]:
    """The kebab-case spellings of a pool name ("Pool-A" -> "pool-a", "pool_b" -> "pool-b"). Where the contract's
    "kebab-case" leaves room (camelCase, letters next to digits), every reasonable spelling is accepted."""
    raw = str(name)
    camel = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", raw)
    digits = re.sub(r"(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])", "-", camel)
    forms = {re.sub(r"[^a-z0-9]+", "-", form.lower()).strip("-") for form in (raw, camel, digits)}
    return {f for f in forms if f}


def pool_deployments(m: Manifest) -> list[dict]:
    return m.select("Deployment", labels={COMPONENT: "harmony-dpl"})


def pool_deployment(m: Manifest, name: Any) -> dict:
    """The Deployment of the pool named ``name``: the one whose `inference-pool` label is its kebab-case name
    (among several, the one whose `GROUP` env is the raw name, D.5); an AssertionError listing pools otherwise."""
    forms = kebab_forms(name)
    found = [d for d in pool_deployments(m) if str(dig(d, "metadata.labels", {}).get(POOL_LABEL)) in forms]
    if len(found) > 1:
        found = [d for d in found if env_of(m, d, "harmony").get("GROUP") == str(name)] or found
    if len(found) == 1:
        return found[0]
    listing = ", ".join(f"{ref(d)} ({POOL_LABEL}={dig(d, 'metadata.labels', {}).get(POOL_LABEL)})"
                        for d in pool_deployments(m)) or "none"
    raise AssertionError(f"expected one Deployment labelled {POOL_LABEL}={'|'.join(sorted(forms))} and "
                         f"{COMPONENT}=harmony-dpl for pool {name!r}, found {len(found)}; pool Deployments: {listing}")


def harmony_statefulset(m: Manifest) -> dict:
    return m.one("StatefulSet", what=f"harmony StatefulSet (label {COMPONENT}=harmony)", labels={COMPONENT: "harmony"})


def prometheus_name(customer: Customer) -> str:
    return str(customer.get("prometheus.server.fullnameOverride", PROMETHEUS_DEFAULT))


def workload(m: Manifest, name: str, kinds: tuple[str, ...] = ("StatefulSet", "Deployment")) -> dict:
    return m.one(kinds, what=f"{'/'.join(kinds)} {name}", name=name)


def container_named(obj: dict, name: str) -> dict:
    for item in all_containers(obj):
        if item.get("name") == name:
            return item
    raise AssertionError(f"{ref(obj)} has no container {name}; it has {[c.get('name') for c in all_containers(obj)]}")


def env_of(m: Manifest, obj: dict, container_name: str) -> dict[str, Any]:
    """What a container sees: ``envFrom`` ConfigMaps of the render, then ``env`` (references as dicts)."""
    item = container_named(obj, container_name)
    return env(m, item)


def env(m: Manifest, item: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for source in item.get("envFrom") or []:
        name = dig(source, "configMapRef.name")
        for cm in m.select("ConfigMap", name=name) if name else []:
            out.update({source.get("prefix", "") + k: str(v) for k, v in (cm.get("data") or {}).items()})
    for k, v in env_map(item).items():
        out[k] = v if isinstance(v, dict) else str(v)
    return out


def gpu_of(item: dict, section: str) -> Any:
    return (dig(item, f"resources.{section}", {}) or {}).get(GPU)


def gpu_holders(m: Manifest) -> set[tuple[str, str]]:
    """(workload, container) of every container that requests or limits GPUs."""
    return {(ref(o), c.get("name")) for o in m.workloads() for c in all_containers(o)
            if gpu_of(c, "requests") is not None or gpu_of(c, "limits") is not None}


def toleration_set(tolerations: Any) -> set[tuple]:
    return {(t.get("key"), t.get("operator", "Equal"), str(t.get("value", "")), t.get("effect", ""))
            for t in tolerations or [] if isinstance(t, dict)}


def label_map(labels: Any) -> dict[str, str]:
    """A nodeSelector as the API server stores it: every value a string (YAML `true` is "true")."""
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (labels or {}).items()}


def keda_objects(m: Manifest) -> list[str]:
    """KEDA's objects in a render: ScaledObjects, KEDA CRDs, and workloads running kedacore images."""
    found = [ref(o) for o in m.select(("ScaledObject", "ScaledJob", "TriggerAuthentication"))]
    found += [ref(o) for o in m.select("CustomResourceDefinition") if dig(o, "spec.group") == "keda.sh"]
    found += [ref(o) for o in m.with_image("kedacore/")]
    return found


def autoscalers_of(m: Manifest, deployment: dict) -> list[dict]:
    """ScaledObjects and HPAs of the render that scale ``deployment``."""
    name = dig(deployment, "metadata.name")
    return [o for o in m.select(("ScaledObject", "HorizontalPodAutoscaler"))
            if dig(o, "spec.scaleTargetRef.name") == name
            and dig(o, "spec.scaleTargetRef.kind", "Deployment") == "Deployment"]


# -- storage ------------------------------------------------------------------------------------------------
def store_of_volume(m: Manifest, obj: dict, volume: str) -> tuple[str, dict | None]:
    """What backs pod volume ``volume`` of a workload: ``("claim", claim template or rendered PVC)``,
    ``("emptyDir", volume)``, another volume kind, or ``("none", None)``."""
    for item in pod_spec(obj).get("volumes") or []:
        if item.get("name") != volume:
            continue
        if "persistentVolumeClaim" in item:
            name = dig(item, "persistentVolumeClaim.claimName")
            claims = m.select("PersistentVolumeClaim", name=name)
            assert claims, f"{ref(obj)}: volume {volume} is claim {name!r}, which the release does not render"
            return "claim", claims[0]
        kinds = [k for k in item if k != "name"]
        return (kinds[0] if kinds else "none"), item
    for claim in dig(obj, "spec.volumeClaimTemplates", []) or []:
        if dig(claim, "metadata.name") == volume:
            return "claim", claim
    return "none", None


def store_of_path(m: Manifest, obj: dict, item: dict, path: str) -> tuple[str, dict | None]:
    """What stores ``path`` in a container: the store of the deepest mount covering it."""
    def covers(mount: str) -> bool:
        mount, target = posixpath.normpath(mount or "/"), posixpath.normpath(path)
        return target == mount or target.startswith(mount.rstrip("/") + "/")

    mounts = [x for x in item.get("volumeMounts") or [] if covers(x.get("mountPath", ""))]
    if not mounts:
        return "none", None
    deepest = max(mounts, key=lambda x: len(posixpath.normpath(x.get("mountPath", "/"))))
    return store_of_volume(m, obj, deepest.get("name"))


def claim_class(claim: dict) -> Any:
    """``spec.storageClassName`` of a claim, else its legacy annotation; None when it names no class."""
    found = dig(claim, "spec.storageClassName")
    if found is not None:
        return found
    return (dig(claim, "metadata.annotations", {}) or {}).get("volume.beta.kubernetes.io/storage-class")


def claim_name(claim: dict) -> str:
    kind = "PersistentVolumeClaim" if claim.get("kind") else "claim template"
    return f"{kind} {dig(claim, 'metadata.name')}"


def expected_class(setting: Any) -> Any:
    """README rule for a class setting: "" or unset -> field omitted (None), "-" -> "" (no class), else verbatim."""
    if setting in (None, ""):
        return None
    return "" if setting == "-" else str(setting)


# -- secrets (names and keys only) --------------------------------------------------------------------------
@dataclass(frozen=True)
class SecretRead:
    where: str             # "Deployment ns/x container y"
    variable: str          # env var name, or "envFrom"
    secret: str
    key: str | None        # None for envFrom
    optional: bool


def secret_reads(m: Manifest) -> list[SecretRead]:
    """Every ``secretKeyRef`` and ``envFrom secretRef`` of every pod template of the render."""
    out = []
    for obj in m.workloads():
        for item in all_containers(obj):
            where = f"{ref(obj)} container {item.get('name')}"
            for var in item.get("env") or []:
                found = dig(var, "valueFrom.secretKeyRef")
                if isinstance(found, dict):
                    out.append(SecretRead(where, var.get("name"), found.get("name"), found.get("key"),
                                          bool(found.get("optional"))))
            for source in item.get("envFrom") or []:
                name = dig(source, "secretRef.name")
                if name:
                    out.append(SecretRead(where, "envFrom", name, None, bool(dig(source, "secretRef.optional"))))
    return out


@dataclass
class SecretSource:
    keys: set[str] = field(default_factory=set)
    by: list[str] = field(default_factory=list)     # the objects that produce it
    open_keys: bool = False                          # an ExternalSecret's dataFrom: keys unknown until fetched


def secret_sources(m: Manifest) -> dict[str, SecretSource]:
    """Secret name -> the keys the release puts in it: rendered Secrets' keys, ExternalSecrets' ``data``
    secretKeys and target-template keys (``dataFrom`` makes the key set open)."""
    out: dict[str, SecretSource] = {}
    for secret in m.select("Secret"):
        source = out.setdefault(dig(secret, "metadata.name"), SecretSource())
        source.keys |= set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        source.by.append(ref(secret))
    for es in m.select("ExternalSecret"):
        source = out.setdefault(dig(es, "spec.target.name") or dig(es, "metadata.name"), SecretSource())
        source.keys |= {d.get("secretKey") for d in dig(es, "spec.data", []) or [] if isinstance(d, dict)}
        source.keys |= set(dig(es, "spec.target.template.data", {}) or {})
        source.open_keys |= bool(dig(es, "spec.dataFrom"))
        source.by.append(ref(es))
    return out


# externalSecret.data.<item> (C.1) -> the Secret keys it fills (D.7); the Redis URL item is inferred.
ESO_ITEMS = {
    ("dbUrl",): ("dbUrl",),
    ("cookiesSecret",): ("cookiesSecret",),
    ("oidcProviders",): ("oidc_providers",),
    ("modelRegistryUrl",): ("ADAPTIVE_MODEL_REGISTRY", "HARMONY_SETTING_MODEL_REGISTRY_ROOT"),
    ("sharedDirectoryUrl",): ("ADAPTIVE_HARMONY__SHARED_DIRECTORY__URL",),
    ("objectStorageConfig", "awsAccessKeyId"): ("AWS_ACCESS_KEY_ID",),
    ("objectStorageConfig", "awsSecretAccessKey"): ("AWS_SECRET_ACCESS_KEY",),
    ("objectStorageConfig", "awsEndpointUrlS3"): ("AWS_ENDPOINT_URL_S3",),
}


def remote_refs(m: Manifest) -> dict[str, list[tuple[str, Any]]]:
    """Secret key -> [(ExternalSecret, remoteRef)] over every ExternalSecret of the render."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for es in m.select("ExternalSecret"):
        for item in dig(es, "spec.data", []) or []:
            out.setdefault(item.get("secretKey"), []).append((ref(es), item.get("remoteRef")))
    return out


# -- monitoring (adaptive.md C.2, D.9) ------------------------------------------------------------------------
GRAFANA_DATA = "/var/lib/grafana"
LOKI_DATA = ("/data", "/db")
LOKI_DEFAULT_SIZE = "10Gi"


def all_routes(m: Manifest) -> list[str]:
    return [f"{ref(ing)} {rule.get('host')}{p.get('path')} ({p.get('pathType')})" for ing in m.select("Ingress")
            for rule in dig(ing, "spec.rules", []) or [] for p in dig(rule, "http.paths", []) or []]


def backend_is(m: Manifest, entry: dict, service: str, number: int) -> bool:
    backend = dig(entry, "backend.service", {}) or {}
    if backend.get("name") != service:
        return False
    port = backend.get("port") or {}
    if port.get("number") is not None:
        return port.get("number") == number
    return any(p.get("name") == port.get("name") and p.get("port") == number
               for s in m.select("Service", name=service) for p in dig(s, "spec.ports", []) or [])


# -- hyperpod (hyperpod.md B, C.1, D) -----------------------------------------------------------------------
HP_CONDITIONS = {   # component -> its enable key (B); team-role-and-bindings is on with a targetId, see team_state
    "training-operators": "trainingOperators.enabled",
    "mlflow": "mlflow.enabled",
    "nvidia-device-plugin": "nvidia-device-plugin.devicePlugin.enabled",
    "aws-efa-k8s-device-plugin": "aws-efa-k8s-device-plugin.devicePlugin.enabled",
    "neuron-device-plugin": "neuron-device-plugin.devicePlugin.enabled",
    "storage": "storage.enabled",
    "health-monitoring-agent": "health-monitoring-agent.enabled",
    "mpi-operator": "mpi-operator.enabled",
    "deep-health-check": "deep-health-check.enabled",
    "job-auto-restart": "job-auto-restart.enabled",
    "cluster-role-and-bindings": "cluster-role-and-bindings.enabled",
    "namespaced-role-and-bindings": "namespaced-role-and-bindings.enabled",
    "hyperpod-inference-operator": "inferenceOperators.enabled",
    "hyperpod-patching": "hyperpod-patching.enabled",
}
HP_DAEMONSETS = ("nvidia-device-plugin", "aws-efa-k8s-device-plugin", "neuron-device-plugin", "health-monitoring-agent")
# The NVIDIA and EFA DaemonSets have no fixed name (D): recognised by the words of their image.
_IMAGE_WORDS = {"nvidia-device-plugin": ("nvidia", "device-plugin"), "aws-efa-k8s-device-plugin": ("efa", "device-plugin")}
_NAMED_DAEMONSETS = {"neuron-device-plugin": "neuron-device-plugin-daemonset",
                     "health-monitoring-agent": "health-monitoring-agent"}


def hp_signature(customer: Customer, component: str) -> list[tuple[str, str]]:
    """(kind, name) of the objects D says a component renders, named from the customer's values where D
    names them from values (contract defaults otherwise). Device-plugin DaemonSets: see ``hp_daemonsets``."""
    r, get = customer.release, customer.get
    table = {
        "training-operators": [("Deployment", f"{r}-training-operators"), ("CustomResourceDefinition", "pytorchjobs.kubeflow.org")],
        "mpi-operator": [("Deployment", f"{r}-mpi-operator"), ("CustomResourceDefinition", "mpijobs.kubeflow.org")],
        "neuron-device-plugin": [("DaemonSet", _NAMED_DAEMONSETS["neuron-device-plugin"])],
        "health-monitoring-agent": [("DaemonSet", _NAMED_DAEMONSETS["health-monitoring-agent"])],
        "deep-health-check": [("ClusterRole", "deep-health-check-service-account-role")],
        "job-auto-restart": [("ClusterRole", "job-auto-restart")],
        "hyperpod-patching": [("ClusterRole", "hyperpod-patching")],
        "cluster-role-and-bindings": [("ClusterRole", str(get("cluster-role-and-bindings.roleName",
                                                              "hyperpod-scientist-user-cluster-role")))],
        "namespaced-role-and-bindings": [("Role", str(get("namespaced-role-and-bindings.roleName",
                                                          "hyperpod-scientist-user-namespace-level-role")))],
        "mlflow": [("ServiceAccount", str(get("mlflow.mlflow.serviceAccount.name", "mlflow-service-account1")))],
        "storage": [("PersistentVolume", str(get("storage.persistentVolume.name", "fsx-pv"))),
                    ("PersistentVolumeClaim", str(get("storage.persistentVolumeClaim.name", "fsx-claim")))],
        "hyperpod-inference-operator": [("Deployment", "hyperpod-inference-operator-controller-manager")],
    }
    return table.get(component, [])


def hp_daemonsets(m: Manifest, component: str) -> list[dict]:
    if component in _NAMED_DAEMONSETS:
        return m.select("DaemonSet", name=_NAMED_DAEMONSETS[component])
    words = _IMAGE_WORDS[component]
    named = set(_NAMED_DAEMONSETS.values())
    return [ds for ds in m.select("DaemonSet") if dig(ds, "metadata.name") not in named
            and any(all(w in str(c.get("image", "")) for w in words) for c in all_containers(ds))]


def team_state(customer: Customer) -> tuple[bool, str | None, str]:
    """(on, targetId, why) for team-role-and-bindings (C.1, HYP-TEAM-01..04): on with a targetId (the
    subchart key wins over the root key) unless `team-role-and-bindings.enabled` is false."""
    sub, root = "team-role-and-bindings.computeQuotaTarget.targetId", "computeQuotaTarget.targetId"
    target = customer.get(sub) or customer.get(root)
    which = sub if customer.get(sub) else root
    flag = customer.get("team-role-and-bindings.enabled")
    if flag is False:
        return False, None, customer.said("team-role-and-bindings.enabled")
    if target:
        return True, str(target), customer.said(which)
    return bool(flag), None, customer.said("team-role-and-bindings.enabled")
