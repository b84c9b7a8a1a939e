"""chartproof.placement: the scheduling rules suites use to say where a workload's pods may run."""

from __future__ import annotations

import pytest

from chartproof import placement as P

HEALTH = {"key": "sagemaker.amazonaws.com/node-health-status", "value": "Unschedulable", "effect": "NoSchedule"}


def daemonset(affinity_terms=None, tolerations=None, node_selector=None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "x"}]}
    if affinity_terms is not None:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": affinity_terms}}}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    return {"kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {"template": {"spec": spec}}}


def node(instance_type: str, taints=(), **labels) -> dict:
    return {"metadata": {"name": instance_type, "labels": {P.INSTANCE_TYPE: instance_type, **labels}},
            "spec": {"taints": list(taints)}}


def in_types(*types, key=P.INSTANCE_TYPE) -> dict:
    return {"matchExpressions": [{"key": key, "operator": "In", "values": list(types)}]}


def test_instance_type_values_union_over_terms_and_ignores_other_keys():
    ds = daemonset([in_types("ml.p5.48xlarge"), in_types("ml.g5.xlarge", "ml.g5.2xlarge"),
                    in_types("x", key="other/key"),
                    {"matchExpressions": [{"key": P.INSTANCE_TYPE, "operator": "NotIn", "values": ["ml.m5.large"]}]}])
    assert P.instance_type_values(ds) == {"ml.p5.48xlarge", "ml.g5.xlarge", "ml.g5.2xlarge"}
    assert P.affinity_values(ds, "other/key") == {"x"}
    assert len(P.required_terms(ds)) == 4


def test_no_affinity_means_no_terms_and_every_node_admitted():
    ds = daemonset()
    assert P.required_terms(ds) == [] and P.instance_type_values(ds) == set()
    assert P.schedulable_on(ds, node("m5.large"))


def test_terms_are_ored_expressions_anded():
    ds = daemonset([{"matchExpressions": [{"key": P.INSTANCE_TYPE, "operator": "In", "values": ["ml.p5.48xlarge"]},
                                          {"key": "zone", "operator": "Exists"}]},
                    in_types("ml.trn1.32xlarge")])
    assert not P.schedulable_on(ds, node("ml.p5.48xlarge"))
    assert P.schedulable_on(ds, node("ml.p5.48xlarge", zone="a"))
    assert P.schedulable_on(ds, node("ml.trn1.32xlarge"))
    assert not P.schedulable_on(ds, node("m5.large", zone="a"))


@pytest.mark.parametrize("op,values,labels,expected", [
    ("In", ["a"], {"k": "a"}, True), ("In", ["a"], {}, False),
    ("NotIn", ["a"], {"k": "a"}, False), ("NotIn", ["a"], {}, True),
    ("Exists", [], {"k": "x"}, True), ("Exists", [], {}, False),
    ("DoesNotExist", [], {}, True), ("DoesNotExist", [], {"k": "x"}, False),
    ("Gt", ["3"], {"k": "4"}, True), ("Gt", ["3"], {"k": "3"}, False), ("Lt", ["3"], {"k": "2"}, True),
    ("Gt", ["3"], {"k": "many"}, False), ("Bogus", ["a"], {"k": "a"}, False),
])
def test_expression_operators(op, values, labels, expected):
    assert P.expression_matches({"key": "k", "operator": op, "values": values}, labels) is expected


def test_empty_term_matches_nothing():
    assert not P.term_matches({}, {"k": "v"})
    assert not P.affinity_admits(daemonset([{}]), {"k": "v"})


@pytest.mark.parametrize("toleration,expected", [
    ({"key": HEALTH["key"], "operator": "Equal", "value": "Unschedulable", "effect": "NoSchedule"}, True),
    ({"key": HEALTH["key"], "value": "Unschedulable"}, True),                 # default Equal, any effect
    ({"key": HEALTH["key"], "operator": "Equal", "value": "Schedulable"}, False),
    ({"key": HEALTH["key"], "operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": HEALTH["key"], "operator": "Exists"}, True),
    ({"operator": "Exists"}, True),                                             # key-less Exists: every taint
    ({"operator": "Exists", "effect": "NoSchedule"}, True),
    ({"operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": "other", "operator": "Exists"}, False),
])
def test_toleration_rules(toleration, expected):
    assert P.tolerates([toleration], HEALTH) is expected


def test_taints_block_unless_tolerated_and_prefer_no_schedule_does_not_block():
    tainted = node("ml.p5.48xlarge", [HEALTH])
    assert not P.schedulable_on(daemonset(), tainted)
    assert P.untolerated_taints(daemonset(), tainted) == [HEALTH]
    assert P.schedulable_on(daemonset(tolerations=[{"key": HEALTH["key"], "operator": "Exists"}]), tainted)
    soft = node("ml.p5.48xlarge", [{"key": "x", "effect": "PreferNoSchedule"}])
    assert P.schedulable_on(daemonset(), soft)


def test_node_selector():
    ds = daemonset(node_selector={"pool": "gpu"})
    assert P.schedulable_on(ds, node("a", pool="gpu"))
    assert not P.schedulable_on(ds, node("a", pool="cpu"))
    assert not P.schedulable_on(ds, node("a"))


def test_has_taint_and_declared_tolerations():
    tainted = node("ml.p5.48xlarge", [HEALTH])
    assert P.has_taint(tainted, HEALTH["key"])
    assert P.has_taint(tainted, HEALTH["key"], "NoSchedule", "Unschedulable")
    assert not P.has_taint(tainted, HEALTH["key"], "NoExecute")
    assert not P.has_taint(node("ml.p5.48xlarge"), HEALTH["key"])
    assert P.declares_toleration(daemonset(tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}]), "nvidia.com/gpu")
    assert not P.declares_toleration(daemonset(tolerations=[{"operator": "Exists"}]), "nvidia.com/gpu")


def test_a_workload_without_a_pod_template_is_an_assertion_not_a_crash():
    with pytest.raises(AssertionError):
        P.required_terms({"kind": "ConfigMap", "metadata": {"name": "x"}})
