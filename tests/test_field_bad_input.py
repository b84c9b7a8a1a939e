"""Bad input to the field commands (certify, reproduce): one line naming the problem, the exit code the
README documents for its class, no traceback, and nothing left behind: no cluster, no run folder; and
Ctrl-C in the middle of a reproduce install removes the cluster it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chartproof.clusters.base import ClusterRecord
from chartproof.clusters.embedded import EmbeddedProvider
from chartproof.paths import cache_dir
from tests.conftest import REPO, interruptible

GOOD_VALUES = REPO / "fixtures" / "adaptive" / "defaults-with-secrets.yaml"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def dead_kubeconfig(tmp_path: Path) -> str:
    return write(tmp_path, "dead-kubeconfig", (
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters:\n- name: dead\n  cluster: {server: 'https://127.0.0.1:1'}\n"
        "users:\n- name: u\n  user: {token: abc}\n"
        "contexts:\n- name: dead\n  context: {cluster: dead, user: u}\n"))


# (id, argv builder, extra environment, exit code, text the one line must hold)
CASES = [
    ("malformed-yaml", lambda t: ["reproduce", write(t, "v.yaml", "harmony:\n  gpusPerReplica: [8\n"), "--chart", "adaptive"],
     {}, 3, "line 3, column 1"),
    ("missing-values-file", lambda t: ["reproduce", str(t / "nope.yaml"), "--chart", "adaptive"], {}, 3, "nope.yaml"),
    ("values-not-a-mapping", lambda t: ["reproduce", write(t, "v.yaml", "- a\n- b\n"), "--chart", "adaptive"],
     {}, 3, "mapping"),
    ("unknown-chart-name", lambda t: ["reproduce", str(GOOD_VALUES), "--chart", "adaptiv"], {}, 4, "no chart named 'adaptiv'"),
    ("unknown-chart-reference", lambda t: ["reproduce", str(GOOD_VALUES), "--chart", f"adaptive={t / 'nowhere.tgz'}"],
     {}, 4, "does not exist"),
    ("unreachable-oci-reference", lambda t: ["reproduce", str(GOOD_VALUES), "--chart",
                                             "adaptive=oci://127.0.0.1:1/charts/adaptive@0.6.2"], {}, 4, "cannot pull"),
    ("invalid-set", lambda t: ["reproduce", str(GOOD_VALUES), "--chart", "adaptive", "--set", "harmony..gpus=1"],
     {}, 3, "bad --set key"),
    ("set-without-value", lambda t: ["reproduce", str(GOOD_VALUES), "--chart", "adaptive", "--set", "harmony"],
     {}, 3, "expected KEY=VALUE"),
    ("unknown-node-profile", lambda t: ["reproduce", str(GOOD_VALUES), "--chart", "adaptive", "--nodes", "ml.p9.48xlarge=1"],
     {}, 2, "unknown node profile 'ml.p9.48xlarge'"),
    ("no-chart-named", lambda t: ["reproduce", str(GOOD_VALUES)], {}, 2, "name the chart"),
    ("not-a-bundle", lambda t: ["reproduce", "--bundle", str(t)], {}, 2, "is not a reproduce bundle"),
    ("unreachable-api-server", lambda t: ["certify", "--read-only", "--kubeconfig", dead_kubeconfig(t)], {}, 5,
     "cannot reach the API server"),
    ("context-not-in-kubeconfig", lambda t: ["certify", "--read-only", "--kubeconfig", dead_kubeconfig(t),
                                             "--kube-context", "prod"], {}, 6, "context 'prod' is not in"),
    ("missing-kubeconfig", lambda t: ["certify", "--read-only", "--kubeconfig", str(t / "no-config")], {}, 5,
     "cannot read kubeconfig"),
    ("missing-binary", lambda t: ["certify", "--read-only", "--kubeconfig", dead_kubeconfig(t)],
     {"CHARTPROOF_KUBECTL": "/nonexistent/kubectl"}, 7, "not an executable file"),
    ("certify-bad-values", lambda t: ["certify", "--read-only", "--kubeconfig", dead_kubeconfig(t), "--values",
                                      "adaptive=" + write(t, "v.yaml", "a: [\n")], {}, 3, "not valid YAML"),
    ("certify-unknown-chart", lambda t: ["certify", "--read-only", "--kubeconfig", dead_kubeconfig(t), "--chart",
                                         "adaptive=" + str(t / "gone")], {}, 4, "does not exist"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_its_exit_code_and_leaves_nothing(case, tmp_path):
    _id, argv, env, code, text = case
    reports = tmp_path / "reports"
    args = [*argv(tmp_path), "--report-dir", str(reports)]
    before = {r.name for r in ClusterRecord.load_all()}
    proc = subprocess.Popen([sys.executable, "-m", "chartproof", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env={**os.environ, **env})
    stdout, stderr = proc.communicate(timeout=300)
    lines = stderr.strip().splitlines()
    assert proc.returncode == code, f"expected exit {code}, got {proc.returncode}: {stderr[-1500:]}"
    assert len(lines) == 1 and text in lines[0], f"expected one line holding {text!r}, found:\n{stderr[-1500:]}"
    assert "Traceback" not in stderr + stdout
    assert lines[0].startswith("chartproof: ")
    left = [r.name for r in ClusterRecord.load_all() if r.name not in before and r.owner_pid == proc.pid]
    assert left == [], f"bad input left clusters behind: {left}"
    assert not any(reports.glob("*")), f"bad input left a run folder: {sorted(reports.glob('*'))}"


def test_ctrl_c_during_a_reproduce_install_removes_its_cluster(tmp_path):
    """SIGINT once the install has started: exit 130, the embedded cluster and its processes are gone."""
    reports = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "chartproof", "reproduce", str(GOOD_VALUES), "--chart", "adaptive",
                             "--nodes", "ml.p5.48xlarge=1,cpu=1", "--report-dir", str(reports)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=interruptible)
    cluster = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            # Its own cluster: the one whose record names this run (the run folder's name is the run id);
            # other tests may start clusters at the same time.
            runs = {p.name for p in reports.iterdir() if p.is_dir()} if reports.is_dir() else set()
            mine = [r.name for r in ClusterRecord.load_all() if r.owner in runs]
            if mine:
                cluster = mine[0]
                # A helm release secret in the cluster's etcd means the install is under way.
                kubeconfig = ClusterRecord.root() / cluster / "kubeconfig"
                if kubeconfig.is_file() and _has_release(kubeconfig):
                    break
            time.sleep(0.5)
        assert cluster and proc.poll() is None, "reproduce never reached the install"
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, f"expected exit 130 after Ctrl-C, got {proc.returncode}:\n{output[-2000:]}"
    assert "interrupted" in output
    assert cluster not in EmbeddedProvider().known_names(), f"cluster {cluster} was left behind"
    assert not (ClusterRecord.root() / cluster).exists(), f"the record of cluster {cluster} was left behind"
    workdir = str(cache_dir() / "kwok" / "clusters" / cluster)
    alive = subprocess.run(["pgrep", "-f", workdir], capture_output=True, text=True).stdout.split()
    assert not alive, f"processes of cluster {cluster} still run: {alive}"


def _has_release(kubeconfig: Path) -> bool:
    from chartproof.kube import Kubectl, KubectlError
    from chartproof.toolchain import Toolchain

    try:
        out = Kubectl(Toolchain().path("kubectl"), kubeconfig)("get", "secrets", "-A", "-l", "owner=helm", "-o", "name",
                                                                timeout=10)
    except (KubectlError, subprocess.TimeoutExpired):
        return False
    return bool(out.strip())
