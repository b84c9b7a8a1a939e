"""A thin client over the real kubectl: every call names its kubeconfig and context explicitly."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from chartproof.errors import ClusterUnreachableError, WaitTimeout

MANAGED_BY = {"app.kubernetes.io/managed-by": "chartproof"}


class KubectlError(Exception):
    def __init__(self, args: list[str], returncode: int, stderr: str):
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"kubectl {' '.join(args)} failed ({returncode}): {self.stderr.splitlines()[-1] if self.stderr else ''}")

    @property
    def not_found(self) -> bool:
        return "NotFound" in self.stderr or "not found" in self.stderr


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path, context: str | None = None, redact: Callable[[str], str] | None = None):
        self.binary = Path(binary)
        self.kubeconfig = Path(kubeconfig)
        self.context = context
        self.redact = redact or (lambda text: text)

    def base(self) -> list[str]:
        cmd = [str(self.binary), "--kubeconfig", str(self.kubeconfig)]
        if self.context:
            cmd += ["--context", self.context]
        return cmd

    def __call__(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run([*self.base(), *args], input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(list(args), proc.returncode, self.redact(proc.stderr))
        return proc.stdout

    def get_json(self, kind: str, name: str | None = None, namespace: str | None = None,
                 selector: str | None = None, all_namespaces: bool = False) -> dict[str, Any]:
        args = ["get", kind]
        if name:
            args.append(name)
        if all_namespaces:
            args.append("--all-namespaces")
        elif namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        return json.loads(self(*args, "-o", "json"))

    def items(self, kind: str, namespace: str | None = None, selector: str | None = None,
              all_namespaces: bool = False) -> list[dict]:
        return self.get_json(kind, namespace=namespace, selector=selector, all_namespaces=all_namespaces)["items"]

    def exists(self, kind: str, name: str, namespace: str | None = None) -> bool:
        args = ["get", kind, name, "--ignore-not-found", "-o", "name"]
        if namespace:
            args += ["-n", namespace]
        return bool(self(*args).strip())

    def apply(self, obj: dict | list | str, namespace: str | None = None, server_side: bool = False) -> str:
        if isinstance(obj, str):
            text = obj
        elif isinstance(obj, list):
            text = yaml.safe_dump_all(obj, sort_keys=False)
        else:
            text = yaml.safe_dump(obj, sort_keys=False)
        args = ["apply", "-f", "-"]
        if server_side:
            args += ["--server-side", "--force-conflicts", "--field-manager", "chartproof"]
        if namespace:
            args += ["-n", namespace]
        return self(*args, input=text)

    def server_version(self, timeout: float = 15) -> str:
        try:
            out = self("version", "-o", "json", f"--request-timeout={int(timeout)}s", timeout=timeout + 5)
        except (KubectlError, subprocess.TimeoutExpired) as exc:
            detail = exc.stderr.splitlines()[-1] if isinstance(exc, KubectlError) and exc.stderr else str(exc)
            raise ClusterUnreachableError(f"cannot reach the API server of {self.kubeconfig}"
                                          + (f" (context {self.context})" if self.context else "")
                                          + f": {detail}") from None
        data = json.loads(out)
        return data.get("serverVersion", {}).get("gitVersion", "unknown")


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.5,
             explain: Callable[[], str] | None = None, give_up: Callable[[], str | None] | None = None) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise WaitTimeout naming ``what`` otherwise.

    ``give_up`` returns a reason when waiting longer cannot help (an image that cannot be pulled, a crash
    loop, a failed Job): the wait then stops at once with that reason instead of running out the clock.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
            reason = give_up() if give_up else None
            if reason:
                raise WaitTimeout(f"{what} cannot be reached: {reason}")
        except KubectlError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = explain() if explain else (str(last_error) if last_error else "")
            raise WaitTimeout(f"{what} not reached within {timeout:.0f}s" + (f": {detail}" if detail else ""))
        time.sleep(interval)
