"""Check a customer's values file against a chart, and make a same-shape copy of it without its secrets.

``chartproof reproduce`` starts here. ``load_values`` parses the file (one-line ``BadValuesError`` with
line and column on bad YAML) and records the line of every key. ``check_values`` reports what helm would
refuse (``values.schema.json``, validated over the merged values as helm does) and what helm would
silently ignore: keys the chart does not know, with the closest known key as a suggestion. What a chart
knows (``known_keys``) comes from its ``values.yaml``, its schema and its subcharts; mappings that are
empty or null by default, open schemas and API object fields (``affinity``, ``tolerations``, ...)
accept any key below them.

``placeholder_values`` replaces every secret leaf (the leaves ``chartproof.redaction.secret_leaves``
names, the same ones the Redactor masks) by a deterministic placeholder of the same length and character
class at every position, so the chart renders as with the real values and nothing of the secret is left.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import hashlib
import io
import json
import re
import string
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import yaml

from chartproof import yamlio
from chartproof.errors import BadValuesError, ChartNotFoundError
from chartproof.helm import merge_values
from chartproof.redaction import FRAGMENT, secret_leaves

# Fields whose content is an API object the chart copies verbatim into a manifest (Kubernetes, and the
# External Secrets ``remoteRef``): the API, not the chart, says which keys they take, so nothing below them
# is reported as unknown.
API_FIELDS = frozenset("""
affinity tolerations resources securityContext podSecurityContext containerSecurityContext nodeSelector
topologySpreadConstraints livenessProbe readinessProbe startupProbe volumes volumeMounts env envFrom
imagePullSecrets remoteRef
""".split())
SUGGESTION_CUTOFF = 0.6
_MAX_TGZ_BYTES = 64 << 20
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Finding:
    path: str
    level: str  # "error" | "warning"
    message: str
    suggestion: str | None = None
    line: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class ValueLines(dict):
    """Dotted path -> 1-based line of a values file; ``duplicates`` lists ``(path, first_line, last_line)``
    of keys given twice in one mapping (helm keeps the last)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.duplicates: list[tuple[str, int, int]] = []


