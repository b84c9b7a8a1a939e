"""report.html in a real browser: an inner run on our charts (passing, failing, skipped, suite-error and
extension tests, and a failing install that leaves diagnostics on the embedded cluster) writes the page;
headless Chromium loads it through a recording proxy, and the DOM must have a row for every contract id,
failures expanded with the README statement and what was found, relative links that resolve to files, and
no fetch of anything. A screenshot is kept under the report directory."""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import socketserver
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from chartproof.contracts import catalog
from tests.conftest import REPO, run_pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
                  "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
                  "--disable-client-side-phishing-detection", "--no-pings", "--disable-domain-reliability"]
# Chromium's own services, which it calls whatever page it shows (even about:blank) despite the flags.
CHROMIUM_OWN_HOSTS = {"update.googleapis.com", "accounts.google.com", "clients2.google.com", "clients1.google.com",
                      "optimizationguide-pa.googleapis.com", "safebrowsing.googleapis.com", "redirector.gvt1.com"}


def request_host(line: str) -> str:
    """The host of a proxy request line: ``CONNECT host:443 HTTP/1.1`` or ``GET http://host/path HTTP/1.1``."""
    target = line.split()[1] if len(line.split()) > 1 else line
    target = target.split("://", 1)[-1]
    return target.split("/", 1)[0].rsplit(":", 1)[0].lower()


def chromium() -> str:
    """Debian's chromium; installed with apt when missing (CI runs as root with apt)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip("no chromium and no apt-get to install it (Debian's chromium package is needed)")
    with open("/tmp/chartproof-chromium-install.lock", "w") as lock:  # xdist workers install it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = shutil.which("chromium")
        if found:
            return found
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        subprocess.run([apt, "update", "-qq"], capture_output=True, timeout=600, env=env)
        install = subprocess.run([apt, "install", "-y", "-qq", "chromium"], capture_output=True, text=True,
                                 timeout=1200, env=env)
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(f"could not install chromium with apt-get: {install.stderr[-800:]}")
    return found


class _RecordingProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy that answers nothing and remembers every request the browser tried to make."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.requests: list[str] = []

        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(4096).decode("latin-1").strip()
                if line:
                    proxy.requests.append(line)
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        super().__init__(("127.0.0.1", 0), Handler)


class _Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict, list[str]]] = []  # tag, attrs, open ancestors' tags
        self.stack: list[tuple[str, dict]] = []
        self.text_by_failure: dict[str, list[str]] = {}
        self.text_by_row: dict[str, list[str]] = {}

    VOID = {"meta", "link", "img", "br", "hr", "input", "source", "col", "area", "base", "wbr", "embed"}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a, [t for t, _ in self.stack]))
        if tag not in self.VOID:
            self.stack.append((tag, a))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        for _tag, attrs in self.stack:
            if "data-failure-for" in attrs:
                self.text_by_failure.setdefault(attrs["data-failure-for"], []).append(data)
            if "data-contract" in attrs:
                self.text_by_row.setdefault(attrs["data-contract"], []).append(data)

    def find(self, tag=None, **attr) -> list[dict]:
        out = []
        for t, a, _ in self.elements:
            if (tag is None or t == tag) and all((a.get(k.replace("_", "-")) == v) if v is not True else
                                                 (k.replace("_", "-") in a) for k, v in attr.items()):
                out.append(a)
        return out


INNER = '''
import pytest

@pytest.mark.contract("ADP-META-02")
def test_defaults_render(render):
    assert render("adaptive").has("StatefulSet")

@pytest.mark.contract("ADP-SECRET-02")
def test_short_cookie_secret_is_refused(render):
    m = render("adaptive", {fixture!r})
    found = sorted(m.names("Deployment"))
    assert "adaptive-nowhere" in found, f"expected a Deployment adaptive-nowhere, found {{found}}"

@pytest.mark.contract("ADP-NAME-02")
def test_names_are_dns_labels(render):
    assert render("adaptive").objects

@pytest.mark.contract("MON-01")
def test_monitoring_skipped():
    pytest.skip("not on this run")

@pytest.mark.contract("HYP-DEP-01")
def test_suite_crash():
    {{}}["missing"]

@pytest.mark.contract("ADP-SECRET-04")
def test_install_then_wrong_expectation(install_chart, cluster):
    rel = install_chart({tiny!r}, {{"password": "html-test-pw-8c1e"}})
    replicas = cluster.get_json("deployment", rel.name, namespace=rel.namespace)["spec"]["replicas"]
    assert replicas == 3, f"expected 3 replicas, found {{replicas}}"

def test_without_contract():
    assert 1 + 1 == 3
'''


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    tiny = tmp / "tiny"
    (tiny / "templates").mkdir(parents=True)
    (tiny / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (tiny / "values.yaml").write_text("password: \"\"\n")
    (tiny / "templates" / "all.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: 1\n"
        "  selector:\n    matchLabels: {app: tiny}\n  template:\n    metadata:\n      labels: {app: tiny}\n"
        "    spec:\n      containers:\n      - name: app\n        image: busybox\n")
    fixture = str(REPO / "fixtures" / "adaptive" / "defaults-with-secrets.yaml")
    proc = run_pytest(tmp, INNER.format(fixture=fixture, tiny=str(tiny)))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    return (tmp / "reports" / "latest").resolve()


class Browser:
    """Headless Chromium behind the recording proxy; each load gets a new, empty profile."""

    def __init__(self, binary: str, workdir: Path):
        self.binary, self.workdir, self.loads = binary, workdir, 0
        self.proxy = _RecordingProxy()
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.flags = [*CHROMIUM_FLAGS, f"--proxy-server=http://127.0.0.1:{self.proxy.server_address[1]}",
                      "--proxy-bypass-list=<-loopback>"]
        self.baseline = CHROMIUM_OWN_HOSTS | {request_host(r) for r in self.run("--dump-dom", "about:blank")[1]}

    def run(self, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        """Chromium with ``args``; returns the process and the proxy requests made meanwhile."""
        self.loads += 1
        self.proxy.requests.clear()
        proc = subprocess.run([self.binary, *self.flags, f"--user-data-dir={self.workdir / f'profile-{self.loads}'}", *args],
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc, list(self.proxy.requests)

    def fetches(self, requests: list[str]) -> list[str]:
        """Requests beyond what the browser makes on an empty page: the page's own."""
        return [r for r in requests if request_host(r) not in self.baseline]

    def close(self) -> None:
        self.proxy.shutdown()
        self.proxy.server_close()


