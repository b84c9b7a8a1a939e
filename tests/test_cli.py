"""The command line: clusters up/down/list, one-line errors with distinct exit codes, Ctrl-C leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from chartproof.clusters.base import ClusterRecord
from chartproof.errors import EXIT_CODES
from tests.conftest import REPO, interruptible, run_cli


def test_exit_codes_are_distinct():
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)


@pytest.mark.parametrize("args, code, text", [
    (["toolchain", "path", "helmx"], 7, "unknown tool 'helmx'"),
    (["cluster", "up", "--nodes", "gpu=lots"], 2, "bad --nodes item"),
    (["cluster", "up", "--nodes", "ml.p9.48xlarge=1"], 2, "unknown node profile"),
    (["cluster", "up", "--provider", "warp"], 2, "invalid choice"),
    (["cluster", "kubeconfig", "nosuch"], 8, "no cluster named nosuch"),
    (["cluster", "down"], 2, "name the clusters"),
])
def test_bad_input_gives_one_line_and_its_exit_code(args, code, text):
    before = {r.name for r in ClusterRecord.load_all()}
    proc = subprocess.Popen([sys.executable, "-m", "chartproof", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == code, stderr
    assert text in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    left = [r.name for r in ClusterRecord.load_all() if r.owner_pid == proc.pid and r.name not in before]
    assert left == [], f"bad input left cluster records behind: {left}"


def test_kind_without_docker_exit_code():
    from chartproof.clusters.kind import docker_unavailable_reason
    if docker_unavailable_reason() is None:
        pytest.skip("Docker is available here")
    proc = run_cli("cluster", "up", "--provider", "kind")
    assert proc.returncode == 9 and "Docker" in proc.stderr


def test_wrong_context_and_unreachable_cluster(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters:\n- name: dead\n  cluster: {server: 'https://127.0.0.1:1'}\n"
        "users:\n- name: u\n  user: {token: abc}\n"
        "contexts:\n- name: dead\n  context: {cluster: dead, user: u}\n")
    wrong = run_cli("cluster", "up", "--provider", "existing", "--kubeconfig", str(kubeconfig), "--kube-context", "prod")
    assert wrong.returncode == 6 and "context 'prod' is not in" in wrong.stderr and "known: dead" in wrong.stderr
    dead = run_cli("cluster", "up", "--provider", "existing", "--kubeconfig", str(kubeconfig))
    assert dead.returncode == 5 and "cannot reach the API server" in dead.stderr


def test_cluster_up_list_kubeconfig_down():
    up = run_cli("cluster", "up", "--nodes", "ml.p5.48xlarge=1,cpu=1", "--name", "cp-cli-test")
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    try:
        assert info["nodes"] == 2 and info["server_version"].startswith("v1.")
        listing = run_cli("cluster", "list").stdout
        assert "cp-cli-test" in listing and "up (cli)" in listing
        assert run_cli("cluster", "kubeconfig", "cp-cli-test").stdout.strip() == info["kubeconfig"]
    finally:
        down = run_cli("cluster", "down", "cp-cli-test")
    assert down.returncode == 0, down.stderr
    assert "cp-cli-test" not in run_cli("cluster", "list").stdout


def _apiservers_of(name: str) -> list[str]:
    """The serving control plane of a cluster (not kwokctl's short `--version` probes of the same binaries)."""
    out = subprocess.run(["pgrep", "-af", f"clusters/{name}/"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines()
            if ("kube-apiserver" in ln and "--etcd-servers" in ln) or ("/etcd " in ln and "--data-dir" in ln)]


def test_ctrl_c_during_cluster_up_leaves_nothing():
    name = f"cp-interrupted-{os.getpid()}"
    # 2,000 nodes keep the start busy for many seconds: the interrupt lands mid-start, whatever the machine.
    proc = subprocess.Popen([sys.executable, "-m", "chartproof", "cluster", "up", "--name", name, "--nodes", "cpu=2000"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _apiservers_of(name):
            time.sleep(0.05)
        assert _apiservers_of(name), "the control plane started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert "interrupted" in err
        assert not (ClusterRecord.root() / name).exists()
        assert name not in run_cli("cluster", "list").stdout
        time.sleep(1)
        assert _apiservers_of(name) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        if name in run_cli("cluster", "list").stdout:
            run_cli("cluster", "down", name)


def test_warm_toolchain_resolves_every_tool_it_installs():
    """Every pin `chartproof toolchain install` obtains is in the cache after it; the on-demand pins (the
    Kubernetes 1.26 control plane, helm-unittest) are built on first use, so they may be missing or cached."""
    proc = run_cli("toolchain", "list")
    assert proc.returncode == 0
    rows = {ln.split()[0]: ln.split() for ln in proc.stdout.splitlines()[1:]}
    from chartproof.toolchain.pins import load_pins
    pins = load_pins()
    assert set(rows) == set(pins)
    installed = [rows[name] for name, pin in pins.items() if not pin.extra.get("on_demand")]
    assert installed and all(row[2] in ("cache", "explicit") or row[2].startswith("cache") for row in installed), proc.stdout
    assert all(os.access(row[-1], os.X_OK) for row in installed)
    assert all(row[2] == "missing" or row[2].startswith("cache") or row[2] == "explicit" for row in rows.values()), proc.stdout


def test_two_clusters_starting_at_once_do_not_collide():
    """Parallel runs on one machine: each cluster gets its own ports (kwokctl's own choice can collide)."""
    names = ["cp-parallel-a", "cp-parallel-b"]
    procs = [subprocess.Popen([sys.executable, "-m", "chartproof", "cluster", "up", "--name", n, "--nodes", "cpu=2"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in names]
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
        for proc, (_, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
        servers = {json.loads(out)["kubeconfig"] for out, _ in outputs}
        assert len(servers) == 2
    finally:
        run_cli("cluster", "down", *names)
