"""In-cluster helpers of the real-cluster ([C], ``real_cluster``) tests: HTTP from inside the cluster,
Loki queries, bare pods, and the synthetic harmony TTFT exporter.

Everything that talks HTTP does it from inside the cluster, through a long-lived curl pod in the
test's namespace (``curl_pod``), so that Service names resolve as the charts wire them. The pure parts
(URL building, curl output parsing, LogQL, the synthetic exporter) are checked by
``tests/test_incluster.py`` without a cluster.

Environment of a real-cluster run:

- ``CHARTPROOF_INGRESS_URL``: where the ingress controller answers from inside the cluster
  (default ``http://ingress-nginx-controller.ingress-nginx.svc``).
- ``CHARTPROOF_ADAPTIVE_VALUES``: optional values files (separated by ``os.pathsep``) layered on the
  scenario of the tests that need a *running* control plane (real registry and tag, image pull
  secrets, a reachable database): the scenarios' registries and databases are placeholders.
- ``CHARTPROOF_OIDC_ISSUER`` / ``CHARTPROOF_OIDC_CLIENT_ID``: the identity provider of ADP-OIDC-03
  (default Google's public issuer and a dummy client id: the redirect is built before the provider
  ever sees the client id).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from chartproof.manifest import Manifest, container, env_map, fragment

__all__ = [
    "ADAPTIVE_VALUES_ENV", "BUSYBOX_IMAGE", "CURL_IMAGE", "CURL_SCRIPT", "DEFAULT_INGRESS_URL", "EXPORTER_PORT",
    "EXPORTER_SCRIPT", "GRAFANA_BOOT_MARKER", "GRAFANA_URL", "INGRESS_URL_ENV", "LOKI_URL", "OIDC_CLIENT_ID_ENV",
    "OIDC_ISSUER_ENV", "PYTHON_IMAGE", "CurlPod", "HttpResult", "adaptive_values", "assert_grafana_explore",
    "callback_url", "control_plane_url", "curl_args", "curl_pod", "exporter_pod", "first_answer", "host_of",
    "ingress_url", "install_running_control_plane", "logql", "loki_has", "loki_lines", "loki_push_body",
    "loki_query_url", "oidc_provider", "parse_curl_output", "pod", "pod_ready", "points_to_provider", "query_param",
    "replace_pods", "rollout", "root_url", "run_exporter_locally", "start_pod", "unique", "unschedulable_messages",
]

INGRESS_URL_ENV = "CHARTPROOF_INGRESS_URL"
DEFAULT_INGRESS_URL = "http://ingress-nginx-controller.ingress-nginx.svc"
ADAPTIVE_VALUES_ENV = "CHARTPROOF_ADAPTIVE_VALUES"
OIDC_ISSUER_ENV = "CHARTPROOF_OIDC_ISSUER"
OIDC_CLIENT_ID_ENV = "CHARTPROOF_OIDC_CLIENT_ID"

CURL_IMAGE = "curlimages/curl:8.11.1"
BUSYBOX_IMAGE = "busybox:1.36"
PYTHON_IMAGE = "python:3.12-alpine"

GRAFANA_URL = "http://grafana:3000/monitoring"   # Service `grafana`, served from the /monitoring/ sub-path
LOKI_URL = "http://loki:3100"
GRAFANA_BOOT_MARKER = "grafanaBootData"          # in every HTML page Grafana's frontend serves


# -- environment ---------------------------------------------------------------------------------

def ingress_url(environ: Mapping[str, str] | None = None) -> str:
    """The ingress controller's in-cluster address, without a trailing slash.

    >>> ingress_url({})
    'http://ingress-nginx-controller.ingress-nginx.svc'
    >>> ingress_url({"CHARTPROOF_INGRESS_URL": "http://10.0.0.7:8080/ "})
    'http://10.0.0.7:8080'
    """
    env = os.environ if environ is None else environ
    return (env.get(INGRESS_URL_ENV) or DEFAULT_INGRESS_URL).strip().rstrip("/")


def adaptive_values(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The operator's extra values files for a running control plane (may be none).

    >>> adaptive_values({})
    []
    >>> [p.name for p in adaptive_values({"CHARTPROOF_ADAPTIVE_VALUES": "/a/site.yaml" + os.pathsep + "/b/x.yaml"})]
    ['site.yaml', 'x.yaml']
    """
    env = os.environ if environ is None else environ
    return [Path(p) for p in (env.get(ADAPTIVE_VALUES_ENV) or "").split(os.pathsep) if p.strip()]


