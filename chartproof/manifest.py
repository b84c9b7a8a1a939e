"""Rendered manifests and readable accessors for assertions (helm-unittest style, in plain Python)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import yaml

POD_TEMPLATE_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


class Manifest:
    """The objects of one render (or of a live release), in order, with their template source."""

    def __init__(self, text: str):
        self.text = text
        self.objects: list[dict[str, Any]] = []
        self.sources: list[str] = []
        for chunk in _split_documents(text):
            source = ""
            for line in chunk.splitlines():
                if line.startswith("# Source: "):
                    source = line[len("# Source: "):].strip()
                    break
            for doc in yaml.safe_load_all(chunk):
                if isinstance(doc, dict) and doc.get("kind"):
                    if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
                        for item in doc["items"]:
                            self.objects.append(item)
                            self.sources.append(source)
                    else:
                        self.objects.append(doc)
                        self.sources.append(source)

    def __iter__(self):
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)

    def find(self, kind: str | None = None, name: str | None = None, namespace: str | None = None) -> list[dict]:
        return [
            obj for obj in self.objects
            if (kind is None or obj.get("kind") == kind)
            and (name is None or obj.get("metadata", {}).get("name") == name)
            and (namespace is None or obj.get("metadata", {}).get("namespace") == namespace)
        ]

    def has(self, kind: str, name: str | None = None) -> bool:
        return bool(self.find(kind, name))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict:
        found = self.find(kind, name, namespace)
        if len(found) != 1:
            where = f" in {namespace}" if namespace else ""
            others = ", ".join(self.names(kind)) or "none"
            raise AssertionError(
                f"expected exactly one {kind} {name}{where}, found {len(found)}; {kind} objects rendered: {others}"
            )
        return found[0]

    def kinds(self) -> set[str]:
        return {obj.get("kind") for obj in self.objects}

    def names(self, kind: str) -> list[str]:
        return [obj.get("metadata", {}).get("name") for obj in self.find(kind)]

    def source_of(self, obj: dict) -> str:
        for candidate, source in zip(self.objects, self.sources, strict=True):
            if candidate is obj:
                return source
        return ""

    def keys(self) -> set[tuple[str, str, str]]:
        """(kind, namespace, name) of every object: handy to compare two renders."""
        return {(o.get("kind"), o.get("metadata", {}).get("namespace") or "", o.get("metadata", {}).get("name"))
                for o in self.objects}


def _split_documents(text: str) -> Iterable[str]:
    chunk: list[str] = []
    for line in text.splitlines():
        if line.strip() == "---" or line.startswith("--- "):
            if chunk:
                yield "\n".join(chunk)
            chunk = []
        else:
            chunk.append(line)
    if chunk:
        yield "\n".join(chunk)


def pod_spec(obj: dict) -> dict:
    path = POD_TEMPLATE_PATHS.get(obj.get("kind", ""))
    if path is None:
        raise AssertionError(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')} has no pod template")
    node: Any = obj
    for key in path:
        node = (node or {}).get(key)
    if not isinstance(node, dict):
        raise AssertionError(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: no pod spec at {'.'.join(path)}")
    return node


def containers(obj: dict, init: bool = False) -> list[dict]:
    return list(pod_spec(obj).get("initContainers" if init else "containers") or [])


def container(obj: dict, name: str) -> dict:
    spec = pod_spec(obj)
    for item in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if item.get("name") == name:
            return item
    names = [c.get("name") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
    raise AssertionError(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')} has no container {name}; it has {names}")


def env_map(item: dict) -> dict[str, Any]:
    """``{NAME: value}`` for literal values, ``{NAME: {valueFrom...}}`` for references."""
    out: dict[str, Any] = {}
    for env in item.get("env") or []:
        out[env["name"]] = env["value"] if "value" in env else env.get("valueFrom")
    return out


def decoded_secret(obj: dict) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return data
