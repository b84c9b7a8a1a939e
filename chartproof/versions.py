"""Older releases of pinned tools, chosen for a run: beside the current pin ``TOOL`` (``helm``, ``kube-apiserver``),
the pin ``TOOL-MAJOR.MINOR`` (``helm-3.8``, ``kube-apiserver-1.26``) is the same tool at an older release.

``--chartproof-helm 3.8`` (``CHARTPROOF_HELM_VERSION``) makes every helm call of a run use ``helm-3.8``;
``--chartproof-kube-version 1.26`` (``CHARTPROOF_KUBE_VERSION``) starts the embedded control plane from the
``*-1.26`` pins. ``chartproof.matrix`` runs the suites on each combination.
"""

from __future__ import annotations

import re

from chartproof.errors import UsageError
from chartproof.toolchain.pins import ToolPin

HELM_VERSION_ENV = "CHARTPROOF_HELM_VERSION"  # not CHARTPROOF_HELM: that one is the path of an explicit helm binary
KUBE_VERSION_ENV = "CHARTPROOF_KUBE_VERSION"
# The control-plane components that must all be of the chosen Kubernetes minor (the version skew policy) ...
KUBE_REQUIRED = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# ... and those that keep their current pin unless one for that minor exists.
KUBE_OPTIONAL = ("etcd", "kubectl")

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")
_MINOR_SUFFIX = re.compile(r"\d+\.\d+")


def minor_of(version: str) -> str:
    """``v1.26.13`` -> ``1.26``; ``3.8`` -> ``3.8``."""
    match = _VERSION.fullmatch(version.strip())
    if not match:
        raise UsageError(f"not a version: '{version}' (expected MAJOR.MINOR, e.g. 1.26)")
    return f"{match[1]}.{match[2]}"


def pin_for_release(pins: dict[str, ToolPin], tool: str, version: str) -> str | None:
    """The pin of ``tool`` for release ``version`` (MAJOR.MINOR, or a whole version that must be the pinned one):
    ``tool`` when its current pin is of that minor, else ``tool-MAJOR.MINOR``; None when neither is pinned."""
    minor = minor_of(version)
    if tool in pins and minor_of(pins[tool].version) == minor:
        name = tool
    elif f"{tool}-{minor}" in pins:
        name = f"{tool}-{minor}"
    else:
        return None
    whole = version.strip().lstrip("v")
    if whole.count(".") == 2 and whole != pins[name].version.lstrip("v"):
        return None  # a whole version asks for exactly that release
    return name


def pinned_minors(pins: dict[str, ToolPin], tool: str) -> list[str]:
    """Every MAJOR.MINOR at which ``tool`` is pinned: its current pin's, and each ``tool-MAJOR.MINOR``."""
    minors = {minor_of(pins[tool].version)} if tool in pins else set()
    minors |= {name[len(tool) + 1:] for name in pins
               if name.startswith(f"{tool}-") and _MINOR_SUFFIX.fullmatch(name[len(tool) + 1:])}
    return sorted(minors, key=lambda m: tuple(int(x) for x in m.split(".")))


def helm_pin(pins: dict[str, ToolPin], version: str | None) -> str:
    """The helm pin of ``--chartproof-helm VERSION``: ``helm`` when None, else ``helm`` or ``helm-MAJOR.MINOR``."""
    name = pin_for_release(pins, "helm", version) if version else "helm"
    if name is None:
        raise UsageError(f"no helm {version} is pinned; --chartproof-helm takes one of: "
                         f"{', '.join(pinned_minors(pins, 'helm'))}")
    return name


def control_plane_pins(pins: dict[str, ToolPin], version: str | None) -> dict[str, str]:
    """Component tool -> the pin that provides it in a control plane at Kubernetes ``version`` (the current pins
    when None): the API server, controller manager and scheduler must all be pinned at that minor; etcd and
    kubectl use ``etcd-MINOR``/``kubectl-MINOR`` (the etcd of that Kubernetes, whatever its own version) when
    pinned, else their current pins."""
    if not version:
        return {tool: tool for tool in (*KUBE_REQUIRED, *KUBE_OPTIONAL)}
    chosen: dict[str, str] = {}
    for tool in KUBE_REQUIRED:
        name = pin_for_release(pins, tool, version)
        if name is None:
            raise UsageError(f"no Kubernetes {version} control plane is pinned ({tool}-{minor_of(version)} is "
                             f"missing); --chartproof-kube-version takes one of: "
                             f"{', '.join(pinned_minors(pins, 'kube-apiserver'))}")
        chosen[tool] = name
    older = chosen["kube-apiserver"] != "kube-apiserver"
    for tool in KUBE_OPTIONAL:
        chosen[tool] = f"{tool}-{minor_of(version)}" if older and f"{tool}-{minor_of(version)}" in pins else tool
    return chosen