@pytest.fixture(scope="module")
def chromium_browser(tmp_path_factory):
    browser = Browser(chromium(), tmp_path_factory.mktemp("chromium"))
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def browser(run_dir, chromium_browser) -> dict:
    page = (run_dir / "report.html").as_uri()
    dom, requests = chromium_browser.run("--dump-dom", page)
    shot = run_dir / "report.png"
    screenshot, shot_requests = chromium_browser.run("--window-size=1400,2600", f"--screenshot={shot}", page)
    assert "<html" in dom.stdout, dom.stderr[-2000:]
    parser = _Dom()
    parser.feed(dom.stdout)
    return {"dom": parser, "html": dom.stdout, "fetches": chromium_browser.fetches(requests + shot_requests),
            "shot": shot, "shot_proc": screenshot}


def test_the_network_check_sees_a_page_that_fetches(tmp_path, chromium_browser):
    page = tmp_path / "fetches.html"
    page.write_text("<!DOCTYPE html><html><head><link rel='stylesheet' href='http://styles.probe.example/a.css'>"
                    "</head><body><img src='https://images.probe.example/x.png'></body></html>")
    _, requests = chromium_browser.run("--dump-dom", page.as_uri())
    hosts = {request_host(r) for r in chromium_browser.fetches(requests)}
    assert {"styles.probe.example", "images.probe.example"} <= hosts, requests


def test_a_run_writes_the_three_outputs(run_dir):
    for name in ("summary.json", "junit.xml", "report.html", "report.md", "results.json"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary) >= {"duration_s", "cluster", "charts", "tests", "contracts", "totals"}
    assert set(summary["cluster"]) >= {"provider", "kubernetes", "nodes"} and summary["cluster"]["provider"] == "embedded"
    assert summary["charts"]["adaptive"]["version"] == "0.6.2" and summary["charts"]["adaptive"]["ref"]
    assert summary["totals"] == {"passed": 2, "failed": 3, "skipped": 1, "error": 1}
    assert set(summary["contracts"]) == set(catalog())
    shared = REPO.parent / "shared" / "contracts"
    if shared.is_dir():
        assert set(summary["contracts"]) == set(catalog(shared)), "summary.json lists every id of ../shared/contracts/"
    assert summary["contracts"]["ADP-META-02"] == "passed"
    assert summary["contracts"]["ADP-SECRET-02"] == "failed"
    assert summary["contracts"]["ADP-SECRET-04"] == "failed"
    assert summary["contracts"]["MON-01"] == "skipped"
    assert summary["contracts"]["HYP-DEP-01"] == "error"
    assert summary["contracts"]["ADP-NAME-02"] == "not-covered" and summary["extensions"]["ADP-NAME-02"] == "passed"
    assert summary["contracts"]["ADP-OIDC-01"] == "not-covered"
    for test in summary["tests"]:
        assert set(test) >= {"nodeid", "outcome", "contracts", "duration_s", "message"}
    install = next(t for t in summary["tests"] if t["nodeid"].endswith("test_install_then_wrong_expectation"))
    assert "expected 3 replicas, found 1" in install["message"]
    assert any(p.endswith("events.txt") for p in install["diagnostics"])
    junit = (run_dir / "junit.xml").read_text()
    assert '<property name="contracts" value="ADP-SECRET-04" />' in junit


