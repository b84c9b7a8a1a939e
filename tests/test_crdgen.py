"""chartproof.crdgen: CRDs generated with controller-gen from a project's own Go API types (here the pinned
External Secrets release's), cached by module@version, and a second call that does no work."""

from __future__ import annotations

import time

import pytest

from chartproof import crdgen
from chartproof.crdgen import generate_crds, load_crds, package_paths, served_kinds
from chartproof.errors import ToolchainError
from chartproof.operators import ExternalSecretsPin
from chartproof.toolchain import Toolchain

ESO_V1 = "apis/externalsecrets/v1"


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    return Toolchain()


def test_package_paths_join_relative_packages_to_the_module():
    assert package_paths("example.com/m", ["apis/v1", "./apis/v2/...", "example.com/m/other"]) == [
        "example.com/m/apis/v1", "example.com/m/apis/v2/...", "example.com/m/other"]


def test_generates_the_real_structural_schemas_then_is_warm(toolchain, tmp_path, monkeypatch):
    eso = ExternalSecretsPin.of(toolchain)
    tool = toolchain.path("controller-gen")
    out = generate_crds(tool, eso.module, eso.version, [ESO_V1], cache=tmp_path)
    kinds = served_kinds(load_crds(out))
    for kind in ("SecretStore", "ClusterSecretStore", "ExternalSecret"):
        assert kinds.get(f"external-secrets.io/{kind}") == ["v1"], f"expected {kind} served at v1, found {kinds}"
    (es,) = [c for c in load_crds(out) if c["spec"]["names"]["kind"] == "ExternalSecret"]
    schema = es["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    remote_ref = schema["properties"]["spec"]["properties"]["data"]["items"]["properties"]["remoteRef"]
    assert "key" in remote_ref.get("required", []), f"remoteRef.key is required in ESO's types, schema: {remote_ref}"
    assert "x-kubernetes-preserve-unknown-fields" not in schema, "a structural schema, not a stand-in"

    # Warm: the same call returns the same folder without running go or controller-gen.
    def no_work(*args, **kwargs):
        raise AssertionError("a warm generate_crds must not run anything")

    monkeypatch.setattr(crdgen.gobuild, "module_info", no_work)
    monkeypatch.setattr(crdgen.subprocess, "run", no_work)
    started = time.perf_counter()
    assert generate_crds(tool, eso.module, eso.version, [ESO_V1], cache=tmp_path) == out
    assert time.perf_counter() - started < 0.05
    # Another package set is another cache entry (and would be generated).
    with pytest.raises(AssertionError, match="must not run"):
        generate_crds(tool, eso.module, eso.version, [ESO_V1, "apis/generators/v1alpha1"], cache=tmp_path)


def test_a_package_that_does_not_exist_fails_naming_it(toolchain, tmp_path):
    eso = ExternalSecretsPin.of(toolchain)
    with pytest.raises(ToolchainError) as err:
        generate_crds(toolchain.path("controller-gen"), eso.module, eso.version, ["apis/nothing/v9"], cache=tmp_path)
    assert "apis/nothing/v9" in err.value.message
    assert not list((tmp_path / "crds").glob("*/*/.complete")), "a failed generation leaves no cache entry"
