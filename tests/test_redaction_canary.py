"""Proof that no secret leaves a run: canaries planted in every secret-bearing key of the adaptive chart's
values, inner tests that fail in every way that prints them (assertion diffs, truncated reprs, base64 in a
Secret's data, captured stdout/stderr/logs, JUnit properties, helm errors, a suite error, a failing
install with diagnostics on the embedded cluster), serially and under ``-n 2``; then not one canary, nor
its base64 form, nor any 8-character run of it may appear in the terminal output or any file under the
report directory (JUnit, HTML, JSON, markdown, diagnostics)."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import pytest
import yaml

from chartproof.redaction import MASK
from tests.conftest import REPO, run_pytest


def canary(tag: str, extra: int = 0) -> str:
    return f"Cn{tag}{secrets.token_hex(8 + extra)}"


def runs_of(text: str, size: int = 8) -> set[str]:
    return {text[i:i + size] for i in range(len(text) - size + 1)}


def leaks(haystack: str, canaries: dict[str, str]) -> list[str]:
    found = []
    for name, value in canaries.items():
        if value in haystack:
            found.append(f"{name}: the canary itself")
        if base64.b64encode(value.encode()).decode() in haystack:
            found.append(f"{name}: its base64 form")
        hits = sorted(r for r in runs_of(value) if r in haystack)
        if hits:
            found.append(f"{name}: 8-character runs {hits[:3]}")
    return found


def write_charts(tmp_path: Path) -> tuple[Path, Path]:
    """``sidecar``: installs, and puts the values where describe and get show them (a ConfigMap, pod
    annotations, a Secret); ``refuses``: helm's error message quotes the values."""
    sidecar = tmp_path / "sidecar"
    (sidecar / "templates").mkdir(parents=True)
    (sidecar / "Chart.yaml").write_text("apiVersion: v2\nname: sidecar\nversion: 0.1.0\n")
    (sidecar / "values.yaml").write_text("secrets: {}\ncredentials: {}\n")
    (sidecar / "templates" / "all.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
        "data:\n  dsn: {{ .Values.secrets.dbUrl | quote }}\n  token: {{ .Values.credentials.token | quote }}\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-keys\n"
        "stringData:\n  cookie: {{ .Values.secrets.cookiesSecret | quote }}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: 1\n"
        "  selector:\n    matchLabels: {app: sidecar}\n  template:\n    metadata:\n      labels: {app: sidecar}\n"
        "      annotations:\n        acme/dsn: {{ .Values.secrets.dbUrl | quote }}\n"
        "        acme/token: {{ .Values.credentials.token | quote }}\n"
        "    spec:\n      containers:\n      - name: app\n        image: busybox\n"
        "        args: [\"--token={{ .Values.credentials.token }}\"]\n")
    refuses = tmp_path / "refuses"
    (refuses / "templates").mkdir(parents=True)
    (refuses / "Chart.yaml").write_text("apiVersion: v2\nname: refuses\nversion: 0.1.0\n")
    (refuses / "templates" / "fail.yaml").write_text(
        '{{ fail (printf "cannot reach %s (key %s, cookie %s)" .Values.secrets.dbUrl '
        ".Values.s3proxy.azure.storageAccount.accessKey .Values.secrets.cookiesSecret) }}\n")
    return sidecar, refuses


INNER = '''
import base64, logging, sys
from pathlib import Path
import pytest, yaml
from chartproof.manifest import decoded_secret

VALUES = Path({values!r})
DATA = yaml.safe_load(VALUES.read_text())
DB_URL = DATA["secrets"]["dbUrl"]
AZURE = DATA["s3proxy"]["azure"]["storageAccount"]["accessKey"]
INSTALL_TOKEN = {install_token!r}


@pytest.mark.contract("ADP-SECRET-03")
def test_decoded_secrets_in_an_assertion_diff(render):
    m = render("adaptive", VALUES)
    assert decoded_secret(m.find("Secret")[0]) == {{"DB_URL": "postgres://nobody@db"}}


@pytest.mark.contract("ADP-SECRET-03")
def test_base64_data_and_the_whole_render(render):
    m = render("adaptive", VALUES)
    encoded = base64.b64encode(AZURE.encode()).decode()
    assert encoded in m.text, "NOT RENDERED: the azure key is not in the render"
    assert [o.get("data") for o in m.find("Secret")] == [], m.text


def test_truncated_repr_of_a_long_url(render):
    render("adaptive", VALUES)
    long_url = DB_URL + "?sslmode=require&application_name=" + "x" * 120
    assert long_url == "postgres://adaptive:wrong@db:5432/adaptive"


def test_captured_output_logs_and_properties(render, record_property):
    render("adaptive", VALUES)
    print("values:", yaml.safe_dump(DATA))
    print("db url on stderr:", DB_URL, file=sys.stderr)
    logging.getLogger("inner").warning("connecting to %s with %s", DB_URL, DATA["redis"]["auth"]["password"])
    record_property("dsn", DB_URL)
    assert False, f"deliberate failure after printing {{DATA['secrets']['cookiesSecret']}}"


def test_passing_test_prints_too(render):
    render("adaptive", VALUES)
    print("oidc:", DATA["secrets"]["auth"]["oidc"]["providers"])


def test_helm_error_quotes_the_values(render):
    render({refuses!r}, VALUES)


def test_suite_error_with_the_secret_in_it(render):
    render("adaptive", VALUES)
    raise RuntimeError(f"could not connect to {{DB_URL}}")


@pytest.fixture
def broken_fixture():
    raise ConnectionError(f"setup could not reach {{DB_URL}} with {{AZURE}}")


def test_setup_error(broken_fixture):
    pass


@pytest.mark.parametrize("endpoint", ["https://adaptive.acme.example.com"])
@pytest.mark.contract("ADP-ING-02")
def test_public_text_survives(endpoint):
    assert endpoint == "https://adaptive.other.example.com", "adaptive chart endpoint differs"


@pytest.mark.contract("ADP-SECRET-04")
def test_failing_install_with_diagnostics(install_chart, cluster):
    values = yaml.safe_load(VALUES.read_text())
    values["credentials"] = {{"token": INSTALL_TOKEN}}  # learned only by the worker that renders it
    rel = install_chart({sidecar!r}, values)
    config = cluster.kubectl("get", "configmap", rel.name + "-config", "-n", rel.namespace, "-o", "yaml")
    assert "dsn" not in config, config
'''


