"""A throwaway OCI registry on loopback (CNCF distribution from the toolchain), so the suite can prove
that charts pushed to a registry and referenced as helm names them (``oci://HOST/PATH/NAME:VERSION``,
``...@sha256:DIGEST``) are tested unchanged; optionally behind htpasswd logins, like a private registry."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from chartproof.errors import ToolchainError
from chartproof.toolchain import Toolchain

CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""
AUTH = """auth:
  htpasswd:
    realm: chartproof
    path: {path}
"""


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd line (distribution accepts only bcrypt), made with the ``bcrypt`` package, else
    ``htpasswd``, else the C library's crypt (libxcrypt knows ``$2b$``); ToolchainError when none can."""
    try:
        import bcrypt

        return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"
    except ImportError:
        pass
    htpasswd = shutil.which("htpasswd")
    if htpasswd:
        proc = subprocess.run([htpasswd, "-nbBC", "5", user, password], capture_output=True, text=True, timeout=30)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=32))
    except (ImportError, OSError, AttributeError, ValueError):
        hashed = None
    if hashed and hashed.startswith("$2b$"):
        return f"{user}:{hashed}"
    raise ToolchainError("no bcrypt for an htpasswd line: neither the bcrypt package, htpasswd, nor a crypt with $2b$")


def is_loopback_registry(ref: str) -> bool:
    host = ref.removeprefix("oci://").split("/", 1)[0].split(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "::1")


class LocalRegistry:
    """``with LocalRegistry() as registry``: serves on 127.0.0.1 until the block ends, then removes its data.
    ``htpasswd``: the lines of an htpasswd file; the registry then answers only logged-in clients."""

    def __init__(self, toolchain: Toolchain | None = None, *, htpasswd: list[str] | None = None):
        self.toolchain = toolchain or Toolchain()
        self.htpasswd = htpasswd
        self.root = Path(tempfile.mkdtemp(prefix="chartproof-registry-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen | None = None
        self.digests: dict[str, str] = {}

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> LocalRegistry:
        config = self.root / "config.yml"
        text = CONFIG.format(root=self.root / "data", port=self.port)
        if self.htpasswd is not None:
            (self.root / "htpasswd").write_text("".join(line + "\n" for line in self.htpasswd))
            text += AUTH.format(path=self.root / "htpasswd")
        config.write_text(text)
        log = self.root / "registry.log"
        with open(log, "w") as fh:  # a file, not a pipe: a full pipe would stall the registry
            self.process = subprocess.Popen([str(self.toolchain.path("registry")), "serve", str(config)],
                                            stdout=subprocess.DEVNULL, stderr=fh)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2):
                    return self
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and self.htpasswd is not None:  # up, and asking for a login
                    return self
                time.sleep(0.1)
            except OSError:
                if self.process.poll() is not None:
                    raise ToolchainError(f"the local OCI registry exited: {log.read_text()[-300:]}") from None
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise ToolchainError("the local OCI registry did not answer within 30s")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def push(self, helm_binary: Path, package: Path, repository: str = "charts", *,
             env: dict[str, str] | None = None) -> str:
        """Push a packaged chart; return its ``oci://`` reference (without the version). The manifest digest
        helm reported is kept in ``self.digests[reference]``. ``env``: e.g. a HELM_REGISTRY_CONFIG with a login."""
        proc = subprocess.run([str(helm_binary), "push", str(package), f"oci://{self.host}/{repository}", "--plain-http"],
                              capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
        if proc.returncode != 0:
            raise ToolchainError(f"helm push {package.name} failed: {proc.stderr.strip()[-300:]}")
        name = package.name.rsplit("-", 1)[0]
        reference = f"oci://{self.host}/{repository}/{name}"
        digest = re.search(r"^Digest: (sha256:[0-9a-f]{64})$", proc.stdout + proc.stderr, re.M)
        if digest:
            self.digests[reference] = digest[1]
        return reference
