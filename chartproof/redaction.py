"""Keep secrets from values files out of logs, reports and diagnostics.

Every values file or dict a run hands to helm is scanned: every string under a ``secrets``, ``auth`` or
``credentials`` key, and every string whose own key says secret (password, token, key, credential,
cookie, dbUrl, ...), is remembered (a key such as ``externalSecret`` marks nothing beneath it: its
leaves are references, not secrets), and every text the engine writes goes through ``redact`` first, which also catches
their base64 forms (as they appear in a Secret's ``data``).
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any

MASK = "«redacted»"
SENSITIVE_KEY = re.compile(r"secret|password|passwd|token|credential|cookie|dburl|db_url|dsn|accesskey|access_key|"
                           r"private|apikey|api_key|^key$|connection", re.I)
SENSITIVE_SUBTREE = re.compile(r"^(secrets|auth|credentials)$", re.I)
MIN_LENGTH = 6


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        value = str(value)
        if len(value) < MIN_LENGTH:
            return
        forms = {value, base64.b64encode(value.encode()).decode()}
        with self._lock:
            if forms <= self._secrets:
                return
            self._secrets |= forms
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_values(self, values: Any, sensitive: bool = False) -> None:
        """Remember the secret-looking strings of a values tree."""
        if isinstance(values, dict):
            for key, child in values.items():
                key = str(key)
                if isinstance(child, (dict, list)):
                    self.add_values(child, sensitive or bool(SENSITIVE_SUBTREE.match(key)))
                else:
                    self.add_values(child, sensitive or bool(SENSITIVE_KEY.search(key)))
        elif isinstance(values, list):
            for child in values:
                self.add_values(child, sensitive)
        elif sensitive and isinstance(values, str):
            self.add(values)

    def redact(self, text: str) -> str:
        if not text or self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def __len__(self) -> int:
        return len(self._secrets)


REDACTOR = Redactor()
