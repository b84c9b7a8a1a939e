"""Charts by reference, as helm names them: packaged, pushed to a loopback OCI registry (also one behind a
login) or served as a classic helm repository, and tested unchanged through the suite."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from chartproof.errors import ToolchainError
from chartproof.oci import LocalRegistry, htpasswd_line, is_loopback_registry
from chartproof.toolchain import Toolchain
from tests.conftest import REPO

SUBSET = ["suites/adaptive", "-m", "not cluster", "--contract", "ADP-POOL-02,ADP-AUTOSCALE-01,ADP-SECRET-02"]


@dataclass
class Pushed:
    ref: str       # oci://127.0.0.1:PORT/charts/adaptive
    digest: str    # the manifest digest helm push reported
    package: Path  # the .tgz that was pushed

    @property
    def sha256(self) -> str:
        return "sha256:" + hashlib.sha256(self.package.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def helm_binary() -> Path:
    return Toolchain().path("helm")


@pytest.fixture(scope="module")
def package(tmp_path_factory, helm_binary) -> Path:
    out = tmp_path_factory.mktemp("pkg")
    subprocess.run([str(helm_binary), "package", str(REPO / "charts" / "adaptive"), "-d", str(out)], check=True,
                   capture_output=True)
    return out / "adaptive-0.6.2.tgz"


@pytest.fixture(scope="module")
def pushed_adaptive(helm_binary, package):
    with LocalRegistry() as registry:
        ref = registry.push(helm_binary, package)
        yield Pushed(ref, registry.digests[ref], package)


def suite(tmp_path, *args, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--report-dir",
                           str(tmp_path / "reports"), *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=600)


def chart_row(tmp_path) -> dict:
    report = json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())
    return next(c for c in report["charts"] if c["name"] == "adaptive")


def assert_subset_passed(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def tree_stamp(*paths: Path) -> dict[str, str]:
    """Every file under ``paths`` with its content hash: what a read-only pull must leave as it was."""
    stamp = {}
    for root in paths:
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file():
                stamp[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return stamp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_loopback_detection():
    assert is_loopback_registry("oci://127.0.0.1:5000/charts/adaptive")
    assert is_loopback_registry("oci://localhost/charts/x")
    assert not is_loopback_registry("oci://ghcr.io/adaptive-ml/adaptive")


@pytest.mark.parametrize("form", ["tag", "chart-version", "digest", "old-at-version"])
def test_render_suite_runs_unchanged_against_an_oci_reference(tmp_path, pushed_adaptive, form):
    base, digest = pushed_adaptive.ref, pushed_adaptive.digest
    given, extra, canonical = {
        "tag": (f"{base}:0.6.2", [], f"{base}:0.6.2"),
        "chart-version": (base, ["--chartproof-chart-version", "adaptive=0.6.2"], f"{base}:0.6.2"),
        "digest": (f"{base}@{digest}", [], f"{base}@{digest}"),
        "old-at-version": (f"{base}@0.6.2", [], f"{base}:0.6.2"),
    }[form]
    proc = suite(tmp_path, *SUBSET, "--chart", f"adaptive={given}", *extra)
    assert_subset_passed(proc)
    row = chart_row(tmp_path)
    assert row["kind"] == "oci" and row["reference"] == canonical and row["version"] == "0.6.2"
    assert row["digest"] == pushed_adaptive.sha256  # the very package that was pushed
    assert row["registry_digest"] == digest


def test_unknown_oci_version_stops_the_run_with_exit_4(tmp_path, pushed_adaptive):
    proc = suite(tmp_path, "suites/adaptive", "-m", "not cluster", "--chart", f"adaptive={pushed_adaptive.ref}:9.9.9")
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "cannot pull" in proc.stdout + proc.stderr
    assert " passed" not in proc.stdout


@pytest.mark.parametrize("case", ["unknown digest", "digest of another version"])
def test_a_wrong_digest_stops_the_run_with_exit_4(tmp_path, pushed_adaptive, case):
    if case == "unknown digest":
        wrong = "sha256:" + ("1" if pushed_adaptive.digest == "sha256:" + "0" * 64 else "0") * 64
        given, words = f"{pushed_adaptive.ref}@{wrong}", ["cannot pull", wrong, "not found"]
    else:  # helm pulls by the digest alone; what it brings must still be the version named
        given = f"{pushed_adaptive.ref}:9.9.9@{pushed_adaptive.digest}"
        words = [given, "is version 0.6.2, not 9.9.9"]
    proc = suite(tmp_path, "suites/adaptive", "-m", "not cluster", "--chart", f"adaptive={given}")
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "chartproof: unknown chart: chart adaptive" in ln]
    assert lines and all(all(w in ln for w in words) for ln in lines), proc.stdout[-2000:] + proc.stderr[-2000:]
    assert " passed" not in proc.stdout


def test_a_private_registry_is_pulled_with_the_users_login_and_the_password_never_shows(tmp_path, helm_binary, package):
    password = "Pr1vate-Regi5try-" + os.urandom(6).hex()
    try:
        line = htpasswd_line("ci-bot", password)
    except ToolchainError as err:
        pytest.skip(f"cannot make a bcrypt htpasswd line here: {err.message}")
    registry_config = tmp_path / "helm-user" / "registry" / "config.json"
    env = {"HELM_REGISTRY_CONFIG": str(registry_config)}
    with LocalRegistry(htpasswd=[line]) as registry:
        login = subprocess.run([str(helm_binary), "registry", "login", registry.host, "--username", "ci-bot",
                                "--password-stdin", "--plain-http"], input=password, capture_output=True, text=True,
                               env={**os.environ, **env}, timeout=60)
        assert login.returncode == 0, login.stderr
        ref = registry.push(helm_binary, package, env=env)
        before = tree_stamp(registry_config)

        refused = suite(tmp_path / "anonymous", *SUBSET, "--chart", f"adaptive={ref}:0.6.2",
                        env={"HELM_REGISTRY_CONFIG": str(tmp_path / "no-login.json")})
        assert refused.returncode == 4, refused.stdout[-2000:] + refused.stderr[-2000:]
        assert "cannot pull" in refused.stdout + refused.stderr

        proc = suite(tmp_path, *SUBSET, "--chart", f"adaptive={ref}:0.6.2", env=env)
        assert_subset_passed(proc)
        assert tree_stamp(registry_config) == before  # the login was read, not rewritten
    row = chart_row(tmp_path)
    assert row["reference"] == f"{ref}:0.6.2" and row["digest"] == "sha256:" + hashlib.sha256(package.read_bytes()).hexdigest()
    auth = json.loads(registry_config.read_text())["auths"][registry.host]["auth"]
    for output in (proc.stdout, proc.stderr, refused.stdout, refused.stderr):
        assert password not in output and auth not in output
    for path in (tmp_path / "reports").rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode(errors="replace")
            assert password not in text and auth not in text, path


@pytest.fixture
def classic_repository(tmp_path, helm_binary, package):
    """``package`` in a helm repository served over loopback HTTP, added as ``myrepo`` to a private
    repositories file and cache (the user's helm config of the inner run)."""
    served = tmp_path / "served"
    served.mkdir()
    (served / package.name).write_bytes(package.read_bytes())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    subprocess.run([str(helm_binary), "repo", "index", str(served), "--url", url], check=True, capture_output=True)
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(served)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/index.yaml", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        user = tmp_path / "helm-user"
        env = {"HELM_REPOSITORY_CONFIG": str(user / "repositories.yaml"), "HELM_REPOSITORY_CACHE": str(user / "cache"),
               "HELM_CONFIG_HOME": str(user / "config"), "HELM_CACHE_HOME": str(user / "cache-home"),
               "HELM_DATA_HOME": str(user / "data")}
        added = subprocess.run([str(helm_binary), "repo", "add", "myrepo", url], capture_output=True, text=True,
                               env={**os.environ, **env}, timeout=60)
        assert added.returncode == 0, added.stderr
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_render_suite_runs_against_a_classic_repository_chart(tmp_path, classic_repository, package):
    user = [Path(classic_repository["HELM_REPOSITORY_CONFIG"]), Path(classic_repository["HELM_REPOSITORY_CACHE"])]
    before = tree_stamp(*user)
    proc = suite(tmp_path, *SUBSET, "--chart", "adaptive=myrepo/adaptive", env=classic_repository)
    assert_subset_passed(proc)
    assert tree_stamp(*user) == before  # the user's repositories and cache were only read
    row = chart_row(tmp_path)
    assert row["kind"] == "repo" and row["reference"] == "myrepo/adaptive --version 0.6.2"  # latest, pinned
    assert row["version"] == "0.6.2" and row["digest"] == "sha256:" + hashlib.sha256(package.read_bytes()).hexdigest()
    assert "registry_digest" not in row


def test_a_missing_repository_version_exits_4(tmp_path, classic_repository):
    proc = suite(tmp_path, "suites/adaptive", "-m", "not cluster", "--chart", "adaptive=myrepo/adaptive",
                 "--chartproof-chart-version", "adaptive=9.9.9", env=classic_repository)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "cannot pull myrepo/adaptive --version 9.9.9" in proc.stdout + proc.stderr