def test_the_page_in_headless_chromium(run_dir, browser):
    dom: _Dom = browser["dom"]
    summary = json.loads((run_dir / "summary.json").read_text())
    # every contract id has a row, with its status
    rows = {a["data-contract"]: a for a in dom.find("tr", data_contract=True)}
    assert set(rows) == set(catalog()), set(catalog()) ^ set(rows)
    for cid, status in summary["contracts"].items():
        assert rows[cid]["data-status"] == status, cid
    # failures are expanded (not inside a closed <details>), with the statement and what was found
    for cid in ("ADP-SECRET-02", "ADP-SECRET-04", "HYP-DEP-01"):
        failure = [(t, a, anc) for t, a, anc in dom.elements if a.get("data-failure-for") == cid]
        assert failure, f"{cid} has no expanded failure"
        assert "details" not in failure[0][2]
        statement = re.sub(r"[`*]", "", catalog()[cid].quote())[:50]
        assert statement in "".join(dom.text_by_row[cid]), f"the README statement of {cid}"
    assert "expected a Deployment adaptive-nowhere, found" in " ".join(dom.text_by_failure["ADP-SECRET-02"])
    assert "expected 3 replicas, found 1" in " ".join(dom.text_by_failure["ADP-SECRET-04"])
    # links: diagnostics of the failed install, and every relative link resolves to a file
    hrefs = [a["href"] for a in dom.find("a", href=True)]
    diagnostics = [h for h in hrefs if h.startswith("diagnostics/")]
    assert any(h.endswith("events.txt") for h in diagnostics) and any(h.endswith("describe.txt") for h in diagnostics)
    ids = {a["id"] for _, a, _ in dom.elements if "id" in a}
    for href in hrefs:
        if href.startswith("#"):
            assert href[1:] in ids, href
        else:
            assert (run_dir / unquote(href)).is_file(), href
    # nothing from the network: no scripts, no external styles/images/fonts, CSP forbids fetches, none tried
    assert not dom.find("script") and not dom.find("link") and not dom.find("iframe")
    for tag, attrs, _ in dom.elements:
        for key in ("src", "href", "srcset", "poster", "data"):
            value = attrs.get(key) or ""
            assert not value.lower().startswith(("http:", "https:", "//", "ftp:")), (tag, key, value)
    assert "url(" not in browser["html"] and "@import" not in browser["html"]
    csp = dom.find("meta", http_equiv="Content-Security-Policy")
    assert csp and "default-src 'none'" in csp[0]["content"]
    assert browser["fetches"] == [], f"the page tried the network: {browser['fetches']}"
    # header: the run, charts, cluster, totals
    summary_run = json.loads((run_dir / "summary.json").read_text())["run"]
    assert f"run {summary_run}" in browser["html"] and "{e(" not in browser["html"]
    assert dom.find(id="charts") and dom.find(id="cluster") and dom.find(id="gpu-inventory")
    assert dom.find("tr", data_instance_type="ml.p5.48xlarge") or dom.find("tr", data_instance_type=True)
    assert {a["data-total"] for a in dom.find(data_total=True)} == {"passed", "failed", "error", "skipped"}
    # a screenshot is kept under the report dir
    assert browser["shot"].is_file() and browser["shot"].stat().st_size > 20_000, browser["shot_proc"].stderr[-1500:]


def test_a_field_run_shows_its_preflight_and_a_failed_check_leads_the_headline():
    from chartproof.report_html import render_html

    rows = [{"name": "hyperpod node health", "status": "fail", "chart": "hyperpod",
             "evidence": "1 of 3 HyperPod nodes not ready for work: ml-p5-48xlarge-1 (deep-health-check-status=InProgress)",
             "details": ["ml-p5-48xlarge-1 (deep-health-check-status=InProgress)"]},
            {"name": "rbac", "status": "pass", "evidence": "all 21 needed permissions allowed", "details": ["a", "b"]}]
    summary = {"run": "r", "tests": [], "totals": {}, "contracts": {}, "extensions": {},
               "field": {"kind": "certify", "command": "chartproof certify --read-only", "preflight": rows}}
    page = render_html(summary)
    headline = page.split("<h1 id='headline'>", 1)[1].split("</h1>", 1)[0]
    assert headline == "1 preflight check failed", headline
    assert "data-check='hyperpod node health' data-status='fail'" in page and "ml-p5-48xlarge-1" in page
    assert "<details><summary>2 lines</summary>" in page, "a passing check's details should be folded"
    rows[0]["status"] = "pass"
    assert "Preflight passed: 2 checks, none failed" in render_html(summary)
