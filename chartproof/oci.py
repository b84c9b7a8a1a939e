"""A throwaway OCI registry on loopback (CNCF distribution from the toolchain), so the suite can prove
that charts pushed to a registry and referenced as ``oci://HOST/PATH/NAME@VERSION`` are tested unchanged."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from chartproof.errors import ToolchainError
from chartproof.toolchain import Toolchain

CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def is_loopback_registry(ref: str) -> bool:
    host = ref.removeprefix("oci://").split("/", 1)[0].split(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "::1")


class LocalRegistry:
    def __init__(self, toolchain: Toolchain | None = None):
        self.toolchain = toolchain or Toolchain()
        self.root = Path(tempfile.mkdtemp(prefix="chartproof-registry-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> LocalRegistry:
        config = self.root / "config.yml"
        config.write_text(CONFIG.format(root=self.root / "data", port=self.port))
        self.process = subprocess.Popen([str(self.toolchain.path("registry")), "serve", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise ToolchainError(f"the local OCI registry exited: {self.process.stderr.read()[-300:]}") from None
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

    def push(self, helm_binary: Path, package: Path, repository: str = "charts") -> str:
        """Push a packaged chart; return its ``oci://`` reference (without the version)."""
        proc = subprocess.run([str(helm_binary), "push", str(package), f"oci://{self.host}/{repository}", "--plain-http"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise ToolchainError(f"helm push {package.name} failed: {proc.stderr.strip()[-300:]}")
        name = package.name.rsplit("-", 1)[0]
        return f"oci://{self.host}/{repository}/{name}"
