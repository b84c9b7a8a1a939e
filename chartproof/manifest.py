"""Rendered manifests, parsed exactly as helm and the API server read them, and readable accessors.

A ``Manifest`` holds the objects of one render (or of a live release) with the template each came from.
Objects are compared by meaning, not spelling: a field set to ``null`` is dropped at parse time (the API
server drops it too), ``v1 List`` objects are flattened into their items, and quantities compare by value
(``quantity("1Gi") == quantity("1024Mi")``).

Tests find objects by what the contract promises (kind, labels, pod template, image), never by template
file names or object order: ``select`` and ``one`` do that, and ``one`` explains what it found instead.
"""

from __future__ import annotations

import base64
import marshal
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from chartproof import yamlio

POD_TEMPLATE_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod")

# A document separator is "---" at the very start of a line, followed by nothing, a space or a tab (YAML's
# rule; helm's splitter agrees for everything helm itself emits). An indented "---" inside a block scalar,
# such as a markdown rule in a CRD description, is content.
_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$")
_SOURCE = "# Source: "


class ManifestError(AssertionError):
    """The rendered text is not valid YAML: a defect of the chart, reported with where it is."""


class _ParsedDocuments:
    """What each document's text parses to, remembered by its text for the process (most documents of a render
    are the same text in the next render: a chart's CRDs, its ConfigMaps), kept as ``marshal`` bytes so that
    every Manifest gets objects of its own to change. A document whose parse marshal cannot hold (a YAML date,
    a set) is parsed every time. Bounded: forgotten past ``limit`` bytes of text.

    A large document seen for the first time is parsed one top-level key at a time, each key's text remembered
    on its own: a CRD whose labels carry the release name differs from the last render only in ``metadata``,
    and its ``spec`` (most of its text) is not parsed again. That is done only where the parts mean what the
    whole means (see ``top_level_parts``); anything else is parsed whole."""

    def __init__(self, limit: int = 256 << 20):
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: dict[str, bytes | None] = {}
        self._size = 0
        self.hits = self.misses = 0

    def load(self, chunk: str) -> list[Any]:
        """The documents of ``chunk``, nulls pruned (raises yaml.YAMLError as PyYAML does)."""
        with self._lock:
            packed = self._entries.get(chunk, False)
        if packed:
            self.hits += 1
            return marshal.loads(packed)
        self.misses += 1
        docs = self._by_parts(chunk) if len(chunk) >= PARTS_FROM else None
        if docs is None:
            docs = parse_documents(chunk)
        if packed is False:
            try:
                entry: bytes | None = marshal.dumps(docs)
            except ValueError:  # a value marshal cannot hold: parse this text every time
                entry = None
            with self._lock:
                if self._size + len(chunk) > self.limit:
                    self._entries.clear()
                    self._size = 0
                self._entries[chunk] = entry
                self._size += len(chunk)
        return docs


    def _by_parts(self, chunk: str) -> list[Any] | None:
        """``[the document]`` parsed key by key; None when it must be parsed whole (one part, or a part that
        does not parse alone to one new key: an alias to another part's anchor, a duplicate key, an error)."""
        parts = top_level_parts(chunk)
        if parts is None or len(parts) < 2:
            return None
        merged: dict[Any, Any] = {}
        for part in parts:
            try:
                docs = self.load(part)
            except yaml.YAMLError:
                return None
            # One key, new: a part whose value is null (pruned to {}) could be a duplicate key's, and a
            # duplicate's last value wins in the whole document's parse.
            if len(docs) != 1 or not isinstance(docs[0], dict) or len(docs[0]) != 1:
                return None
            key, value = next(iter(docs[0].items()))
            if key in merged:
                return None
            merged[key] = value
        return [merged]


_PARSED = _ParsedDocuments()
PARTS_FROM = 8192  # bytes: smaller documents are parsed whole (a parse per part costs more than it saves)
# The first line of a top-level key: a plain or quoted key at column 0 (not "<<", "?", "-", "%", "...", "&", "!").
_TOP_KEY = re.compile(r"""(?:[A-Za-z0-9_]|"[^"\n]*"\s*:|'[^'\n]*'\s*:)""")


