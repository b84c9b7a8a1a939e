"""The redactor: secrets recognised by their parts (URL passwords, base64 at any alignment, 8-character
fragments of truncated reprs), only secrets redacted, pytest reports redacted in place, and fast."""

from __future__ import annotations

import base64
import json
import random
import string
import time

import pytest
from _pytest._code import ExceptionInfo
from _pytest.reports import TestReport

from chartproof.redaction import MASK, Redactor

DB_PASSWORD = "Hunter2hunter2X9"
DB_URL = f"postgres://adaptive:{DB_PASSWORD}@acme-db.internal:5432/adaptive"
COOKIE = "acme-cookie-7Qf3c8a51-2b7e-4d8c-9a61-7e25d1c4b9f0-8d2e4c6a-1b3f-4e5a-9c7d"
CLIENT_SECRET = "GOCSPX-8sXq0lPk3vT9aZ"
AZURE_KEY = "ZmFrZS1henVyZS1hY2Nlc3Mta2V5LWZvci10ZXN0cw=="
REDIS_PASSWORD = "r3dis-Pw-5521aa"

VALUES = {
    "controlPlane": {"rootUrl": "https://adaptive.acme.example.com"},
    "secrets": {
        "modelRegistryUrl": "s3://acme-adaptive/model_registry",
        "dbUrl": DB_URL,
        "cookiesSecret": COOKIE,
        "auth": {"oidc": {"providers": [{"name": "Google", "key": "google", "issuer_url": "https://accounts.google.com",
                                         "client_id": "1234567890-acme.apps.googleusercontent.com",
                                         "client_secret": CLIENT_SECRET, "scopes": ["email", "profile"],
                                         "pkce": True}]}},
    },
    "s3proxy": {"enabled": True, "azure": {"storageAccount": {"name": "acmeadaptivestorage", "accessKey": AZURE_KEY}}},
    "redis": {"auth": {"username": "adaptive", "password": REDIS_PASSWORD}},
    "externalSecret": {"enabled": False, "secretStore": {"provider": {"aws": {"auth": {"secretRef": {
        "accessKeyIDSecretRef": {"name": "aws-creds", "key": "access-key-id"}}}}}},
        "items": {"dbUrl": {"remoteRef": {"key": "path/to/dbUrl", "property": "dbUrl"}}}},
    "mlflow": {"existingSecret": "mlflow-credentials", "tokenFile": "/var/run/token"},
}


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor()
    r.add_values(VALUES)
    return r


def test_secret_bearing_keys_are_learned_and_public_ones_are_not(redactor):
    assert redactor._learned == {DB_URL, COOKIE, CLIENT_SECRET, AZURE_KEY, REDIS_PASSWORD, "path/to/dbUrl"}


def test_the_password_of_a_url_is_a_secret_of_its_own(redactor):
    assert DB_PASSWORD not in redactor(f"connect failed with password {DB_PASSWORD}")
    assert redactor(f"dsn={DB_URL}") == f"dsn={MASK}"
    # the public parts of the URL are not secrets
    assert redactor("host acme-db.internal user adaptive port 5432") == "host acme-db.internal user adaptive port 5432"


def test_fragments_of_a_truncated_repr_are_caught(redactor):
    truncated = "assert 'postgres://a...er2hunter2X9@acme-db' == 'x'"
    out = redactor(truncated)
    assert "hunter2X9" not in out and "er2hunter" not in out
    assert out.startswith("assert 'postgres://a...") and out.endswith("@acme-db' == 'x'")
    # a run of >= 8 characters of any secret is masked, anywhere in a text
    for secret in (DB_PASSWORD, COOKIE, CLIENT_SECRET, AZURE_KEY, REDIS_PASSWORD):
        middle = secret[-11:-2]
        assert middle not in redactor(f"... {middle} ..."), secret
    # ...except a run made only of pieces of common words, which identifies nothing
    assert redactor("... e-cookie- ...") == "... e-cookie- ..."


@pytest.mark.parametrize("prefix", ["", "x", "xy", "REDIS_URL=redis://:"])
def test_base64_is_caught_at_every_alignment(redactor, prefix):
    for secret in (REDIS_PASSWORD, COOKIE, CLIENT_SECRET):
        encoded = base64.b64encode(f"{prefix}{secret}@redis:6379".encode()).decode()
        out = redactor(f"data:\n  url: {encoded}\n")
        decodable = base64.b64encode(secret.encode()).decode()[:-4]
        assert decodable not in out and MASK in out


def test_escaped_forms_are_caught():
    r = Redactor()
    secret = 'p"a\\ss/w%rd-81Zq'
    r.add_values({"auth": {"password": secret}})
    assert MASK in r(json.dumps({"password": secret})) and secret not in r(json.dumps({"password": secret}))
    url = "postgres://u:p%40ss-9dkQ2z1@db/x"
    r.add_values({"secrets": {"dbUrl": url}})
    assert "p@ss-9dkQ2z1" not in r("the password p@ss-9dkQ2z1 was refused")


