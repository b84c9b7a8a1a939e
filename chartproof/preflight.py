"""Read-only cluster preflight for ``chartproof certify`` and ``chartproof reproduce``.

``gather`` reads everything the checks need from a cluster once: the server version, nodes, pods, storage
classes, the served API group/versions and RBAC answers (by SelfSubjectAccessReview, which stores nothing).
``facts_from_shape`` builds the same facts from a ``--nodes`` shape before any cluster exists.
``run_checks`` turns the facts, the charts' ``Chart.yaml`` metadata and their merged values into report rows
(pass / fail / warn / skip) whose evidence names what was found: nodes, counts, versions, classes.

``version_satisfies`` reads a Chart.yaml ``kubeVersion`` the way helm does (Masterminds semver v3 rules:
``x`` wildcards, ``~``, ``^``, hyphen ranges, ``||``, and pre-releases matching only a constraint group that
itself names a pre-release, which is why charts write ``>=1.26.0-0``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from chartproof import yamlio
from chartproof.clusters.nodes import (
    DHC_LABEL,
    HEALTH_LABEL,
    SIMULATED_ANNOTATION,
    NodeGroup,
    load_profiles,
    node_objects,
    parse_shape,
)
from chartproof.errors import UsageError
from chartproof.kube import KubectlError
from chartproof.paths import FIXTURES
from chartproof.placement import INSTANCE_TYPE, has_taint, node_labels, node_taints, schedulable_on

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
STATUSES = (PASS, FAIL, WARN, SKIP)

GPU = "nvidia.com/gpu"
NEURON = "aws.amazon.com/neuron"
NEURONCORE = "aws.amazon.com/neuroncore"
EFA = "vpc.amazonaws.com/efa"
INVENTORY_RESOURCES = (GPU, NEURON, EFA)
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
HYPERPOD_LABEL_PREFIX = "sagemaker.amazonaws.com/"
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
EMBEDDED_STORAGE_CLASSES = FIXTURES / "kwok" / "storageclasses.yaml"
HELM_MINIMUM = "3.8.0"
NAME_LIMIT = 12  # names spelled out in one evidence line; the rest are counted (details carry them all)

# What a smoke install needs: (verb, resource[.group][/subresource], namespace); "{namespace}" is the
# namespace gather() is given, "" a cluster-scoped question.
NS = "{namespace}"
SMOKE_ACCESS: list[tuple[str, str, str]] = [
    ("create", "namespaces", ""),
    *[(verb, resource, NS)
      for resource in ("deployments.apps", "statefulsets.apps", "daemonsets.apps", "services", "secrets",
                       "configmaps", "serviceaccounts", "roles.rbac.authorization.k8s.io",
                       "rolebindings.rbac.authorization.k8s.io")
      for verb in ("create", "delete")],
    ("get", "pods/log", NS),
    ("list", "nodes", ""),
]


class VersionError(UsageError):
    """A version or version constraint that does not parse."""


# -- report rows and facts ---------------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    status: str
    evidence: str
    chart: str = ""
    details: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"check status must be one of {', '.join(STATUSES)}, not {self.status!r}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClusterFacts:
    server_version: str
    nodes: list[dict]
    pods: list[dict]
    storage_classes: list[dict]
    api_versions: set[str]
    access: dict[str, bool]
    simulated: bool = False
    problems: dict[str, str] = field(default_factory=dict)  # what could not be read: "pods" -> kubectl's line


# -- semver, as helm reads kubeVersion ---------------------------------------------------------------------

_IDENT = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_PART = r"(?:\d+|[xX*])"
_CV = rf"v?{_PART}(?:\.{_PART})?(?:\.{_PART})?(?:-{_IDENT})?(?:\+{_IDENT})?"
_CV_PARTS = re.compile(rf"^v?({_PART})(?:\.({_PART}))?(?:\.({_PART}))?(?:-({_IDENT}))?(?:\+{_IDENT})?$")
_VERSION = re.compile(rf"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-({_IDENT}))?(?:\+{_IDENT})?$")
_OP = r"(?:>=|=>|<=|=<|!=|~>|>|<|=|~|\^)?"
_TERM = re.compile(rf"({_OP})\s*({_CV})")
_GROUP = re.compile(rf"^\s*{_OP}\s*{_CV}\s*(?:(?:\s+|,\s*){_OP}\s*{_CV}\s*)*$")
_RANGE = re.compile(rf"\s*({_CV})\s+-\s+({_CV})\s*")


def _is_x(part: str | None) -> bool:
    return part in ("x", "X", "*")


def _compare_pre(a: str, b: str) -> int:
    """Semver pre-release precedence (no pre-release ranks above any pre-release)."""
    if a == b:
        return 0
    if not a or not b:
        return 1 if not a else -1
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(a.split(".")) > len(b.split("."))) - (len(a.split(".")) < len(b.split(".")))


@dataclass(frozen=True)
class SemVer:
    major: int
    minor: int
    patch: int
    pre: str = ""

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """A version as helm reads one: ``v`` prefix allowed, missing minor/patch are 0, build metadata ignored."""
        match = _VERSION.match(str(text).strip())
        if not match:
            raise VersionError(f"'{text}' is not a semantic version")
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor or 0), int(patch or 0), pre or "")

    def compare(self, other: SemVer) -> int:
        mine, theirs = (self.major, self.minor, self.patch), (other.major, other.minor, other.patch)
        if mine != theirs:
            return -1 if mine < theirs else 1
        return _compare_pre(self.pre, other.pre)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}" + (f"-{self.pre}" if self.pre else "")


@dataclass(frozen=True)
class _Term:
    op: str
    con: SemVer
    dirty: bool = False        # some part is a wildcard or missing
    minor_dirty: bool = False  # 1, 1.x
    patch_dirty: bool = False  # 1.2, 1.2.x

    @classmethod
    def parse(cls, op: str, text: str) -> _Term:
        major, minor, patch, pre = _CV_PARTS.match(text).groups()
        pre = pre or ""
        if _is_x(major):
            return cls(op, SemVer(0, 0, 0, pre), dirty=True)
        if minor is None or _is_x(minor):
            return cls(op, SemVer(int(major), 0, 0, pre), dirty=True, minor_dirty=True)
        if patch is None or _is_x(patch):
            return cls(op, SemVer(int(major), int(minor), 0, pre), dirty=True, patch_dirty=True)
        return cls(op, SemVer(int(major), int(minor), int(patch), pre))

    def admits(self, v: SemVer, include_pre: bool) -> bool:
        if v.pre and not include_pre:
            return False
        c, cmp = self.con, v.compare(self.con)
        if self.op in ("", "="):
            return self._tilde(v) if self.dirty else cmp == 0
        if self.op == "!=":
            if self.dirty:
                if v.major != c.major or (v.minor != c.minor and not self.minor_dirty):
                    return True
                if self.minor_dirty:
                    return False
                if v.patch != c.patch and not self.patch_dirty:
                    return True
                if self.patch_dirty:
                    return _compare_pre(v.pre, c.pre) != 0
            return cmp != 0
        if self.op == ">":
            if not self.dirty:
                return cmp > 0
            if v.major != c.major:
                return v.major > c.major
            if self.minor_dirty:  # >1 means 2.0.0 or above
                return False
            return v.minor > c.minor if self.patch_dirty else cmp > 0
        if self.op == "<":
            return cmp < 0
        if self.op in (">=", "=>"):
            return cmp >= 0
        if self.op in ("<=", "=<"):
            if not self.dirty:
                return cmp <= 0
            return not (v.major > c.major or (v.major == c.major and v.minor > c.minor and not self.minor_dirty))
        if self.op in ("~", "~>"):
            return self._tilde(v)
        return self._caret(v)  # "^"

    def _tilde(self, v: SemVer) -> bool:
        c = self.con
        if v.compare(c) < 0:
            return False
        if (c.major, c.minor, c.patch) == (0, 0, 0) and not self.minor_dirty and not self.patch_dirty:
            return True
        return v.major == c.major and (v.minor == c.minor or self.minor_dirty)

    def _caret(self, v: SemVer) -> bool:
        c = self.con
        if v.compare(c) < 0:
            return False
        if c.major > 0 or self.minor_dirty:
            return v.major == c.major
        if v.major > 0:
            return False
        if c.minor > 0 or self.patch_dirty:
            return v.minor == c.minor
        return v.minor == 0 and v.patch == c.patch


def parse_constraint(constraint: str) -> list[tuple[list[_Term], bool]]:
    """OR groups of AND-ed terms, each with whether it admits pre-release versions."""
    text = str(constraint or "").strip()
    if not text:
        raise VersionError("empty version constraint")
    text = _RANGE.sub(lambda m: f" >= {m[1]}, <= {m[2]} ", text)
    groups = []
    for part in text.split("||"):
        if not _GROUP.match(part):
            where = f" (at '{part.strip()}')" if part.strip() and part.strip() != text else ""
            raise VersionError(f"improper version constraint '{constraint}'{where}")
        terms = [_Term.parse(op, cv) for op, cv in _TERM.findall(part)]
        groups.append((terms, any(t.con.pre for t in terms)))
    return groups


def version_satisfies(version: str, constraint: str) -> bool:
    """Whether ``version`` (e.g. ``v1.30.2-eks-1234``) satisfies a Chart.yaml ``kubeVersion`` as helm checks it."""
    v = SemVer.parse(version)
    return any(all(t.admits(v, include_pre) for t in terms) for terms, include_pre in parse_constraint(constraint))


# -- values ------------------------------------------------------------------------------------------------

def _overlay(base: dict, top: dict) -> dict:
    """``top`` deep-merged over ``base`` (no deletions): the chart's per-pool ``mergeOverwrite``."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _dig(values: Any, path: str, default: Any = None) -> Any:
    node = values
    for step in path.split("."):
        if not isinstance(node, dict) or step not in node:
            return default
        node = node[step]
    return node


