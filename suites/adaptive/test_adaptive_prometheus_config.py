"""Adaptive contract, E "Prometheus" (ADP-PROM-01, D.6) and "Autoscaling" (ADP-AUTOSCALE-04), checked by
Prometheus' own tool: under every scenario, the configuration the bundled Prometheus server will load passes
`promtool check config` (scrape and relabel configs, the rule files it references), with the files that
container mounts laid out as it will see them; and every ScaledObject's Prometheus query is PromQL that
Prometheus parses (`promtool check rules`).

A configuration Prometheus refuses, or a query it cannot parse, is a chart defect no simulated pod reveals:
the server would not start, KEDA's scaler would fail on every poll.
"""

from __future__ import annotations

import adaptive_facts as F
import pytest

from chartproof.appconfig import check_prometheus, check_promql, prometheus_configs
from chartproof.chart_testing import scenario_cases
from chartproof.manifest import dig, ref
from chartproof.plugin import run_catalog


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "values" in metafunc.fixturenames:
        cases = scenario_cases(run_catalog(metafunc.config), (F.CHART,))
        metafunc.parametrize("values", [pytest.param(path, id=case_id) for chart, path, case_id in cases
                                        if chart == F.CHART])


@pytest.fixture(scope="module")
def promtool(chartproof_run):
    return chartproof_run.toolchain.path("promtool")


@pytest.mark.contract("ADP-PROM-01")
def test_prometheus_configuration_passes_promtool(render, promtool, values, tmp_path):
    servers = prometheus_configs(render.scenario(F.CHART, [values]))
    assert servers, f"scenario {values.name}: expected the bundled Prometheus server, found no container running " \
                    "prometheus/prometheus"
    for i, server in enumerate(servers):
        assert not server.problems, f"scenario {values.name}, {server.name}: {'; '.join(server.problems)}"
        result = check_prometheus(promtool, server, tmp_path / str(i))
        assert result.ok, f"scenario {values.name}, {server.name}: `promtool check config {server.config_path}` " \
                          f"refuses the configuration Prometheus would load:\n{result.output}"


@pytest.mark.contract("ADP-AUTOSCALE-04")
def test_scaled_object_queries_are_promql(render, promtool, tmp_path):
    """Two pools with autoscaling on: each trigger's query parses as PromQL."""
    m = render(F.CHART, [F.pools("Pool-A", "Pool-B"), {"autoscaling": {"enabled": True}}])
    queries = {f"{ref(so)} trigger {i}": str(dig(t, "metadata.query", ""))
               for so in m.select("ScaledObject") for i, t in enumerate(dig(so, "spec.triggers", []) or [])
               if t.get("type") == "prometheus"}
    assert len(queries) == 2, f"two pools with autoscaling on: expected two prometheus triggers, found {sorted(queries)}"
    result = check_promql(promtool, queries, tmp_path)
    assert result.ok, f"promtool cannot parse the ScaledObjects' Prometheus queries:\n{result.output}"
