"""The pytest plugin end to end, in inner pytest sessions: lazy clusters, teardown on failure and Ctrl-C,
xdist sharing, existing clusters left as they were, reports without secrets, fast one-line refusals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chartproof.clusters.base import ClusterRecord
from tests.conftest import interruptible, run_cli, run_pytest

SECRET = "do-not-leak-this-7f3a9c"


def records() -> set[str]:
    return {r.name for r in ClusterRecord.load_all()}


def records_of(run_id: str) -> set[str]:
    """Clusters an inner run created and still has (other runs may share the machine)."""
    return {r.name for r in ClusterRecord.load_all() if r.owner == run_id}


def report(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())


def test_render_only_run_starts_no_cluster(tmp_path, tiny_chart):
    proc = run_pytest(tmp_path, f"""
def test_render(render):
    m = render({str(tiny_chart)!r}, {{"password": "pw-123456"}})
    assert m.has("Deployment")
""")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report(tmp_path)["cluster"] is None
    assert not records_of(report(tmp_path)["run"])


@pytest.mark.parametrize("args, code, text", [
    (["--chart", "adaptive=/no/such/chart"], 4, "does not exist"),
    (["--chart", "adaptive=oci://ghcr.io/adaptive-ml/adaptive"], 2, "needs a version"),
    (["--chart", "adaptive"], 2, "expected NAME=VALUE"),
    (["--nodes", "ml.p5.48xlarge=x"], 2, "bad --nodes item"),
    (["--cluster", "moon"], 2, "unknown --cluster"),
])
def test_bad_options_exit_early_with_one_line(tmp_path, args, code, text):
    proc = run_pytest(tmp_path, "def test_never(): pass\n", *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert text in proc.stdout + proc.stderr
    assert "1 passed" not in proc.stdout


def test_wrong_context_exits_6(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncontexts:\n- name: staging\n  context: {cluster: x, user: y}\n")
    proc = run_pytest(tmp_path, "def test_never(): pass\n", "--cluster", "existing", "--kubeconfig", str(kubeconfig),
                      "--kube-context", "prod")
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "context 'prod' is not in" in proc.stdout + proc.stderr


def test_kind_without_docker_skips_cluster_tests_with_reason(tmp_path):
    from chartproof.clusters.kind import docker_unavailable_reason
    if docker_unavailable_reason() is None:
        pytest.skip("Docker is available here")
    proc = run_pytest(tmp_path, "def test_needs_cluster(cluster): pass\n", "--cluster", "kind", "-rs")
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped" in proc.stdout and "Docker" in proc.stdout


def test_real_cluster_marker_skips_on_simulated_clusters(tmp_path):
    proc = run_pytest(tmp_path, """
import pytest
@pytest.mark.real_cluster("needs real H100s")
def test_nccl(): raise AssertionError("must not run")
""", "-rs")
    assert proc.returncode == 0 and "needs real H100s" in proc.stdout


def test_failing_install_test_collects_redacted_diagnostics_and_tears_down(tmp_path, tiny_chart):
    proc = run_pytest(tmp_path, f"""
def test_installs_then_fails(install_chart, cluster):
    rel = install_chart({str(tiny_chart)!r}, {{"password": {SECRET!r}}}, {{"replicas": 2}})
    assert cluster.get_json("deployment", rel.name, namespace=rel.namespace)["status"]["readyReplicas"] == 2
    assert False, "deliberate failure with " + {SECRET!r}
""")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = report(tmp_path)
    assert data["counts"] == {"failed": 1}
    assert data["cluster"]["provider"] == "embedded"
    everything = "".join(p.read_text() for p in (tmp_path / "reports").rglob("*") if p.is_file())
    assert SECRET not in everything, "a secret from the values reached the report or diagnostics"
    diag = list((tmp_path / "reports").rglob("events.txt"))
    assert diag, "a failed cluster test leaves events, describe output and logs"
    described = "".join(p.read_text() for p in (tmp_path / "reports").rglob("describe.txt"))
    assert "StrategyType:" in described and "desired" in described, "describe output of the release's Deployment"
    assert data["cluster"]["name"] not in records(), "the run's cluster is gone"


def test_ctrl_c_mid_test_removes_the_cluster(tmp_path):
    (tmp_path / "test_inner.py").write_text("""
import time
def test_long(namespace):
    print("STARTED", flush=True)
    time.sleep(120)
