"""Keep secrets out of everything a run prints or writes: terminal, JUnit, reports, diagnostics.

What is a secret: every values file or dict a run hands to helm (and every ``--values`` file, up front) is
scanned. A string is a secret when its own key says so (password, token, secret, cookie, dbUrl,
accessKey, ...), or when it sits under a ``secrets`` or ``credentials`` subtree and its key is
not one of the public ones there (``name``, ``key``, ``issuer_url``, ``client_id``, ``scopes``, ``username``,
...). A key such as ``externalSecret`` or ``existingSecret`` marks nothing beneath it (its leaves are
references, not secrets; only its ``remoteRef.key`` store paths are masked, whole); nor do keys naming a
reference (``secretName``, ``tokenFile``, ``...Ref``).
That decision is made in one place, ``secret_leaves``: the Redactor learns its leaves and
``chartproof.values_check`` replaces the same leaves by same-shape placeholders.

How it is recognised, by parts:

- the whole value, its JSON-escaped and URL-quoted forms, and its base64 form at each of the three byte
  alignments (so it is found inside the base64 of a larger text, as in a Secret's ``data``);
- for a URL, the password of its userinfo (``postgres://user:PASSWORD@host``); the rest of the URL
  (scheme, host, user) is public and only the whole URL is masked;
- fragments: any run of ``FRAGMENT`` (8) or more characters of a secret (or of its base64), so that a repr
  pytest shortened to ``'postgres://a...er2hunter2@db'`` is caught. A fragment made only of pieces of
  common words (``-secret-``, ``client_s``) identifies nothing and is not used, and a value that is one
  common word (``password``, ``changeme``) or shorter than ``MIN_LENGTH`` is not learned at all:
  redaction must not eat test ids, public URLs or chart names.

Speed: whole forms are one regex; fragments are found by sampling the text every 5 characters for a
4-gram of some secret window (any 8-character window contains one at a sampled position), then checking
the windows around each hit: a 1 MB text takes some tens of milliseconds.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

MASK = "«redacted»"
MIN_LENGTH = 6
FRAGMENT = 8
_GRAM = 4
_STRIDE = FRAGMENT - _GRAM + 1

SENSITIVE_KEY = re.compile(r"secret|password|passwd|passphrase|token|credential|cookie|dburl|db_url|dsn|"
                           r"accesskey|access_key|private|apikey|api_key|[a-z0-9]Key$|_key$|connection", re.I)
# Under a secret subtree these leaves are public (identifiers, switches, endpoints).
PUBLIC_KEY = re.compile(r"^(name|key|id|username|user|issuer_?url|issuer|client_?id|scopes?|enabled|host|port|"
                        r"database|region|pkce|allow_sign_up|type|kind|provider)$", re.I)
# Keys whose value names or points at a secret instead of holding it.
REFERENCE_KEY = re.compile(r"(name|names|ref|keyref|file|path|dir|mount|enabled|store)$|^(existing|external|use|create)",
                           re.I)
SENSITIVE_SUBTREE = re.compile(r"^(secrets|credentials)$", re.I)
REFERENCE_SUBTREE = re.compile(r"^(external|existing)|ref$", re.I)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

COMMON_WORDS = frozenset("""
secret secrets password passwd pass client replace change changeme token tokens cookie cookies postgres
postgresql redis admin administrator user username example default google azure access account storage
bucket model registry shared directory http https localhost adaptive monitoring hyperpod your name key
keys adress address local test dummy placeholder host port value values mysql mongodb amazon aws sign
private public issuer scope profile email string required missing invalid expected found chart release
customer customers configuration suites suite promise promises install reproduce certify bundle report
harmony prometheus tensorboard control plane pool pools database production staging cluster
""".split())


def _wordy(text: str) -> bool:
    """True when every alphanumeric run of ``text`` is a piece of a common word: nothing identifying."""
    for run in re.findall(r"[A-Za-z0-9]+", text.lower()):
        if not any(run in word for word in COMMON_WORDS):
            return False
    return True


def _b64_forms(value: str) -> set[str]:
    """The base64 of ``value`` alone, and the parts of its base64 that stay the same wherever it sits
    inside a larger base64-encoded text (one per byte alignment)."""
    raw = value.encode()
    forms = {base64.b64encode(raw).decode()}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        middle = encoded[4 if shift else 0: 4 * ((shift + len(raw)) // 3)]
        if len(middle) >= FRAGMENT:
            forms.add(middle)
    return forms


def _url_password(value: str) -> str | None:
    if not _URL.match(value):
        return None
    try:
        password = urlsplit(value).password
    except ValueError:
        return None
    return unquote(password) if password else None


def secret_leaves(values: Any, *, sensitive: bool = False,
                  reference: bool = False) -> Iterator[tuple[list, Any, bool]]:
    """The secret leaves of a values tree, as ``(path, value, fragments_allowed)``; ``path`` lists the keys
    and list indices from the top. The one place that decides what a secret is: the Redactor learns these
    and ``values_check.placeholder_values`` replaces them. ``fragments_allowed`` is False for a pointer
    (an ``externalSecret`` ``remoteRef.key`` store path), which is masked only whole."""
    yield from _secret_leaves(values, [], sensitive, reference)


def _secret_leaves(values: Any, path: list, sensitive: bool, reference: bool) -> Iterator[tuple[list, Any, bool]]:
    if reference:
        yield from _reference_leaves(values, path)
        return
    if isinstance(values, dict):
        for key, child in values.items():
            name = str(key)
            here = [*path, key]
            if isinstance(child, (dict, list)):
                # A public key's list (an OIDC provider's scopes) holds no secret, even in a secret subtree.
                inherited = sensitive and not (isinstance(child, list) and PUBLIC_KEY.match(name))
                yield from _secret_leaves(child, here, inherited or bool(SENSITIVE_SUBTREE.match(name)),
                                          bool(REFERENCE_SUBTREE.search(name)))
            elif isinstance(child, bool) or child is None:
                continue
            elif REFERENCE_KEY.search(name):
                continue
            elif SENSITIVE_KEY.search(name):
                yield here, child, True
            elif sensitive and not PUBLIC_KEY.match(name):
                # In a secret subtree a URL without a password is an endpoint, not a secret.
                if not (isinstance(child, str) and _URL.match(child) and not _url_password(child)):
                    yield here, child, True
    elif isinstance(values, list):
        for index, child in enumerate(values):
            if isinstance(child, (dict, list)):
                yield from _secret_leaves(child, [*path, index], sensitive, False)
            elif sensitive and isinstance(child, (str, int, float)) and not isinstance(child, bool):
                yield [*path, index], child, True


def _reference_leaves(values: Any, path: list) -> Iterator[tuple[list, Any, bool]]:
    """Under ``externalSecret`` and the like nothing is secret material, but the ``remoteRef.key`` paths
    say where the secrets live in the customer's store: masked whole, never by fragments."""
    if isinstance(values, dict):
        for key, child in values.items():
            if isinstance(child, (dict, list)):
                yield from _reference_leaves(child, [*path, key])
            elif str(key) == "key" and isinstance(child, str) and "/" in child:
                yield [*path, key], child, False
    elif isinstance(values, list):
        for index, child in enumerate(values):
            yield from _reference_leaves(child, [*path, index])


