"""`chartproof reproduce` on a customer-like values file with a misspelled key, canaries in every secret
and a pool that cannot fit the given nodes: the typo is reported with its suggestion, the pool that does not
fit is named, no canary leaves the run (terminal, report folder, bundle), and the bundle reruns, from
itself alone, to the same verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import run_cli
from tests.test_redaction_canary import canary_values, leaks

NODES = "ml.p5.48xlarge=2,cpu=1"


def customer_file(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path, planted = canary_values(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["harmony"]["gpuPerReplica"] = 4  # the typo: helm ignores it, so harmony keeps 8 GPUs per replica
    data["harmony"]["computePool"] = [{"name": "Pool-A", "minReplicaCount": 1},
                                      {"name": "big-pool", "minReplicaCount": 3}]  # 3 x 8 GPUs > what is left
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, planted


def everything_written(directory: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file() and p.suffix != ".tgz")


def test_reproduce_reports_typo_and_unfit_pool_leaks_nothing_and_its_bundle_reruns(tmp_path):
    values, planted = customer_file(tmp_path)
    reports = tmp_path / "reports"
    first = run_cli("reproduce", str(values), "--chart", "adaptive", "--nodes", NODES, "--report-dir", str(reports),
                    timeout=900)
    terminal = first.stdout + first.stderr
    assert first.returncode == 1, terminal[-3000:]
    assert "unknown key harmony.gpuPerReplica (did you mean harmony.gpusPerReplica?)" in terminal, terminal[:2000]
    demand = [line for line in first.stdout.splitlines() if line.startswith("FAIL") and "gpu demand" in line]
    assert demand and "big-pool" in demand[0] and "Pool-A" not in demand[0].split("does not fit")[-1], first.stdout

    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and p.name != "latest"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["field"]["kind"] == "reproduce"
    assert any(f["suggestion"] == "harmony.gpusPerReplica" for f in summary["field"]["findings"])
    assert (run_dir / "report.html").is_file() and (run_dir / "junit.xml").is_file()
    found = leaks(terminal, planted) + leaks(everything_written(reports), planted)
    assert not found, f"canaries left the run: {found}"

    bundle = run_dir / "bundle"
    record = json.loads((bundle / "bundle.json").read_text())
    assert record["nodes"] == NODES and record["chart"]["name"] == "adaptive"
    assert (bundle / record["chart"]["file"]).is_file() and len(record["chart"]["sha256"]) == 64
    assert record["verdicts"], "the bundle holds no verdicts to compare a rerun with"
    bundled = yaml.safe_load((bundle / "values.yaml").read_text())
    assert len(bundled["secrets"]["cookiesSecret"]) == len(planted["secrets.cookiesSecret"]), \
        "the placeholder of the cookie secret does not keep its length"
    assert "secrets.cookiesSecret" in record["secrets_replaced"]

    # The bundle alone (copied away from the original run) reruns to the same verdicts.
    moved = tmp_path / "sent-to-a-colleague"
    moved.mkdir()
    (moved / "bundle").mkdir()
    for item in bundle.rglob("*"):
        target = moved / "bundle" / item.relative_to(bundle)
        if item.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(item.read_bytes())
    values.unlink()  # the customer's file is not needed any more
    second = run_cli("reproduce", "--bundle", str(moved / "bundle"), "--report-dir", str(tmp_path / "rerun"), timeout=900)
    assert "verdicts: the same as the bundle's" in second.stderr, second.stderr[-3000:]
    assert second.returncode == first.returncode


def test_the_node_shape_the_values_imply():
    from chartproof.helm import load_values_file, merge_values
    from chartproof.reproduce import implied_shape
    from tests.conftest import REPO

    defaults = load_values_file(REPO / "charts" / "adaptive" / "values.yaml")

    def shape(**harmony):
        return implied_shape("adaptive", merge_values(defaults, {"harmony": harmony}))

    assert shape() == "ml.p5.48xlarge=1,cpu=1"  # one harmony replica of 8 GPUs
    assert shape(gpusPerReplica=4, computePool=[{"name": "a", "minReplicaCount": 3}]) == "ml.p5.48xlarge=2,cpu=1"
    assert shape(replicaCount=3, gpusPerReplica=1,
                 nodeSelector={"node.kubernetes.io/instance-type": "ml.g5.xlarge"}) == "ml.g5.xlarge=3,cpu=1"
    assert shape(gpusPerReplica=None) == "cpu=1"  # CPU-only harmony
    assert implied_shape("monitoring", {}) == "cpu=2"
