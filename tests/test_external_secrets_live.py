"""The External Secrets checks on the embedded cluster catch what stand-in CRDs and hand-made Secrets could not:
a chart build whose ExternalSecret omits a key a pod reads fails the live suite with the key named (a
deliberately broken copy of charts/adaptive), and a misspelled field of a SecretStore is refused at install by
the real schema generated from External Secrets' API types."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chartproof.errors import RenderError
from chartproof.paths import CHARTS, REPO, scenario

LIVE_SUITE = "suites/adaptive/test_adaptive_external_secrets_live.py"
TEMPLATE = "templates/external-secrets.yaml"
REMOVED = '(list "cookiesSecret" "cookiesSecret") '  # the control plane's cookiesSecret entry of its ExternalSecret


def broken_copy(tmp_path: Path) -> Path:
    """charts/adaptive with one data entry removed from the control plane's ExternalSecret."""
    chart = tmp_path / "adaptive"
    shutil.copytree(CHARTS / "adaptive", chart)
    template = chart / TEMPLATE
    text = template.read_text()
    assert text.count(REMOVED) == 1, f"{TEMPLATE} no longer lists {REMOVED.strip()} once: update this test's mutation"
    template.write_text(text.replace(REMOVED, ""))
    return chart


@pytest.mark.cluster
def test_broken_chart_copy_fails_the_live_suite_naming_the_key(tmp_path):
    """The live suite, run on the broken copy (its own embedded cluster, the real controller): its test fails,
    naming the pod, the key no ExternalSecret produces (cookiesSecret) and the Secret."""
    chart = broken_copy(tmp_path)
    reports = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:xdist", LIVE_SUITE,
         "--chart", f"adaptive={chart}", "--chartproof-report-dir", str(reports), "--chartproof-run-id", "broken-eso",
         "--chartproof-nodes", "ml.p5.48xlarge=2,cpu=2"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    summary = json.loads((reports / "broken-eso" / "results.json").read_text())
    assert proc.returncode == 1 and summary["counts"] == {"failed": 1}, \
        f"expected the live suite to fail once on the broken copy, got exit {proc.returncode}, " \
        f"counts {summary['counts']}:\n{out[-3000:]}"
    wanted = [r"pod adaptive-control-plane-\S+", r"\bcookiesSecret\b", r"\badaptive-control-plane-config-secret\b",
              r"does not produce"]
    missing = [w for w in wanted if not re.search(w, out)]
    assert not missing, f"the failure must name the pod, the key and the Secret; {missing} not found in:\n{out[-3000:]}"


@pytest.mark.cluster
def test_misspelled_store_field_is_refused_at_install(render, install_chart, cluster, namespace, external_secrets):
    """`kye` for `key` in the fake provider's data (the store spec is the user's, copied verbatim): the real
    SecretStore schema requires `key`, so helm's install is refused and nothing is left behind."""
    values = scenario("adaptive", "external-secrets")
    configured = yaml.safe_load(values.read_text())["externalSecret"]["spec"]["provider"]
    typo = {"externalSecret": {"spec": {"provider": {**dict.fromkeys(configured),
                                                     "fake": {"data": [{"kye": "prod/adaptive/db", "value": "x"}]}}}}}
    render("adaptive", [values, typo], release="adaptive")  # helm itself renders it: only the API server can tell
    with pytest.raises(RenderError) as err:
        install_chart("adaptive", [values, typo], release="adaptive")
    message = err.value.message
    assert "SecretStore" in message and "spec.provider.fake.data[0].key" in message and "Required value" in message, \
        f"expected the API server to refuse the SecretStore for its missing spec.provider.fake.data[0].key, got: {message}"
    left = cluster.kubectl("get", "secretstores.external-secrets.io,externalsecrets.external-secrets.io", "-n", namespace,
                           "-o", "name")
    assert not left.strip(), f"a refused install must leave nothing behind, found: {left}"


@pytest.mark.cluster
def test_wrong_type_in_an_external_secret_is_refused_at_install(render, install_chart, cluster, namespace,
                                                                  external_secrets):
    """A remoteRef `version` given as a number (the schema says string) is refused by the real
    ExternalSecret schema, which the stand-in CRDs accepted."""
    values = scenario("adaptive", "external-secrets")
    wrong = {"externalSecret": {"data": {"dbUrl": {"remoteRef": {"version": 3}}}}}
    with pytest.raises(RenderError) as err:
        install_chart("adaptive", [values, wrong], release="adaptive")
    message = err.value.message
    assert "ExternalSecret" in message and "remoteRef.version" in message, \
        f"expected the API server to refuse the ExternalSecret's numeric remoteRef.version, got: {message}"