""")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--rootdir",
                             str(tmp_path), "--report-dir", str(tmp_path / "reports"), str(tmp_path / "test_inner.py")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=interruptible)
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if "STARTED" in line:
            break
    assert "STARTED" in seen, seen
    mine = {r.name for r in ClusterRecord.load_all() if r.owner_pid == proc.pid}  # other runs may share the machine
    assert mine, "the cluster exists while the test runs"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert not mine & records(), f"cluster left behind after Ctrl-C: {mine & records()}\n{out}"


def test_xdist_workers_share_one_cluster(tmp_path):
    pytest.importorskip("xdist")
    proc = run_pytest(tmp_path, """
import pytest
@pytest.mark.parametrize("i", range(4))
def test_same_cluster(cluster, namespace, i):
    print("CLUSTER", cluster.name)
    assert cluster.get_json("namespace", namespace)["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "chartproof"
""", "-n", "2", "-s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report(tmp_path)["counts"] == {"passed": 4}
    assert not records_of(report(tmp_path)["run"])


def test_existing_cluster_is_left_as_it_was(tmp_path):
    up = run_cli("cluster", "up", "--nodes", "ml.p5.48xlarge=1,cpu=1", "--name", "cp-existing-test")
    assert up.returncode == 0, up.stderr
    kubeconfig = json.loads(up.stdout)["kubeconfig"]
    context = subprocess.run([sys.executable, "-c", f"import yaml;print(yaml.safe_load(open({kubeconfig!r}))['current-context'])"],
                             capture_output=True, text=True).stdout.strip()
    try:
        kubectl = [run_cli("toolchain", "path", "kubectl").stdout.strip(), "--kubeconfig", kubeconfig]
        subprocess.run([*kubectl, "create", "namespace", "customer-prod"], check=True, capture_output=True)
        proc = run_pytest(tmp_path, """
def test_uses_it(cluster, namespace):
    assert not cluster.simulated or cluster.provider == "existing"
    assert cluster.provider == "existing"
""", "--cluster", "existing", "--kubeconfig", kubeconfig, "--kube-context", context)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        namespaces = subprocess.run([*kubectl, "get", "ns", "-o", "name"], capture_output=True, text=True).stdout
        assert "namespace/customer-prod" in namespaces, "a namespace the run did not create is untouched"
        assert "cp-test-uses-it" not in namespaces.replace("\n", " ") or "Terminating" in subprocess.run(
            [*kubectl, "get", "ns"], capture_output=True, text=True).stdout
        assert "cp-existing-test" in records(), "an existing cluster is never deleted"
        info = report(tmp_path)["cluster"]
        assert info["provider"] == "existing" and info["simulated"] is True
        assert any(n["nvidia.com/gpu"] == "8" for n in info["nodes"])
    finally:
        run_cli("cluster", "down", "cp-existing-test")


def test_customer_values_are_validated_up_front(tmp_path):
    bad = tmp_path / "customer.yaml"
    bad.write_text("secrets:\n  dbUrl: [unclosed\n")
    proc = run_pytest(tmp_path, "def test_never(): pass\n", "--values", f"adaptive={bad}")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "is not valid YAML" in proc.stdout + proc.stderr
    unknown = run_pytest(tmp_path, "def test_never(): pass\n", "--values", f"nosuch={bad}")
    assert unknown.returncode == 4, unknown.stdout + unknown.stderr


def test_customer_configuration_is_reproduced_and_its_secrets_redacted(tmp_path):
    from tests.conftest import REPO
    secret = "customer-db-password-91f0"
    values = tmp_path / "acme-values.yaml"
    import yaml
    data = yaml.safe_load((REPO / "fixtures" / "adaptive" / "autoscaling-off-two-pools.yaml").read_text())
    data["secrets"]["dbUrl"] = f"postgres://acme:{secret}@db:5432/adaptive"
    values.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "suites/customer",
                           "--values", f"adaptive={values}", "--nodes", "ml.p5.48xlarge=3,cpu=2",
                           "--report-dir", str(tmp_path / "reports")], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    data = (tmp_path / "reports" / "latest" / "results.json").read_text()
    outcomes = {r["test"].split("::")[-1].split("[")[0]: r["outcome"] for r in json.loads(data)["results"]
                if "test_customer_configuration.py::" in r["test"] and r["phase"] == "call"}
    assert outcomes == {"test_customer_values_render_and_lint": "passed",
                        "test_customer_values_install_become_ready_and_uninstall_cleanly": "passed"}, outcomes
    assert "acme-values.yaml" in data and secret not in data
    assert json.loads(data)["cluster"]["nodes"][0]["instance-type"] in ("ml.p5.48xlarge", "m5.4xlarge")
