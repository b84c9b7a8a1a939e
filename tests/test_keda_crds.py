"""KEDA's real CRDs: generated from KEDA's own API types, shipped by the adaptive chart, enforced by the API server.

The generated CRDs are the ones KEDA releases (its module's config/crd/bases), the keda subchart's CRD templates
are exactly that output, and on a cluster a ScaledObject with a misspelled or mistyped field is refused at
install, as on a real cluster (the hand-written CRDs these replace kept every unknown field).
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from chartproof import keda_fixtures as K
from chartproof import yamlio
from chartproof.kube import KubectlError
from chartproof.manifest import dig
from chartproof.toolchain import gobuild

GENERATOR_ANNOTATION = "controller-gen.kubebuilder.io/version"
VALUES = [{"harmony": {"computePool": [{"name": "Pool-A", "minReplicaCount": 1, "maxReplicaCount": 3}]},
           "autoscaling": {"enabled": True}}]


@pytest.fixture(scope="module")
def generated(chartproof_run) -> dict[str, dict]:
    return {crd["metadata"]["name"]: crd for crd in K.keda_crds(chartproof_run.toolchain)}


def module_dir(module: str, version: str) -> Path:
    """Where the Go module cache holds ``module@version`` (downloaded if needed)."""
    proc = subprocess.run([gobuild.go_binary(), "mod", "download", "-json", f"{module}@{version}"],
                          capture_output=True, text=True, env=gobuild.go_env(), cwd="/", check=True)
    return Path(json.loads(proc.stdout)["Dir"])


def without_generator_version(crd: dict) -> dict:
    out = copy.deepcopy(crd)
    (out["metadata"].get("annotations") or {}).pop(GENERATOR_ANNOTATION, None)
    return out


def test_the_generated_crds_are_the_ones_keda_releases(generated):
    """controller-gen on KEDA's API packages, with its Makefile's options, reproduces the CRDs KEDA ships in
    its module (config/crd/bases), field for field; only the generator's version annotation may differ."""
    bases = module_dir(K.KEDA_MODULE, K.KEDA_VERSION) / "config" / "crd" / "bases"
    released = {}
    for path in sorted(bases.glob("*.yaml")):
        for doc in yamlio.load_all(path.read_text()):
            if doc:
                released[doc["metadata"]["name"]] = doc
    assert set(generated) == set(released), \
        f"KEDA {K.KEDA_VERSION} releases CRDs {sorted(released)}, we generate {sorted(generated)}"
    for name, crd in generated.items():
        assert without_generator_version(crd) == without_generator_version(released[name]), \
            f"{name}: the generated CRD differs from the one KEDA {K.KEDA_VERSION} releases"


def test_the_pinned_keda_is_the_one_the_chart_bundles():
    chart = yaml.safe_load((K.KEDA_CHART / "Chart.yaml").read_text())
    assert f"v{chart.get('appVersion')}" == K.KEDA_VERSION, \
        f"the keda subchart bundles KEDA {chart.get('appVersion')}, the CRDs are generated from {K.KEDA_VERSION}"


def test_the_charts_keda_crds_are_the_generated_ones(render, generated):
    """Each keda.sh / eventing.keda.sh CRD the chart renders has exactly the generated spec, and there is one for
    every generated CRD (regenerate: python -m chartproof.keda_fixtures write-chart-crds)."""
    rendered = {dig(c, "metadata.name"): c for c in render("adaptive", VALUES).select("CustomResourceDefinition")
                if str(dig(c, "spec.group", "")).endswith("keda.sh")}
    assert set(rendered) == set(generated), \
        f"the chart renders KEDA CRDs {sorted(rendered)}, KEDA {K.KEDA_VERSION} has {sorted(generated)}"
    for name, crd in generated.items():
        assert rendered[name]["spec"] == crd["spec"], \
            f"{name}: the chart's CRD is not KEDA {K.KEDA_VERSION}'s generated one " \
            f"(run python -m chartproof.keda_fixtures write-chart-crds)"


def test_a_template_cannot_take_a_schema_with_template_delimiters():
    text = "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nspec:\n  x: '{{ oops }}'\n"
    with pytest.raises(ValueError, match="template delimiters"):
        K.chart_crd_template("oops.keda.sh", text, "v0")


# -- the API server enforces the schema ---------------------------------------------------------------------
def server_dry_run(cluster, namespace: str, obj: dict) -> str:
    """'' when the API server accepts ``obj`` (server-side dry run, strict field validation), else its message."""
    try:
        cluster.kubectl("apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-",
                        input=yaml.safe_dump(obj))
    except KubectlError as err:
        return err.stderr.strip() or f"refused (exit {err.returncode})"
    return ""


@pytest.mark.cluster
@pytest.mark.exclusive("keda")
def test_the_api_server_refuses_a_misspelled_or_mistyped_scaled_object(render, cluster, namespace, keda_crds_installed):
    found = render("adaptive", VALUES).select("ScaledObject")
    assert len(found) == 1, f"one pool with autoscaling on: expected one ScaledObject, found {len(found)}"
    so = found[0]
    so = {k: v for k, v in so.items() if k != "metadata"} | {"metadata": {"name": dig(so, "metadata.name")}}
    assert server_dry_run(cluster, namespace, so) == "", "the chart's own ScaledObject must be accepted"

    misspelled = copy.deepcopy(so)
    misspelled["spec"]["minReplicasCount"] = misspelled["spec"].pop("minReplicaCount")
    message = server_dry_run(cluster, namespace, misspelled)
    assert "minReplicasCount" in message and "unknown field" in message, \
        f"a ScaledObject with spec.minReplicasCount (misspelled) must be refused as an unknown field, found {message!r}"

    mistyped = copy.deepcopy(so)
    mistyped["spec"]["maxReplicaCount"] = "three"
    message = server_dry_run(cluster, namespace, mistyped)
    assert "maxReplicaCount" in message and "integer" in message, \
        f"a ScaledObject with spec.maxReplicaCount: \"three\" must be refused as not an integer, found {message!r}"

    no_trigger_type = copy.deepcopy(so)
    no_trigger_type["spec"]["triggers"][0].pop("type")
    message = server_dry_run(cluster, namespace, no_trigger_type)
    assert "type" in message and "Required" in message, \
        f"a trigger without its type must be refused (required), found {message!r}"
