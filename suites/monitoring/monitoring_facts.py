"""What the monitoring contract fixes (adaptive.md C.2 and D.9), and small readers of a render that find
things by those facts: the names D.9 fixes, the images of C.2, the container paths D.9 names.

Nothing here depends on how our templates are written: containers are found by image, env is what the
container will see (``envFrom`` ConfigMaps included), and a data path is backed by whatever volume or
claim is mounted at it (or at a parent directory of it).
"""

from __future__ import annotations

import posixpath
from typing import Any

import yaml

from chartproof import yamlio
from chartproof.manifest import (
    Manifest,
    all_containers,
    container_running,
    decoded_secret,
    dig,
    env_map,
    ingress_routes,
    pod_spec,
    ref,
    template_labels,
)

CHART = "monitoring"
RELEASE = "adaptive-monitoring"            # the README's release name
DEFAULT_DOMAIN = "www.your-adaptive-domain.com"

# D.9: names the contract fixes.
GRAFANA = "grafana"                        # Deployment, Service, PVC (grafana.pvc.name), Ingress (inferred)
GRAFANA_CONFIGMAP = "grafana-configmap"
LOKI = "loki"                              # StatefulSet, ConfigMap, Service
LOKI_HEADLESS = "loki-headless"
PROMTAIL_DAEMONSET = "promtail-daemonset"
PROMTAIL_CONFIG = "promtail-config"
PROMTAIL_SA = "promtail-serviceaccount"
PROMTAIL_CLUSTERROLE = "promtail-clusterrole"
PROMTAIL_BINDING = "promtail-clusterrolebinding"
DASHBOARDS = ("adaptive_engine_health.json", "control_plane_kpis.json", "harmony_metrics.json")

# C.2 defaults.
GRAFANA_IMAGE = "grafana/grafana:11.5.0"
LOKI_IMAGE = "grafana/loki:2.9.11"
PROMTAIL_IMAGE = "grafana/promtail:3.3.2"
GRAFANA_DATA = "/var/lib/grafana"
LOKI_DATA = ("/data", "/db")
PROVISIONING = "/etc/grafana/provisioning/"

PERSISTENCE_ON = {"grafana": {"enablePersistence": True}}


def same_image(found: str, expected: str) -> bool:
    """``grafana/loki:2.9.11`` == ``docker.io/grafana/loki:2.9.11`` (Docker Hub is the default registry)."""
    def norm(image: str) -> str:
        for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
            if image.startswith(prefix):
                image = image[len(prefix):]
        return image.removeprefix("library/")
    return norm(found) == norm(expected)


def grafana(m: Manifest) -> tuple[dict, dict]:
    dep = m.get("Deployment", GRAFANA)
    return dep, container_running(dep, "grafana/grafana")


def loki(m: Manifest) -> tuple[dict, dict]:
    sts = m.get("StatefulSet", LOKI)
    return sts, container_running(sts, "grafana/loki")


def promtail(m: Manifest) -> tuple[dict, dict]:
    ds = m.get("DaemonSet", PROMTAIL_DAEMONSET)
    return ds, container_running(ds, "grafana/promtail")


def effective_env(m: Manifest, item: dict) -> dict[str, Any]:
    """What the container's process sees: ``envFrom`` ConfigMaps/Secrets of the render, then ``env``."""
    out: dict[str, Any] = {}
    for source in item.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            name = dig(source, f"{field}.name")
            if not name:
                continue
            for obj in m.select(kind, name=name):
                data = decoded_secret(obj) if kind == "Secret" else {k: str(v) for k, v in (obj.get("data") or {}).items()}
                out.update({prefix + k: v for k, v in data.items()})
    out.update(env_map(item))
    return out


def uid(obj: dict, item: dict) -> Any:
    """The user a container runs as: its own ``securityContext.runAsUser``, else the pod's."""
    own = dig(item, "securityContext.runAsUser")
    return own if own is not None else dig(pod_spec(obj), "securityContext.runAsUser")


def container_port(item: dict, number: int) -> dict | None:
    """The container's port entry for ``containerPort: number`` (None when it declares none)."""
    for port in item.get("ports") or []:
        if port.get("containerPort") == number:
            return port
    return None


def covers(mount_path: str, path: str) -> bool:
    mount_path = posixpath.normpath(mount_path or "/")
    path = posixpath.normpath(path)
    return path == mount_path or path.startswith(mount_path.rstrip("/") + "/")