def top_level_parts(chunk: str) -> list[str] | None:
    """The text of a document cut before each line that starts a top-level key, each part with the comments,
    blank lines, indented lines and column-0 sequence items (``- x``, a top-level key's list) that follow it.

    None when the document does not begin with a key (after comments) or a line at column 0 is anything else
    (a directive, a flow collection, a merge key): only a block mapping at the top is cut. Each part is then
    parsed alone; where a column-0 line is really inside a multi-line quoted scalar or flow collection, the part
    before it does not parse alone and the document is parsed whole (``_by_parts``)."""
    parts: list[str] = []
    start = 0
    position = 0
    length = len(chunk)
    preamble = True
    while position < length:
        end = chunk.find("\n", position)
        end = length if end < 0 else end + 1
        first = chunk[position] if position < end else ""
        if first in (" ", "\t", "\n", "\r", "#") or chunk.startswith(("- ", "-\n"), position):
            pass  # inside the current part
        elif _TOP_KEY.match(chunk, position):
            if not preamble:
                parts.append(chunk[start:position])
                start = position
            preamble = False
        else:
            return None
        position = end
    if preamble:
        return None
    parts.append(chunk[start:])
    return parts


def split_documents(text: str) -> Iterator[tuple[str, str, int]]:
    """``(source, document text, first line number)`` per YAML document, in order: the text cut at each line
    that is a separator, the lines between joined with newlines."""
    plain = None if any(c in text for c in _OTHER_LINE_BREAKS) else _split_plain(text)
    return iter(plain) if plain is not None else _split_lines(text)


def _split_lines(text: str) -> Iterator[tuple[str, str, int]]:
    """``split_documents`` line by line (``str.splitlines``), for any text."""
    chunk: list[str] = []
    start = 1
    for number, line in enumerate(text.splitlines(), start=1):
        if _SEPARATOR.match(line):
            if chunk:
                yield _source_of(chunk), "\n".join(chunk) + "\n", start
            chunk, start = [], number + 1
            rest = line[3:].strip()
            if rest and not rest.startswith("#"):
                chunk.append(rest)  # "--- {a: b}": content on the separator line
        else:
            chunk.append(line)
    if chunk:
        yield _source_of(chunk), "\n".join(chunk) + "\n", start


# Where ``str.splitlines`` cuts besides "\n": text without them is cut by ``_split_plain``, not line by line.
_OTHER_LINE_BREAKS = "\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def _split_plain(text: str) -> list[tuple[str, str, int]] | None:
    """``split_documents`` of text whose lines end only in "\n": each document is the text between two separator
    lines, found with ``str.find``. None when a separator line holds content after its dashes."""
    documents = []
    begin = 0  # where the current document's first line starts
    line = 1  # its number
    while True:
        found = text.find("---", begin)
        while found >= 0 and not _is_separator(text, found):
            found = text.find("---", found + 3)
        end = len(text) if found < 0 else found
        if end > begin:
            document = text[begin:end] if text.endswith("\n", begin, end) else text[begin:end] + "\n"
            documents.append((_source_of(_lines_of(document)), document, line))
        if found < 0:
            return documents
        after = text.find("\n", found)
        after = len(text) if after < 0 else after
        rest = text[found + 3:after].strip()
        if rest and not rest.startswith("#"):
            return None  # "--- {a: b}": the line-by-line cut puts that content in the next document
        line += text.count("\n", begin, after + 1)  # the document's lines, and the separator's
        begin = min(after + 1, len(text))


def _is_separator(text: str, at: int) -> bool:
    """Whether the "---" at ``at`` begins a separator line: at a line's start, then the line's end or a blank."""
    if at and text[at - 1] != "\n":
        return False
    following = text[at + 3:at + 4]
    return following in ("", "\n", " ", "\t")


def _lines_of(document: str) -> Iterator[str]:
    """The lines of ``document`` one at a time (``_source_of`` reads only the first few)."""
    position = 0
    while position < len(document):
        end = document.find("\n", position)
        end = len(document) if end < 0 else end
        yield document[position:end]
        position = end + 1


