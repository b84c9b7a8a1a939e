"""The helm driver and chart references: real helm, one-line errors, secrets kept out."""

from __future__ import annotations

import subprocess

import pytest

from chartproof.charts import ChartCatalog, ChartRef
from chartproof.errors import BadValuesError, ChartNotFoundError, RenderError, UsageError
from chartproof.helm import Helm, load_values_file, set_args
from chartproof.manifest import container, decoded_secret, env_map
from chartproof.redaction import MASK, Redactor
from chartproof.toolchain import Toolchain


@pytest.fixture
def driver(tmp_path, tiny_chart):
    catalog = ChartCatalog({"tiny": str(tiny_chart)}, workdir=tmp_path / "work")
    return Helm(Toolchain().path("helm"), catalog, workdir=tmp_path / "work", redactor=Redactor())


def test_set_args_render_python_values_as_helm_expects():
    assert set_args({"a.b": True, "c": 3, "d": False}) == ["--set", "a.b=true", "--set", "c=3", "--set", "d=false"]


@pytest.mark.parametrize("key", ["", ".a", "a.", "a..b", "a=b", "a b"])
def test_bad_set_keys_are_refused(key):
    with pytest.raises(BadValuesError, match="bad --set key"):
        set_args({key: 1})


def test_malformed_values_file_names_file_and_line(tmp_path):
    bad = tmp_path / "values.yaml"
    bad.write_text("a: 1\nb: [unclosed\nc: 2\n")
    with pytest.raises(BadValuesError) as info:
        load_values_file(bad)
    assert str(bad) in info.value.message and "line" in info.value.message
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(BadValuesError, match="mapping"):
        load_values_file(listy)


def test_chart_references(tmp_path, tiny_chart):
    assert ChartRef.parse("x", str(tiny_chart)).kind == "dir"
    assert ChartRef.parse("x", "oci://ghcr.io/adaptive-ml/adaptive@0.6.2").version == "0.6.2"
    with pytest.raises(UsageError, match="needs a version"):
        ChartRef.parse("x", "oci://ghcr.io/adaptive-ml/adaptive")
    with pytest.raises(ChartNotFoundError, match="does not exist"):
        ChartRef.parse("x", str(tmp_path / "nowhere"))
    with pytest.raises(ChartNotFoundError, match="no Chart.yaml"):
        ChartRef.parse("x", str(tmp_path))


def test_packaged_chart_renders_like_its_directory(tmp_path, tiny_chart):
    helm_bin = Toolchain().path("helm")
    subprocess.run([str(helm_bin), "package", str(tiny_chart), "-d", str(tmp_path)], check=True, capture_output=True)
    packaged = tmp_path / "tiny-0.1.0.tgz"
    catalog = ChartCatalog({"tiny": str(packaged), "dir": str(tiny_chart)}, workdir=tmp_path / "work")
    helm = Helm(helm_bin, catalog, workdir=tmp_path / "work")
    values = {"password": "hunter2-long"}
    assert helm.template("tiny", values, release="r").text == helm.template("dir", values, release="r").text


def test_render_gives_objects_and_accessors(driver):
    manifest = driver.template("tiny", {"password": "s3cret-value"}, {"replicas": 3}, release="demo")
    deployment = manifest.get("Deployment", "demo")
    assert deployment["spec"]["replicas"] == 3
    assert container(deployment, "app")["image"] == "busybox"
    assert env_map(container(deployment, "app")) == {}
    assert decoded_secret(manifest.get("Secret", "demo-secret")) == {"password": "s3cret-value"}
    with pytest.raises(AssertionError, match="objects of that kind: Deployment demo"):
        manifest.get("Deployment", "other")


def test_refusal_is_helms_one_line_message(driver):
    with pytest.raises(RenderError) as info:
        driver.template("tiny", release="demo")
    assert "password is required" in info.value.message
    assert "\n" not in info.value.one_line()


def test_unknown_chart_name_lists_known_ones(driver):
    with pytest.raises(ChartNotFoundError, match="known: adaptive, hyperpod, monitoring, tiny"):
        driver.template("nosuch")


def test_secrets_from_values_never_reach_error_messages(driver):
    secret = "topsecret-password-123"
    # A bad --set value type makes helm echo the values; the redactor must catch it.
    with pytest.raises(RenderError) as info:
        driver.template("tiny", {"password": secret}, {"replicas": "{{"}, release="demo")
    assert secret not in info.value.message
    assert driver.redactor(f"x {secret} y") == f"x {MASK} y"


def test_redactor_catches_base64_and_nested_secret_keys():
    redactor = Redactor()
    redactor.add_values({"secrets": {"dbUrl": "postgres://u:pw@db:5432/x"}, "image": {"tag": "latest-and-long"},
                         "s3proxy": {"azure": {"storageAccount": {"accessKey": "azure-key-value"}}}})
    import base64
    text = "url postgres://u:pw@db:5432/x key " + base64.b64encode(b"azure-key-value").decode() + " tag latest-and-long"
    out = redactor(text)
    assert "postgres://" not in out and "azure-key-value" not in out and base64.b64encode(b"azure-key-value").decode() not in out
    assert "latest-and-long" in out, "non-secret values stay readable"


def test_references_to_secrets_are_not_secrets():
    redactor = Redactor()
    redactor.add_values({"externalSecret": {"data": {"sharedDirectoryUrl": {"remoteRef": {
        "key": "path/to/sharedDirectoryUrl", "property": "sharedDirectoryUrl"}}}},
        "secrets": {"auth": {"oidc": {"providers": [{"client_secret": "oidc-client-secret"}]}}}})
    out = redactor("secrets.sharedDirectoryUrl is required; oidc-client-secret; path/to/sharedDirectoryUrl")
    assert "secrets.sharedDirectoryUrl is required" in out
    assert "oidc-client-secret" not in out and "path/to/sharedDirectoryUrl" not in out


def test_an_edited_chart_is_rendered_anew(driver, tiny_chart):
    values = {"password": "pw-123456"}
    assert driver.template("tiny", values, release="r").get("Deployment", "r")["spec"]["replicas"] == 1
    (tiny_chart / "values.yaml").write_text("replicas: 5\npassword: \"\"\n")
    assert driver.template("tiny", values, release="r").get("Deployment", "r")["spec"]["replicas"] == 5