def _on(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _count(value: Any) -> int:
    """An integer the way the chart's ``int64`` reads it: null, "" and junk are 0."""
    try:
        return max(int(float(str(value).strip())), 0) if value not in (None, "") else 0
    except ValueError:
        return 0


def _chart_kind(name: str, meta: dict | None) -> str:
    """Which chart of this repository ``name`` is: adaptive, monitoring, hyperpod, or "" for another."""
    names = {str(name).lower(), str((meta or {}).get("name") or "").lower()}
    for kind in ("adaptive", "monitoring"):
        if kind in names:
            return kind
    return "hyperpod" if any("hyperpod" in n for n in names) else ""


# -- node helpers ------------------------------------------------------------------------------------------

def _name(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("name") or "?")


def _amount(node: dict, section: str, resource: str) -> int:
    return _count(((node.get("status") or {}).get(section) or {}).get(resource))


def _gpus(node: dict) -> int:
    return _amount(node, "allocatable", GPU)


def _is_accelerator(node: dict) -> bool:
    return any(_amount(node, "capacity", r) > 0 for r in (GPU, NEURON, NEURONCORE))


def _names(names: Iterable[str], limit: int = NAME_LIMIT) -> str:
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" and {len(names) - limit} more"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _taint_text(taint: dict) -> str:
    value = f"={taint['value']}" if taint.get("value") not in (None, "") else ""
    return f"{taint.get('key')}{value}:{taint.get('effect')}"


# -- gathering ---------------------------------------------------------------------------------------------

def split_resource(target: str) -> tuple[str, str, str]:
    """``deployments.apps`` -> ("apps", "deployments", ""); ``pods/log`` -> ("", "pods", "log")."""
    head, _, sub = target.partition("/")
    resource, _, group = head.partition(".")
    return group, resource, sub


def access_key(verb: str, target: str, namespace: str = "") -> str:
    """The ``ClusterFacts.access`` key: ``verb group/resource[/subresource] [namespace]`` (group ``core``)."""
    group, resource, sub = split_resource(target)
    key = f"{verb} {group or 'core'}/{resource}" + (f"/{sub}" if sub else "")
    return key + (f" {namespace}" if namespace else "")


def describe_access(key: str) -> str:
    """``create apps/deployments ns1`` -> ``create deployments.apps in ns ns1``."""
    verb, _, rest = key.partition(" ")
    target, _, namespace = rest.partition(" ")
    group, _, resource = target.partition("/")
    resource, _, sub = resource.partition("/")
    text = resource + (f".{group}" if group != "core" else "") + (f"/{sub}" if sub else "")
    return f"{verb} {text}" + (f" in ns {namespace}" if namespace else " cluster-wide")


def _json_documents(text: str) -> list[dict]:
    """One JSON object, a v1 List, or several objects printed one after another."""
    decoder, docs, pos = json.JSONDecoder(), [], 0
    text = text.strip()
    while pos < len(text):
        doc, end = decoder.raw_decode(text, pos)
        docs.extend(doc.get("items") or [] if doc.get("kind") == "List" else [doc])
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return docs


def review_access(kubectl, needed: list[tuple[str, str, str]]) -> dict[str, bool]:
    """Ask the API server, in one ``kubectl create``, whether the current user may do each (verb, resource,
    namespace): SelfSubjectAccessReviews are answered and never stored."""
    reviews = []
    for verb, target, namespace in needed:
        group, resource, sub = split_resource(target)
        attributes = {"verb": verb, "group": group, "resource": resource}
        if sub:
            attributes["subresource"] = sub
        if namespace:
            attributes["namespace"] = namespace
        reviews.append({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                        "spec": {"resourceAttributes": attributes}})
    out = kubectl("create", "-f", "-", "-o", "json",
                  input=json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews}))
    try:
        answers = _json_documents(out)
    except ValueError as exc:
        raise KubectlError(["create", "selfsubjectaccessreviews"], 0, f"unreadable answer: {exc}") from None
    if len(answers) != len(needed):
        raise KubectlError(["create", "selfsubjectaccessreviews"], 0,
                           f"asked {len(needed)} access reviews, got {len(answers)} answers")
    return {access_key(*ask): bool((answer.get("status") or {}).get("allowed"))
            for ask, answer in zip(needed, answers, strict=True)}