def _source_of(lines: Iterable[str]) -> str:
    for line in lines:
        if line.startswith(_SOURCE):
            return line[len(_SOURCE):].strip()
        if line.strip() and not line.lstrip().startswith("#"):
            break
    return ""


_STR, _SEQ, _MAP, _MERGE = (f"tag:yaml.org,2002:{name}" for name in ("str", "seq", "map", "merge"))
_PLAIN_SCALARS = {f"tag:yaml.org,2002:{name}": yamlio.LOADER.yaml_constructors[f"tag:yaml.org,2002:{name}"]
                  for name in ("null", "bool", "int", "float")}


class _Unusual(Exception):
    """A node the fast construction leaves to PyYAML's own: an alias, a merge key, an unhashable key, a tag
    other than str, null, bool, int, float, seq and map (a timestamp, binary, a set, a custom tag)."""


def _constructed(node: yaml.Node, loader: Any, seen: set[int]) -> Any:
    """``prune(loader.construct_object(node, deep=True))`` for the plain YAML manifests are made of, built in
    one pass: PyYAML's constructor spends most of a parse in bookkeeping this kind of node does not need."""
    kind = type(node)
    if kind is yaml.ScalarNode:
        if node.tag == _STR:
            return node.value
        construct = _PLAIN_SCALARS.get(node.tag)
        if construct is None:
            raise _Unusual
        return construct(loader, node)
    if id(node) in seen:
        raise _Unusual  # an alias: PyYAML gives both places one object
    seen.add(id(node))
    if kind is yaml.SequenceNode and node.tag == _SEQ:
        return [_constructed(child, loader, seen) for child in node.value]
    if kind is yaml.MappingNode and node.tag == _MAP:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise _Unusual
            key = _constructed(key_node, loader, seen)
            value = _constructed(value_node, loader, seen)
            try:
                if value is None:
                    out.pop(key, None)  # pruned, and a later duplicate's null wins as PyYAML's last value does
                else:
                    out[key] = value
            except TypeError:  # an unhashable key: PyYAML's error
                raise _Unusual from None
        return out
    raise _Unusual


def _document(node: yaml.Node, loader: Any) -> Any:
    """One document's value, nulls pruned: built in one pass, or by PyYAML where it is not plain."""
    try:
        return _constructed(node, loader, set())
    except _Unusual:
        return prune(loader.construct_document(node))


def parse_documents(chunk: str) -> list[Any]:
    """The documents of ``chunk`` as PyYAML's safe loader constructs them, nulls pruned (``prune``); raises
    yaml.YAMLError as PyYAML does. A document with anything but plain nodes is constructed by PyYAML itself."""
    loader = yamlio.LOADER(chunk)  # libyaml when present: ten times faster on big CRDs
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            try:
                docs.append(_document(node, loader))
            except RecursionError:  # an alias inside its own anchor (helm refuses it too), or absurd depth
                raise yaml.constructor.ConstructorError(
                    None, None, "a value that contains itself (an alias inside its own anchor) or nests "
                    "deeper than Python can follow", node.start_mark) from None
        return docs
    finally:
        loader.dispose()


