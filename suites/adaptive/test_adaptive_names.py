"""Adaptive contract, E "Metadata and names" (ADP-META-*, ADP-NAME-*; D.1 names and labels): both charts lint
and render with their defaults on Kubernetes >= 1.26 only; every object has the name D.2 fixes for <fn>,
valid and unique for any release name; `nameOverride` renames."""

from __future__ import annotations

import adaptive_facts as F
import pytest

from chartproof.manifest import dig, key, ref, template_labels

BOTH = pytest.mark.parametrize("chart", ["adaptive", "monitoring"])


@pytest.mark.contract("ADP-META-01")
@BOTH
def test_lint_of_defaults_has_no_error_or_warning(helm, chart):
    result = helm.lint(chart, strict=True)
    findings = [line for line in result.output.splitlines() if "[ERROR]" in line or "[WARNING]" in line]
    assert result.ok and not findings, f"helm lint --strict of {chart}'s defaults: expected no finding, found:\n" \
                                       f"{result.output[-2000:]}"


@pytest.mark.contract("ADP-META-02")
@BOTH
def test_defaults_render_on_kube_1_26_and_not_on_1_25(render, chart):
    assert len(render(chart)) > 0, f"helm template {chart} with defaults rendered no object"
    assert len(render(chart, kube_version="1.26.0")) > 0, f"--kube-version 1.26.0: {chart} rendered no object"
    message = render.error(chart, kube_version="1.25.0")
    assert "kubeVersion" in message or "1.26" in message, \
        f"--kube-version 1.25.0: expected helm's kubeVersion refusal, found: {message}"


def d2_names(fn: str) -> list[tuple[str, str]]:
    cp, hm = f"{fn}-control-plane", f"{fn}-harmony"
    return [("Deployment", cp), ("Service", f"{cp}-svc"), ("Secret", f"{cp}-config-secret"),
            ("Secret", f"{hm}-config-secret"), ("StatefulSet", hm), ("Service", f"{hm}-hdls-svc"),
            ("Service", f"{hm}-svc"), ("ConfigMap", f"{hm}-settings-confmap"), ("ConfigMap", f"{hm}-alloy-confmap"),
            ("Deployment", f"{hm}-dpl-pool-a"), ("ScaledObject", f"{hm}-dpl-pool-a"),
            ("Deployment", f"{fn}-mlflow"), ("Service", f"{fn}-mlflow-svc"),
            ("Deployment", f"{fn}-redis"), ("Service", f"{fn}-redis-svc")]


def missing_names(m, expected):
    return [f"{kind} {name}" for kind, name in expected if not m.select(kind, name=name)]


@pytest.mark.contract("ADP-NAME-01")
@pytest.mark.parametrize("release, fn", [("adaptive", "adaptive"), ("acme", "acme-adaptive"),
                                         ("my-adaptive-prod", "my-adaptive-prod")])
def test_objects_have_the_d2_names_of_the_fullname(render, release, fn):
    m = render(F.CHART, [F.pools("Pool-A"), {"autoscaling": {"enabled": True}}], release=release)
    missing = missing_names(m, d2_names(fn))
    assert not missing, f"release {release} (<fn> {fn}): missing {missing}; " \
                        f"names found: {sorted(set(m.names('Deployment') + m.names('Service') + m.names('Secret')))}"
    sts = m.get("StatefulSet", f"{fn}-harmony")
    assert dig(sts, "spec.serviceName") == f"{fn}-harmony-hdls-svc", \
        f"StatefulSet {fn}-harmony serviceName: expected {fn}-harmony-hdls-svc, found {dig(sts, 'spec.serviceName')!r}"
    eso = render(F.CHART, set={"externalSecret.enabled": True}, release=release)
    expected = [("SecretStore", f"{fn}-ext-secret-store"), ("ExternalSecret", f"{fn}-control-plane-ext-secret"),
                ("ExternalSecret", f"{fn}-harmony-ext-secret")]
    missing = missing_names(eso, expected)
    assert not missing, f"ESO mode, release {release}: missing {missing}; found " \
                        f"{[ref(o) for o in eso.select(['SecretStore', 'ExternalSecret'])]}"


