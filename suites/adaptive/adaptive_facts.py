"""What the adaptive contract fixes (adaptive.md C.1 and D), and small readers of a render that find things
by those facts: the names D.2 fixes for release `adaptive` (<fn> = adaptive), the labels D.1 promises, the
container names D.3/D.4 fix, the env a container will see.

Nothing here depends on how our templates are written: pools are found by their `inference-pool` label,
app workloads by `app.kubernetes.io/component`, env is compared as a map (``envFrom`` ConfigMaps included),
quantities by value, tolerations by what they tolerate.
"""

from __future__ import annotations

import re
from typing import Any

from chartproof.manifest import (
    Manifest,
    container,
    decoded_secret,
    dig,
    env_map,
    pod_spec,
    quantity,
    ref,
    template_labels,
)

CHART = "adaptive"
RELEASE = "adaptive"

# D.1 / D.2 for release `adaptive`: <fn> = adaptive.
FN = "adaptive"
CP = f"{FN}-control-plane"
HM = f"{FN}-harmony"
CP_SVC = f"{CP}-svc"
HM_SVC = f"{HM}-svc"
HM_HDLS = f"{HM}-hdls-svc"
CP_SECRET = f"{CP}-config-secret"
HM_SECRET = f"{HM}-config-secret"
STORE = f"{FN}-ext-secret-store"
CP_EXT = f"{CP}-ext-secret"
HM_EXT = f"{HM}-ext-secret"
MLFLOW = f"{FN}-mlflow"
MLFLOW_SVC = f"{FN}-mlflow-svc"
REDIS = f"{FN}-redis"
REDIS_SVC = f"{FN}-redis-svc"
SETTINGS_CM = f"{HM}-settings-confmap"
ALLOY_CM = f"{HM}-alloy-confmap"
PROMETHEUS = "adaptive-prometheus"
S3PROXY = "adaptive-s3proxy"
DEFAULT_SA = "serviceaccount.adaptive-ml.com"

COMPONENT = "app.kubernetes.io/component"
POOL_LABEL = "inference-pool"
APP_COMPONENTS = ("control-plane", "harmony", "harmony-dpl", "mlflow", "redis")

# D.2 Secret keys (inline mode).
CP_SECRET_KEYS = {"dbUrl", "cookiesSecret", "oidc_providers", "redisUrl"}
HM_SECRET_KEYS = {"HARMONY_SETTING_MODEL_REGISTRY_ROOT", "ADAPTIVE_MODEL_REGISTRY",
                  "ADAPTIVE_HARMONY__SHARED_DIRECTORY__URL", "REDIS_URL"}

# C.1 defaults.
HARMONY_ANNOTATIONS = {"ingest-adaptive-logs": "true", "prometheus.io/scrape": "adaptive",
                       "prometheus.io/path": "/metrics", "prometheus.io/port": "50053"}
GPU_TAINT = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
DEFAULT_GPUS = 8
DEFAULT_REDIS_URL = f"redis://{REDIS_SVC}:6379"
MLFLOW_URL = f"http://{MLFLOW_SVC}:5000"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def pools(*entries: dict | str, **harmony) -> dict:
    """Values with ``harmony.computePool`` = the entries (a bare string is ``{"name": it}``) plus ``harmony`` keys."""
    listed = [{"name": e} if isinstance(e, str) else e for e in entries]
    return {"harmony": {**harmony, "computePool": listed}}


# -- finding objects ---------------------------------------------------------------------------------------
def pool(m: Manifest, kebab: str) -> dict:
    """The Deployment of pool ``kebab``, by the labels D.1 promises (`inference-pool`, component `harmony-dpl`)."""
    return m.one("Deployment", what=f"pool Deployment with labels {POOL_LABEL}={kebab}, {COMPONENT}=harmony-dpl",
                 labels={POOL_LABEL: kebab, COMPONENT: "harmony-dpl"})


def pool_deployments(m: Manifest) -> list[dict]:
    return m.select("Deployment", labels={COMPONENT: "harmony-dpl"})


def app_workloads(m: Manifest) -> list[dict]:
    """Workloads of the app components D.1 names (control plane, harmony, pools, mlflow, redis)."""
    return [o for o in m.select(WORKLOAD_KINDS)
            if (dig(o, "metadata.labels", {}) or {}).get(COMPONENT) in APP_COMPONENTS
            or template_labels(o).get(COMPONENT) in APP_COMPONENTS]


def harmony(m: Manifest) -> dict:
    return m.get("StatefulSet", HM)


def control_plane(m: Manifest) -> dict:
    return m.get("Deployment", CP)


def port(service: dict, name: str) -> dict:
    """The Service port named ``name``; an AssertionError showing the ports otherwise."""
    ports = dig(service, "spec.ports", []) or []
    for item in ports:
        if item.get("name") == name:
            return item
    raise AssertionError(f"{ref(service)} has no port named {name!r}; ports: {ports}")