def gather(kubectl, *, namespace: str = "default",
           access_needed: list[tuple[str, str, str]] | None = None) -> ClusterFacts:
    """Read the cluster once, read-only. An unreachable API server raises ClusterUnreachableError; a list the
    user may not read is recorded in ``problems`` and turns the checks that need it into warnings."""
    version = kubectl.server_version()
    problems: dict[str, str] = {}

    def read(what: str, fetch, empty):
        try:
            return fetch()
        except KubectlError as exc:
            problems[what] = str(exc)
            return empty

    nodes = read("nodes", lambda: kubectl.items("nodes"), [])
    pods = read("pods", lambda: kubectl.items("pods", all_namespaces=True), [])
    classes = read("storage classes", lambda: kubectl.items("storageclasses"), [])
    api_versions = read("api versions", lambda: set(kubectl("api-versions").split()), set())
    needed = [(verb, target, ns.replace(NS, namespace))
              for verb, target, ns in (SMOKE_ACCESS if access_needed is None else access_needed)]
    access = read("rbac", lambda: review_access(kubectl, needed), {}) if needed else {}
    simulated = bool(nodes) and all(SIMULATED_ANNOTATION in ((n.get("metadata") or {}).get("annotations") or {})
                                    for n in nodes)
    return ClusterFacts(server_version=version, nodes=nodes, pods=pods, storage_classes=classes,
                        api_versions=api_versions, access=access, simulated=simulated, problems=problems)