@pytest.mark.contract("ADP-NAME-01", extension=True)
@pytest.mark.parametrize("release, fn", [("adaptive", "adaptive"), ("acme", "acme-adaptive")])
def test_ingress_is_named_after_the_control_plane(render, release, fn):
    m = render(F.CHART, set={"ingress.enabled": True}, release=release)
    assert m.select("Ingress", name=f"{fn}-control-plane"), \
        f"expected Ingress {fn}-control-plane, found {[ref(o) for o in m.select('Ingress')]}"


@pytest.mark.contract("ADP-NAME-02")
@pytest.mark.parametrize("release", ["a", "acme", "adaptive-" + "x" * 44, "r" * 53, "z9-" + "q" * 50])
@pytest.mark.parametrize("autoscaling", [False, True])
def test_names_are_valid_dns_names_and_unique(render, release, autoscaling):
    values = {**F.pools("inference-pool-alpha", "Inference_Pool_Beta1", "P"), "autoscaling": {"enabled": autoscaling},
              "tensorboard": {"enabled": True}, "ingress": {"enabled": True}, "s3proxy": {"enabled": True}}
    m = render(F.CHART, [values], release=release)
    keys = [key(o) for o in m]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"release {release}: objects sharing kind, namespace and name: {duplicates}"
    for kind, _, name in keys:
        assert len(name) <= 63 and F.DNS_SUBDOMAIN.match(name), f"{kind} {name!r} ({len(name)} chars) is not a DNS name <= 63"
        if kind in ("Service", "StatefulSet", "Deployment", "ScaledObject"):
            assert F.DNS_LABEL.match(name), f"{kind} {name!r} is not a DNS label"
        if kind == "StatefulSet":  # its pods get controller-revision-hash: <name>-<10 chars>
            assert len(name) + 11 <= 63, f"StatefulSet {name} ({len(name)} chars) too long for its pods' revision label"
    for obj in m:
        for where, labels in (("labels", dig(obj, "metadata.labels", {})), ("pod labels", template_labels(obj))):
            for k, v in (labels or {}).items():
                assert len(str(v)) <= 63, f"{ref(obj)} {where}: value of {k} is {len(str(v))} chars: {v!r}"
    found = sorted(dig(d, "metadata.name") for d in F.pool_deployments(m))
    assert len(found) == 3, f"release {release}: expected 3 pool Deployments, found {found}"


@pytest.mark.contract("ADP-NAME-03")
def test_name_override_renames_label_and_fullname(render):
    m = render(F.CHART, [F.pools("Pool-A")], set={"nameOverride": "foo"})
    workloads = F.app_workloads(m)
    components = {(dig(o, "metadata.labels", {}) or {}).get(F.COMPONENT) for o in workloads}
    assert {"control-plane", "harmony", "harmony-dpl"} <= components, \
        f"expected app workloads of components control-plane, harmony, harmony-dpl; found {components}"
    for obj in workloads:
        for where, labels in (("labels", dig(obj, "metadata.labels", {}) or {}), ("pod labels", template_labels(obj)),
                              ("selector", dig(obj, "spec.selector.matchLabels", {}) or {})):
            found = labels.get("app.kubernetes.io/name")
            assert found == "foo", f"{ref(obj)} {where}: expected app.kubernetes.io/name foo, found {found!r}"
    for kind, name in (("Deployment", "adaptive-foo-control-plane"), ("StatefulSet", "adaptive-foo-harmony"),
                       ("Deployment", "adaptive-foo-harmony-dpl-pool-a")):
        assert m.select(kind, name=name), f"release adaptive, nameOverride foo: expected {kind} {name}, " \
                                          f"found {m.names(kind)}"
    m2 = render(F.CHART, set={"nameOverride": "foo"}, release="foo-prod")
    assert m2.select("StatefulSet", name="foo-prod-harmony"), \
        f"release foo-prod contains foo: expected StatefulSet foo-prod-harmony, found {m2.names('StatefulSet')}"
