"""The toolchain: pin file, resolution order, wrapper modules, stamping, downloads with checksums."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from chartproof.errors import ToolchainError
from chartproof.progress import Progress
from chartproof.toolchain import Toolchain, env_var, gobuild
from chartproof.toolchain.download import DownloadUnavailable, download_binary, expected_sha256
from chartproof.toolchain.pins import ToolPin, load_pins

TOOLS = {"helm", "helm-3.8", "kubectl", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
         "kwok", "kwokctl", "kind", "registry", "ct", "controller-gen", "chartproof-render",
         "external-secrets-controller", "promtool",
         "kube-apiserver-1.26", "kube-controller-manager-1.26", "kube-scheduler-1.26", "helm-unittest"}


def test_pin_file_names_every_tool_with_one_version():
    pins = load_pins()
    assert set(pins) == TOOLS
    assert all(p.version.startswith("v") and p.module and p.package for p in pins.values())
    assert pins["helm-3.8"].version.startswith("v3.8.")
    kube = {pins[t].version for t in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")}
    assert len(kube) == 1, "the Kubernetes components share one version"
    older = {pins[t].version for t in ("kube-apiserver-1.26", "kube-controller-manager-1.26", "kube-scheduler-1.26")}
    assert len(older) == 1 and older.pop().startswith("v1.26."), "the 1.26 control plane shares one 1.26 version"


def test_env_var_names():
    assert env_var("kube-apiserver") == "CHARTPROOF_KUBE_APISERVER"
    assert env_var("helm-3.8") == "CHARTPROOF_HELM_3_8"


def fake_tool(directory: Path, name: str, prints: str) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{prints}'\n")
    path.chmod(0o755)
    return path


def test_explicit_path_wins_over_cache(tmp_path, monkeypatch):
    tool = fake_tool(tmp_path, "my-helm", "v3.22.0")
    tc = Toolchain(cache=tmp_path / "cache", explicit={"helm": str(tool)})
    found = tc.find("helm")
    assert found.source == "explicit" and found.path == tool
    monkeypatch.setenv("CHARTPROOF_KUBECTL", str(tool))
    assert Toolchain(cache=tmp_path / "cache").find("kubectl").path == tool


def test_explicit_path_that_is_not_executable_is_refused(tmp_path):
    with pytest.raises(ToolchainError, match="not an executable"):
        Toolchain(cache=tmp_path, explicit={"helm": str(tmp_path / "nope")}).find("helm")


def test_cache_is_keyed_by_tool_and_version(tmp_path):
    tc = Toolchain(cache=tmp_path)
    assert tc.find("kind") is None
    path = tc.cached_path("kind")
    assert path == tmp_path / "tools" / "kind" / load_pins()["kind"].version / "kind"
    path.parent.mkdir(parents=True)
    fake_tool(path.parent, "kind", "kind v0.32.0")
    assert tc.find("kind").source.startswith("cache")


def test_unknown_tool_names_the_known_ones(tmp_path):
    with pytest.raises(ToolchainError, match="known: chartproof-render, controller-gen, ct, etcd"):
        Toolchain(cache=tmp_path).path("helmx")


K8S_GOMOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tgithub.com/foo/bar v1.2.3
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/foo/bar => github.com/fork/bar v1.2.4
)
"""

