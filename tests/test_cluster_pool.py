"""The cluster pool (chartproof.clusters.pool) end to end, in inner pytest sessions: exclusive tests under
`-n 2` hold two different clusters at the same time, a cluster handed back clean is lent again and a dirty one
is not, the shared cluster stays the other tests', nothing is left after the run or after a Ctrl-C mid-run,
and on provider `existing` exclusive tests still take turns on the one cluster.

Each inner test writes what it saw (cluster name, kubeconfig, the uid of its `kube-system` namespace, which
no two API servers share) into a folder; the assertions are on those records, not on timing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chartproof.clusters.base import ClusterRecord
from chartproof.clusters.embedded import EmbeddedProvider
from chartproof.clusters.pool import auto_workers, pool_size
from chartproof.paths import cache_dir
from tests.conftest import interruptible, run_cli, run_pytest

pytestmark = pytest.mark.cluster

# What the inner tests share: record(name, cluster) writes the record; meet(me, other) waits, while the
# caller still holds its cluster, until the other test holds one too (it can only pass if both run at once).
HELPERS = """
import json, os, pathlib, time
import pytest
OUT = pathlib.Path(os.environ["POOL_OUT"])
WAIT = float(os.environ.get("POOL_WAIT", "180"))

def record(me, cluster, **extra):
    uid = cluster.get_json("namespace", "kube-system")["metadata"]["uid"]
    data = {"name": cluster.name, "kubeconfig": str(cluster.kubeconfig), "uid": uid, "pid": os.getpid(), **extra}
    (OUT / f"{me}.json").write_text(json.dumps(data))

def meet(me, other):
    deadline = time.monotonic() + WAIT
    while not (OUT / f"{other}.json").exists():
        assert time.monotonic() < deadline, f"{me} held its cluster {WAIT:.0f}s and {other} never held one meanwhile"
        time.sleep(0.2)
"""

TWO_AT_ONCE = HELPERS + """
@pytest.mark.exclusive("hyperpod")
def test_a(cluster, namespace):
    record("a", cluster)
    meet("a", "b")

@pytest.mark.exclusive("hyperpod")
def test_b(cluster, namespace):
    record("b", cluster)
    meet("b", "a")