def oidc_provider(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(issuer_url, client_id) of the ADP-OIDC-03 provider.

    >>> oidc_provider({})
    ('https://accounts.google.com', 'chartproof-oidc-client')
    """
    env = os.environ if environ is None else environ
    return (env.get(OIDC_ISSUER_ENV) or "https://accounts.google.com",
            env.get(OIDC_CLIENT_ID_ENV) or "chartproof-oidc-client")


# -- URLs ----------------------------------------------------------------------------------------

def host_of(url: str) -> str:
    """Host of a URL, without port (what an Ingress rule's `host` is).

    >>> host_of("https://adaptive.acme.example.com")
    'adaptive.acme.example.com'
    >>> host_of("http://adaptive.internal.acme.example.com:8080/")
    'adaptive.internal.acme.example.com'
    """
    return urlsplit(url).hostname or ""


def callback_url(root_url: str, key: str) -> str:
    """The OIDC callback the control plane must hand to the provider (contract C.1).

    >>> callback_url("http://adaptive.example.com:8080", "okta")
    'http://adaptive.example.com:8080/api/v1/auth/login/okta/callback'
    """
    return f"{root_url}/api/v1/auth/login/{key}/callback"


def query_param(url: str, name: str) -> str | None:
    """A query parameter of a URL, URL-decoded (None when absent).

    >>> query_param("https://idp/auth?client_id=c&redirect_uri=http%3A%2F%2Fa%3A8080%2Fcb%3Fx%3D1", "redirect_uri")
    'http://a:8080/cb?x=1'
    >>> query_param("https://idp/auth?client_id=c", "redirect_uri") is None
    True
    """
    values = parse_qs(urlsplit(url).query, keep_blank_values=True).get(name)
    return values[0] if values else None


def points_to_provider(location: str, issuer: str, authorization_endpoint: str | None = None) -> bool:
    """Whether a redirect goes to the identity provider: it starts with the issuer URL, or with the
    scheme and host of the provider's authorization endpoint (from its discovery document).

    >>> points_to_provider("https://accounts.google.com/o/oauth2/v2/auth?x=1", "https://accounts.google.com")
    True
    >>> points_to_provider("https://acme.okta.com/oauth2/default/v1/authorize?x=1", "https://acme.okta.com/oauth2/default/")
    True
    >>> points_to_provider("https://login.acme.com/authorize?x", "https://sso.acme.com", "https://login.acme.com/authorize")
    True
    >>> points_to_provider("https://accounts.google.com.evil.example/auth", "https://accounts.google.com")
    False
    >>> points_to_provider("http://adaptive.example.com/login", "https://accounts.google.com")
    False
    """
    base = issuer.rstrip("/")
    if location == base or location.startswith(base + "/") or location.startswith(base + "?"):
        return True
    if authorization_endpoint:
        loc, auth = urlsplit(location), urlsplit(authorization_endpoint)
        return bool(auth.netloc) and (loc.scheme, loc.netloc) == (auth.scheme, auth.netloc)
    return False


# -- Loki ----------------------------------------------------------------------------------------

def _logql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def logql(labels: Mapping[str, str], contains: str | None = None) -> str:
    """A LogQL stream selector on exact label values, with an optional line filter.

    >>> logql({"namespace": "cp-ns", "pod": "marker"}, "chartproof-1234")
    '{namespace="cp-ns", pod="marker"} |= "chartproof-1234"'
    >>> logql({"job": 'a"b'})
    '{job="a\\\\"b"}'
    """
    selector = "{" + ", ".join(f"{k}={_logql_string(v)}" for k, v in labels.items()) + "}"
    return selector + (f" |= {_logql_string(contains)}" if contains is not None else "")


def loki_query_url(query: str, *, limit: int = 100, since: str = "1h", base: str = LOKI_URL) -> str:
    """`query_range` URL of a LogQL query over the last `since` (Loki's server clock).

    >>> loki_query_url('{pod="p"} |= "m"')
    'http://loki:3100/loki/api/v1/query_range?query=%7Bpod%3D%22p%22%7D+%7C%3D+%22m%22&limit=100&since=1h&direction=backward'
    """
    return f"{base}/loki/api/v1/query_range?" + urlencode(
        {"query": query, "limit": limit, "since": since, "direction": "backward"})


def loki_lines(response_body: str) -> list[str]:
    """Log lines of a Loki `query_range` answer (streams result).

    >>> loki_lines('{"status":"success","data":{"resultType":"streams","result":'
    ...            '[{"stream":{"pod":"p"},"values":[["1","a"],["2","b"]]}]}}')
    ['a', 'b']
    >>> loki_lines("502 Bad Gateway")
    []
    """
    try:
        data = json.loads(response_body)
    except ValueError:
        return []  # not a query answer (an error page while Loki starts)
    result = (data.get("data") or {}).get("result") if isinstance(data, dict) else None
    return [value[1] for stream in result or [] for value in stream.get("values") or [] if len(value) > 1]


def loki_push_body(labels: Mapping[str, str], line: str, ts_ns: int) -> str:
    """JSON body of Loki's push API for one line.

    >>> loki_push_body({"job": "chartproof"}, "hello", 1700000000000000000)
    '{"streams": [{"stream": {"job": "chartproof"}, "values": [["1700000000000000000", "hello"]]}]}'
    """
    return json.dumps({"streams": [{"stream": dict(labels), "values": [[str(ts_ns), line]]}]})


# -- curl from inside the cluster ----------------------------------------------------------------

_STATUS, _HEADERS, _BODY, _ERROR = "@@chartproof-status", "@@chartproof-headers", "@@chartproof-body", "@@chartproof-error"

# Runs in the curl pod: `sh -c CURL_SCRIPT curl <curl args...>`; always exits 0 and frames the result.
CURL_SCRIPT = f"""h=$(mktemp); b=$(mktemp); e=$(mktemp)
code=$(curl -sS -D "$h" -o "$b" -w '%{{http_code}}' "$@" 2>"$e"); rc=$?
echo "{_STATUS} $code $rc"; echo "{_ERROR}"; cat "$e"; echo "{_HEADERS}"; cat "$h"; echo; echo "{_BODY}"; cat "$b"
rm -f "$h" "$b" "$e"
"""


@dataclass
class HttpResult:
    status: int                 # 0 when no HTTP answer came (see `error`)
    headers: dict[str, str] = field(default_factory=dict)   # of the last response, lower-case names
    body: str = ""
    error: str = ""             # curl's exit code and message when it failed

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.error} headers={self.headers} body={self.body[:400]!r}"


def curl_args(url: str, *, method: str | None = None, headers: Mapping[str, str] | None = None,
              data: str | None = None, follow: bool = False, max_time: int = 20) -> list[str]:
    """Arguments of curl for one request (passed as argv: no shell quoting involved).

    >>> curl_args("http://x/a", headers={"Host": "h.example"}, follow=True)
    ['--max-time', '20', '-L', '-H', 'Host: h.example', 'http://x/a']
    >>> curl_args("http://x/p", method="POST", data='{"a": 1}', headers={"Content-Type": "application/json"})
    ['--max-time', '20', '-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', '{"a": 1}', 'http://x/p']
    """
    args = ["--max-time", str(max_time)]
    if follow:
        args.append("-L")
    if method:
        args += ["-X", method]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if data is not None:
        args += ["--data-binary", data]
    return args + [url]


def parse_curl_output(text: str) -> HttpResult:
    """Parse what CURL_SCRIPT prints. With redirects followed, headers are the last response's.

    >>> out = ("@@chartproof-status 200 0\\n@@chartproof-error\\n@@chartproof-headers\\n"
    ...        "HTTP/1.1 302 Found\\r\\nLocation: /b\\r\\n\\r\\nHTTP/1.1 200 OK\\r\\nContent-Type: text/html\\r\\n\\r\\n"
    ...        "\\n@@chartproof-body\\n<html>@@chartproof-body</html>")
    >>> r = parse_curl_output(out)
    >>> (r.status, r.header("content-type"), r.header("location"), r.body)
    (200, 'text/html', None, '<html>@@chartproof-body</html>')
    >>> r = parse_curl_output("@@chartproof-status 000 7\\n@@chartproof-error\\ncurl: (7) refused\\n"
    ...                       "@@chartproof-headers\\n\\n@@chartproof-body\\n")
    >>> (r.status, r.error)
    (0, 'curl exit 7: curl: (7) refused')
    """
    head, sep, body = text.partition(f"\n{_BODY}\n")
    if not sep:
        raise ValueError(f"not the output of the curl helper: {text[:300]!r}")
    m = re.search(rf"^{_STATUS} (\d+) (\d+)$", head, re.M)
    if not m:
        raise ValueError(f"no status line in the curl helper's output: {head[:300]!r}")
    status, rc = int(m.group(1)), int(m.group(2))
    error_text = head.split(f"{_ERROR}\n", 1)[1].split(_HEADERS, 1)[0].strip()
    header_text = head.split(f"{_HEADERS}\n", 1)[1].replace("\r\n", "\n")
    blocks = [b for b in re.split(r"\n\s*\n", header_text) if b.strip().startswith("HTTP/")]
    headers: dict[str, str] = {}
    for line in (blocks[-1].splitlines()[1:] if blocks else []):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    error = f"curl exit {rc}: {error_text}" if rc else ""
    return HttpResult(status=status, headers=headers, body=body, error=error)


class CurlPod:
    """A curl pod in the namespace; every `request` is a `kubectl exec` of curl in it."""

    def __init__(self, cluster, namespace: str, name: str):
        self.cluster, self.namespace, self.name = cluster, namespace, name

    def exec(self, *command: str, timeout: float = 60) -> str:
        return self.cluster.kubectl("exec", "-n", self.namespace, self.name, "--", *command, timeout=timeout)

    def request(self, url: str, *, method: str | None = None, headers: Mapping[str, str] | None = None,
                data: str | None = None, follow: bool = False, max_time: int = 20) -> HttpResult:
        args = curl_args(url, method=method, headers=headers, data=data, follow=follow, max_time=max_time)
        return parse_curl_output(self.exec("sh", "-c", CURL_SCRIPT, "curl", *args, timeout=max_time + 60))

    def get(self, url: str, **kwargs) -> HttpResult:
        return self.request(url, **kwargs)

    def now_ns(self) -> int:
        """The cluster's clock (in the pod), for timestamps the server checks."""
        return int(self.exec("date", "+%s").strip()) * 1_000_000_000


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def pod(name: str, image: str, command: Sequence[str], *, annotations: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None, port: int | None = None) -> dict:
    """A bare Pod manifest (managed by chartproof, short grace period)."""
    container: dict = {"name": "main", "image": image, "command": list(command)}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if port:
        container["ports"] = [{"name": "http", "containerPort": port}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "chartproof", **(labels or {})},
                         "annotations": dict(annotations or {})},
            "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 1, "containers": [container]}}


def start_pod(cluster, namespace: str, manifest: dict, timeout: int = 300) -> str:
    """Create a Pod and wait until it is Ready (image pulled, running); an image that cannot be pulled or a
    crash loop stops the wait at once with its reason."""
    name = manifest["metadata"]["name"]
    cluster.kubectl.apply(manifest, namespace=namespace)
    cluster.wait_ready(objects=[("Pod", name, namespace)], timeout=timeout)
    return name


@contextlib.contextmanager
def curl_pod(cluster, namespace: str) -> Iterator[CurlPod]:
    name = start_pod(cluster, namespace, pod(unique("chartproof-curl"), CURL_IMAGE, ["sleep", "3600"]))
    try:
        yield CurlPod(cluster, namespace, name)
    finally:
        cluster.kubectl("delete", "pod", name, "-n", namespace, "--ignore-not-found", "--wait=false", check=False)


# -- the adaptive release -------------------------------------------------------------------------

def rollout(cluster, namespace: str, *workloads: str, timeout: int = 300) -> None:
    """Wait for the rollout of each `kind/name` (what `helm --wait` would do, for these only)."""
    for workload in workloads:
        cluster.kubectl("rollout", "status", workload, "-n", namespace, f"--timeout={timeout}s", timeout=timeout + 30)


def control_plane_url(manifest: Manifest, release_fullname: str = "adaptive") -> str:
    """In-cluster URL of the control plane Service's `http` port."""
    svc = manifest.get("Service", f"{release_fullname}-control-plane-svc")
    ports = [p.get("port") for p in (svc.get("spec") or {}).get("ports") or [] if p.get("name") == "http"]
    assert ports, f"Service {release_fullname}-control-plane-svc has no port named http:\n{fragment(svc)}"
    return f"http://{svc['metadata']['name']}:{ports[0]}"


def root_url(manifest: Manifest, release_fullname: str = "adaptive") -> str:
    """`controlPlane.rootUrl` as the release passes it to the control plane."""
    cp = manifest.get("Deployment", f"{release_fullname}-control-plane")
    env = env_map(container(cp, "control-plane"))
    assert isinstance(env.get("ADAPTIVE_SERVER__ROOT_URL"), str), \
        f"the control-plane container has no literal ADAPTIVE_SERVER__ROOT_URL; its env: {sorted(env)}"
    return env["ADAPTIVE_SERVER__ROOT_URL"]


def install_running_control_plane(install_chart, cluster, namespace: str, base, *overrides, release: str = "adaptive"):
    """`adaptive` with a control plane that really serves HTTP: the scenario `base`, then the operator's
    CHARTPROOF_ADAPTIVE_VALUES (real images, database), then the test's `overrides`; no harmony replica
    (no GPU needed). Waits for Redis and the control plane only."""
    rel = install_chart("adaptive", [base, *adaptive_values(), *overrides, {"harmony": {"replicaCount": 0}}],
                        release=release, wait=False)
    rollout(cluster, namespace, f"deployment/{release}-redis", f"deployment/{release}-control-plane")
    return rel


def first_answer(cluster, curl: CurlPod, url: str, *, timeout: float = 180, **kwargs) -> HttpResult:
    """The first HTTP answer (any status) of `url`: a freshly started server may refuse connections."""
    def answered():
        r = curl.request(url, **kwargs)
        return r if r.status else None
    return cluster.wait_for(answered, timeout=timeout, what=f"an HTTP answer from {url}")


# -- Grafana, Loki and Prometheus checks that several tests share -------------------------------

def assert_grafana_explore(result: HttpResult) -> None:
    """`/monitoring/explore` answered by Grafana, with its assets under /monitoring/."""
    assert result.status == 200, f"expected Grafana Explore: {result}"
    assert "Grafana" in result.body and GRAFANA_BOOT_MARKER in result.body, f"not Grafana's page: {result}"
    assert "/monitoring/public/" in result.body, f"Grafana assets not under /monitoring/: {result}"


def loki_has(curl: CurlPod, query: str, marker: str) -> bool:
    r = curl.get(loki_query_url(query))
    return r.status == 200 and any(marker in line for line in loki_lines(r.body))


def pod_ready(p: dict) -> bool:
    return p.get("metadata", {}).get("deletionTimestamp") is None and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (p.get("status") or {}).get("conditions") or [])


def replace_pods(cluster, namespace: str, *selectors: str, timeout: float = 300) -> None:
    """Delete the pods of each label selector and wait until new pods (other uids) are Ready in their place."""
    old = {}
    for selector in selectors:
        old[selector] = {p["metadata"]["uid"] for p in cluster.kubectl.items("pods", namespace=namespace, selector=selector)}
        assert old[selector], f"no pod matches {selector} in {namespace}"
        cluster.kubectl("delete", "pods", "-n", namespace, "-l", selector, "--wait=false")
    for selector in selectors:
        def replaced(selector=selector):
            pods = cluster.kubectl.items("pods", namespace=namespace, selector=selector)
            return bool(pods) and all(p["metadata"]["uid"] not in old[selector] and pod_ready(p) for p in pods)
        cluster.wait_for(replaced, timeout=timeout, what=f"new Ready pods for {selector}")


def unschedulable_messages(cluster, namespace: str, selector: str) -> list[str]:
    """Messages of the pods of `selector` the scheduler could not place (PodScheduled=False)."""
    out = []
    for p in cluster.kubectl.items("pods", namespace=namespace, selector=selector):
        for c in (p.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                out.append(f"{p['metadata']['name']}: {c.get('reason')}: {c.get('message', '')}")
    return out


# -- the synthetic harmony metrics exporter of ADP-AUTOSCALE-07 ---------------------------------

# Serves monotonically increasing harmony_generation_requests_count and harmony_ttft_timeout_count for
# one pool: RPS requests per second, of which the fraction in RATIO_FILE (or $RATIO) time out.
# `echo 0 > $RATIO_FILE` stops new timeouts; counters keep increasing, never reset.
EXPORTER_SCRIPT = r'''
import os, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POOL = os.environ.get("POOL", "pool")
RPS = float(os.environ.get("RPS", "10"))
RATIO_FILE = os.environ.get("RATIO_FILE", "/tmp/ratio")


def ratio():
    try:
        with open(RATIO_FILE) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return float(os.environ.get("RATIO", "0"))


def render(pool, requests, timeouts):
    label = pool.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return (
        "# HELP harmony_generation_requests_count Generation requests.\n"
        "# TYPE harmony_generation_requests_count counter\n"
        f'harmony_generation_requests_count{{pool="{label}"}} {requests:.1f}\n'
        "# HELP harmony_ttft_timeout_count Generation requests whose time to first token timed out.\n"
        "# TYPE harmony_ttft_timeout_count counter\n"
        f'harmony_ttft_timeout_count{{pool="{label}"}} {timeouts:.1f}\n'
    )


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.last = time.monotonic()
        self.requests = 0.0
        self.timeouts = 0.0

    def advance(self):
        with self.lock:
            now = time.monotonic()
            dt, self.last = now - self.last, now
            self.requests += RPS * dt
            self.timeouts += RPS * dt * min(max(ratio(), 0.0), 1.0)
            return self.requests, self.timeouts


COUNTERS = Counters()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != "/metrics":
            self.send_response(404)
            self.end_headers()
            return
        body = render(POOL, *COUNTERS.advance()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Handler)
    print(f"serving pool={POOL} rps={RPS} ratio={ratio()}", flush=True)
    server.serve_forever()
'''

EXPORTER_PORT = 8000


def exporter_pod(name: str, pool: str, ratio: float, *, ratio_file: str = "/tmp/ratio") -> dict:
    """A pod serving EXPORTER_SCRIPT, annotated like harmony pods so the bundled Prometheus scrapes it."""
    annotations = {"prometheus.io/scrape": "adaptive", "prometheus.io/path": "/metrics",
                   "prometheus.io/port": str(EXPORTER_PORT)}
    env = {"POOL": pool, "RATIO": str(ratio), "RATIO_FILE": ratio_file, "RPS": "10", "PORT": str(EXPORTER_PORT),
           "PYTHONUNBUFFERED": "1"}
    return pod(name, PYTHON_IMAGE, ["python", "-c", EXPORTER_SCRIPT], annotations=annotations,
               labels={"app.kubernetes.io/name": "chartproof-ttft-exporter"}, env=env, port=EXPORTER_PORT)


def run_exporter_locally(pool: str, ratio: float, ratio_file: Path, port: int) -> subprocess.Popen:
    """EXPORTER_SCRIPT on this machine (for the helper tests)."""
    env = {**os.environ, "POOL": pool, "RATIO": str(ratio), "RATIO_FILE": str(ratio_file), "PORT": str(port)}
    proc = subprocess.Popen(["python3", "-c", EXPORTER_SCRIPT], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    proc.stdout.readline()  # "serving ..." once the socket is bound
    time.sleep(0.05)
    return proc