def target_of(service_port: dict, workload_container: dict | None = None) -> int | None:
    """The container port number a Service port targets (by number, or by a named container port)."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for item in (workload_container or {}).get("ports") or []:
        if item.get("name") == target:
            return item.get("containerPort")
    return None


def container_ports(item: dict) -> dict[Any, int]:
    """``{name or number: containerPort}`` of a container."""
    return {p.get("name", p.get("containerPort")): p.get("containerPort") for p in item.get("ports") or []}


def claim_template(sts: dict, name: str) -> dict | None:
    for claim in dig(sts, "spec.volumeClaimTemplates", []) or []:
        if dig(claim, "metadata.name") == name:
            return claim
    return None


def volume(obj: dict, name: str) -> dict | None:
    for item in pod_spec(obj).get("volumes") or []:
        if item.get("name") == name:
            return item
    return None


def mount_of(item: dict, volume_name: str) -> list[str]:
    """Mount paths of volume ``volume_name`` in a container."""
    return [m.get("mountPath") for m in item.get("volumeMounts") or [] if m.get("name") == volume_name]


# -- env ---------------------------------------------------------------------------------------------------
def effective_env(m: Manifest, item: dict) -> dict[str, Any]:
    """What the container sees: ``envFrom`` ConfigMaps of the render, overridden by ``env``; literal values
    as strings, references as their ``valueFrom`` dict."""
    out: dict[str, Any] = {}
    for source in item.get("envFrom") or []:
        name = dig(source, "configMapRef.name")
        if name:
            prefix = source.get("prefix", "")
            for cm in m.select("ConfigMap", name=name):
                out.update({prefix + k: str(v) for k, v in (cm.get("data") or {}).items()})
    for k, v in env_map(item).items():
        out[k] = v if isinstance(v, dict) else str(v)
    return out


def env_of(m: Manifest, obj: dict, name: str) -> dict[str, Any]:
    return effective_env(m, container(obj, name))


def secret_ref(value: Any) -> tuple[str, str] | None:
    """(Secret name, key) of an env value that is a ``secretKeyRef``."""
    found = dig(value, "secretKeyRef") if isinstance(value, dict) else None
    return (found.get("name"), found.get("key")) if isinstance(found, dict) else None


def env_from_secrets(item: dict) -> set[str]:
    return {dig(s, "secretRef.name") for s in item.get("envFrom") or [] if dig(s, "secretRef.name")}


def expect_env(env: dict, expected: dict[str, str], where: str) -> None:
    """Every expected variable has the expected literal value."""
    wrong = {k: env.get(k, "<absent>") for k, v in expected.items() if env.get(k) != v}
    assert not wrong, f"{where}: expected env {{{', '.join(f'{k}={expected[k]!r}' for k in wrong)}}}, found {wrong}"


# -- resources, scheduling ---------------------------------------------------------------------------------
def gpus(item: dict, section: str) -> Any:
    return (dig(item, f"resources.{section}", {}) or {}).get("nvidia.com/gpu")


def has_gpus(item: dict, n: int) -> bool:
    return all(gpus(item, s) is not None and quantity(gpus(item, s)) == n for s in ("requests", "limits"))


def resource_is(item: dict, section: str, name: str, expected: Any) -> bool:
    found = (dig(item, f"resources.{section}", {}) or {}).get(name)
    return found is not None and quantity(found) == quantity(expected)


def tolerates(tolerations: list[dict] | None, taint: dict) -> bool:
    """Whether the tolerations tolerate the taint (Kubernetes' matching rule)."""
    for t in tolerations or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        operator = t.get("operator", "Equal")
        if not t.get("key"):
            if operator == "Exists":
                return True
            continue
        if t.get("key") != taint.get("key"):
            continue
        if operator == "Exists" or str(t.get("value", "")) == str(taint.get("value", "")):
            return True
    return False


def toleration_set(tolerations: list[dict] | None) -> set[tuple]:
    return {(t.get("key"), t.get("operator", "Equal"), str(t.get("value", "")), t.get("effect", ""))
            for t in tolerations or []}


# -- secrets -----------------------------------------------------------------------------------------------
def produced_keys(m: Manifest) -> dict[str, set[str]]:
    """Secret name -> keys, from rendered Secrets and from ExternalSecrets (data + target template)."""
    out: dict[str, set[str]] = {}
    for s in m.select("Secret"):
        out.setdefault(dig(s, "metadata.name"), set()).update(decoded_secret(s))
    for es in m.select("ExternalSecret"):
        target = dig(es, "spec.target.name") or dig(es, "metadata.name")
        keys = {d.get("secretKey") for d in dig(es, "spec.data", []) or []}
        keys |= set(dig(es, "spec.target.template.data", {}) or {})
        for source in dig(es, "spec.dataFrom", []) or []:
            keys.add(f"<dataFrom {source}>")
        out.setdefault(target, set()).update(keys)
    return out


def remote_refs(external_secret: dict) -> dict[str, dict]:
    return {d.get("secretKey"): d.get("remoteRef") for d in dig(external_secret, "spec.data", []) or []}


def secret_data(m: Manifest, name: str) -> dict[str, str]:
    return decoded_secret(m.get("Secret", name))


# -- OIDC format (D.6) -------------------------------------------------------------------------------------
_ENTRY = re.compile(r"\{([^{}]*)\}\s*,")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\[[^\]]*\]|[^,]*)')


def parse_oidc(text: str) -> list[dict[str, str]]:
    """The D.6 `oidc_providers` string as a list of {field: raw value}, in order."""
    compact = "".join(text.split())
    assert re.fullmatch(r"\[(\{[^{}]*\},)*\]", compact), \
        f"oidc_providers: expected the D.6 format [{{key=…,name=…,…}},…], found {text!r}"
    return [{k: v.strip() for k, v in _FIELD.findall(body)} for body in _ENTRY.findall(text)]

