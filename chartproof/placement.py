"""Where the pods of a workload may run: the Kubernetes scheduling rules a rendered object states.

These are the rules the scheduler and the DaemonSet controller apply to a node: the pod's ``nodeSelector``,
its required node affinity (``requiredDuringSchedulingIgnoredDuringExecution``: the terms are ORed, the
expressions of a term ANDed) and the node's ``NoSchedule``/``NoExecute`` taints against the pod's
tolerations. Preferred affinity, resources and pod (anti-)affinity are not modelled: suites use these
rules to say which nodes a DaemonSet *may* cover, and ask the cluster where its pods really went.

Every function reads with ``.get``: a workload that omits a field is judged on what it states, it never
raises ``KeyError`` (only a workload with no pod template at all raises, as an AssertionError).
"""

from __future__ import annotations

from typing import Any

from chartproof.manifest import pod_spec

INSTANCE_TYPE = "node.kubernetes.io/instance-type"
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


def _spec(workload: dict) -> dict:
    """The pod spec of a workload (or of a bare pod spec passed in)."""
    if "kind" in workload:
        return pod_spec(workload)
    return workload


def required_terms(workload: dict) -> list[dict]:
    """The ``nodeSelectorTerms`` of the workload's required node affinity (``[]`` when it has none)."""
    affinity = (_spec(workload).get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return [t for t in required.get("nodeSelectorTerms") or [] if isinstance(t, dict)]


def required_expressions(workload: dict) -> list[dict]:
    """Every ``matchExpressions`` entry of every required term, in one list."""
    return [e for t in required_terms(workload) for e in t.get("matchExpressions") or [] if isinstance(e, dict)]


def affinity_values(workload: dict, key: str = INSTANCE_TYPE) -> set[str]:
    """The values the required affinity admits for a label ``key``: the union of its ``key In [...]``
    expressions over all terms (``set()`` when no term constrains ``key`` with ``In``)."""
    values: set[str] = set()
    for expr in required_expressions(workload):
        if expr.get("key") == key and expr.get("operator") == "In":
            values |= {str(v) for v in expr.get("values") or []}
    return values


def instance_type_values(workload: dict) -> set[str]:
    """The ``node.kubernetes.io/instance-type`` values the required affinity admits."""
    return affinity_values(workload, INSTANCE_TYPE)


def expression_matches(expr: dict, labels: dict[str, Any]) -> bool:
    """Whether a node with ``labels`` satisfies one node selector requirement."""
    op, key, values = expr.get("operator"), expr.get("key"), [str(v) for v in expr.get("values") or []]
    have = key in labels
    value = str(labels.get(key, ""))
    if op == "In":
        return have and value in values
    if op == "NotIn":
        return not have or value not in values
    if op == "Exists":
        return have
    if op == "DoesNotExist":
        return not have
    if op in ("Gt", "Lt"):
        try:
            number, bound = int(value), int(values[0])
        except (ValueError, IndexError):
            return False
        return have and (number > bound if op == "Gt" else number < bound)
    return False  # an operator the API server would reject matches no node


def term_matches(term: dict, labels: dict[str, Any]) -> bool:
    """A term matches when all its expressions do (``matchFields`` are not modelled and match nothing)."""
    exprs = term.get("matchExpressions") or []
    if term.get("matchFields"):
        return False
    return bool(exprs) and all(expression_matches(e, labels) for e in exprs)


def affinity_admits(workload: dict, labels: dict[str, Any]) -> bool:
    """Whether the required node affinity admits a node with ``labels`` (no required affinity: yes)."""
    terms = required_terms(workload)
    return not terms or any(term_matches(t, labels) for t in terms)


def tolerates(tolerations: list[dict] | None, taint: dict) -> bool:
    """Whether some toleration tolerates ``taint`` (Kubernetes' rules: an empty effect matches every
    effect; an empty key with ``Exists`` matches every taint; ``Equal`` compares values)."""
    for tol in tolerations or []:
        if not isinstance(tol, dict):
            continue
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        op = tol.get("operator") or "Equal"
        if not tol.get("key"):
            if op == "Exists":
                return True
            continue
        if tol.get("key") != taint.get("key"):
            continue
        if op == "Exists" or str(tol.get("value", "")) == str(taint.get("value", "")):
            return True
    return False


def node_labels(node: dict) -> dict[str, Any]:
    return (node.get("metadata") or {}).get("labels") or {}


def node_taints(node: dict) -> list[dict]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if isinstance(t, dict)]


def untolerated_taints(workload: dict, node: dict) -> list[dict]:
    """The node's NoSchedule/NoExecute taints the workload's pods do not tolerate."""
    tolerations = _spec(workload).get("tolerations")
    return [t for t in node_taints(node) if t.get("effect") in BLOCKING_EFFECTS and not tolerates(tolerations, t)]


def selector_admits(workload: dict, labels: dict[str, Any]) -> bool:
    return all(k in labels and str(labels[k]) == str(v) for k, v in (_spec(workload).get("nodeSelector") or {}).items())


def schedulable_on(workload: dict, node: dict) -> bool:
    """Whether the pods of a workload may run on a node: nodeSelector, required node affinity and the
    node's NoSchedule/NoExecute taints (the scheduler's and the DaemonSet controller's rules)."""
    labels = node_labels(node)
    return selector_admits(workload, labels) and affinity_admits(workload, labels) and not untolerated_taints(workload, node)


def has_taint(node: dict, key: str, effect: str | None = None, value: str | None = None) -> bool:
    """Whether the node carries a taint with ``key`` (and ``effect``/``value`` when given)."""
    return any(t.get("key") == key and (effect is None or t.get("effect") == effect)
               and (value is None or str(t.get("value", "")) == value) for t in node_taints(node))


def declares_toleration(workload: dict, key: str) -> bool:
    """Whether the workload names a toleration for taint ``key`` explicitly (a key-less ``Exists`` does
    tolerate it, but does not name it)."""
    return any(isinstance(t, dict) and t.get("key") == key for t in _spec(workload).get("tolerations") or [])
