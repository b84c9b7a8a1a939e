"""The pure parts of `chartproof/incluster.py`, checked without a cluster: its doctests (URLs, curl output,
LogQL) and the synthetic exporter of ADP-AUTOSCALE-07 run on this machine."""

from __future__ import annotations

import doctest
import re
import socket
import subprocess
import time
import urllib.request

import chartproof.incluster as rc


def test_helper_doctests():
    result = doctest.testmod(rc, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 15
    assert result.failed == 0


def test_curl_script_frames_what_the_parser_reads(tmp_path):
    """CURL_SCRIPT's framing, with `curl` replaced by a stub printing what real curl would."""
    stub = tmp_path / "curl"
    stub.write_text('#!/bin/sh\n'
                    'while [ $# -gt 1 ]; do case "$1" in -D) h=$2; shift;; -o) b=$2; shift;; esac; shift; done\n'
                    'printf "HTTP/1.1 302 Found\\r\\nLocation: https://idp/auth?a=1\\r\\n\\r\\n" > "$h"\n'
                    'printf "moved" > "$b"; printf 302\n')
    stub.chmod(0o755)
    out = subprocess.run(["sh", "-c", rc.CURL_SCRIPT, "curl", *rc.curl_args("http://x/")], capture_output=True,
                         text=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, check=True).stdout
    r = rc.parse_curl_output(out)
    assert (r.status, r.header("Location"), r.body, r.error) == (302, "https://idp/auth?a=1", "moved", "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.fullmatch(r'(harmony_\w+)\{pool="Scale-Test"\} ([0-9.]+)', line)
        assert m, f"unexpected exposition line {line!r}"
        samples[m.group(1)] = float(m.group(2))
    assert "# TYPE harmony_ttft_timeout_count counter" in text
    assert "# TYPE harmony_generation_requests_count counter" in text
    return samples


def test_exporter_counters_and_ratio_switch(tmp_path):
    ratio_file = tmp_path / "ratio"
    port = _free_port()
    proc = rc.run_exporter_locally("Scale-Test", 0.5, ratio_file, port)
    try:
        first = _scrape(port)
        time.sleep(0.5)
        second = _scrape(port)
        requests = second["harmony_generation_requests_count"] - first["harmony_generation_requests_count"]
        timeouts = second["harmony_ttft_timeout_count"] - first["harmony_ttft_timeout_count"]
        assert requests > 0 and abs(timeouts / requests - 0.5) < 0.05
        ratio_file.write_text("0\n")
        time.sleep(0.3)
        third = _scrape(port)
        time.sleep(0.5)
        fourth = _scrape(port)
        assert fourth["harmony_generation_requests_count"] > third["harmony_generation_requests_count"]
        assert fourth["harmony_ttft_timeout_count"] == third["harmony_ttft_timeout_count"]
        assert third["harmony_ttft_timeout_count"] >= second["harmony_ttft_timeout_count"]  # never resets
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_exporter_render_escapes_pool_label():
    ns: dict = {"__name__": "exporter"}
    exec(rc.EXPORTER_SCRIPT, ns)
    text = ns["render"]('Po"ol', 3.0, 1.0)
    assert 'harmony_generation_requests_count{pool="Po\\"ol"} 3.0' in text
    assert 'harmony_ttft_timeout_count{pool="Po\\"ol"} 1.0' in text


def test_exporter_pod_is_scraped_like_harmony():
    manifest = rc.exporter_pod("e", "Pool-X", 0.5)
    ann = manifest["metadata"]["annotations"]
    assert ann == {"prometheus.io/scrape": "adaptive", "prometheus.io/path": "/metrics",
                   "prometheus.io/port": str(rc.EXPORTER_PORT)}
    env = {e["name"]: e["value"] for e in manifest["spec"]["containers"][0]["env"]}
    assert env["POOL"] == "Pool-X" and env["RATIO"] == "0.5"