def facts_from_shape(groups: list[NodeGroup] | str | None) -> ClusterFacts:
    """The facts of the embedded cluster a ``--nodes`` shape will give, before it exists: its nodes and
    storage classes; the server version, pods, served APIs and RBAC are unknown (those checks skip)."""
    if groups is None or isinstance(groups, str):
        groups = parse_shape(groups)
    classes = [doc for doc in yamlio.load_all(EMBEDDED_STORAGE_CLASSES.read_text()) if doc]
    return ClusterFacts(server_version="", nodes=node_objects(groups, simulated=True), pods=[],
                        storage_classes=classes, api_versions=set(), access={}, simulated=True)


# -- checks ------------------------------------------------------------------------------------------------

def _unreadable(facts: ClusterFacts, what: str, name: str, chart: str = "") -> Check | None:
    if what in facts.problems:
        return Check(name, WARN, f"could not read {what}: {facts.problems[what]}", chart)
    return None


def check_kubernetes_version(facts: ClusterFacts, charts: dict[str, dict]) -> list[Check]:
    name = "kubernetes version"
    if not charts:
        return [Check(name, SKIP, "no chart to check the server version against")]
    rows = []
    for chart, meta in charts.items():
        constraint = str((meta or {}).get("kubeVersion") or "").strip()
        if not facts.server_version:
            rows.append(Check(name, SKIP, f"server version unknown until the cluster exists (kubeVersion "
                                          f"'{constraint or 'none'}')", chart))
        elif not constraint:
            rows.append(Check(name, PASS, f"Chart.yaml states no kubeVersion; server {facts.server_version}", chart))
        else:
            try:
                ok = version_satisfies(facts.server_version, constraint)
            except VersionError as exc:
                rows.append(Check(name, WARN, f"cannot check kubeVersion '{constraint}' against server "
                                              f"{facts.server_version}: {exc.message}", chart))
                continue
            if ok:
                rows.append(Check(name, PASS, f"server {facts.server_version} satisfies kubeVersion '{constraint}'",
                                  chart))
            else:
                hint = ""
                if SemVer.parse(facts.server_version).pre and "-" not in constraint:
                    hint = (" (a pre-release server version such as this one only matches a constraint with a "
                            "pre-release, e.g. '>=1.26.0-0')")
                rows.append(Check(name, FAIL, f"server {facts.server_version} does not satisfy kubeVersion "
                                              f"'{constraint}': helm refuses to install{hint}", chart))
    return rows


def check_helm_version(helm_version: str | None, minimum: str = HELM_MINIMUM) -> Check:
    name = "helm version"
    if not helm_version:
        return Check(name, SKIP, "helm client version not known")
    try:
        ok = SemVer.parse(helm_version).compare(SemVer.parse(minimum)) >= 0
    except VersionError as exc:
        return Check(name, WARN, f"cannot compare helm {helm_version} with the minimum {minimum}: {exc.message}")
    if ok:
        return Check(name, PASS, f"helm {helm_version} >= {minimum} (the README's minimum)")
    return Check(name, FAIL, f"helm {helm_version} is older than the README's minimum {minimum}")


def check_accelerator_inventory(facts: ClusterFacts) -> Check:
    name = "accelerator inventory"
    if problem := _unreadable(facts, "nodes", name):
        return problem
    by_type: dict[str, list[dict]] = defaultdict(list)
    details = []
    for node in facts.nodes:
        itype = str(node_labels(node).get(INSTANCE_TYPE) or "no instance type")
        by_type[itype].append(node)
        amounts = [f"{r}={_amount(node, 'allocatable', r)}" for r in INVENTORY_RESOURCES
                   if _amount(node, "allocatable", r)]
        details.append(f"{_name(node)} [{itype}]: {' '.join(amounts) or 'no accelerators'}")
    parts = []
    for itype, nodes in sorted(by_type.items()):
        totals = [f"{r} {sum(_amount(n, 'allocatable', r) for n in nodes)}" for r in INVENTORY_RESOURCES
                  if any(_amount(n, "allocatable", r) for n in nodes)]
        parts.append(f"{itype}: {_plural(len(nodes), 'node')}, " + (", ".join(totals) or "no accelerators"))
    evidence = "; ".join(parts) if parts else "the cluster has no nodes"
    return Check(name, PASS, f"allocatable by instance type: {evidence}", details=details)


def _pod_images(pod: dict) -> list[str]:
    spec = pod.get("spec") or {}
    return [str(c.get("image") or "") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]


def _is_nvidia_plugin(pod: dict) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    images = _pod_images(pod)
    return (labels.get("app") == "nvidia-device-plugin-daemonset"
            or any(k in image for image in images for k in ("k8s-device-plugin", "nvidia-device-plugin", "gpu-operator")))


def _is_neuron_plugin(pod: dict) -> bool:
    containers = (pod.get("spec") or {}).get("containers") or []
    texts = _pod_images(pod) + [_name(pod)] + [str(c.get("name") or "") for c in containers]
    return any("neuron-device-plugin" in text for text in texts)