def dotted(path: list | tuple) -> str:
    """``["harmony", "computePool", 0, "name"]`` -> ``harmony.computePool[0].name`` (an int is a list index:
    pass mapping keys as strings)."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# -- loading -----------------------------------------------------------------------------------------------
def load_values(path: Path) -> tuple[dict, ValueLines]:
    """Parse a values file; returns the values and the line of every key and list entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadValuesError(f"values file {path}: no such file") from None
    except UnicodeDecodeError:
        raise BadValuesError(f"values file {path}: not UTF-8 text") from None
    except OSError as exc:
        raise BadValuesError(f"values file {path}: cannot read it: {exc.strerror or exc}") from None
    lines = ValueLines()
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _record_lines(node, [], lines, loader, set())
            values = loader.construct_document(node)
        else:
            values = None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise BadValuesError(f"values file {path}: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise BadValuesError(f"values file {path}: {str(exc).splitlines()[0] if str(exc) else 'not valid YAML'}") \
            from None
    finally:
        loader.dispose()
    if values is None:
        return {}, lines
    if not isinstance(values, dict):
        raise BadValuesError(f"values file {path}: the top level must be a mapping of keys, "
                             f"not a {_kind(values)}")
    if _has_cycle(values):
        raise BadValuesError(f"values file {path}: an alias refers to a mapping or list that contains it")
    return values, lines


def _record_lines(node: yaml.Node, path: list, lines: ValueLines, loader: yaml.SafeLoader, seen: set[int]) -> None:
    if id(node) in seen:  # an aliased node: its lines are where the anchor is
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = loader.construct_object(key_node)
            try:
                hash(key)
            except TypeError:
                continue
            here = [*path, str(key)]
            line = key_node.start_mark.line + 1
            if key in first:
                lines.duplicates.append((dotted(here), first[key], line))
            first[key] = line
            lines[dotted(here)] = line
            _record_lines(value_node, here, lines, loader, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault(dotted([*path, index]), item.start_mark.line + 1)
            _record_lines(item, [*path, index], lines, loader, seen)


def _has_cycle(value: Any, _stack: set[int] | None = None) -> bool:
    if not isinstance(value, (dict, list)):
        return False
    stack = _stack if _stack is not None else set()
    if id(value) in stack:
        return True
    stack.add(id(value))
    children = value.values() if isinstance(value, dict) else value
    found = any(_has_cycle(child, stack) for child in children)
    stack.discard(id(value))
    return found


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


# -- what a chart knows --------------------------------------------------------------------------------------
@dataclass
class KeyTree:
    """The keys a chart knows below one point of its values."""

    children: dict[str, KeyTree] = field(default_factory=dict)
    items: KeyTree | None = None  # what list entries are checked against; None: anything
    items_from_schema: bool = False
    open: bool = False  # any key below is accepted (open schema, Kubernetes field, global)
    loose: bool = False  # {} or null by default: any key below, unless a schema describes it
    described: bool = False  # a schema lists its properties or its items

    def accepts_anything(self) -> bool:
        return self.open or (self.loose and not self.described)

    def find(self, path: str) -> KeyTree | None:
        """The node of a dotted path (no list indices), or None."""
        node: KeyTree | None = self
        for part in path.split("."):
            node = node.children.get(part) if node else None
        return node


def _merge_tree(into: KeyTree, other: KeyTree) -> KeyTree:
    for key, child in other.children.items():
        into.children[key] = _merge_tree(into.children[key], child) if key in into.children else child
    if other.items is not None:
        if into.items is None or (other.items_from_schema and not into.items_from_schema):
            into.items, into.items_from_schema = other.items, other.items_from_schema
        elif other.items_from_schema == into.items_from_schema:
            into.items = _merge_tree(into.items, other.items)
    into.open |= other.open
    into.loose |= other.loose
    into.described |= other.described
    return into


def _tree_from_values(value: Any) -> KeyTree:
    tree = KeyTree()
    if isinstance(value, dict):
        tree.loose = not value
        for key, child in value.items():
            tree.children[str(key)] = _tree_from_values(child)
    elif isinstance(value, list):
        for entry in value:
            if isinstance(entry, (dict, list)):
                tree.items = _merge_tree(tree.items or KeyTree(), _tree_from_values(entry))
    elif value is None:
        tree.loose = True
    return tree


def _resolve_ref(schema: Any, root: dict) -> Any:
    for _ in range(32):
        if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
            return schema
        ref = schema["$ref"]
        if not ref.startswith("#"):
            return True  # a remote schema: unknown here, so it accepts anything
        target: Any = root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return True
        schema = target
    return True


def _tree_from_schema(schema: Any, root: dict, depth: int = 0) -> KeyTree:
    tree = KeyTree()
    schema = _resolve_ref(schema, root)
    if schema is True or depth > 48:
        tree.open = True
        return tree
    if not isinstance(schema, dict):
        return tree
    for word in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(word) or []:
            _merge_tree(tree, _tree_from_schema(part, root, depth + 1))
    for word in ("then", "else"):
        if isinstance(schema.get(word), (dict, bool)):
            _merge_tree(tree, _tree_from_schema(schema[word], root, depth + 1))
    properties = schema.get("properties")
    if isinstance(properties, dict) and properties:
        tree.described = True
        for key, sub in properties.items():
            child = _tree_from_schema(sub, root, depth + 1)
            tree.children[key] = _merge_tree(tree.children[key], child) if key in tree.children else child
    extra = schema.get("additionalProperties")
    if schema.get("patternProperties") or extra is True or isinstance(extra, dict):
        tree.open = True
    types = schema.get("type")
    types = {types} if isinstance(types, str) else set(types or [])
    if "object" in types and not tree.described and extra is not False:
        tree.open = True  # an object the schema does not detail: any key
    items = schema.get("items")
    if isinstance(items, list):
        items_tree = KeyTree()
        for part in items:
            _merge_tree(items_tree, _tree_from_schema(part, root, depth + 1))
        items = items_tree
    elif isinstance(items, (dict, bool)):
        items = _tree_from_schema(items, root, depth + 1)
    elif "array" in types:
        items = KeyTree(open=True)  # an array the schema does not detail: any entries
    else:
        items = None
    if items is not None:
        tree.items, tree.items_from_schema, tree.described = items, True, True
    return tree


class _ChartFiles:
    """The files of one chart: an unpacked directory, or a chart folder inside a ``.tgz`` read in memory."""

    def __init__(self, label: str, *, root: Path | None = None, members: dict[str, bytes] | None = None,
                 prefix: str = ""):
        self.label = label
        self.root = root
        self.members = members
        self.prefix = prefix

    @classmethod
    def open(cls, location: Path) -> _ChartFiles:
        location = Path(location)
        if location.is_dir():
            if not (location / "Chart.yaml").is_file():
                raise ChartNotFoundError(f"{location} has no Chart.yaml: not a chart")
            return cls(str(location), root=location)
        if location.is_file():
            return cls.from_tgz(str(location), location.read_bytes())
        raise ChartNotFoundError(f"no chart at {location}")

    @classmethod
    def from_tgz(cls, label: str, data: bytes) -> _ChartFiles:
        members: dict[str, bytes] = {}
        total = 0
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                for member in archive:
                    if not member.isfile():
                        continue
                    total += member.size
                    if total > _MAX_TGZ_BYTES:
                        raise ChartNotFoundError(f"{label}: chart archive larger than {_MAX_TGZ_BYTES >> 20} MB")
                    handle = archive.extractfile(member)
                    if handle is not None:
                        members[PurePosixPath(member.name).as_posix().removeprefix("./")] = handle.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ChartNotFoundError(f"{label}: not a readable chart archive ({exc})") from None
        charts = sorted((n for n in members if n.endswith("Chart.yaml") and n.count("/") == 1), key=len)
        if not charts:
            raise ChartNotFoundError(f"{label}: chart archive without <name>/Chart.yaml")
        return cls(label, members=members, prefix=charts[0][: -len("Chart.yaml")])

    def read(self, name: str) -> str | None:
        if self.root is not None:
            path = self.root / name
            return path.read_text(encoding="utf-8") if path.is_file() else None
        data = (self.members or {}).get(self.prefix + name)
        return data.decode("utf-8", "replace") if data is not None else None

    def subcharts(self) -> list[_ChartFiles]:
        """Every chart under ``charts/``: unpacked folders and ``.tgz`` archives."""
        found: list[_ChartFiles] = []
        if self.root is not None:
            folder = self.root / "charts"
            for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
                if entry.is_dir() and (entry / "Chart.yaml").is_file():
                    found.append(_ChartFiles(str(entry), root=entry))
                elif entry.is_file() and entry.name.endswith((".tgz", ".tar.gz")):
                    found.append(_ChartFiles.from_tgz(str(entry), entry.read_bytes()))
            return found
        base = self.prefix + "charts/"
        folders = sorted({n[len(base):].split("/")[0] for n in self.members or {}
                          if n.startswith(base) and n[len(base):].count("/") >= 1})
        for name in folders:
            if base + name + "/Chart.yaml" in (self.members or {}):
                found.append(_ChartFiles(f"{self.label}:{base}{name}", members=self.members,
                                         prefix=base + name + "/"))
        for name, data in sorted((self.members or {}).items()):
            rest = name[len(base):] if name.startswith(base) else ""
            if rest and "/" not in rest and rest.endswith((".tgz", ".tar.gz")):
                found.append(_ChartFiles.from_tgz(f"{self.label}:{name}", data))
        return found

    def yaml(self, name: str) -> Any:
        text = self.read(name)
        if text is None:
            return None
        try:
            return yamlio.load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            error = ChartNotFoundError if name == "Chart.yaml" else BadValuesError
            raise error(f"chart {self.label}: {name} is not valid YAML:{where}") from None

    def schema(self) -> dict | None:
        text = self.read("values.schema.json")
        if text is None:
            return None
        try:
            schema = json.loads(text)
        except ValueError as exc:
            raise BadValuesError(f"chart {self.label}: values.schema.json is not valid JSON: {exc}") from None
        return schema if isinstance(schema, dict) else None

    def defaults(self) -> dict:
        values = self.yaml("values.yaml")
        return values if isinstance(values, dict) else {}

    def metadata(self) -> dict:
        meta = self.yaml("Chart.yaml")
        return meta if isinstance(meta, dict) else {}


def known_keys(chart_dir: Path) -> KeyTree:
    """What a chart knows: its ``values.yaml``, its ``values.schema.json``, every subchart under its name or
    alias, the paths of dependency conditions and tags, and ``global`` (anything)."""
    return _known(_ChartFiles.open(chart_dir))


def _known(chart: _ChartFiles) -> KeyTree:
    tree = _tree_from_values(chart.defaults())
    tree.loose = False  # an empty values.yaml does not make the chart accept anything
    schema = chart.schema()
    if schema is not None:
        _merge_tree(tree, _tree_from_schema(schema, schema))
    dependencies = [d for d in chart.metadata().get("dependencies") or [] if isinstance(d, dict) and d.get("name")]
    by_name: dict[str, list[dict]] = {}
    for dep in dependencies:
        by_name.setdefault(str(dep["name"]), []).append(dep)
    present: set[str] = set()
    global_tree = tree.children.setdefault("global", KeyTree())
    for sub in chart.subcharts():
        name = str(sub.metadata().get("name") or "")
        if not name:
            continue
        present.add(name)
        sub_tree = _known(sub)
        _merge_tree(global_tree, sub_tree.children.pop("global", KeyTree()))
        keys = {str(d.get("alias") or name) for d in by_name.get(name, [])} or {name}
        for key in keys:
            node = tree.children.get(key)
            if node is None:
                tree.children[key] = copy.deepcopy(sub_tree)
            else:  # the subchart, not the parent's {} or open schema, says what is below it
                node.open = node.loose = False
                _merge_tree(node, copy.deepcopy(sub_tree))
    for dep in dependencies:
        if str(dep["name"]) not in present:  # not fetched yet: nothing to check its values against
            tree.children.setdefault(str(dep.get("alias") or dep["name"]), KeyTree()).open = True
        for condition in str(dep.get("condition") or "").split(","):
            if condition.strip():
                _ensure(tree, condition.strip().split("."))
        for tag in dep.get("tags") or []:
            _ensure(tree, ["tags", str(tag)])
    global_tree.open = True
    return tree


def _ensure(tree: KeyTree, parts: list[str]) -> None:
    for part in parts:
        tree = tree.children.setdefault(part, KeyTree())


# -- checking ------------------------------------------------------------------------------------------------
def check_values(values: dict, chart_dir: Path, *, lines: dict[str, int] | None = None) -> list[Finding]:
    """Schema errors (over the values merged onto the chart defaults, as helm validates), unknown keys and
    duplicate keys (when ``lines`` comes from ``load_values``), sorted by line then path."""
    lines = lines or {}
    findings: list[Finding] = []
    if not isinstance(values, dict):
        findings.append(Finding("", "error", f"the values must be a mapping of keys, not a {_kind(values)}"))
        return findings
    if _has_cycle(values):
        findings.append(Finding("", "error", "the values contain a mapping or list that contains itself"))
        return findings
    chart = _ChartFiles.open(chart_dir)
    findings += _schema_findings(values, chart, lines)
    tree = _known(chart)
    _unknown_keys(values, tree, [], lines, findings)
    for path, first, last in getattr(lines, "duplicates", []):
        findings.append(Finding(path, "warning", f"duplicate key {path} (lines {first} and {last}): "
                                                 f"helm keeps the last one", line=last))
    findings.sort(key=lambda f: (f.line is None, f.line or 0, f.path, f.level))
    return findings


def _line_of(path: list, lines: dict[str, int]) -> int | None:
    for end in range(len(path), 0, -1):
        line = lines.get(dotted(path[:end]))
        if line is not None:
            return line
    return None


def _unknown_keys(value: Any, tree: KeyTree, path: list, lines: dict[str, int], out: list[Finding]) -> None:
    if isinstance(value, dict):
        if tree.accepts_anything():
            return
        known = {key.lower(): key for key in reversed(list(tree.children))}
        for key, child in value.items():
            name = str(key)
            here = [*path, name]
            node = tree.children.get(name)
            if node is not None:
                if name not in API_FIELDS:
                    _unknown_keys(child, node, here, lines, out)
                continue
            close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=SUGGESTION_CUTOFF)
            suggestion = dotted([*path, known[close[0]]]) if close else None
            message = f"unknown key {dotted(here)}" + (f" (did you mean {suggestion}?)" if suggestion else "")
            out.append(Finding(dotted(here), "warning", message, suggestion, _line_of(here, lines)))
    elif isinstance(value, list):
        if tree.open or tree.items is None:
            return
        for index, entry in enumerate(value):
            _unknown_keys(entry, tree.items, [*path, index], lines, out)


def _as_json(value: Any) -> Any:
    """The values as helm sees them after YAML -> JSON: string keys, timestamps as strings."""
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _schema_findings(values: dict, chart: _ChartFiles, lines: dict[str, int]) -> list[Finding]:
    schema = chart.schema()
    if schema is None:
        return []
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [Finding("", "error", f"the chart's values.schema.json is not a valid schema: {exc.message}")]
    validator = jsonschema.Draft7Validator(schema)
    merged = _as_json(merge_values(chart.defaults(), values))
    secret = {tuple(path) for path, _value, _fragments in secret_leaves(merged)}
    findings = []
    try:
        errors = sorted(validator.iter_errors(merged), key=lambda e: [str(p) for p in e.absolute_path])
    except Exception as exc:  # a schema jsonschema cannot apply (a $ref it cannot resolve, ...)
        return [Finding("", "error", f"the values could not be validated against values.schema.json: {exc}")]
    for error in errors:
        path = list(error.absolute_path)
        where = dotted(path) or "(root)"
        message = error.message
        instance = error.instance
        if isinstance(instance, (dict, list)) or tuple(path) in secret:
            shown = {dict: "the mapping", list: "the list"}.get(type(instance), "the value (a secret, not shown)")
            message = message.replace(repr(instance), shown)
        findings.append(Finding(dotted(path), "error", f"{where}: {message}", line=_line_of(path, lines)))
    return findings


# -- placeholders --------------------------------------------------------------------------------------------
_URL_PARTS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(.*)$", re.S)
_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
_HEX = {c: "abcdef" if c.islower() else "ABCDEF" for c in "abcdefABCDEF"}


def placeholder_values(values: dict) -> tuple[dict, list[str]]:
    """A deep copy with every secret leaf replaced by a same-shape placeholder; also the dotted paths
    replaced (never the values)."""
    result = copy.deepcopy(values)
    replaced: list[str] = []
    for path, value, _fragments in secret_leaves(values):
        target, names = result, []
        for part in path[:-1]:
            names.append(str(part) if isinstance(target, dict) else part)
            target = target[part]
        names.append(str(path[-1]) if isinstance(target, dict) else path[-1])
        where = dotted(names)
        fake = placeholder(value, where)
        if type(fake) is type(value) and fake == value:
            continue
        target[path[-1]] = fake
        if where not in replaced:
            replaced.append(where)
    return result, replaced


def placeholder(value: Any, seed: str = "") -> Any:
    """The placeholder of one secret: same length, a lowercase letter for a lowercase letter, uppercase for
    uppercase, digit for digit, other characters kept. A URL keeps its scheme, port, path and query."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        text = str(value)
        fake = _shape(text, f"{seed}\0{text}")
        digits = fake.lstrip("-")
        if len(digits) > 1 and digits[0] == "0":  # keep the number of digits
            fake = fake.replace("0", "9" if text.lstrip("-")[0] != "9" else "8", 1)
        return int(fake)
    text = value if isinstance(value, str) else str(value)
    if not text:
        return value
    key = f"{seed}\0{text}"
    parts = _URL_PARTS.match(text)
    if parts:
        scheme, netloc, rest = parts.groups()
        userinfo, at, hostport = netloc.rpartition("@")
        if hostport.startswith("[") and "]" in hostport:
            end = hostport.index("]") + 1
            host, port = hostport[:end], hostport[end:]
        else:
            host, port = re.fullmatch(r"(.*?)(:\d*)?", hostport, re.S).groups("")
        if any(c.isalnum() for c in userinfo + host):
            return (scheme + _shape(userinfo, key + "\0user", escapes=True) + at
                    + _shape(host, key + "\0host") + port + rest)
        return scheme + _shape(text[len(scheme):], key + "\0rest", escapes=True)
    fake = _shape(text, key)
    if isinstance(value, float):
        try:
            return float(fake)
        except ValueError:
            return fake
    return fake


def _randoms(seed: str) -> Iterator[int]:
    counter = 0
    while True:
        yield from hashlib.sha256(f"{seed}\0{counter}".encode()).digest()
        counter += 1


def _shares_run(new: str, old: str) -> bool:
    windows = {old[i:i + FRAGMENT] for i in range(len(old) - FRAGMENT + 1)}
    return any(new[i:i + FRAGMENT] in windows for i in range(len(new) - FRAGMENT + 1))


def _shape(text: str, seed: str, *, escapes: bool = False) -> str:
    """``text`` with every ASCII letter and digit replaced by another of its class (a ``%XX`` escape stays
    a valid one when ``escapes``), until it shares no ``FRAGMENT``-long run with ``text``."""
    if not text:
        return text
    hex_at = set()
    if escapes:
        for match in re.finditer(r"%[0-9A-Fa-f]{2}", text):
            hex_at |= {match.start() + 1, match.start() + 2}
    for attempt in range(32):
        rand = _randoms(f"{seed}\0{attempt}")
        out = []
        for index, char in enumerate(text):
            pool = next((c for c in _CLASSES if char in c), None)
            if index in hex_at and char in _HEX:
                pool = _HEX[char]
            if pool is None:
                out.append(char)
                continue
            others = pool.replace(char, "")
            out.append(others[next(rand) % len(others)])
        fake = "".join(out)
        if fake != text and not _shares_run(fake, text):
            return fake
    # Only a value of punctuation, or with long punctuation runs, gets here: letters for all of it.
    rand = _randoms(seed + "\0letters")
    return "".join(string.ascii_lowercase[next(rand) % 26] for _ in text)
