"""kubeconfig files read as kubectl reads them: a $KUBECONFIG list merged in order (first file wins for a
name, current-context from the first file that sets one, missing files skipped), --kubeconfig as the one
file, --kube-context to pick a context; the merged result reaches a real cluster through kubectl and helm."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from chartproof.clusters.existing import (
    ExistingProvider,
    Kubeconfig,
    kubeconfig_paths,
    single_context_kubeconfig,
)
from chartproof.errors import ClusterUnreachableError, UsageError, WrongContextError
from tests.conftest import embedded_cluster, run_cli, run_pytest

DEAD_TOKEN = "dead-token-5b1e0c"


def write_config(path: Path, *, current: str | None, contexts: dict[str, tuple[str, str]],
                 clusters: dict[str, dict] | None = None, users: dict[str, dict] | None = None) -> Path:
    doc = {"apiVersion": "v1", "kind": "Config",
           "contexts": [{"name": n, "context": {"cluster": c, "user": u}} for n, (c, u) in contexts.items()],
           "clusters": [{"name": n, "cluster": body} for n, body in (clusters or {}).items()],
           "users": [{"name": n, "user": body} for n, body in (users or {}).items()]}
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def dead_config(path: Path) -> Path:
    """A kubeconfig whose one context points at a port nothing listens on."""
    return write_config(path, current="dead", contexts={"dead": ("dead", "dead-user")},
                        clusters={"dead": {"server": "https://127.0.0.1:1"}},
                        users={"dead-user": {"token": DEAD_TOKEN}})


@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "b").mkdir()
    a = write_config(tmp_path / "a.yaml", current=None, contexts={"shared": ("from-a", "ua"), "only-a": ("from-a", "ua")},
                     clusters={"from-a": {"server": "https://a.example:6443"}}, users={"ua": {"token": "token-a"}})
    b = write_config(tmp_path / "b" / "config", current="only-b",
                     contexts={"shared": ("from-b", "ub"), "only-b": ("from-b", "ub")},
                     clusters={"from-b": {"server": "https://b.example:6443", "certificate-authority": "certs/ca.crt"},
                               "from-a": {"server": "https://not-this-one.example"}},
                     users={"ub": {"client-certificate": "certs/b.crt", "client-key": "/abs/b.key",
                                   "exec": {"command": "./bin/get-token", "apiVersion": "client.authentication.k8s.io/v1"}}})
    return a, b


def test_paths_follow_kubectl(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig_paths(env="") == [tmp_path / ".kube" / "config"]
    assert kubeconfig_paths(env=f"/x{os.pathsep}{os.pathsep}/y{os.pathsep}/x") == [Path("/x"), Path("/y")]
    assert kubeconfig_paths("~/one", env="/x:/y") == [tmp_path / "one"], "--kubeconfig is the one file"


def test_merge_first_file_wins_and_current_context_from_the_first_that_sets_one(two_files):
    a, b = two_files
    merged = Kubeconfig.load([a, Path("/no/such/kubeconfig"), b])
    assert merged.files == [a, b], "the missing file is skipped"
    assert merged.current_context == "only-b", "a.yaml sets none, so the first file that does"
    assert merged.context_names == ["shared", "only-a", "only-b"]
    assert merged.contexts["shared"].body["cluster"] == "from-a" and merged.contexts["shared"].origin == a
    assert merged.clusters["from-a"].body["server"] == "https://a.example:6443"
    assert merged.resolve(None) == "only-b" and merged.resolve("only-a") == "only-a"


def test_merged_copy_holds_one_context_with_absolute_references(two_files):
    a, b = two_files
    merged = Kubeconfig.load([a, b])
    path = merged.handoff("only-b")
    assert path not in (a, b)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "only-b"
    assert [c["name"] for c in doc["contexts"]] == ["only-b"]
    assert doc["clusters"] == [{"name": "from-b", "cluster": {"server": "https://b.example:6443",
                                                              "certificate-authority": str(b.parent / "certs/ca.crt")}}]
    user = doc["users"][0]["user"]
    assert user["client-certificate"] == str(b.parent / "certs/b.crt") and user["client-key"] == "/abs/b.key"
    assert user["exec"]["command"] == str(b.parent / "bin/get-token")
    assert "token-a" not in path.read_text(), "another context's credentials are not copied"
    assert merged.handoff("only-b") == path, "the same content is one file"
    assert Kubeconfig.load([a]).handoff("only-a") == a, "a single file is handed over as it is"


def test_single_context_file_for_clients_without_a_context_option(two_files):
    a, b = two_files
    assert single_context_kubeconfig(b, None) == b and single_context_kubeconfig(b, "only-b") == b
    copy = single_context_kubeconfig(b, "shared")
    assert yaml.safe_load(copy.read_text())["current-context"] == "shared"


def test_errors(two_files, tmp_path, monkeypatch):
    a, b = two_files
    monkeypatch.setenv("KUBECONFIG", f"{a}{os.pathsep}{b}")
    with pytest.raises(WrongContextError) as err:
        ExistingProvider(context="prod").resolve_context()
    assert err.value.exit_code == 6 and "context 'prod' is not in any of" in err.value.message
    assert err.value.hint == "known: shared, only-a, only-b"
    with pytest.raises(WrongContextError, match="'only-b' is not in"):
        ExistingProvider(kubeconfig=a, context="only-b").resolve_context()  # --kubeconfig overrides $KUBECONFIG
    with pytest.raises(WrongContextError, match="has no current context"):
        ExistingProvider(kubeconfig=a).resolve_context()
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'gone-1'}{os.pathsep}{tmp_path / 'gone-2'}")
    with pytest.raises(ClusterUnreachableError, match="none of the files of \\$KUBECONFIG exists") as err:
        ExistingProvider().resolve_context()
    assert err.value.exit_code == 5
    with pytest.raises(ClusterUnreachableError, match="cannot read kubeconfig .*gone-3"):
        ExistingProvider(kubeconfig=tmp_path / "gone-3").resolve_context()
    (tmp_path / "broken.yaml").write_text("contexts: [\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        ExistingProvider(kubeconfig=tmp_path / "broken.yaml").resolve_context()


def test_cli_errors_name_every_file_of_the_list(two_files, tmp_path):
    a, b = two_files
    wrong = run_cli("cluster", "up", "--provider", "existing", "--kube-context", "prod",
                    env={"KUBECONFIG": f"{a}{os.pathsep}{b}"})
    assert wrong.returncode == 6, wrong.stderr
    assert "known: shared, only-a, only-b" in wrong.stderr and str(b) in wrong.stderr
    none = run_cli("cluster", "up", "--provider", "existing", env={"KUBECONFIG": str(tmp_path / "gone")})
    assert none.returncode == 5 and "cannot read kubeconfig" in none.stderr, none.stderr


# -- on a real cluster -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedded():
    with embedded_cluster("kubecfg", "ml.p5.48xlarge=1,cpu=1") as cluster:
        yield cluster


def embedded_context(cluster) -> str:
    return yaml.safe_load(cluster.kubeconfig.read_text())["current-context"]


def test_cli_reaches_the_context_of_the_second_file(embedded, tmp_path):
    dead = dead_config(tmp_path / "dead.yaml")
    context = embedded_context(embedded)
    kubeconfig = os.pathsep.join([str(dead), str(tmp_path / "missing.yaml"), str(embedded.kubeconfig)])
    up = run_cli("cluster", "up", "--provider", "existing", "--kube-context", context, env={"KUBECONFIG": kubeconfig})
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    assert info["context"] == context and info["nodes"] == 2 and info["server_version"].startswith("v1.")
    assert not Path(info["kubeconfig"]).exists(), "the merged copy went with the process that made it"
    current = run_cli("cluster", "up", "--provider", "existing", env={"KUBECONFIG": kubeconfig})
    assert current.returncode == 5, current.stderr
    assert "(context dead)" in current.stderr, "no --kube-context: the current context of the first file"
    assert DEAD_TOKEN not in current.stderr + current.stdout


def test_pytest_run_on_a_merged_kubeconfig(embedded, tmp_path, tiny_chart):
    dead = dead_config(tmp_path / "dead.yaml")
    context = embedded_context(embedded)
    proc = run_pytest(tmp_path, f"""
def test_kubectl(cluster):
    assert cluster.provider == "existing" and cluster.context == {context!r}
    assert any(n["status"]["allocatable"].get("nvidia.com/gpu") == "8" for n in cluster.nodes())

def test_helm(cluster, namespace, helm, install_chart):
    release = install_chart({str(tiny_chart)!r}, {{"password": "pw-merged-7"}})
    assert [r["name"] for r in helm.releases(namespace)] == [release.name]
""", "--cluster", "existing", "--kube-context", context, "-n", "2",
                      env={"KUBECONFIG": f"{dead}{os.pathsep}{embedded.kubeconfig}"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())
    assert results["counts"] == {"passed": 2}
    assert results["cluster"]["context"] == context
    assert not Path(results["cluster"]["kubeconfig"]).exists(), "the merged copy is removed with the run's processes"
    left = subprocess.run([str(embedded.kubectl.binary), "--kubeconfig", str(embedded.kubeconfig), "get", "ns",
                           "-l", f"chartproof.dev/run={results['run']}", "-o", "name"],
                          capture_output=True, text=True, check=True).stdout
    assert not left.strip(), f"the run's namespaces were not removed: {left}"
