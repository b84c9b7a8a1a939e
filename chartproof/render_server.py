"""Renders without a helm process per render: the long-lived renderer and the run's render cache.

``chartproof-render`` (chartproof/toolchain/gosrc/chartproof-render) links the Helm SDK at the pinned helm's
version and answers ``helm template`` requests, one JSON line each, with what helm would have printed. One
renderer runs per process, started on first use and stopped at exit, on SIGTERM, or when its parent dies (it
ends when its stdin closes). Answers are also kept on disk, in a cache that every process of a run shares
(xdist workers included), keyed by what decides the output: the renderer's build, the chart's content, the
request and the content of every values file. ``CHARTPROOF_RENDERER=helm`` turns all of this off.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import queue
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chartproof.errors import ChartproofError, UsageError

TOOL = "chartproof-render"
CHOICE_ENV = "CHARTPROOF_RENDERER"
CACHE_FORMAT = 2  # a line of JSON, then the manifest's text

# `helm template` flags the renderer handles: flag -> (request field, kind). Any other flag goes to helm itself.
_LISTS = {"-f": "values", "--values": "values", "--set": "set", "--set-string": "set_string",
          "--set-json": "set_json", "--set-file": "set_file", "--set-literal": "set_literal",
          "-s": "show_only", "--show-only": "show_only", "-a": "api_versions", "--api-versions": "api_versions"}
_TEXTS = {"-n": "namespace", "--namespace": "namespace", "--kube-version": "kube_version"}
_BOOLS = {"--include-crds": "include_crds", "--skip-tests": "skip_tests", "--no-hooks": "no_hooks",
          "--is-upgrade": "is_upgrade", "--skip-schema-validation": "skip_schema_validation",
          "--enable-dns": "enable_dns"}
# Flags that change nothing in a client-only render (install-time behaviour), accepted and dropped.
_IGNORED_TEXTS = {"--timeout"}
_IGNORED_BOOLS = {"--skip-crds", "--disable-openapi-validation", "--wait", "--wait-for-jobs", "--atomic",
                  "--create-namespace", "--force"}


@dataclass(frozen=True)
class Rendered:
    """What ``helm template`` printed for a request, and where the answer came from (cache or renderer)."""

    stdout: str
    stderr: str
    exit: int
    source: str


def choice() -> str:
    """The renderer chosen by ``CHARTPROOF_RENDERER``: ``chartproof-render`` (the default) or ``helm``."""
    value = os.environ.get(CHOICE_ENV, "").strip()
    if value in ("", TOOL):
        return TOOL
    if value == "helm":
        return "helm"
    raise UsageError(f"{CHOICE_ENV}={value!r}: expected 'helm' (helm template) or '{TOOL}' (the default)")


def request_from_args(args: list[str]) -> dict | None:
    """``["template", RELEASE, CHART, flags...]`` -> a renderer request; None when an argument is one the
    renderer does not handle (helm itself then renders)."""
    if len(args) < 3 or args[0] != "template" or args[1].startswith("-") or args[2].startswith("-"):
        return None
    # Paths stay as given (helm's messages quote them so) and are read from the caller's working directory.
    request: dict[str, Any] = {"cwd": os.getcwd(), "release": args[1], "chart": args[2], "namespace": "default"}
    index = 3
    while index < len(args):
        flag, has_value, inline = args[index].partition("=")
        index += 1
        if flag in _BOOLS or flag in _IGNORED_BOOLS:
            if has_value and inline not in ("true", "false"):
                return None
            if flag in _BOOLS:
                request[_BOOLS[flag]] = inline != "false"
            continue
        if flag not in _LISTS and flag not in _TEXTS and flag not in _IGNORED_TEXTS:
            return None
        if not has_value:
            if index >= len(args):
                return None
            inline, index = args[index], index + 1
        if flag in _LISTS:
            field = _LISTS[flag]
            # -f and --api-versions are comma-separated lists in helm, the --set family repeatable strings.
            items = [item for item in inline.split(",") if item] if field in ("values", "api_versions") else [inline]
            request.setdefault(field, []).extend(items)
        elif flag in _TEXTS:
            request[_TEXTS[flag]] = inline
    return request


def tree_stamp(directory: Path) -> str:
    """A cheap fingerprint of a chart directory (paths, sizes, mtimes of its files, links followed as helm's
    loader follows them) or of a packaged chart: an edited chart is rendered anew."""
    entries: list[str] = []

    def walk(path: str, prefix: str, above: frozenset[tuple[int, int]]) -> None:
        try:
            with os.scandir(path) as listing:
                found = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            return
        subdirectories = []
        for entry in found:
            try:
                info = entry.stat()  # the link's target, as the loader reads it
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                subdirectories.append((entry, (info.st_dev, info.st_ino)))
            else:
                entries.append(f"{prefix}{entry.name}:{info.st_size}:{info.st_mtime_ns}")
        for entry, identity in subdirectories:
            if identity in above:  # a symbolic link back to a folder above: a loop, not read again
                entries.append(f"{prefix}{entry.name}/:loop")
                continue
            walk(entry.path, f"{prefix}{entry.name}/", above | {identity})

    try:
        top = os.stat(directory)
    except OSError:
        top = None
    if top is not None and not stat.S_ISDIR(top.st_mode):  # a packaged chart
        entries.append(f":{top.st_size}:{top.st_mtime_ns}")
    else:
        walk(os.fspath(directory), "", frozenset({(top.st_dev, top.st_ino)}) if top else frozenset())
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


_DIGESTS: dict[tuple[str, str], str] = {}


def chart_digest(directory: Path, stamp: str | None = None) -> str:
    """sha256 over the relative paths and contents of a chart's files (links followed, as helm does),
    remembered per tree stamp (``stamp``: the caller's, taken just before) so that an unchanged chart is not
    read again."""
    directory = Path(directory)
    if directory.is_file():  # a packaged chart
        return file_digest(directory)
    memo = (str(directory), stamp or tree_stamp(directory))
    if memo not in _DIGESTS:
        digest = hashlib.sha256()
        for root, dirs, files in os.walk(directory, followlinks=True):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    continue
                digest.update(os.path.relpath(path, directory).encode() + b"\0" + data + b"\0")
        _DIGESTS[memo] = digest.hexdigest()
    return _DIGESTS[memo]


def file_digest(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def relocated(stderr: str, made_by: dict, request: dict) -> str:
    """helm's messages of an answer made for ``made_by``, naming the chart and values paths of ``request``:
    the cache's key leaves out where the chart and values files are (each process has its own copies of pulled
    charts and values)."""
    for old, new in zip([made_by["chart"], *made_by.get("values", ())], [request["chart"], *request.get("values", ())],
                        strict=True):
        if old != new:
            stderr = stderr.replace(old, new)
    return stderr


class RenderCache:
    """Answers on disk, one file per key, written atomically (a reader sees a whole answer or none).
    They can hold secrets (rendered Secrets, helm's messages), so the folder is private to the user."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def key(self, renderer: str, request: dict, chart_stamp: str | None = None) -> str:
        """sha256 of the renderer's identity, the chart's content, the request without its paths, and the
        content of every file the request reads (values files, --set-file files)."""
        cwd = Path(request["cwd"])
        shape = {k: v for k, v in request.items() if k not in ("id", "cwd", "chart", "values")}
        set_files = [part.partition("=")[2] for item in request.get("set_file", ()) for part in item.split(",")]
        material = {
            "renderer": renderer,
            "chart": chart_digest(cwd / request["chart"], chart_stamp),
            "values": [file_digest(cwd / path) for path in request.get("values", ())],
            "set_file": [file_digest(cwd / path) for path in set_files],
            "request": shape,
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.render"

    def get(self, key: str, request: dict) -> Rendered | None:
        try:
            header, _, stdout = self.path(key).read_bytes().decode("utf-8", "surrogatepass").partition("\n")
            entry = json.loads(header)
        except (OSError, ValueError):
            return None
        if entry.get("format") != CACHE_FORMAT:
            return None
        return Rendered(stdout, relocated(entry["stderr"], entry, request), entry["exit"], "cache")

    def put(self, key: str, request: dict, rendered: Rendered) -> None:
        """One line of JSON (everything but the manifest), then the manifest as helm printed it: a 750 kB render
        costs a write, not a JSON encoding of its text."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        header = {"format": CACHE_FORMAT, "stderr": rendered.stderr, "exit": rendered.exit,
                  "chart": request["chart"], "values": list(request.get("values", ()))}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:  # bytes: a "\r" in the manifest comes back as it was
                fh.write((json.dumps(header) + "\n" + rendered.stdout).encode("utf-8", "surrogatepass"))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class CacheWriter:
    """Writes answers to the run's cache on a thread of its own, so that a test does not wait for the disk
    (a KEDA-sized answer is 750 kB). Until written, an answer is served from ``pending``; ``flush`` (at exit)
    writes what is left."""

    def __init__(self):
        self.pending: dict[tuple[str, str], tuple[dict, Rendered]] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, cache: RenderCache, key: str, request: dict, rendered: Rendered) -> None:
        with self._lock:
            self.pending[(str(cache.directory), key)] = (request, rendered)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="chartproof-render-cache", daemon=True)
                self._thread.start()
        self._queue.put((cache, key, request, rendered))

    def get(self, cache: RenderCache, key: str, request: dict) -> Rendered | None:
        with self._lock:
            found = self.pending.get((str(cache.directory), key))
        if found is None:
            return None
        made_by, rendered = found
        return Rendered(rendered.stdout, relocated(rendered.stderr, made_by, request), rendered.exit, "cache")

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            cache, key, request, rendered = item
            try:
                cache.put(key, request, rendered)
            except OSError:
                pass  # an answer not kept is rendered again by whoever asks for it
            with self._lock:
                self.pending.pop((str(cache.directory), key), None)

    def flush(self, timeout: float = 30) -> None:
        """Write every answer still waiting (the thread ends once it has)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)


class RendererProcess:
    """One running chartproof-render: a request is a JSON line on its stdin, the answer a line on its stdout."""

    def __init__(self, binary: Path, *, env: dict[str, str], log_path: Path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     env=env, text=True, bufsize=1)
        self._next_id = 0

    def ask(self, request: dict) -> dict:
        self._next_id += 1
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({**request, "id": self._next_id}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError, ValueError):
            line = ""
        if not line:
            raise RendererFailed(f"{TOOL} stopped answering (exit {self.proc.poll()}): {self.last_log_line()}")
        answer = json.loads(line)
        if answer.get("id") != self._next_id:
            raise RendererFailed(f"{TOOL} answered request {answer.get('id')}, not {self._next_id}")
        return answer

    def last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            lines = []
        return lines[-1] if lines else f"see {self.log_path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]  # the renderer ends at end of input
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stdin):
            try:
                stream.close()  # type: ignore[union-attr]
            except (OSError, AttributeError):
                pass
        self._log.close()