def backing(m: Manifest, obj: dict, item: dict, path: str) -> tuple[str, dict]:
    """What stores ``path`` of a container: ``("emptyDir", volume)``, ``("claim", claim)`` (a PVC of the
    render or a StatefulSet claim template), or ``(other kind, volume)``. The deepest mount wins."""
    candidates = [mnt for mnt in item.get("volumeMounts") or [] if covers(mnt.get("mountPath", ""), path)]
    assert candidates, (f"{ref(obj)}: nothing is mounted at {path} (or a parent of it); mounts: "
                        f"{sorted(mnt.get('mountPath', '') for mnt in item.get('volumeMounts') or [])}")
    mount = max(candidates, key=lambda mnt: len(posixpath.normpath(mnt.get("mountPath", "/"))))
    name = mount.get("name")
    volume = next((v for v in pod_spec(obj).get("volumes") or [] if v.get("name") == name), None)
    if volume is None:
        template = next((c for c in dig(obj, "spec.volumeClaimTemplates", []) or []
                         if dig(c, "metadata.name") == name), None)
        assert template is not None, (f"{ref(obj)}: {path} is mounted from volume {name!r}, which is neither a pod "
                                      f"volume nor a claim template")
        return "claim", template
    if "persistentVolumeClaim" in volume:
        claim_name = dig(volume, "persistentVolumeClaim.claimName")
        claims = m.select("PersistentVolumeClaim", name=claim_name)
        assert claims, (f"{ref(obj)}: {path} is on claim {claim_name!r}, which the release does not render; "
                        f"claims it renders: {m.names('PersistentVolumeClaim')}")
        return "claim", claims[0]
    if "ephemeral" in volume:
        return "ephemeral", volume
    kinds = [k for k in volume if k != "name"]
    return (kinds[0] if kinds else "none"), volume


def storage_class(claim: dict) -> Any:
    """A claim's class: ``spec.storageClassName``, else the legacy annotation; None when it names none."""
    explicit = dig(claim, "spec.storageClassName")
    if explicit is not None:
        return explicit
    return dig(claim, "metadata.annotations", {}).get("volume.beta.kubernetes.io/storage-class")


def uses_configmap(obj: dict, name: str) -> bool:
    """The pod template reads ConfigMap ``name`` (a volume, a projected source, envFrom or a key ref)."""
    spec = pod_spec(obj)
    for volume in spec.get("volumes") or []:
        if dig(volume, "configMap.name") == name:
            return True
        if any(dig(s, "configMap.name") == name for s in dig(volume, "projected.sources", []) or []):
            return True
    for item in all_containers(obj):
        if any(dig(s, "configMapRef.name") == name for s in item.get("envFrom") or []):
            return True
        if any(dig(e, "valueFrom.configMapKeyRef.name") == name for e in item.get("env") or []):
            return True
    return False


def selects(service: dict, workload: dict) -> bool:
    """The Service's selector picks the workload's pods."""
    selector = dig(service, "spec.selector") or {}
    labels = template_labels(workload)
    return bool(selector) and all(str(labels.get(k)) == str(v) for k, v in selector.items())


def yaml_documents_in(configmap: dict) -> list[Any]:
    """Every ``data`` value of a ConfigMap that parses as YAML (JSON included), parsed."""
    out = []
    for value in (configmap.get("data") or {}).values():
        try:
            out.append(yamlio.load(str(value)))
        except yaml.YAMLError:
            continue
    return out


def routes(m, host: str) -> list[tuple[dict, dict]]:
    """(Ingress, path) pairs that send `/monitoring` (Prefix) on `host` somewhere."""
    return ingress_routes(m, host, "/monitoring")


def all_routes(m) -> list[str]:
    return [f"{ref(ing)} {rule.get('host')}{p.get('path')} ({p.get('pathType')})" for ing in m.select("Ingress")
            for rule in dig(ing, "spec.rules", []) or [] for p in dig(rule, "http.paths", []) or []]


def backend_is_grafana_3000(m, path: dict) -> bool:
    service = dig(path, "backend.service", {}) or {}
    if service.get("name") != GRAFANA:
        return False
    port = service.get("port") or {}
    if port.get("number") is not None:
        return port.get("number") == 3000
    svc = m.select("Service", name=GRAFANA)
    return bool(svc) and any(p.get("name") == port.get("name") and p.get("port") == 3000
                             for p in dig(svc[0], "spec.ports", []) or [])


def live(objects: list[dict]) -> Manifest:
    """Live objects (``kubectl get -o json`` items) as a Manifest, to read them with the same helpers."""
    return Manifest(yamlio.dump_all(objects, sort_keys=False))