class Redactor:
    def __init__(self) -> None:
        self._learned: set[str] = set()
        self._exact: set[str] = set()
        self._windows: set[str] = set()
        self._grams: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._stale = False  # learned forms the pattern does not hold yet: compiled at the next redaction
        self._lock = threading.Lock()

    # -- learning -------------------------------------------------------------------------------------
    @staticmethod
    def identifying(value: str) -> bool:
        """Long enough, and not one common word (``password``, ``changeme``): such a value would mask prose."""
        return len(value) >= MIN_LENGTH and value.lower() not in COMMON_WORDS

    def add(self, value: Any, *, fragments: bool = True) -> None:
        """Remember one secret (a whole value). A URL's password is a secret of its own. ``fragments=False``:
        only the whole value is masked (a pointer such as a secret store path, not secret material)."""
        value = str(value)
        if value in self._learned or not self.identifying(value):
            return
        exact: set[str] = set()
        cores: set[str] = set()
        password = _url_password(value)
        if _URL.match(value):
            exact.add(value)  # the whole URL; its public parts (scheme, host) are no fragments
            if password and self.identifying(password):
                cores.add(password)
        elif fragments:
            cores.add(value)
        else:
            exact.add(value)
        for core in list(cores):
            cores |= {json.dumps(core)[1:-1], quote(core, safe="")}
        for form in list(exact | cores):
            exact |= {form, json.dumps(form)[1:-1]} | _b64_forms(form)
        windows: set[str] = set()
        for core in cores:
            for form in {core} | _b64_forms(core):
                windows |= {form[i:i + FRAGMENT] for i in range(len(form) - FRAGMENT + 1)}
        windows = {w for w in windows if not _wordy(w)}
        exact = {e for e in exact if len(e) >= MIN_LENGTH}
        with self._lock:
            self._learned.add(value)
            if exact <= self._exact and windows <= self._windows:
                return
            self._exact |= exact
            self._windows |= windows
            self._grams |= {w[i:i + _GRAM] for w in windows for i in range(FRAGMENT - _GRAM + 1)}
            self._stale = True  # a values tree brings several secrets at once: one compile for all of them

    def _exact_pattern(self) -> re.Pattern[str] | None:
        """The alternation of the whole forms that the fragment scan does not find (those with a window that is
        no fragment: short or wordy ones), longest first; compiled when first needed after learning."""
        if not self._stale:
            return self._pattern
        with self._lock:
            if self._stale:
                ordered = sorted((e for e in self._exact if not self._covered(e)), key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
                self._stale = False
            return self._pattern

    def _covered(self, form: str) -> bool:
        return len(form) >= FRAGMENT and all(form[i:i + FRAGMENT] in self._windows
                                             for i in range(len(form) - FRAGMENT + 1))

    def add_values(self, values: Any, sensitive: bool = False, _reference: bool = False) -> None:
        """Remember the secrets of a values tree (see the module docstring for which strings they are)."""
        for _path, value, fragments in secret_leaves(values, sensitive=sensitive, reference=_reference):
            self.add(value, fragments=fragments)

    # -- redacting ------------------------------------------------------------------------------------
    def spans(self, text: str) -> list[tuple[int, int]]:
        """The [start, end) ranges of ``text`` that hold secret material, merged."""
        found: list[tuple[int, int]] = []
        pattern = self._exact_pattern()
        if pattern is not None:
            found += [m.span() for m in pattern.finditer(text)]
        windows, grams = self._windows, self._grams
        if windows:
            n = len(text)
            last_checked = -1
            for p in range(0, n - _GRAM + 1, _STRIDE):
                if text[p:p + _GRAM] not in grams:
                    continue
                for i in range(max(p - FRAGMENT + _GRAM, last_checked + 1, 0), min(p, n - FRAGMENT) + 1):
                    if text[i:i + FRAGMENT] in windows:
                        found.append((i, i + FRAGMENT))
                last_checked = min(p, n - FRAGMENT)
        if not found:
            return []
        found.sort()
        merged = [found[0]]
        for start, end in found[1:]:
            if start <= merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged

    def redact(self, text: str) -> str:
        if not text or not isinstance(text, str) or not (self._exact or self._windows):
            return text
        spans = self.spans(text)
        if not spans:
            return text
        out, pos = [], 0
        for start, end in spans:
            out += [text[pos:start], MASK]
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def __len__(self) -> int:
        return len(self._learned)

    def __bool__(self) -> bool:
        return True

    # -- pytest's reports -----------------------------------------------------------------------------
    def redact_report(self, report) -> None:
        """Redact a TestReport or CollectReport in place: longrepr (every string of its structure),
        sections (captured stdout, stderr, log, ours) and user_properties."""
        if not self._learned:
            return
        report.longrepr = self.redact_object(report.longrepr)
        report.sections[:] = [(self.redact(str(title)), self.redact(str(content))) for title, content in report.sections]
        props = getattr(report, "user_properties", None)
        if props is not None:
            props[:] = [(name, value if isinstance(value, (bool, int, float)) or value is None else self.redact(str(value)))
                        for name, value in props]

    def redact_object(self, obj: Any, _seen: set[int] | None = None) -> Any:
        """Every string reachable from ``obj`` (strings, tuples, lists, dicts, pytest's repr objects)."""
        if isinstance(obj, str):
            return self.redact(obj)
        if obj is None or isinstance(obj, (bool, int, float)):
            return obj
        seen = _seen if _seen is not None else set()
        if id(obj) in seen:
            return obj
        seen.add(id(obj))
        if isinstance(obj, tuple):
            return tuple(self.redact_object(x, seen) for x in obj)
        if isinstance(obj, list):
            obj[:] = [self.redact_object(x, seen) for x in obj]
            return obj
        if isinstance(obj, dict):
            for key in list(obj):
                obj[key] = self.redact_object(obj[key], seen)
            return obj
        attrs = getattr(obj, "__dict__", None)
        if attrs is not None and type(obj).__module__.startswith(("_pytest", "pytest", "chartproof")):
            for name, value in list(attrs.items()):
                object.__setattr__(obj, name, self.redact_object(value, seen))
            return obj
        text = str(obj)
        redacted = self.redact(text)
        return obj if redacted == text else redacted


REDACTOR = Redactor()
