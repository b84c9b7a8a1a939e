"""The promtool checks of chartproof.appconfig catch what Prometheus would refuse, with promtool's own message:
broken relabel and scrape configs, a broken rule file the configuration loads, unparsable PromQL; and a
configuration the container does not mount is named as such."""

from __future__ import annotations

import subprocess

import pytest

from chartproof.appconfig import check_prometheus, check_promql, prometheus_configs
from chartproof.manifest import Manifest


@pytest.fixture(scope="module")
def promtool(chartproof_run):
    return chartproof_run.toolchain.path("promtool")


def with_prometheus_files(**files) -> dict:
    """Adaptive values replacing the bundled Prometheus' configuration files (a list value replaces the chart's)."""
    return {"prometheus": {"serverFiles": files}}


def check_render(render, promtool, tmp_path, values):
    servers = prometheus_configs(render("adaptive", [values]))
    assert len(servers) == 1, f"expected the one bundled Prometheus server, found {[s.name for s in servers]}"
    assert not servers[0].problems, servers[0].problems
    return check_prometheus(promtool, servers[0], tmp_path)


def test_the_charts_default_configuration_passes(render, promtool, tmp_path):
    result = check_render(render, promtool, tmp_path, {})
    assert result.ok, result.output
    assert "SUCCESS" in result.output and "rule files found" in result.output, result.output


def test_a_broken_relabel_regex_fails_with_promtools_message(render, promtool, tmp_path):
    job = {"job_name": "pods", "kubernetes_sd_configs": [{"role": "pod"}],
           "relabel_configs": [{"source_labels": ["__meta_kubernetes_pod_label_app"], "action": "keep", "regex": "(["}]}
    result = check_render(render, promtool, tmp_path, with_prometheus_files(**{"prometheus.yml": {"scrape_configs": [job]}}))
    assert not result.ok, f"a relabel regex '([' must fail promtool check config, it passed:\n{result.output}"
    assert "error parsing regexp" in result.output, f"expected promtool's regexp error, found:\n{result.output}"


def test_an_unknown_relabel_action_fails(render, promtool, tmp_path):
    job = {"job_name": "pods", "static_configs": [{"targets": ["localhost:9090"]}],
           "relabel_configs": [{"source_labels": ["job"], "action": "keep-if", "regex": "x"}]}
    result = check_render(render, promtool, tmp_path, with_prometheus_files(**{"prometheus.yml": {"scrape_configs": [job]}}))
    assert not result.ok and "unknown relabel action" in result.output, \
        f"relabel action keep-if: expected promtool's 'unknown relabel action', found:\n{result.output}"


def test_two_scrape_jobs_of_one_name_fail(render, promtool, tmp_path):
    job = {"job_name": "twice", "static_configs": [{"targets": ["localhost:9090"]}]}
    result = check_render(render, promtool, tmp_path, with_prometheus_files(**{"prometheus.yml": {"scrape_configs": [job, job]}}))
    assert not result.ok and "twice" in result.output and "multiple scrape configs" in result.output, \
        f"two jobs named 'twice': expected promtool's duplicate-job error, found:\n{result.output}"


def test_a_broken_rule_file_the_configuration_loads_fails(render, promtool, tmp_path):
    """The rule files come from the ConfigMap the container mounts at /etc/config, laid out where it will see them."""
    rules = {"groups": [{"name": "broken", "rules": [{"record": "job:up:sum", "expr": "sum(up"}]}]}
    result = check_render(render, promtool, tmp_path, with_prometheus_files(**{"recording_rules.yml": rules}))
    assert not result.ok and "recording_rules.yml" in result.output and "parse error" in result.output, \
        f"a recording rule 'sum(up': expected promtool's parse error naming recording_rules.yml, found:\n{result.output}"


def test_unparsable_promql_fails(promtool, tmp_path):
    result = check_promql(promtool, {"ScaledObject x trigger 0": "sum(rate(x[5m])"}, tmp_path)
    assert not result.ok and "parse error" in result.output, f"'sum(rate(x[5m])': expected a parse error, found:\n{result.output}"
    assert check_promql(promtool, {"ok": "sum(rate(x[5m]))"}, tmp_path / "ok").ok


def test_a_configuration_the_container_does_not_mount_is_named():
    manifest = Manifest("""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: prom, namespace: ns}
spec:
  template:
    spec:
      containers:
        - name: server
          image: quay.io/prometheus/prometheus:v3.1.0
          args: [--config.file=/etc/other/prometheus.yml]
          volumeMounts: [{name: config-volume, mountPath: /etc/config}]
      volumes: [{name: config-volume, configMap: {name: prom}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: prom, namespace: ns}
data: {prometheus.yml: "scrape_configs: []"}
""")
    (server,) = prometheus_configs(manifest)
    assert server.files.get("/etc/config/prometheus.yml") == "scrape_configs: []"
    assert any("/etc/other/prometheus.yml" in p for p in server.problems), server.problems


def test_promtool_is_the_release_the_chart_runs(render, promtool):
    """The pinned promtool checks with the rules of the Prometheus release the chart's server image runs."""
    (server,) = prometheus_configs(render("adaptive"))
    tag = str(server.container.get("image", "")).rsplit(":", 1)[-1].lstrip("v")
    out = subprocess.run([str(promtool), "--version"], capture_output=True, text=True, timeout=30).stdout
    assert f"version {tag} " in out, f"the chart runs Prometheus {tag}; the pinned promtool reports: {out.splitlines()[:1]}"


def test_the_same_files_are_checked_once_and_changed_files_again(render, promtool, tmp_path, monkeypatch):
    from chartproof import appconfig

    runs: list[list[str]] = []
    real_run = subprocess.run
    monkeypatch.setattr(appconfig, "_PROMTOOL_VERDICTS", {})
    monkeypatch.setattr(appconfig.subprocess, "run", lambda cmd, **kw: runs.append(cmd) or real_run(cmd, **kw))
    server = prometheus_configs(render("adaptive", [{}]))[0]
    first = check_prometheus(promtool, server, tmp_path / "a")
    again = check_prometheus(promtool, server, tmp_path / "b")
    assert len(runs) == 1 and (again.ok, again.output) == (first.ok, first.output), (runs, first, again)
    assert (tmp_path / "b" / "root" / server.config_path.lstrip("/")).is_file(), "the command shown must be rerunnable"
    job = {"job_name": "twice", "static_configs": [{"targets": ["localhost:9090"]}]}
    changed = prometheus_configs(render("adaptive", [with_prometheus_files(**{"prometheus.yml": {"scrape_configs": [job, job]}})]))[0]
    refused = check_prometheus(promtool, changed, tmp_path / "c")
    assert len(runs) == 2 and not refused.ok, (runs, refused.output)