ETCD_GOMOD = """module go.etcd.io/etcd/server/v3

require go.etcd.io/etcd/api/v3 v3.6.10

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def pin(**kw) -> ToolPin:
    base = dict(name="kube-apiserver", version="v1.36.1", module="k8s.io/kubernetes",
                package="k8s.io/kubernetes/cmd/kube-apiserver", stamp="kubernetes")
    base.update(kw)
    return ToolPin(**base)


def test_wrapper_module_maps_staging_replaces_to_published_versions():
    info = gobuild.ModuleInfo(gomod=K8S_GOMOD, time="2026-05-14T10:00:00Z", commit="abc123")
    text = gobuild.wrapper_gomod(pin(), "kubernetes", info)
    assert "require k8s.io/kubernetes v1.36.1" in text
    assert "k8s.io/api => k8s.io/api v0.36.1" in text
    assert "k8s.io/client-go => k8s.io/client-go v0.36.1" in text
    assert "github.com/foo/bar => github.com/fork/bar v1.2.4" in text


def test_wrapper_module_drops_guard_replaces():
    etcd = pin(name="etcd", version="v3.6.10", module="go.etcd.io/etcd/server/v3", package="go.etcd.io/etcd/server/v3", stamp="")
    text = gobuild.wrapper_gomod(etcd, "etcd", gobuild.ModuleInfo(ETCD_GOMOD, "", ""))
    assert "go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.10" in text
    assert "FORBIDDEN" not in text and "go.etcd.io/etcd =>" not in text


def test_kubernetes_stamp_sets_version_for_component_base_and_client_go():
    flags = " ".join(gobuild.stamp_ldflags(pin(), gobuild.ModuleInfo("", "2026-05-14T10:00:00Z", "abc123")))
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion=v1.36.1" in flags
        assert f"-X {pkg}.gitMinor=36" in flags
        assert f"-X {pkg}.gitCommit=abc123" in flags


def test_helm_stamp_sets_its_kubernetes_defaults():
    helm = load_pins()["helm-3.8"]
    flags = " ".join(gobuild.stamp_ldflags(helm, gobuild.ModuleInfo("", "", "")))
    assert "internal/version.version=v3.8.2" in flags
    assert "pkg/chartutil.k8sVersionMinor=23" in flags


def test_pinned_binaries_report_their_pinned_versions():
    """The cached binaries (built by the session's toolchain install) are the pinned, stamped ones."""
    tc = Toolchain()
    for name in ("kube-apiserver", "kubectl", "helm", "kwokctl"):
        tc._verify_version(tc.pin(name), tc.path(name))


def test_failed_build_names_tool_step_and_retry_and_leaves_no_binary(tmp_path):
    bogus = ToolPin(name="nosuch", version="v0.0.1", module="example.invalid/nosuch", package="example.invalid/nosuch")
    tc = Toolchain(cache=tmp_path, pins={"nosuch": bogus}, allow_download=False)
    with pytest.raises(ToolchainError) as info:
        tc.install(["nosuch"])
    message = info.value.one_line()
    assert "nosuch" in message and "go mod download" in message
    assert not tc.cached_path("nosuch").exists()
    assert not list((tmp_path / "tools").glob(".nosuch-*")), "no staging directory is left behind"


class _Server:
    def __init__(self, files: dict[str, bytes]):
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = files_.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                if body is not None:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def release_server():
    payload = b"#!/bin/sh\necho kind v9.9.9\n"
    server = _Server({"/kind": payload, "/kind.sha256sum": f"{hashlib.sha256(payload).hexdigest()}  kind\n".encode(),
                      "/bad.sha256sum": b"0000  kind\n"})
    yield server
    server.close()


def test_download_is_verified_and_published_atomically(tmp_path, release_server):
    kind = ToolPin(name="kind", version="v9.9.9", module="sigs.k8s.io/kind", package="sigs.k8s.io/kind",
                   download=f"{release_server.url}/kind", checksum="{url}.sha256sum")
    tc = Toolchain(cache=tmp_path, pins={"kind": kind}, allow_download=True)
    resolved = tc.install(["kind"])[0]
    assert resolved.source == "cache (download)"
    assert resolved.path.read_bytes().startswith(b"#!/bin/sh")


def test_checksum_mismatch_is_an_error_not_a_fallback(tmp_path, release_server):
    kind = ToolPin(name="kind", version="v9.9.9", module="sigs.k8s.io/kind", package="sigs.k8s.io/kind",
                   download=f"{release_server.url}/kind", checksum=f"{release_server.url}/bad.sha256sum")
    with pytest.raises(ToolchainError, match="checksum mismatch"), Progress("t", "download", every=60) as progress:
        download_binary(kind, tmp_path / "kind", progress)
    assert not (tmp_path / "kind").exists()


def test_unreachable_release_host_means_fall_back(tmp_path):
    kind = ToolPin(name="kind", version="v1", module="m", package="p", download="http://127.0.0.1:9/kind",
                   checksum="{url}.sha256sum")
    with pytest.raises(DownloadUnavailable), Progress("t", "download", every=60) as progress:
        download_binary(kind, tmp_path / "kind", progress)


def test_checksum_file_formats():
    assert expected_sha256("abc  helm-v3.tar.gz\n", "helm-v3.tar.gz") == "abc"
    assert expected_sha256("def\n", "kube-apiserver") == "def"
    with pytest.raises(ToolchainError):
        expected_sha256("abc  other\nxyz  more\n", "mine")


def _hello_source(directory: Path, greeting: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "go.mod").write_text("module chartproof.local/hello\n\ngo 1.22\n")
    (directory / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\t"os"\n)\n\nvar version = "unset"\n\n'
        'func main() {\n\tif len(os.Args) > 1 && os.Args[1] == "--version" {\n\t\tfmt.Println("hello", version)\n'
        f'\t\treturn\n\t}}\n\tfmt.Println("{greeting}")\n}}\n')
    return directory


def test_tool_of_our_own_is_built_from_its_source_stamped_and_rebuilt_when_the_source_changes(tmp_path):
    """A ``source`` pin: our own Go main package, built with its version stamped; the cache key carries the
    source's digest, so an edited source is a new build while an unchanged one is a cache hit."""
    import subprocess

    source = _hello_source(tmp_path / "src" / "hello", "first")
    pin = ToolPin(name="hello", version="v0.1.0-cp1", module="", package="", source=str(source))
    tc = Toolchain(cache=tmp_path / "cache", pins={"hello": pin}, allow_download=False)
    first = tc.path("hello")
    assert subprocess.run([str(first)], capture_output=True, text=True).stdout.strip() == "first"
    assert "v0.1.0-cp1" in subprocess.run([str(first), "--version"], capture_output=True, text=True).stdout
    assert first.parent.name == f"v0.1.0-cp1-{pin.source_digest[:12]}"
    assert tc.find("hello").source == "cache (build)"

    _hello_source(source, "second")
    from chartproof.toolchain.pins import source_digest
    source_digest.cache_clear()
    edited = Toolchain(cache=tmp_path / "cache", pins={"hello": pin}, allow_download=False)
    assert edited.find("hello") is None, "an edited source must not resolve to the old build"
    second = edited.path("hello")
    assert second != first
    assert subprocess.run([str(second)], capture_output=True, text=True).stdout.strip() == "second"


def test_on_demand_tools_are_left_out_of_a_full_install_and_built_when_first_asked_for(tmp_path):
    source = _hello_source(tmp_path / "src" / "later", "later")
    eager = ToolPin(name="eager", version="v0.1.0", module="", package="", source=str(_hello_source(tmp_path / "e", "e")))
    later = ToolPin(name="later", version="v0.1.0", module="", package="", source=str(source), extra={"on_demand": True})
    tc = Toolchain(cache=tmp_path / "cache", pins={"eager": eager, "later": later}, allow_download=False)
    tc.install()
    assert tc.find("eager") is not None and tc.find("later") is None, "a full install builds only the eager pin"
    assert tc.path("later").is_file(), "an on-demand pin is built when first asked for"