class RendererFailed(ChartproofError):
    """The renderer died or answered out of turn; the render falls back to helm."""


class RenderClient:
    """The process's renderer and its use of the run's cache. ``stats`` counts where answers came from."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: RendererProcess | None = None
        self._binary: Path | None = None
        self._identity = ""
        self._unavailable = ""  # why the renderer cannot be used in this process (said once)
        self.stats = {"cache_hits": 0, "renders": 0, "chart_loads": 0, "fallbacks": 0, "started": 0}
        self.writer = CacheWriter()

    def template(self, args: list[str], *, env: dict[str, str], cache_dir: Path, log_path: Path,
                 chart_stamp: str | None = None) -> Rendered | None:
        """helm template's answer for ``args``; None when helm itself must render (a flag the renderer does
        not handle, or no renderer: said once per process). ``chart_stamp``: the chart's tree_stamp, when the
        caller has just taken it."""
        request = request_from_args(args)
        if request is None:
            self.stats["fallbacks"] += 1
            return None
        with self._lock:
            if not self._resolve():
                self.stats["fallbacks"] += 1
                return None
            cache = RenderCache(cache_dir)
            key = cache.key(self._identity, request, chart_stamp)
            cached = self.writer.get(cache, key, request) or cache.get(key, request)
            if cached is not None:
                self.stats["cache_hits"] += 1
                return cached
            try:
                answer = self._ensure_started(env, log_path).ask(request)
            except (RendererFailed, OSError, ValueError) as exc:
                self._give_up(f"{exc}")
                self.stats["fallbacks"] += 1
                return None
            self.stats["renders"] += 1
            self.stats["chart_loads"] += bool(answer.get("loaded"))
            rendered = Rendered(answer["stdout"], answer["stderr"], int(answer["exit"]), "renderer")
            self.writer.put(cache, key, request, rendered)
            return rendered

    def warm(self, charts: list[Path], *, env: dict[str, str], log_path: Path) -> None:
        """Start the renderer and have it read ``charts`` now (a session starts this in the background, so
        that the first test does not pay for it). Quiet: a renderer that cannot start says so at first render."""
        with self._lock:
            if self._unavailable or not self._resolve():
                return
            try:
                process = self._ensure_started(env, log_path)
                for chart in charts:
                    self.stats["chart_loads"] += bool(process.ask(
                        {"cwd": os.getcwd(), "release": "warm", "chart": str(chart), "load_only": True}).get("loaded"))
            except (RendererFailed, OSError, ValueError):
                return

    def _resolve(self) -> bool:
        if self._unavailable:
            return False
        if self._binary is None:
            from chartproof.toolchain import Toolchain  # the toolchain imports much; only when rendering

            try:
                found = Toolchain().find(TOOL)
            except ChartproofError as err:
                found, why = None, err.one_line()
            else:
                why = f"it is not built yet (chartproof toolchain install {TOOL})"
            if found is None:
                self._give_up(why)
                return False
            stat = found.path.stat()
            self._binary = found.path
            self._identity = f"{found.version}:{found.path}:{stat.st_size}:{stat.st_mtime_ns}"
        return True

    def _ensure_started(self, env: dict[str, str], log_path: Path) -> RendererProcess:
        if self._process is None or self._process.proc.poll() is not None:
            assert self._binary is not None
            self._process = RendererProcess(self._binary, env=env, log_path=log_path)
            self.stats["started"] += 1
            _stop_on_exit()
        return self._process

    def _give_up(self, why: str) -> None:
        self._unavailable = why
        self.stop()
        print(f"chartproof: rendering with helm template, not {TOOL}: {why}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self.writer.flush()
        process, self._process = self._process, None
        if process is not None:
            process.stop()


CLIENT = RenderClient()
_HOOKED = False


def _stop_on_exit() -> None:
    """Stop the renderer when this process exits or gets SIGTERM (the previous SIGTERM handler still runs)."""
    global _HOOKED
    if _HOOKED:
        return
    _HOOKED = True
    atexit.register(CLIENT.stop)
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        CLIENT.stop()
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)