def _owner(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    owner = owners[0].get("name") if owners else meta.get("name")
    return f"{meta.get('namespace', '')}/{owner}"


def check_device_plugin(facts: ClusterFacts) -> Check:
    name = "gpu device plugin"
    if problem := _unreadable(facts, "nodes", name) or _unreadable(facts, "pods", name):
        return problem
    kinds = [("NVIDIA", "GPU", [n for n in facts.nodes if _amount(n, "capacity", GPU) > 0], _is_nvidia_plugin),
             ("Neuron", "Neuron", [n for n in facts.nodes
                                   if _amount(n, "capacity", NEURON) > 0 or _amount(n, "capacity", NEURONCORE) > 0],
              _is_neuron_plugin)]
    if not any(nodes for _, _, nodes, _ in kinds):
        return Check(name, SKIP, f"no node has {GPU} or {NEURON} capacity")
    running = [p for p in facts.pods
               if (p.get("status") or {}).get("phase") == "Running" and (p.get("spec") or {}).get("nodeName")]
    plugin_pods = [p for p in running if _is_nvidia_plugin(p) or _is_neuron_plugin(p)]
    if facts.simulated and not plugin_pods:
        return Check(name, SKIP, "simulated nodes advertise their accelerators without a device plugin, and none "
                                 "runs here")
    found, missing, details = [], [], []
    for plugin, kind, nodes, is_plugin in kinds:
        if not nodes:
            continue
        pods = [p for p in running if is_plugin(p)]
        covered = {p["spec"]["nodeName"] for p in pods}
        without = [_name(n) for n in nodes if _name(n) not in covered]
        owners = sorted({_owner(p) for p in pods})
        details += [f"{_name(n)}: {plugin} device plugin {'Running' if _name(n) in covered else 'missing'}"
                    for n in nodes]
        if without:
            missing.append(f"no Running {plugin} device plugin pod on {len(without)} of "
                           f"{_plural(len(nodes), kind + ' node')}: {_names(without)}")
        else:
            found.append(f"{plugin} device plugin Running on all {_plural(len(nodes), kind + ' node')}"
                         + (f" ({_names(owners, 4)})" if owners else ""))
    if missing:
        return Check(name, FAIL, "; ".join(missing + found), details=details)
    return Check(name, PASS, "; ".join(found), details=details)


def _gpus_by_instance_type() -> dict[str, int]:
    """GPUs per instance type, from the node profiles in ``fixtures/nodes`` (public instance specifications)."""
    return {p.labels[INSTANCE_TYPE]: _count(p.capacity.get(GPU)) for p in load_profiles().values()
            if INSTANCE_TYPE in p.labels}


def check_gpu_allocatable(facts: ClusterFacts) -> Check:
    name = "gpu allocatable"
    if problem := _unreadable(facts, "nodes", name):
        return problem
    expected_by_type = _gpus_by_instance_type()
    considered, unallocatable, mismatched = 0, [], []
    for node in facts.nodes:
        labels = node_labels(node)
        capacity, allocatable = _amount(node, "capacity", GPU), _gpus(node)
        itype = labels.get(INSTANCE_TYPE)
        expected = expected_by_type.get(itype)
        counted = labels.get(GPU_COUNT_LABEL)
        if not (capacity or allocatable or expected or _count(counted)):
            continue
        considered += 1
        if capacity > 0 and allocatable == 0:
            unallocatable.append(f"{_name(node)} (capacity {capacity}, allocatable 0)")
            continue
        differs = []
        if expected is not None and expected != allocatable:
            differs.append(f"instance type {itype} has {expected}")
        if counted is not None and _count(counted) != allocatable:
            differs.append(f"label {GPU_COUNT_LABEL} says {counted}")
        if differs:
            mismatched.append(f"{_name(node)} (allocatable {allocatable}, but {' and '.join(differs)})")
    if not considered:
        return Check(name, SKIP, f"no node has {GPU} capacity or a GPU instance type")
    parts = []
    if unallocatable:
        parts.append(f"{len(unallocatable)} of {_plural(considered, 'GPU node')} advertise GPUs but none "
                     f"allocatable: {_names(unallocatable)}")
    if mismatched:
        parts.append(f"mismatched instance type on {_plural(len(mismatched), 'node')}: {_names(mismatched)}")
    if parts:
        return Check(name, FAIL if unallocatable else WARN, "; ".join(parts), details=unallocatable + mismatched)
    return Check(name, PASS, f"all {_plural(considered, 'GPU node')} have every GPU allocatable, as their "
                             f"instance type and {GPU_COUNT_LABEL} say")


def storage_requirements(kind: str, values: dict) -> dict[str, str]:
    """The storage classes the values ask for: values path -> class ("" = the default class, "-" = none)."""
    found: dict[str, str] = {}
    covered: set[str] = set()
    if kind == "adaptive":
        server = _dig(values, "prometheus.server", {}) or {}
        covered |= {"prometheus.server.storageClass", "prometheus.server.persistentVolume",
                    "tensorboard.persistentVolume"}
        pv = server.get("persistentVolume") or {}
        if _on(pv.get("enabled")):
            if pv.get("storageClass") not in (None, ""):  # the subchart: persistentVolume.storageClass wins
                found["prometheus.server.persistentVolume.storageClass"] = str(pv["storageClass"])
            else:
                found["prometheus.server.storageClass"] = str(server.get("storageClass") or "")
        tensorboard = values.get("tensorboard") or {}
        tb_pv = tensorboard.get("persistentVolume") or {}
        if _on(tensorboard.get("enabled")) and _on(tb_pv.get("enabled")):
            found["tensorboard.persistentVolume.storageClass"] = str(tb_pv.get("storageClass") or "")
    if kind == "monitoring":
        covered.add("grafana.storageClass")
        if _on(_dig(values, "grafana.enablePersistence")):
            found["grafana.storageClass"] = str(_dig(values, "grafana.storageClass") or "")

    def walk(node: Any, path: str, persistent: bool) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{path}[{index}]", persistent)
            return
        if not isinstance(node, dict):
            return
        persistent = persistent or _on(node.get("enablePersistence"))
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            if sub in covered:
                continue
            if key in ("storageClass", "storageClassName") and persistent and not isinstance(value, dict | list):
                found.setdefault(sub, str(value or ""))
            elif isinstance(value, dict) and "persist" in str(key).lower() and "enabled" in value:
                walk(value, sub, _on(value.get("enabled")))
            else:
                walk(value, sub, persistent)

    walk(values, "", False)
    return found


def check_storage_classes(facts: ClusterFacts, chart: str, kind: str, values: dict) -> Check:
    name = "storage classes"
    wanted = storage_requirements(kind, values)
    if not wanted:
        return Check(name, SKIP, "the values enable no persistent volume that names a storage class", chart)
    if problem := _unreadable(facts, "storage classes", name, chart):
        return problem
    classes = sorted(_name(sc) for sc in facts.storage_classes)
    defaults = [_name(sc) for sc in facts.storage_classes
                if any(str(((sc.get("metadata") or {}).get("annotations") or {}).get(a, "")).lower() == "true"
                       for a in DEFAULT_CLASS_ANNOTATIONS)]
    summary = (f"cluster classes: {_names(classes) or 'none'}; default class: "
               + (", ".join(defaults) if defaults else "none"))
    problems, fine = [], []
    for path, wanted_class in sorted(wanted.items()):
        if wanted_class == "-":
            fine.append(f"{path} '-' (no class: a pre-provisioned volume)")
        elif wanted_class == "":
            if defaults:
                fine.append(f"{path} '' (the default class, {defaults[0]})")
            else:
                problems.append(f"{path} is '' (the cluster's default class) but no class is marked default")
        elif wanted_class in classes:
            fine.append(f"{path} '{wanted_class}'")
        else:
            problems.append(f"{path} '{wanted_class}' does not exist")
    if problems:
        return Check(name, FAIL, "; ".join(problems) + f" ({summary})", chart, details=fine)
    return Check(name, PASS, "exist: " + "; ".join(fine) + f" ({summary})", chart)


def check_crds(facts: ClusterFacts, chart: str, values: dict) -> Check:
    name = "crds served"
    needs = []
    if _on(_dig(values, "externalSecret.enabled")):
        needs.append(("externalSecret.enabled", "external-secrets.io/v1", "the External Secrets Operator"))
    if _on(_dig(values, "autoscaling.enabled")) and not _on(_dig(values, "keda.crds.install", True)):
        needs.append(("autoscaling.enabled with keda.crds.install: false", "keda.sh/v1alpha1", "KEDA"))
    if not needs:
        return Check(name, SKIP, "no enabled feature needs a CRD the chart does not bring", chart)
    if problem := _unreadable(facts, "api versions", name, chart):
        return problem
    if not facts.api_versions:
        return Check(name, SKIP, "served API versions unknown until the cluster exists; needed: "
                                 + ", ".join(gv for _, gv, _ in needs), chart)
    missing = [f"{feature} needs {gv}, which the cluster does not serve (install {owner} first)"
               for feature, gv, owner in needs if gv not in facts.api_versions]
    if missing:
        return Check(name, FAIL, "; ".join(missing), chart)
    return Check(name, PASS, "served: " + "; ".join(f"{gv} (for {feature})" for feature, gv, _ in needs), chart)


@dataclass
class GpuWorkload:
    """One harmony workload of the adaptive chart as it renders: GPUs per replica, replicas, placement."""

    name: str
    gpus: int
    min_replicas: int
    max_replicas: int
    pod: dict  # nodeSelector / tolerations / affinity of its pod spec


def gpu_workloads(values: dict) -> list[GpuWorkload]:
    """Harmony's StatefulSet and every ``harmony.computePool[]`` Deployment (pools inherit harmony's keys:
    maps deep-merge, lists and scalars replace), with gpusPerReplica > 0."""
    harmony = values.get("harmony") or {}
    replicas = 1 if harmony.get("replicaCount") is None else _count(harmony.get("replicaCount"))
    workloads = [GpuWorkload("harmony", _count(harmony.get("gpusPerReplica")), replicas, replicas,
                             {"nodeSelector": harmony.get("nodeSelector"), "tolerations": harmony.get("tolerations")})]
    base = {k: v for k, v in harmony.items() if k not in ("computePool", "podLabels", "replicaCount", "group",
                                                          "partitionKey")}
    for index, pool in enumerate(harmony.get("computePool") or []):
        if not isinstance(pool, dict):
            continue
        settings = _overlay(base, pool)
        low = 1 if pool.get("minReplicaCount") is None else _count(pool.get("minReplicaCount"))
        high = 2 if pool.get("maxReplicaCount") is None else _count(pool.get("maxReplicaCount"))
        workloads.append(GpuWorkload(f"pool {pool.get('name') or f'#{index}'}", _count(settings.get("gpusPerReplica")),
                                     low, high, {k: settings.get(k) for k in ("nodeSelector", "tolerations",
                                                                                "affinity")}))
    return [w for w in workloads if w.gpus > 0]


def _landing_nodes(workload: GpuWorkload, nodes: list[dict]) -> list[dict]:
    return [n for n in nodes if _gpus(n) > 0 and not (n.get("spec") or {}).get("unschedulable")
            and schedulable_on(workload.pod, n)]


def _why_nowhere(workload: GpuWorkload, nodes: list[dict]) -> str:
    gpu_nodes = [n for n in nodes if _gpus(n) > 0]
    if not gpu_nodes:
        return f"no node has allocatable {GPU}"
    unplaced = {"nodeSelector/affinity": 0, "taints": 0, "cordoned": 0}
    for node in gpu_nodes:
        if (node.get("spec") or {}).get("unschedulable"):
            unplaced["cordoned"] += 1
        elif not schedulable_on({**workload.pod, "tolerations": [{"operator": "Exists"}]}, node):
            unplaced["nodeSelector/affinity"] += 1
        else:
            unplaced["taints"] += 1
    reasons = ", ".join(f"{count} by {why}" for why, count in unplaced.items() if count)
    return f"no node can take it: {_plural(len(gpu_nodes), 'GPU node')}, excluded {reasons}"


def check_gpus_per_replica(facts: ClusterFacts, chart: str, values: dict) -> Check:
    name = "gpus per replica"
    workloads = gpu_workloads(values)
    if not workloads:
        return Check(name, SKIP, "every harmony workload is CPU-only (gpusPerReplica 0 or null)", chart)
    if problem := _unreadable(facts, "nodes", name, chart):
        return problem
    failures, fine = [], []
    for workload in workloads:
        nodes = _landing_nodes(workload, facts.nodes)
        if not nodes:
            failures.append(f"{workload.name} ({workload.gpus} GPUs per replica): "
                            + _why_nowhere(workload, facts.nodes))
            continue
        odd = [f"{_name(n)}: {_gpus(n)}" for n in nodes if _gpus(n) % workload.gpus]
        if odd:
            failures.append(f"{workload.name}: gpusPerReplica {workload.gpus} does not divide the GPU count of "
                            f"{len(odd)} of the {_plural(len(nodes), 'node')} it can land on ({_names(odd)})")
        else:
            counts = sorted({_gpus(n) for n in nodes})
            fine.append(f"{workload.name}: {workload.gpus} divides the GPUs ({', '.join(map(str, counts))}) of "
                        f"all {_plural(len(nodes), 'node')} it can land on")
    if failures:
        return Check(name, FAIL, "; ".join(failures), chart, details=fine)
    return Check(name, PASS, "; ".join(fine), chart)


def _pack(demand: list[tuple[GpuWorkload, int]], landing: dict[str, list[dict]]) -> dict[str, int]:
    """First-fit decreasing: each replica takes the first node it may land on with enough free GPUs.
    Returns the replicas left unplaced per workload name."""
    free = {_name(n): _gpus(n) for nodes in landing.values() for n in nodes}
    replicas = [w for w, count in demand for _ in range(count)]
    replicas.sort(key=lambda w: (-w.gpus, len(landing[w.name])))
    unplaced: dict[str, int] = defaultdict(int)
    for workload in replicas:
        for node in landing[workload.name]:
            if free[_name(node)] >= workload.gpus:
                free[_name(node)] -= workload.gpus
                break
        else:
            unplaced[workload.name] += 1
    return dict(unplaced)


def check_gpu_demand(facts: ClusterFacts, chart: str, values: dict) -> Check:
    name = "gpu demand"
    workloads = gpu_workloads(values)
    if not workloads:
        return Check(name, SKIP, "no harmony workload asks for GPUs", chart)
    if problem := _unreadable(facts, "nodes", name, chart):
        return problem
    landing = {w.name: sorted(_landing_nodes(w, facts.nodes), key=_name) for w in workloads}
    reachable = {_name(n): _gpus(n) for nodes in landing.values() for n in nodes}
    supply = f"the {sum(reachable.values())} allocatable GPUs of the {_plural(len(reachable), 'node')} they can land on"

    def at(level: str) -> tuple[str, dict[str, int], dict[str, int]]:
        """What the workloads need at min- or maxReplicaCount, and the replicas that do not fit."""
        counts = {w.name: w.min_replicas if level == "min" else w.max_replicas for w in workloads}
        spelled = ", ".join(f"{w.name} {counts[w.name]}x{w.gpus}" for w in workloads)
        needed = sum(w.gpus * counts[w.name] for w in workloads)
        unplaced = _pack([(w, counts[w.name]) for w in workloads], landing)
        return f"{needed} GPUs at {level}ReplicaCount ({spelled})", unplaced, counts

    low_text, low_unplaced, low_counts = at("min")
    details = [f"{w.name}: may land on {_names([_name(n) for n in landing[w.name]]) or 'no node'}" for w in workloads]
    if low_unplaced:
        short = ", ".join(f"{n} ({left} of {low_counts[n]} replicas unplaced)" for n, left in low_unplaced.items())
        return Check(name, FAIL, f"needs {low_text}; does not fit in {supply}: {short}", chart, details=details)
    evidence = f"needs {low_text}: fits in {supply}"
    if not _on(_dig(values, "autoscaling.enabled")):
        return Check(name, PASS, evidence, chart, details=details)
    high_text, high_unplaced, high_counts = at("max")
    if high_unplaced:
        short = ", ".join(f"{n} ({left} of {high_counts[n]} replicas unplaced)" for n, left in high_unplaced.items())
        return Check(name, WARN, f"{evidence}; needs {high_text}, where {short} does not fit: needs the Cluster "
                                 "Autoscaler (or more nodes) to reach maxReplicaCount", chart, details=details)
    return Check(name, PASS, f"{evidence}; {high_text} fit too", chart, details=details)


def check_hyperpod_health(facts: ClusterFacts, hyperpod_asked: bool) -> Check:
    name = "hyperpod node health"
    chart = "hyperpod" if hyperpod_asked else ""
    if problem := _unreadable(facts, "nodes", name, chart):
        return problem
    hyperpod = [n for n in facts.nodes if any(str(k).startswith(HYPERPOD_LABEL_PREFIX) for k in node_labels(n))]
    considered = [n for n in hyperpod if hyperpod_asked or _is_accelerator(n)]
    if not considered:
        if hyperpod_asked:
            return Check(name, WARN, f"no node carries the SageMaker HyperPod labels ({HEALTH_LABEL}); the "
                                     "hyperpod chart expects HyperPod nodes", chart)
        return Check(name, SKIP, "no accelerator node carries the SageMaker HyperPod labels", chart)
    unhealthy = []
    for node in considered:
        labels = node_labels(node)
        health, dhc = labels.get(HEALTH_LABEL), labels.get(DHC_LABEL)
        if health == "Schedulable" and dhc == "Passed" and not has_taint(node, HEALTH_LABEL):
            continue
        taints = [_taint_text(t) for t in node_taints(node) if str(t.get("key", "")).startswith(HYPERPOD_LABEL_PREFIX)]
        unhealthy.append(f"{_name(node)} ({HEALTH_LABEL.split('/')[1]}={health or '<unset>'}, "
                         f"{DHC_LABEL.split('/')[1]}={dhc or '<unset>'}, taint {', '.join(taints) or 'none'})")
    scope = "HyperPod node" if hyperpod_asked else "HyperPod accelerator node"
    if unhealthy:
        return Check(name, FAIL, f"{len(unhealthy)} of {_plural(len(considered), scope)} not ready for work: "
                                 + "; ".join(unhealthy), chart, details=unhealthy)
    return Check(name, PASS, f"all {_plural(len(considered), scope)} are {HEALTH_LABEL}=Schedulable with "
                             f"{DHC_LABEL}=Passed", chart)


def check_rbac(facts: ClusterFacts) -> Check:
    name = "rbac"
    if problem := _unreadable(facts, "rbac", name):
        return problem
    if not facts.access:
        return Check(name, SKIP, "permissions not asked (no cluster yet)")
    denied = [describe_access(k) for k, allowed in facts.access.items() if not allowed]
    if denied:
        return Check(name, FAIL, f"{len(denied)} of {len(facts.access)} needed permissions denied: "
                                 + "; ".join(f"cannot {d}" for d in denied), details=denied)
    namespaces = sorted({k.split(" ")[2] for k in facts.access if k.count(" ") == 2})
    where = f" (namespace {', '.join(namespaces)} and cluster-wide)" if namespaces else ""
    return Check(name, PASS, f"all {len(facts.access)} needed permissions allowed{where}",
                 details=[describe_access(k) for k in facts.access])


def run_checks(facts: ClusterFacts, *, charts: dict[str, dict], values: dict[str, dict],
               helm_version: str | None = None, helm_minimum: str = HELM_MINIMUM) -> list[Check]:
    """Every preflight row, in a stable order. ``charts``: chart name -> Chart.yaml metadata; ``values``:
    chart name -> its merged values (chart defaults + user values, see ``merge_values``)."""
    kinds = {chart: _chart_kind(chart, meta) for chart, meta in charts.items()}
    adaptive = [chart for chart, kind in kinds.items() if kind == "adaptive"]
    rows = check_kubernetes_version(facts, charts)
    rows.append(check_helm_version(helm_version, helm_minimum))
    rows.append(check_accelerator_inventory(facts))
    rows.append(check_device_plugin(facts))
    rows.append(check_gpu_allocatable(facts))
    rows += [check_storage_classes(facts, chart, kinds[chart], values.get(chart) or {}) for chart in charts] or [
        Check("storage classes", SKIP, "no chart asked")]
    for name, check in (("crds served", check_crds), ("gpus per replica", check_gpus_per_replica),
                        ("gpu demand", check_gpu_demand)):
        rows += [check(facts, chart, values.get(chart) or {}) for chart in adaptive]
        if not adaptive:
            rows.append(Check(name, SKIP, "the adaptive chart is not asked"))
    rows.append(check_hyperpod_health(facts, "hyperpod" in kinds.values()))
    rows.append(check_rbac(facts))
    return rows


def failed(checks: Iterable[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]


def format_table(checks: Iterable[Check], *, details: bool = False) -> str:
    """A plain-text table: STATUS  CHECK  CHART  EVIDENCE (with ``details`` under their row when asked)."""
    checks = list(checks)
    header = ("STATUS", "CHECK", "CHART", "EVIDENCE")
    cells = [(c.status.upper(), c.name, c.chart or "-", c.evidence) for c in checks]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(3)]
    lines = []
    for index, row in enumerate([header, *cells]):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
        if details and index:
            lines += [" " * (sum(widths) + 6) + "- " + line for line in checks[index - 1].details]
    return "\n".join(line.rstrip() for line in lines)