"""


def seen(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def results(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())


def assert_gone(names: set[str]) -> None:
    """No record, no kwokctl work directory and no process of these clusters is left."""
    assert names, "the inner run recorded no cluster"
    left = names & {r.name for r in ClusterRecord.load_all()}
    assert not left, f"cluster records left behind: {sorted(left)}"
    known = names & set(EmbeddedProvider().known_names())
    assert not known, f"kwokctl still knows clusters: {sorted(known)}"
    for name in names:
        workdir = str(cache_dir() / "kwok" / "clusters" / name)
        alive = subprocess.run(["pgrep", "-f", workdir], capture_output=True, text=True).stdout.split()
        assert not alive, f"processes of cluster {name} still run: {alive}"


def pool_env(out: Path, **extra: str) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    return {"POOL_OUT": str(out), **extra}


def test_pool_size_follows_the_workers_and_the_cores():
    assert pool_size(None, workers=2, cores=2) == 2
    assert pool_size(None, workers=4, cores=2) == 4, "one cluster per worker"
    assert pool_size(None, workers=6, cores=2) == 4, "at most two clusters per core"
    assert [auto_workers(cores) for cores in (1, 2, 3, 16)] == [2, 4, 6, 8], "-n auto: two workers per core, 2 to 8"
    assert pool_size(None, workers=0, cores=2) == 0, "a run without workers keeps today's behaviour"
    assert pool_size(3, workers=2, cores=2) == 3, "--chartproof-pool-size wins"
    assert pool_size(0, workers=2, cores=2) == 0, "0 turns the pool off"


def test_two_exclusive_tests_hold_two_clusters_at_the_same_time(tmp_path):
    pytest.importorskip("xdist")
    out = tmp_path / "seen"
    proc = run_pytest(tmp_path, TWO_AT_ONCE, "-n", "2", env=pool_env(out))
    records = seen(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    a, b = records["a"], records["b"]
    assert a["pid"] != b["pid"], "the two tests ran in one worker"
    assert a["name"] != b["name"] and a["kubeconfig"] != b["kubeconfig"], \
        f"both exclusive tests held one cluster: {a['name']} and {b['name']}"
    assert a["uid"] != b["uid"], "two cluster names, but one API server (same kube-system uid)"
    data = results(tmp_path)
    assert {c["name"] for c in data["cluster"]["pool"]} == {a["name"], b["name"]}, \
        f"the report's pool lists {data['cluster']['pool']}, expected the clusters the tests held"
    assert any("cluster pool: 2 embedded cluster(s)" in note for note in data["notes"]), data["notes"]
    assert_gone({a["name"], b["name"]})


def test_without_the_pool_the_same_tests_take_turns(tmp_path):
    """The check above can fail: with --chartproof-pool-size 0 the `hyperpod` name lock serializes them, so the
    first one to hold it waits for the other in vain."""
    pytest.importorskip("xdist")
    out = tmp_path / "seen"
    proc = run_pytest(tmp_path, TWO_AT_ONCE, "-n", "2", "--chartproof-pool-size", "0",
                      env=pool_env(out, POOL_WAIT="15"))
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    assert "never held one meanwhile" in proc.stdout
    records = seen(out)
    assert records["a"]["name"] == records["b"]["name"], "without a pool both take turns on the run's cluster"
    assert results(tmp_path)["cluster"].get("pool") is None
    assert_gone({records["a"]["name"]})


REUSE = HELPERS + """
import pathlib

@pytest.mark.exclusive("hyperpod")
def test_1_first(cluster, namespace, install_chart):
    install_chart(os.environ["TINY_CHART"], {"password": "pw-123456"}, release="clean")  # uninstalled at teardown
    record("1", cluster)

@pytest.mark.exclusive("keda")
def test_2_leaves_a_release(cluster, namespace, helm):
    record("2", cluster)
    result = helm.install(os.environ["TINY_CHART"], "leftover", namespace, {"password": "pw-123456"})
    assert result.ok, result.error
    secrets = cluster.kubectl("get", "secrets", "-n", namespace, "-l", "owner=helm,name=leftover", "-o", "name")
    assert secrets.strip(), "helm and cluster are not the same cluster: the release is not on the test's cluster"

@pytest.mark.exclusive("hyperpod")
def test_3_after_the_dirty_one(cluster, namespace):
    record("3", cluster)

def test_4_shared(cluster, namespace):
    record("4", cluster)
"""


def test_a_clean_cluster_is_lent_again_and_a_dirty_one_is_stopped(tmp_path, tiny_chart):
    out = tmp_path / "seen"
    proc = run_pytest(tmp_path, REUSE, "--chartproof-pool-size", "1",
                      env=pool_env(out, TINY_CHART=str(tiny_chart)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    records = seen(out)
    first, second, third, shared = (records[k]["name"] for k in ("1", "2", "3", "4"))
    assert second == first, f"the cluster handed back clean by test 1 ({first}) was not lent to test 2 ({second})"
    assert third != second, f"test 2 left a release on {second}, yet it was lent again to test 3"
    assert shared not in (first, third), "a test without the exclusive marker ran on a cluster of the pool"
    data = results(tmp_path)
    lent = {c["name"]: c["tests"] for c in data["cluster"]["pool"]}
    assert [t.rsplit("::", 1)[1] for t in lent[first]] == ["test_1_first", "test_2_leaves_a_release"], lent
    assert [t.rsplit("::", 1)[1] for t in lent[third]] == ["test_3_after_the_dirty_one"], lent
    assert any(f"pool cluster {second} stopped after" in n and "releases left: leftover" in n for n in data["notes"]), \
        data["notes"]
    junit = (tmp_path / "reports" / "latest" / "junit.xml").read_text()
    assert f'name="chartproof_cluster" value="{third}"' in junit, "the JUnit report names the pool cluster of a test"
    assert_gone({first, third, shared})


HOLD_AND_SLEEP = HELPERS + """
@pytest.mark.exclusive("hyperpod")
def test_a(cluster, namespace):
    record("a", cluster)
    time.sleep(300)

