"""A release's manifest and hooks come from what ``helm install``/``helm upgrade --output json`` printed, and
are the same text ``helm get manifest`` and ``helm get hooks`` print; once a helm command changes the release
outside the Release (a rollback, an upgrade of its own), they are read from helm again."""

from __future__ import annotations

from chartproof.helm import HelmResult, ReleaseRecord
from tests.conftest import run_pytest

INNER = '''
import os

import pytest


def test_the_record_is_what_helm_get_prints(install_chart, helm, namespace):
    chart = os.environ["TINY_CHART"]
    rel = install_chart(chart, {"password": "pw-123456"}, release="rec")
    record = rel.record()
    assert record is not None and record.revision == 1
    printed = helm.run("get", "manifest", "rec", "--namespace", namespace, check=True).stdout
    assert record.manifest.strip() == printed.strip()
    assert record.hooks == helm.run("get", "hooks", "rec", "--namespace", namespace, check=True).stdout

    def no_helm(*args, **kwargs):
        raise AssertionError(f"helm {' '.join(args[:2])} ran for what the install printed")

    real_run, helm.run = helm.run, no_helm
    try:
        assert sorted(o["kind"] for o in rel.manifest) == ["Deployment", "Secret"]
        assert rel.hooks().one("ConfigMap")["metadata"]["name"] == "rec-hook"
        assert ("ConfigMap", "rec-hook", namespace) in rel.objects()
    finally:
        helm.run = real_run

    # An upgrade the Release did not make: what the install printed is no longer the release.
    helm.run("upgrade", "rec", chart, "--namespace", namespace, "--reuse-values", "--set", "replicas=2", check=True)
    assert rel.record() is None
    assert rel.manifest.one("Deployment")["spec"]["replicas"] == 2

    rel.upgrade(set={"replicas": 3}, reuse_values=True)
    assert rel.record().revision == 3
    assert rel.manifest.one("Deployment")["spec"]["replicas"] == 3
'''


def test_a_release_reads_its_manifest_and_hooks_from_what_helm_printed(tmp_path, tiny_chart):
    (tiny_chart / "templates" / "hook.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hook\n  annotations:\n"
        "    helm.sh/hook: post-install,post-upgrade\ndata:\n  replicas: {{ .Values.replicas | quote }}\n")
    proc = run_pytest(tmp_path, INNER, env={"TINY_CHART": str(tiny_chart)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_only_an_install_or_upgrade_printed_as_json_carries_a_record():
    printed = '{"name": "r", "version": 2, "manifest": "---\\nkind: A\\n", "hooks": [{"path": "c/templates/h.yaml", ' \
              '"manifest": "kind: B"}]}'
    record = HelmResult(["upgrade", "r", "c", "--output", "json"], 0, printed, "").release
    assert record == ReleaseRecord(2, "---\nkind: A\n", "---\n# Source: c/templates/h.yaml\nkind: B\n")
    assert HelmResult(["upgrade", "r", "c"], 0, printed, "").release is None  # helm's own status text
    assert HelmResult(["upgrade", "r", "c", "--output", "json"], 1, "", "Error: x").release is None
    assert HelmResult(["upgrade", "r", "c", "--output", "json"], 0, "not json", "").release is None
