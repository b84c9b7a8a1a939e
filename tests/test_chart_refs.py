"""Chart references as helm writes them: every accepted form, its canonical spelling, the user's helm paths,
and each bad reference refused in one line with its exit code (no registry needed)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from chartproof.charts import ChartCatalog, ChartRef, helm_repositories, helm_user_paths
from chartproof.errors import ChartNotFoundError, UsageError
from chartproof.helm import Helm
from chartproof.redaction import Redactor
from chartproof.toolchain import Toolchain
from tests.conftest import run_pytest

DIGEST = "sha256:" + "ab12" * 16
GHCR = "oci://ghcr.io/adaptive-ml/adaptive"


@pytest.fixture
def repositories(tmp_path, monkeypatch) -> Path:
    """A user helm config with one classic repository, ``myrepo`` (as ``helm repo add`` writes it)."""
    config = tmp_path / "helm-user" / "repositories.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("apiVersion: \"\"\ngenerated: \"0001-01-01T00:00:00Z\"\nrepositories:\n"
                      "- name: myrepo\n  url: https://charts.example.test\n  username: ci\n  password: Repo-Pa55word-77\n")
    monkeypatch.setenv("HELM_REPOSITORY_CONFIG", str(config))
    return config


@pytest.mark.parametrize("text, version, kind, location, want_version, digest, canonical", [
    (f"{GHCR}:0.6.2", None, "oci", GHCR, "0.6.2", "", f"{GHCR}:0.6.2"),
    (GHCR, "0.6.2", "oci", GHCR, "0.6.2", "", f"{GHCR}:0.6.2"),
    (f"{GHCR}:0.6.2", "0.6.2", "oci", GHCR, "0.6.2", "", f"{GHCR}:0.6.2"),  # the same version twice is one
    (f"{GHCR}@{DIGEST}", None, "oci", GHCR, "", DIGEST, f"{GHCR}@{DIGEST}"),
    (f"{GHCR}:0.6.2@{DIGEST}", None, "oci", GHCR, "0.6.2", DIGEST, f"{GHCR}:0.6.2@{DIGEST}"),
    (f"{GHCR}@0.6.2", None, "oci", GHCR, "0.6.2", "", f"{GHCR}:0.6.2"),  # the old form, read as a version
    (f"{GHCR}:1.0.0_rc.1", None, "oci", GHCR, "1.0.0+rc.1", "", f"{GHCR}:1.0.0_rc.1"),  # helm push writes + as _
    (GHCR, "^0.6", "oci", GHCR, "^0.6", "", f"{GHCR} --version ^0.6"),  # a constraint, as helm's --version takes
    ("oci://127.0.0.1:5000/charts/adaptive:0.6.2", None, "oci", "oci://127.0.0.1:5000/charts/adaptive", "0.6.2", "",
     "oci://127.0.0.1:5000/charts/adaptive:0.6.2"),
    ("myrepo/adaptive", None, "repo", "myrepo/adaptive", "", "", "myrepo/adaptive"),
    ("myrepo/adaptive", "0.6.2", "repo", "myrepo/adaptive", "0.6.2", "", "myrepo/adaptive --version 0.6.2"),
])
def test_reference_forms(repositories, text, version, kind, location, want_version, digest, canonical):
    ref = ChartRef.parse("adaptive", text, version)
    assert (ref.kind, ref.location, ref.version, ref.digest) == (kind, location, want_version, digest)
    assert str(ref) == canonical
    assert ref.pulled


def test_what_helm_pull_is_given():
    by_digest = ChartRef.parse("a", f"{GHCR}:0.6.2@{DIGEST}")
    assert (by_digest.helm_ref, by_digest.helm_version) == (f"{GHCR}:0.6.2@{DIGEST}", "")
    by_tag = ChartRef.parse("a", f"{GHCR}:1.0.0_rc.1")
    assert (by_tag.helm_ref, by_tag.helm_version) == (GHCR, "1.0.0+rc.1")
    assert str(ChartRef.parse("a", GHCR, "^0.6").pinned("0.6.9")) == f"{GHCR}:0.6.9"
    assert by_digest.pinned("9.9.9") is by_digest  # a digest is already exact


def test_directories_and_packages(tmp_path, tiny_chart, repositories, monkeypatch):
    assert ChartRef.parse("x", str(tiny_chart)).kind == "dir"
    package = tmp_path / "tiny-0.1.0.tgz"
    package.write_bytes(b"")
    assert ChartRef.parse("x", str(package)).kind == "tgz"
    # An existing path is a path, even where a configured repository has the same name.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myrepo" / "adaptive").mkdir(parents=True)
    (tmp_path / "myrepo" / "adaptive" / "Chart.yaml").write_text("apiVersion: v2\nname: adaptive\nversion: 9.0.0\n")
    ref = ChartRef.parse("adaptive", "myrepo/adaptive")
    assert ref.kind == "dir" and ref.location == str(tmp_path / "myrepo" / "adaptive")


@pytest.mark.parametrize("text, version, error, code, words", [
    (GHCR, None, UsageError, 2, f"needs a version: give --chart-version adaptive=X.Y.Z or write {GHCR}:TAG"),
    (f"{GHCR}@sha256:abc", None, UsageError, 2, "bad digest"),
    (f"{GHCR}@md5:" + "0" * 32, None, UsageError, 2, "bad digest"),
    (f"{GHCR}:0.6.2", "0.6.3", UsageError, 2, "names two versions (:0.6.2, --chart-version)"),
    (f"{GHCR}@0.6.2", "0.7.0", UsageError, 2, "names two versions"),
    (f"{GHCR}:0.6 2", None, UsageError, 2, "bad tag"),
    (f"{GHCR}@0.6;2", None, UsageError, 2, "bad version"),
    ("oci://adaptive:0.6.2", None, UsageError, 2, "expected oci://HOST/PATH/CHART"),
    ("oci://ghcr.io/Adaptive-ML/adaptive:0.6.2", None, UsageError, 2, "bad OCI reference"),
    ("oci://", None, UsageError, 2, "bad OCI reference"),
    (GHCR, "0.6.2; rm -rf", UsageError, 2, "bad --chart-version"),
    ("nosuchrepo/adaptive", None, ChartNotFoundError, 4,
     "'nosuchrepo/adaptive' is neither a path (it does not exist) nor a chart of a configured helm repository "
     "(no repository 'nosuchrepo' in"),
    ("myrepo/adaptive@0.6.2", None, ChartNotFoundError, 4, "does not exist"),
    ("/no/such/chart", None, ChartNotFoundError, 4, "does not exist"),
])
def test_bad_references_are_one_line_with_their_exit_code(repositories, text, version, error, code, words):
    with pytest.raises(error) as caught:
        ChartRef.parse("adaptive", text, version)
    assert caught.value.exit_code == code
    assert words in caught.value.message
    assert "\n" not in caught.value.one_line()


def test_bad_local_references(tmp_path, tiny_chart):
    for text, version, error, code, words in [
        (str(tmp_path / "nowhere"), None, ChartNotFoundError, 4, "does not exist"),
        (str(tmp_path), None, ChartNotFoundError, 4, "no Chart.yaml"),
        (str(tmp_path / "tiny" / "values.yaml"), None, ChartNotFoundError, 4, "neither a chart directory nor a .tgz"),
        (str(tiny_chart), "0.1.0", UsageError, 2, "--chart-version applies to oci:// and REPO/CHART references"),
    ]:
        with pytest.raises(error) as caught:
            ChartRef.parse("x", text, version)
        assert caught.value.exit_code == code and words in caught.value.message, caught.value.message


def test_catalog_takes_versions_only_for_its_references(tmp_path):
    catalog = ChartCatalog({"adaptive": GHCR}, versions={"adaptive": "0.6.2"}, workdir=tmp_path)
    assert str(catalog.ref("adaptive")) == f"{GHCR}:0.6.2"
    assert catalog.ref("monitoring").kind == "dir"
    with pytest.raises(UsageError, match="--chart-version monitoring=1.0.0 needs --chart monitoring=REF"):
        ChartCatalog({"adaptive": f"{GHCR}:0.6.2"}, versions={"monitoring": "1.0.0"}, workdir=tmp_path)
    with pytest.raises(UsageError, match="must be pulled"):
        ChartCatalog({"adaptive": f"{GHCR}:0.6.2"}, workdir=tmp_path).local_dir("adaptive")


def _helm_env(binary: Path, env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run([str(binary), "env"], capture_output=True, text=True, env=env, check=True).stdout
    return {k: v.strip('"') for k, _, v in (line.partition("=") for line in out.splitlines())}


@pytest.mark.parametrize("extra", [
    {},
    {"XDG_CONFIG_HOME": "{t}/xdg-config", "XDG_CACHE_HOME": "{t}/xdg-cache"},
    {"HELM_CONFIG_HOME": "{t}/hc", "HELM_CACHE_HOME": "{t}/hcache", "XDG_CONFIG_HOME": "{t}/ignored"},
    {"HELM_REGISTRY_CONFIG": "{t}/reg.json", "HELM_REPOSITORY_CONFIG": "{t}/repos.yaml",
     "HELM_REPOSITORY_CACHE": "{t}/repo-cache", "HELM_CONFIG_HOME": "{t}/hc"},
])
def test_user_paths_are_where_helm_looks(tmp_path, extra):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path / "home"),
           **{k: v.format(t=tmp_path) for k, v in extra.items()}}
    helm = _helm_env(Toolchain().path("helm"), env)
    ours = helm_user_paths(env)
    assert str(ours["registry_config"]) == helm["HELM_REGISTRY_CONFIG"]
    assert str(ours["repository_config"]) == helm["HELM_REPOSITORY_CONFIG"]
    assert str(ours["repository_cache"]) == helm["HELM_REPOSITORY_CACHE"]


def test_pulls_read_the_users_config_and_everything_else_stays_private(tmp_path, monkeypatch, repositories):
    for var in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME", "HELM_REGISTRY_CONFIG", "HELM_REPOSITORY_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    helm = Helm("helm", ChartCatalog({}, workdir=tmp_path), workdir=tmp_path / "work")
    private, pull = helm.env(), helm.pull_env()
    assert private["HELM_CONFIG_HOME"].startswith(str(tmp_path / "work"))
    assert "HELM_REGISTRY_CONFIG" not in private
    assert pull["HELM_REGISTRY_CONFIG"] == str(tmp_path / "home" / ".config" / "helm" / "registry" / "config.json")
    assert pull["HELM_REPOSITORY_CONFIG"] == str(repositories)
    assert pull["HELM_REPOSITORY_CACHE"] == str(tmp_path / "home" / ".cache" / "helm" / "repository")
    assert pull["HELM_CONFIG_HOME"] == private["HELM_CONFIG_HOME"]  # plugins, caches: still the run's own
    assert helm_repositories()["myrepo"]["url"] == "https://charts.example.test"


def test_registry_and_repository_secrets_are_learned_before_a_pull(tmp_path, monkeypatch, repositories):
    token = "ghp_" + "Zq7" * 8
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"auths": {
        "ghcr.io": {"auth": base64.b64encode(f"ci-bot:{token}".encode()).decode()},
        "registry.example.test": {"identitytoken": "IdTok-9a8b7c6d5e"},
        "odd.example.test": "not a mapping"}}))
    monkeypatch.setenv("HELM_REGISTRY_CONFIG", str(registry))
    redactor = Redactor()
    Helm("helm", ChartCatalog({}, workdir=tmp_path), workdir=tmp_path, redactor=redactor).learn_credentials()
    auth = json.loads(registry.read_text())["auths"]["ghcr.io"]["auth"]
    text = redactor(f"Error: 401 for ci-bot:{token} (auth {auth}) id IdTok-9a8b7c6d5e repo Repo-Pa55word-77")
    for secret in (token, auth, "IdTok-9a8b7c6d5e", "Repo-Pa55word-77"):
        assert secret not in text
    assert "ci-bot" in text  # the user name is public


@pytest.mark.parametrize("args, code, text", [
    (["--chartproof-chart-version", "adaptive=0.6.2"], 2, "--chart-version adaptive=0.6.2 needs --chart adaptive=REF"),
    (["--chart", f"adaptive={GHCR}"], 2, "give --chart-version adaptive=X.Y.Z or write"),
    (["--chart", f"adaptive={GHCR}:0.6.2", "--chartproof-chart-version", "adaptive=0.6.3"], 2, "names two versions"),
    (["--chart", "adaptive=nosuchrepo/adaptive"], 4, "neither a path"),
    (["--chart", f"adaptive={GHCR}@sha256:12"], 2, "bad digest"),
])
def test_the_plugin_refuses_bad_references_in_one_line(tmp_path, args, code, text):
    proc = run_pytest(tmp_path, "def test_never(): pass\n", *args,
                      env={"HELM_REPOSITORY_CONFIG": str(tmp_path / "no-repositories.yaml")})
    assert proc.returncode == code, proc.stdout + proc.stderr
    label = {2: "chartproof: usage: chart", 4: "chartproof: unknown chart: chart"}[code]
    label = label if "needs --chart" not in text else label.removesuffix(" chart")
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if text in ln]
    assert lines and all(label in ln for ln in lines), proc.stdout + proc.stderr  # the whole error on its line
    assert "1 passed" not in proc.stdout