def canary_values(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    data = yaml.safe_load((REPO / "fixtures" / "adaptive" / "defaults-with-secrets.yaml").read_text())
    planted = {
        "secrets.dbUrl password": canary("db"),
        "secrets.cookiesSecret": canary("ck", 24),  # the chart wants >= 64 characters
        "oidc client_secret (1)": canary("oa"),
        "oidc client_secret (2)": canary("ob"),
        "s3proxy.azure.storageAccount.accessKey": canary("az", 8) + "==",
        "redis.auth.password": canary("rd"),
        "secrets.redisUrl password": canary("ru"),
    }
    data["secrets"]["dbUrl"] = f"postgres://adaptive:{planted['secrets.dbUrl password']}@acme-db.internal:5432/adaptive"
    data["secrets"]["cookiesSecret"] = planted["secrets.cookiesSecret"]
    data["secrets"]["redisUrl"] = f"redis://default:{planted['secrets.redisUrl password']}@redis.acme.internal:6379"
    first = data["secrets"]["auth"]["oidc"]["providers"][0]
    first["client_secret"] = planted["oidc client_secret (1)"]
    data["secrets"]["auth"]["oidc"]["providers"].append(
        {**first, "name": "Okta", "key": "okta", "issuer_url": "https://acme.okta.example.com",
         "client_id": "acme-okta-client", "client_secret": planted["oidc client_secret (2)"]})
    data["s3proxy"] = {"enabled": True, "azure": {"storageAccount": {"name": "acmeadaptivestorage",
                                                                    "accessKey": planted["s3proxy.azure.storageAccount.accessKey"]}}}
    data["redis"] = {"auth": {"username": "adaptive", "password": planted["redis.auth.password"]}}
    path = tmp_path / "canary-values.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, planted


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist-2"])
def test_no_canary_leaves_the_run(tmp_path, workers):
    if workers:
        pytest.importorskip("xdist")
    values, planted = canary_values(tmp_path)
    planted["credentials.token (worker-learned)"] = install_token = canary("tk")
    sidecar, refuses = write_charts(tmp_path)
    source = INNER.format(values=str(values), install_token=install_token, sidecar=str(sidecar), refuses=str(refuses))
    proc = run_pytest(tmp_path, source, "-rA", "--values", f"adaptive={values}", *workers)
    terminal = proc.stdout + proc.stderr
    reports = tmp_path / "reports"
    files = {p: p.read_bytes().decode("utf-8", "replace") for p in reports.rglob("*") if p.is_file()}
    latest = reports / "latest"

    # The run did what it must, so the proof is not vacuous.
    assert proc.returncode == 1, terminal[-4000:]
    summary = json.loads((latest / "summary.json").read_text())
    outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in summary["tests"]}
    assert outcomes == {
        "test_decoded_secrets_in_an_assertion_diff": "failed", "test_base64_data_and_the_whole_render": "failed",
        "test_truncated_repr_of_a_long_url": "failed", "test_captured_output_logs_and_properties": "failed",
        "test_passing_test_prints_too": "passed", "test_helm_error_quotes_the_values": "failed",
        "test_suite_error_with_the_secret_in_it": "error", "test_setup_error": "error",
        "test_public_text_survives[https://adaptive.acme.example.com]": "failed",
        "test_failing_install_with_diagnostics": "failed"}, terminal[-4000:]
    assert not [t for t in summary["tests"] if "NOT RENDERED" in t["message"]], "the azure key was rendered"
    assert {"junit.xml", "report.html", "summary.json", "results.json", "report.md"} <= {p.name for p in latest.iterdir()}
    assert any(p.name == "describe.txt" for p in files), "the failed install left diagnostics"
    described = "".join(t for p, t in files.items() if p.name == "describe.txt")
    assert "acme/dsn" in described and MASK in described, "describe shows the annotation, redacted"
    assert terminal.count(MASK) >= 10 and MASK in (latest / "junit.xml").read_text()

    # Not one canary, nor its base64 form, nor any 8-character run of it, anywhere.
    problems = [f"terminal: {p}" for p in leaks(terminal, planted)]
    for path, text in files.items():
        problems += [f"{path.relative_to(reports)}: {p}" for p in leaks(text, planted)]
    assert not problems, "\n".join(problems)

    # Redaction took only the secrets: test ids, public URLs and chart names are intact.
    public_id = "test_public_text_survives[https://adaptive.acme.example.com]"
    assert public_id in terminal and public_id in (latest / "junit.xml").read_text()
    assert "adaptive chart endpoint differs" in terminal
    assert "https://adaptive.other.example.com" in terminal
    assert public_id in (latest / "summary.json").read_text()
    assert public_id in (latest / "report.html").read_text()
