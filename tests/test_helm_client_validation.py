"""helm's client-side check of a release, skipped only where it is inert (chartproof.helm.NO_CLIENT_VALIDATION).

On a real API server: for each chart, the driver's install ends as a plain ``helm install`` of the same chart
ends (same exit, same error, same warnings), and it skips helm's check only where the check does nothing.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from chartproof.charts import ChartCatalog
from chartproof.helm import NO_CLIENT_VALIDATION, Helm, has_v1_list, skips_client_validation
from chartproof.redaction import Redactor
from chartproof.toolchain import Toolchain
from tests.conftest import embedded_cluster

CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  bogus: 1\ndata:\n  a: \"1\"\n"
CHARTS = {
    # an unknown field: the server warns and drops it, with or without helm's check
    "unknown-field": CONFIG_MAP,
    # a wrong type: the server refuses it, with or without helm's check
    "wrong-type": ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  replicas: \"two\"\n"
                   "  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n"
                   "    spec: {containers: [{name: c, image: busybox}]}\n"),
    # a v1 List: helm checks its items on the client and refuses the unknown field before the server sees it
    "list": "apiVersion: v1\nkind: List\nitems:\n- " + CONFIG_MAP.replace("\n", "\n  ").rstrip() + "\n",
    # a render that reads the cluster: a client-only render cannot stand for it
    "lookup": "{{- $ns := lookup \"v1\" \"Namespace\" \"\" .Release.Namespace }}\n" + CONFIG_MAP,
}
SKIPS = {"unknown-field": True, "wrong-type": True, "list": False, "lookup": False}


def test_the_versions_where_helm_leaves_fields_to_the_server():
    assert skips_client_validation("v3.22.0", "v1.36.1")
    assert skips_client_validation("v3.9.0", "v1.27.0+k3s1")
    assert not skips_client_validation("v3.8.2", "v1.36.1"), "helm 3.8 validates every document on the client"
    assert not skips_client_validation("v3.22.0", "v1.26.15"), "before 1.27 the server's field validation can be off"
    assert not skips_client_validation("v3.22.0", "unknown")


def test_a_v1_list_is_found_among_the_documents():
    assert has_v1_list("a: 1\n---\napiVersion: v1\nkind: List\nitems: []\n")
    assert has_v1_list("apiVersion: v1\nkind: ConfigMap\n") is False
    assert has_v1_list("apiVersion: example.com/v1\nkind: List\n") is False
    assert has_v1_list("a: [unclosed\n") is None


def _chart(root: Path, name: str, template: str) -> Path:
    chart = root / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n")
    (chart / "templates" / "objects.yaml").write_text(template)
    return chart


def _outcome(result) -> tuple:
    warnings = sorted(set(re.findall(r'Warning: [^"\n]*', result.stderr)))
    return result.returncode, result.error if not result.ok else "", warnings


@pytest.fixture(scope="module")
def cluster():
    with embedded_cluster("validation", "cpu=1") as cluster:
        yield cluster


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_an_install_ends_as_plain_helm_install_ends_and_skips_only_an_inert_check(name, cluster, tmp_path):
    toolchain = Toolchain()
    chart = _chart(tmp_path, name, CHARTS[name])
    helm = Helm(toolchain.path("helm"), ChartCatalog({name: str(chart)}, workdir=tmp_path / "work"),
                workdir=tmp_path / "work", kubeconfig=cluster.kubeconfig, redactor=Redactor())
    helm.server_checks_fields = skips_client_validation(toolchain.pins["helm"].version, cluster.server_version())
    assert helm.server_checks_fields, f"the embedded cluster ({cluster.server_version()}) validates fields itself"
    for namespace in (f"{name}-ours", f"{name}-helm", f"{name}-unchecked"):
        cluster.kubectl("create", "namespace", namespace)

    ours = helm.install(name, "r", f"{name}-ours")
    plain = helm.run("install", "r", str(chart), "--namespace", f"{name}-helm")
    assert (NO_CLIENT_VALIDATION in ours.args) is SKIPS[name], \
        f"{name}: helm's client-side check {'kept' if SKIPS[name] else 'skipped'}: {ours.args}"
    assert _outcome(ours) == _outcome(plain), f"{name}: the driver's install ended unlike helm install's"
    if name == "list":  # why a List keeps the check: without it, helm installs what it refuses with it
        unchecked = helm.run("install", "r", str(chart), "--namespace", f"{name}-unchecked", NO_CLIENT_VALIDATION)
        assert not plain.ok and "bogus" in plain.error, plain.error
        assert unchecked.ok, unchecked.error


def test_what_the_renderer_cannot_stand_for_keeps_helms_check(tmp_path):
    """ct.yaml's arguments are rendered with the values; one the renderer does not know keeps helm's check."""
    chart = _chart(tmp_path, "plain", "{{- if .Values.asList }}apiVersion: v1\nkind: List\nitems: []\n"
                                      "{{- else }}" + CONFIG_MAP + "{{- end }}\n")
    helm = Helm(Toolchain().path("helm"), ChartCatalog({"plain": str(chart)}, workdir=tmp_path / "work"),
                workdir=tmp_path / "work", redactor=Redactor())
    assert not helm._client_validation_inert(chart, "r", "default", []), "server_checks_fields is off by default"
    helm.server_checks_fields = True
    assert helm._client_validation_inert(chart, "r", "default", [])
    helm.extra_args = ("--timeout", "600s")  # changes no render
    assert helm._client_validation_inert(chart, "r", "default", [])
    helm.extra_set_args = ("--set", "asList=true")  # renders a v1 List
    assert not helm._client_validation_inert(chart, "r", "default", [])
    helm.extra_set_args, helm.extra_args = (), ("--devel",)  # not a flag of helm template the renderer knows
    assert not helm._client_validation_inert(chart, "r", "default", [])


def test_the_flag_is_helms_own_for_install_and_upgrade():
    """The flag is helm's own (install and upgrade), so a reader can rerun the printed command."""
    helm = Toolchain().path("helm")
    for command in ("install", "upgrade"):
        out = subprocess.run([str(helm), command, "--help"], capture_output=True, text=True, check=True).stdout
        assert NO_CLIENT_VALIDATION in out, f"helm {command} has no {NO_CLIENT_VALIDATION}"
