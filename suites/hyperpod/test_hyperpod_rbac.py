"""HyperPod contract E, "Task-governance RBAC": team, namespaced and cluster roles (README §5)."""

from __future__ import annotations

import hyperpod_facts as F
import pytest

from chartproof.manifest import dig, fragment, key, ref

GROUP_KIND = "Group"


def team_refs(m) -> list[str]:
    return sorted(ref(o) for o in m if str(dig(o, "metadata.name", "")).startswith("hyperpod-ns-"))


def assert_team(m, team_id: str) -> None:
    absent = F.missing(m, F.team_objects(team_id))
    assert not absent, f"team objects for {team_id!r} missing: {absent}; found {team_refs(m)}"
    n = f"hyperpod-ns-{team_id}"
    group = f"{n}-namespace-level-group"
    for kind, name, role in (("ClusterRoleBinding", f"{n}-cluster-role-binding", ("ClusterRole", f"{n}-cluster-role")),
                             ("RoleBinding", f"{n}-namespace-role-binding", ("Role", f"{n}-namespace-role"))):
        binding = m.one(kind, name=name)
        groups = {(k, s) for k, s, _ in F.subjects(binding)}
        assert (GROUP_KIND, group) in groups, f"{kind} {name}: expected subject Group {group}, found {F.subjects(binding)}"
        assert F.role_ref(binding) == role, f"{kind} {name}: roleRef expected {role}, found {F.role_ref(binding)}"
    cr = m.one("ClusterRole", name=f"{n}-cluster-role")
    queues = [r for r in cr.get("rules") or [] if "clusterqueues" in (r.get("resources") or [])]
    assert queues and all(r.get("resourceNames") == [f"{n}-clusterqueue"] for r in queues), \
        f"clusterqueues must be limited to {n}-clusterqueue:\n{fragment(cr)}"
    role = m.one("Role", name=f"{n}-namespace-role", namespace=n)
    lacking = F.denied(role, [("kubeflow.org", "pytorchjobs", "create"), ("batch", "jobs", "create")])
    assert not lacking, f"Role {n}-namespace-role lacks {lacking}"


@pytest.mark.contract("HYP-TEAM-01")
def test_hyp_team_01_target_id_alone_creates_the_team_objects(hp):
    m = hp(set={"computeQuotaTarget.targetId": "team-a"})
    assert_team(m, "team-a")
    assert len(team_refs(m)) == 4, f"expected the four team objects, found {team_refs(m)}"
    others = sorted(key(o) for o in m if not str(dig(o, "metadata.name", "")).startswith("hyperpod-ns-"))
    assert others == sorted(key(o) for o in hp()), "setting computeQuotaTarget.targetId changed non-team objects"


@pytest.mark.contract("HYP-TEAM-02")
def test_hyp_team_02_no_team_objects_without_target_id(hp):
    for sets in (None, {"team-role-and-bindings.enabled": False}):
        found = team_refs(hp(set=sets))
        assert found == [], f"with {sets or 'defaults'} (no targetId): expected no team objects, found {found}"


@pytest.mark.contract("HYP-TEAM-03")
def test_hyp_team_03_enabled_without_target_id_fails_naming_the_key(hp):
    message = hp.error(set={"team-role-and-bindings.enabled": True})
    assert "computeQuotaTarget.targetId" in message, f"the refusal must name computeQuotaTarget.targetId: {message}"


@pytest.mark.contract("HYP-TEAM-04")
def test_hyp_team_04_subchart_target_id_works(hp):
    m = hp(set={"team-role-and-bindings.computeQuotaTarget.targetId": "sub"})
    assert_team(m, "sub")


@pytest.mark.contract("HYP-TEAM-04", extension=True)
def test_hyp_team_04_subchart_target_id_wins_over_the_root_key(hp):
    both = hp(set={"team-role-and-bindings.computeQuotaTarget.targetId": "sub", "computeQuotaTarget.targetId": "root"})
    assert_team(both, "sub")
    assert len(team_refs(both)) == 4 and not [r for r in team_refs(both) if "root" in r], \
        f"both keys set: expected only the team objects of 'sub', found {team_refs(both)}"


@pytest.mark.contract("HYP-NSROLE-01")
@pytest.mark.parametrize("ns", ["kubeflow", "research"])
def test_hyp_nsrole_01_namespaced_role_and_binding_follow_the_namespace(hp, ns):
    role_name = "hyperpod-scientist-user-namespace-level-role"
    sets = {"namespaced-role-and-bindings.enabled": True}
    if ns != "kubeflow":
        sets["namespaced-role-and-bindings.namespace"] = ns
    m = hp(set=sets)
    role = m.one("Role", name=role_name, namespace=ns)
    binding = m.one("RoleBinding", name=f"{role_name}-binding", namespace=ns)
    elsewhere = [ref(o) for o in m.select(("Role", "RoleBinding")) if str(dig(o, "metadata.name", "")).startswith(role_name)
                 and dig(o, "metadata.namespace") != ns]
    assert not elsewhere, f"namespaced role objects outside {ns}: {elsewhere}"
    groups = {(k, s) for k, s, _ in F.subjects(binding)}
    assert (GROUP_KIND, f"{role_name}-{ns}-level") in groups, \
        f"subjects: expected Group {role_name}-{ns}-level, found {F.subjects(binding)}"
    assert F.role_ref(binding) == ("Role", role_name), f"roleRef: {F.role_ref(binding)}"
    lacking = F.denied(role, [("kubeflow.org", "pytorchjobs", "create"), ("", "pods/exec", "create"), ("", "pods", "create")])
    assert not lacking, f"Role {role_name} lacks {lacking}"


@pytest.mark.contract("HYP-CROLE-01")
def test_hyp_crole_01_cluster_role_and_binding(hp):
    name = "hyperpod-scientist-user-cluster-role"
    m = hp(set={"cluster-role-and-bindings.enabled": True})
    cr = m.get("ClusterRole", name)
    lacking = F.denied(cr, [("", "pods", "list"), ("", "nodes", "list")])
    assert not lacking, f"ClusterRole {name} lacks {lacking}"
    crb = m.get("ClusterRoleBinding", f"{name}-binding")
    groups = {(k, s) for k, s, _ in F.subjects(crb)}
    assert (GROUP_KIND, f"{name}-cluster-level") in groups, f"subjects: expected Group {name}-cluster-level, found {F.subjects(crb)}"
    assert F.role_ref(crb) == ("ClusterRole", name), f"roleRef: {F.role_ref(crb)}"