def test_only_secrets_are_redacted(redactor):
    public = [
        "tests/test_x.py::test_root_url[https://adaptive.acme.example.com]",
        "suites/adaptive/test_adaptive_render.py::test_adp_oidc_01_providers[google]",
        "https://adaptive.acme.example.com/api/v1/auth/login/google/callback",
        "https://accounts.google.com issuer for client 1234567890-acme.apps.googleusercontent.com",
        "charts adaptive 0.6.2, monitoring 0.1.5, hyperpod; s3://acme-adaptive/model_registry",
        "Secret adaptive-secret keys DB_URL, COOKIES_SECRET; client_secret and cookiesSecret must be set",
        "Error: execution error at (adaptive/templates/secrets.yaml:3:4): password is required",
        "ExternalSecret aws-creds access-key-id, property dbUrl, mlflow-credentials /var/run/token",
        "redis user adaptive, storage account acmeadaptivestorage, email profile",
    ]
    for text in public:
        assert redactor(text) == text


def test_short_and_common_values_are_never_secrets():
    r = Redactor()
    r.add_values({"secrets": {"dbUrl": "postgres://username:password@db_adress:5432/db_name",
                              "auth": {"oidc": {"providers": [{"client_secret": "replace_client_secret"}]}}},
                  "redis": {"auth": {"password": "abc"}}, "token": "changeme"})
    for text in ("password is required", "client_secret is a placeholder", "abc", "changeme",
                 "postgres://username@db_adress", "replace_client", "a client_secret"):
        assert r(text) == text
    # whole values still are masked, but their common-word pieces are no fragments
    assert r("postgres://username:password@db_adress:5432/db_name") == MASK
    assert r("replace_client_secret") == MASK


def test_set_values_are_learned_with_their_path(tmp_path):
    from chartproof.charts import ChartCatalog
    from chartproof.helm import Helm

    r = Redactor()
    helm = Helm("helm", ChartCatalog({}, workdir=tmp_path), workdir=tmp_path, redactor=r)
    helm.values_args((), {"secrets.auth.oidc.providers[0].client_secret": "Zq81-secret-from-set",
                          "secrets.modelRegistryUrl": "s3://public/models", "harmony.replicas": 3})
    assert r._learned == {"Zq81-secret-from-set"}


def _report_with(secret: str) -> TestReport:
    try:
        assert secret + "?sslmode=require" * 20 == "postgres://other", f"could not use {secret}"
    except AssertionError as exc:
        info = ExceptionInfo.from_exception(exc)
    return TestReport("t.py::test_x", ("t.py", 1, "test_x"), {}, "failed", info.getrepr(style="long", showlocals=True),
                      "call", sections=[("Captured stdout call", f"printed {secret}\n"),
                                        ("Captured log call", f"WARNING x: {secret[:14]}...")],
                      user_properties=[("dsn", secret), ("contracts", "ADP-SECRET-03"), ("n", 3)])


def test_a_pytest_report_is_redacted_in_place(redactor):
    report = _report_with(DB_URL)
    redactor.redact_report(report)
    everything = report.longreprtext + repr(report.sections) + repr(report.user_properties)
    everything += json.dumps(report._to_json(), default=str)
    for run in (DB_PASSWORD[i:i + 8] for i in range(len(DB_PASSWORD) - 7)):
        assert run not in everything
    assert ("contracts", "ADP-SECRET-03") in report.user_properties and ("n", 3) in report.user_properties
    assert "t.py::test_x" == report.nodeid and MASK in report.longreprtext
    assert report.longrepr.reprcrash.message.startswith("AssertionError: could not use «redacted»")


def test_an_empty_redactor_leaves_reports_alone():
    report = _report_with("nothing-secret-here")
    before = report.longreprtext
    Redactor().redact_report(report)
    assert report.longreprtext == before


def test_fragment_matching_is_fast_on_a_megabyte():
    rnd = random.Random(8)
    r = Redactor()
    r.add_values(VALUES)
    for _ in range(20):
        r.add("".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(40)))
    text = "".join(rnd.choice(string.ascii_letters + string.digits + " \n-_:/.=") for _ in range(1_000_000))
    text = text[:400_000] + DB_PASSWORD[2:12] + text[400_000:]
    start = time.perf_counter()
    out = r(text)
    elapsed = time.perf_counter() - start
    assert out.count(MASK) >= 1 and DB_PASSWORD[2:12] not in out
    assert elapsed < 0.5, f"redacting 1 MB took {elapsed:.3f} s"  # about 0.04 s here