@pytest.mark.exclusive("hyperpod")
def test_b(cluster, namespace):
    record("b", cluster)
    time.sleep(300)
"""


@pytest.mark.parametrize("whom", ["group", "controller"])
def test_ctrl_c_mid_run_stops_every_pool_cluster(tmp_path, whom):
    """SIGINT while both pool clusters are held: to the whole process group, as a terminal's Ctrl-C sends
    it, or to the controller alone (the workers are then ended by xdist, without their teardown)."""
    pytest.importorskip("xdist")
    out = tmp_path / "seen"
    (tmp_path / "test_inner.py").write_text(HOLD_AND_SLEEP)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--rootdir",
                             str(tmp_path), "--report-dir", str(tmp_path / "reports"), str(tmp_path / "test_inner.py")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **pool_env(out)}, preexec_fn=interruptible, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and len(seen(out)) < 2:
            time.sleep(0.5)
        records = seen(out)
        assert len(records) == 2 and proc.poll() is None, f"the inner run never held two clusters: {records}"
        names = {r["name"] for r in records.values()}
        assert len(names) == 2 and names <= {r.name for r in ClusterRecord.load_all()}, "both clusters exist while held"
        if whom == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0, output[-2000:]
    assert_gone(names)


def test_existing_cluster_keeps_one_cluster_and_the_locks(tmp_path):
    """On --chartproof-cluster existing there is no pool: two exclusive tests of one name take turns on it."""
    pytest.importorskip("xdist")
    up = run_cli("cluster", "up", "--nodes", "cpu=1", "--name", "cp-pool-existing")
    assert up.returncode == 0, up.stderr
    kubeconfig = json.loads(up.stdout)["kubeconfig"]
    out = tmp_path / "seen"
    try:
        proc = run_pytest(tmp_path, HELPERS + """
@pytest.mark.exclusive("hyperpod")
@pytest.mark.parametrize("me", ["a", "b"])
def test_turns(cluster, namespace, me):
    inside = OUT / "inside"
    fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if the other test is inside too
    try:
        record(me, cluster)
        time.sleep(2)
    finally:
        os.close(fd)
        inside.unlink()
""", "-n", "2", "--chartproof-cluster", "existing", "--kubeconfig", kubeconfig, "--chartproof-pool-size", "2",
            env=pool_env(out))
        assert proc.returncode == 0, proc.stdout[-3000:]
        records = seen(out)
        assert records["a"]["pid"] != records["b"]["pid"], "the two tests ran in one worker"
        assert records["a"]["uid"] == records["b"]["uid"], "an existing cluster run used more than one cluster"
        assert "pool" not in results(tmp_path)["cluster"]
    finally:
        run_cli("cluster", "down", "cp-pool-existing")


def test_n_auto_starts_two_workers_per_core_and_xdists_own_setting_wins(tmp_path):
    source = ("import os, pathlib\n\ndef test_count():\n"
              "    pathlib.Path('workers.txt').write_text(os.environ['PYTEST_XDIST_WORKER_COUNT'])\n")
    for env, expected in (({}, auto_workers()), ({"PYTEST_XDIST_AUTO_NUM_WORKERS": "1"}, 1)):
        proc = run_pytest(tmp_path, source, "-n", "auto", "--chartproof-pool-size", "0", env=env)
        assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
        assert (tmp_path / "workers.txt").read_text() == str(expected), env