def prune(node: Any) -> Any:
    """The value with every mapping key whose value is ``null`` removed, recursively."""
    if isinstance(node, dict):
        return {k: prune(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [prune(v) for v in node]
    return node


def _flatten(doc: Any, out: list[dict[str, Any]]) -> None:
    """Append the object ``doc`` is to ``out``, or a v1 List's items; nothing for an empty or kind-less document."""
    if not isinstance(doc, dict) or not doc.get("kind"):
        return  # empty documents and comments-only documents
    if str(doc["kind"]).endswith("List") and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            _flatten(item, out)
        return
    out.append(doc)


class Manifest:
    """The objects of one render (or of a live release), with their template source.

    A document is parsed when something first needs it: ``select`` (and ``one``, ``find``, ``has``, ...) of
    given kinds parses only the documents whose text contains one of those kinds, or a backslash (only a
    double-quoted escape can spell a kind without its letters); iterating, ``len``, ``objects`` and
    ``sources`` parse them all, in order. Text that is not valid YAML raises ManifestError when its document
    is parsed: a test fails on the documents its promise reads."""

    def __init__(self, text: str):
        self.text = text
        self._documents = list(split_documents(text))  # (source, text, first line number)
        self._parsed: list[list[dict[str, Any]] | None] = [None] * len(self._documents)  # objects per document
        self._all: list[dict[str, Any]] | None = None  # objects, once every document is parsed

    def _objects_in(self, index: int) -> list[dict[str, Any]]:
        """The objects of document ``index`` (a v1 List's items in its place), parsed on first use."""
        found = self._parsed[index]
        if found is None:
            source, chunk, first_line = self._documents[index]
            try:
                docs = _PARSED.load(chunk)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f", line {first_line + mark.line}" if mark is not None else ""
                problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                raise ManifestError(f"the render is not valid YAML: {source or 'a document'}{where}: {problem}") from None
            found = []
            for doc in docs:
                _flatten(doc, found)
            self._parsed[index] = found
        return found

    def _parse_all(self) -> list[dict[str, Any]]:
        """Every object, every document parsed (invalid YAML raises here)."""
        if self._all is None:
            self._all = [obj for index in range(len(self._documents)) for obj in self._objects_in(index)]
        return self._all

    @property
    def objects(self) -> list[dict[str, Any]]:
        return self._parse_all()

    @property
    def sources(self) -> list[str]:
        """The template each of ``objects`` came from."""
        self._parse_all()
        return [source for (source, _, _), found in zip(self._documents, self._parsed, strict=True) for _ in found]

    def _candidates(self, kinds: set[str] | None) -> Iterator[dict[str, Any]]:
        """In order, the objects of every document that can hold an object of one of ``kinds`` (all: None)."""
        if kinds is None or self._all is not None:
            yield from self.objects
            return
        for index, (_, chunk, _) in enumerate(self._documents):
            if self._parsed[index] is not None or "\\" in chunk or any(kind in chunk for kind in kinds):
                yield from self._objects_in(index)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)

    # -- finding objects by what the contract promises ------------------------------------------------
    def select(self, kind: str | Iterable[str] | None = None, *, name: str | None = None,
               namespace: str | None = None, labels: dict[str, str] | None = None,
               pod_labels: dict[str, str] | None = None,
               where: Callable[[dict], bool] | None = None) -> list[dict]:
        """Objects of ``kind`` (one or several) whose metadata labels include ``labels``, whose pod template
        labels include ``pod_labels``, and for which ``where(obj)`` holds."""
        kinds = {str(kind)} if isinstance(kind, str) else {str(k) for k in kind} if kind is not None else None
        out = []
        for obj in self._candidates(kinds):
            meta = obj.get("metadata") or {}
            if kinds is not None and obj.get("kind") not in kinds:
                continue
            if name is not None and meta.get("name") != name:
                continue
            if namespace is not None and (meta.get("namespace") or "") != namespace:
                continue
            if labels and not _includes(meta.get("labels"), labels):
                continue
            if pod_labels and not _includes(template_labels(obj), pod_labels):
                continue
            if where is not None and not where(obj):
                continue
            out.append(obj)
        return out

    def one(self, kind: str | Iterable[str] | None = None, what: str | None = None, **filters) -> dict:
        """The single object ``select(kind, **filters)`` finds; otherwise an AssertionError that says what
        was looked for and which objects of that kind the chart produced instead."""
        found = self.select(kind, **filters)
        if len(found) == 1:
            return found[0]
        kinds = [kind] if isinstance(kind, str) else list(kind or [])
        wanted = what or describe_filter(kinds, filters)
        if not found:
            others = self.select(kinds or None)
            listing = ", ".join(ref(o) for o in others[:25]) or "none"
            raise AssertionError(f"no {wanted}; objects of that kind: {listing}")
        raise AssertionError(f"expected one {wanted}, found {len(found)}: {', '.join(ref(o) for o in found)}")

    def find(self, kind: str | None = None, name: str | None = None, namespace: str | None = None) -> list[dict]:
        return self.select(kind, name=name, namespace=namespace)

    def has(self, kind: str, name: str | None = None) -> bool:
        return bool(self.select(kind, name=name))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict:
        """The object of a name the contract fixes."""
        return self.one(kind, name=name, namespace=namespace)

    def kinds(self) -> set[str]:
        return {obj.get("kind") for obj in self.objects}

    def names(self, kind: str) -> list[str]:
        return [obj.get("metadata", {}).get("name") for obj in self.select(kind)]

    def workloads(self) -> list[dict]:
        return self.select(WORKLOAD_KINDS)

    def with_image(self, fragment: str, kind: str | Iterable[str] = WORKLOAD_KINDS) -> list[dict]:
        """Workloads with a container (or init container) whose image contains ``fragment``."""
        return self.select(kind, where=lambda o: any(fragment in i for i in images(o)))

    def source_of(self, obj: dict) -> str:
        for index, found in enumerate(self._parsed):
            if found is not None and any(candidate is obj for candidate in found):
                return self._documents[index][0]
        return ""

    def keys(self) -> set[tuple[str, str, str]]:
        """(kind, namespace, name) of every object: handy to compare two renders."""
        return {key(o) for o in self.objects}


def _includes(have: dict | None, want: dict) -> bool:
    have = have or {}
    return all(k in have and (v is None or str(have[k]) == str(v)) for k, v in want.items())


def dig(node: Any, path: str, default: Any = None) -> Any:
    """``dig(obj, "spec.template.spec.nodeSelector")``: the value at a dotted path of mapping keys, or
    ``default`` when any step is missing (a chart that leaves a field out fails an assertion, not the suite)."""
    for step in path.split("."):
        if not isinstance(node, dict) or step not in node:
            return default
        node = node[step]
    return node


def key(obj: dict) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return obj.get("kind", ""), meta.get("namespace") or "", meta.get("name", "")


def ref(obj: dict) -> str:
    """``Kind name`` (``Kind namespace/name`` when namespaced): how failures name an object."""
    kind, namespace, name = key(obj)
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def describe_filter(kinds: list[str], filters: dict) -> str:
    parts = ["/".join(kinds) or "object"]
    for name, value in filters.items():
        if value is None or name == "where":
            continue
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        parts.append(f"{name.replace('_', ' ')} {value}")
    if filters.get("where") is not None:
        parts.append("matching the promise")
    return " with ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]


def fragment(obj: Any, limit: int = 1500) -> str:
    """A YAML excerpt of an object for a failure message."""
    text = yamlio.dump(obj, sort_keys=False, default_flow_style=False).rstrip()
    return text if len(text) <= limit else text[:limit] + "\n…"


# -- pods ------------------------------------------------------------------------------------------------
def scalar_text(node: Any) -> str:
    """Every key and scalar value of ``node`` as text, joined by NUL characters: a substring search in it finds
    a value wherever it sits, without the quoting, escaping and line folding of a YAML or JSON dump."""
    parts: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            for k, v in item.items():
                parts.append(str(k))
                walk(v)
        elif isinstance(item, list):
            for v in item:
                walk(v)
        elif item is not None:
            parts.append(str(item))

    walk(node)
    return "\0".join(parts)


def pod_spec(obj: dict) -> dict:
    path = POD_TEMPLATE_PATHS.get(obj.get("kind", ""))
    if path is None:
        raise AssertionError(f"{ref(obj)} has no pod template")
    node: Any = obj
    for step in path:
        node = (node or {}).get(step)
    if not isinstance(node, dict):
        raise AssertionError(f"{ref(obj)}: no pod spec at {'.'.join(path)}")
    return node


def template_labels(obj: dict) -> dict:
    """The labels of a workload's pods (its pod template's labels; a Pod's own)."""
    if obj.get("kind") == "Pod":
        return (obj.get("metadata") or {}).get("labels") or {}
    path = POD_TEMPLATE_PATHS.get(obj.get("kind", ""))
    if path is None:
        return {}
    node: Any = obj
    for step in path[:-1]:
        node = (node or {}).get(step)
    return ((node or {}).get("metadata") or {}).get("labels") or {}


def template_annotations(obj: dict) -> dict:
    path = POD_TEMPLATE_PATHS.get(obj.get("kind", ""))
    if obj.get("kind") == "Pod":
        return (obj.get("metadata") or {}).get("annotations") or {}
    node: Any = obj
    for step in (path or ())[:-1]:
        node = (node or {}).get(step)
    return ((node or {}).get("metadata") or {}).get("annotations") or {}


def containers(obj: dict, init: bool = False) -> list[dict]:
    return list(pod_spec(obj).get("initContainers" if init else "containers") or [])


def all_containers(obj: dict) -> list[dict]:
    return containers(obj) + containers(obj, init=True)


def container(obj: dict, name: str) -> dict:
    for item in all_containers(obj):
        if item.get("name") == name:
            return item
    raise AssertionError(f"{ref(obj)} has no container {name}; it has {[c.get('name') for c in all_containers(obj)]}")


def repository(image: str) -> str:
    """``grafana/grafana`` of ``docker.io/grafana/grafana:11.5.0@sha256:...``: no registry default, tag or digest."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image = image[: len(image) - len(last)] + last.split(":", 1)[0]
    for prefix in ("docker.io/", "index.docker.io/"):
        image = image.removeprefix(prefix)
    return image.removeprefix("library/")


def container_running(obj: dict, image: str) -> dict:
    """The container of a workload that runs ``image``: a repository (``grafana/loki``) or its last part
    (``loki``), whatever the registry and tag; else the one whose image name holds it; else the only
    container (an image the user replaced). Ambiguity is an AssertionError naming the images."""
    items = all_containers(obj)
    repos = [(c, repository(str(c.get("image", "")))) for c in items]
    for matches in ([c for c, r in repos if r == image or r.endswith("/" + image)],
                    [c for c, r in repos if image in r.rsplit("/", 1)[-1]]):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            break
    main = containers(obj)
    if len(main) == 1 and not any(image in r for _, r in repos):
        return main[0]
    raise AssertionError(f"{ref(obj)}: expected one container running {image}, found images "
                         f"{[c.get('image') for c in items]}")


def ingress_routes(manifest, host: str, path: str) -> list[tuple[dict, dict]]:
    """(Ingress, path entry) pairs that route ``path`` (Prefix) on ``host``: Kubernetes ignores a trailing
    slash of a Prefix path, so ``/monitoring/`` routes ``/monitoring`` too."""
    out = []
    for ing in manifest.select("Ingress"):
        for rule in dig(ing, "spec.rules", []) or []:
            if rule.get("host") != host:
                continue
            for entry in dig(rule, "http.paths", []) or []:
                if entry.get("pathType") == "Prefix" and str(entry.get("path", "")).rstrip("/") == path.rstrip("/"):
                    out.append((ing, entry))
    return out


def images(obj: dict) -> list[str]:
    try:
        return [c.get("image", "") for c in all_containers(obj)]
    except AssertionError:
        return []


def env_map(item: dict) -> dict[str, Any]:
    """``{NAME: value}`` for literal values (``""`` when a value is left out), ``{NAME: {valueFrom...}}`` for references."""
    out: dict[str, Any] = {}
    for env in item.get("env") or []:
        out[env["name"]] = env["valueFrom"] if "valueFrom" in env else env.get("value", "")
    return out


def volumes(obj: dict) -> dict[str, dict]:
    return {v.get("name"): v for v in pod_spec(obj).get("volumes") or []}


def mounts(item: dict) -> dict[str, dict]:
    """``{mountPath: volumeMount}`` of a container."""
    return {m.get("mountPath"): m for m in item.get("volumeMounts") or []}


def decoded_secret(obj: dict) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return data


# -- quantities ------------------------------------------------------------------------------------------
_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
             "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
             "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity as a number: ``quantity("1Gi") == quantity("1024Mi")``, ``quantity(2) == quantity("2000m")``."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise AssertionError(f"{value!r} is not a Kubernetes quantity")
    try:
        return Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2) or ""])
    except InvalidOperation:
        raise AssertionError(f"{value!r} is not a Kubernetes quantity") from None


def same_quantity(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return quantity(a) == quantity(b)
