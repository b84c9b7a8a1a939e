"""Builds of our charts that keep every promise: each transformation changes only what the README and the
contracts leave open, so the suites must pass on the result (a failure is a false alarm).

Two variant builds per chart keep the live tier affordable:

- ``restructured``: every template file renamed with reversed-order prefixes, every helper template
  renamed (``adaptive.fullname`` -> ``vx.fullname``, references updated across the chart and its
  subcharts), every object re-emitted on its own through ``fromYaml``/``toYaml``, in reverse order within
  its template (so object order changes even across subcharts), with an extra label and annotation (pod
  templates and ``crds/`` files too, never selectors), plus a large CRD of our own and an unrelated
  ConfigMap.
- ``listed``: the objects of each template emitted as one ``v1 List`` of JSON items (so quoting changes
  everywhere), the values files requoted (``"x"`` -> ``'x'``, plain strings -> ``"x"``), plus the same CRD
  and ConfigMap. Namespaces, CRDs and hooks stay documents of their own: helm orders a release by the kind
  of each document (a List goes last) and reads hooks from document annotations, so putting those in a
  List would change what the release does, not only how it is spelled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.selfcheck.charttree import chart_dirs, copy_chart, template_files

ASSETS = Path(__file__).resolve().parent / "assets"
EXTRA_KEY = "variant.chartproof.dev/extra"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# Kinds a v1 List must not carry: helm creates Namespaces and CRDs first, by the kind of their document.
STANDALONE_KINDS = ("Namespace", "CustomResourceDefinition")

_DEFINE = re.compile(r'(\{\{-?\s*define\s+)"([^"]+)"')
_REFERENCE = re.compile(r'(\b(?:define|include|template)\s+)"([^"]+)"')
_SPLIT = r"`(?m)^---[ \t]*$`"


# -- file and helper names ------------------------------------------------------------------------------------
def _reversed_names(paths: list[Path]) -> dict[Path, Path]:
    """New names for the files of one directory: ``NN-vx-<name>`` (``_NN-vx-<name>`` for partials), NN
    counting down, so sorting by name reverses the original order."""
    renames: dict[Path, Path] = {}
    by_dir: dict[Path, list[Path]] = {}
    for path in paths:
        by_dir.setdefault(path.parent, []).append(path)
    for directory, files in by_dir.items():
        files = sorted(p for p in files if p.name != "NOTES.txt")
        for index, path in enumerate(files):
            prefix = f"{len(files) - index:02d}-vx-"
            name = f"_{prefix}{path.name[1:]}" if path.name.startswith("_") else prefix + path.name
            renames[path] = directory / name
    return renames


def rename_template_files(root: Path) -> None:
    """Rename every template (and ``crds/`` file) of the chart and its subcharts; ``include (print
    $.Template.BasePath "/<file>")`` references follow the renamed files."""
    for chart in chart_dirs(root):
        templates = chart / "templates"
        renames = _reversed_names(template_files(chart))
        for old, new in renames.items():
            old.rename(new)
        relative = {o.relative_to(templates).as_posix(): n.relative_to(templates).as_posix() for o, n in renames.items()}

        def renamed(match: re.Match, relative=relative) -> str:
            return f'{match[1]}/{relative.get(match[2], match[2])}"'

        for path in template_files(chart):
            text = path.read_text()
            updated = re.sub(r'(Template\.BasePath\s+")/([^"]+)"', renamed, text)
            if updated != text:
                path.write_text(updated)
        crds = chart / "crds"
        if crds.is_dir():
            for old, new in _reversed_names(sorted(p for p in crds.rglob("*") if p.is_file())).items():
                old.rename(new)


def helper_names(root: Path) -> list[str]:
    """Every ``define`` name of the chart and its subcharts, in order of first definition."""
    names: list[str] = []
    for chart in chart_dirs(root):
        for path in template_files(chart):
            for match in _DEFINE.finditer(path.read_text()):
                if match[2] not in names:
                    names.append(match[2])
    return names


def helper_renames(names: list[str]) -> dict[str, str]:
    """``adaptive.fullname`` -> ``vx.fullname``: the first prefix becomes ``vx``, the next ``vx2``, ... (one
    template namespace serves the chart and all its subcharts, so new names must stay distinct)."""
    prefixes: dict[str, str] = {}
    renames: dict[str, str] = {}
    for name in names:
        head, dot, rest = name.partition(".")
        if not dot:
            renames[name] = f"vx-{name}"
            continue
        prefixes.setdefault(head, "vx" if not prefixes else f"vx{len(prefixes) + 1}")
        renames[name] = f"{prefixes[head]}.{rest}"
    new_names = list(renames.values())
    assert len(set(new_names)) == len(new_names), "helper renames collide"
    assert not set(new_names) & set(names), "a new helper name is already taken"
    return renames


def rename_helpers(root: Path) -> dict[str, str]:
    """Rename every helper template and every ``include``/``template``/``define`` of it, chart-wide."""
    renames = helper_renames(helper_names(root))
    for chart in chart_dirs(root):
        for path in template_files(chart):
            text = path.read_text()
            updated = _REFERENCE.sub(lambda m: f'{m[1]}"{renames.get(m[2], m[2])}"', text)
            if updated != text:
                path.write_text(updated)
    return renames


# -- re-emitted objects -----------------------------------------------------------------------------------------
def _decorate(var: str) -> str:
    """Template text adding the extra label and annotation to object ``var`` and to its pod template."""
    extra = f'(dict "{EXTRA_KEY}" "yes")'
    return f"""\
{{{{- $meta := {var}.metadata | default dict }}}}
{{{{- $_ := set $meta "labels" (merge ($meta.labels | default dict) {extra}) }}}}
{{{{- $_ := set $meta "annotations" (merge ($meta.annotations | default dict) {extra}) }}}}
{{{{- $_ := set {var} "metadata" $meta }}}}
{{{{- if kindIs "map" {var}.spec }}}}{{{{- if kindIs "map" {var}.spec.template }}}}
{{{{- $pod := {var}.spec.template.metadata | default dict }}}}
{{{{- $_ := set $pod "labels" (merge ($pod.labels | default dict) {extra}) }}}}
{{{{- $_ := set $pod "annotations" (merge ($pod.annotations | default dict) {extra}) }}}}
{{{{- $_ := set {var}.spec.template "metadata" $pod }}}}
{{{{- end }}}}{{{{- end }}}}
"""


def _parse_each(body: str, rel: str, *, reverse: bool = False) -> str:
    docs = f'regexSplit {_SPLIT} (include "{body}" .) -1'
    return f"""\
{{{{- range $doc := {f"reverse ({docs})" if reverse else docs} }}}}
{{{{- $obj := fromYaml $doc }}}}
{{{{- if hasKey $obj "Error" }}}}
{{{{- fail (printf "self-check variant: a document of {rel} is not YAML: %s" $obj.Error) }}}}
{{{{- end }}}}
{{{{- if $obj }}}}
"""


def documents_emitter(body: str, rel: str, decorate: bool) -> str:
    """One document per object, in reverse order within the template (so objects of one kind from one file
    swap places too)."""
    return (f'{{{{- /* self-check variant: the objects of {rel} (template "{body}"), one document each. */ -}}}}\n'
            + _parse_each(body, rel, reverse=True) + (_decorate("$obj") if decorate else "")
            + "---\n{{ toYaml $obj }}\n{{- end }}\n{{- end }}\n")


def list_emitter(body: str, rel: str) -> str:
    kinds = " ".join(f'"{k}"' for k in STANDALONE_KINDS)
    return (f'{{{{- /* self-check variant: the objects of {rel} (template "{body}") as one v1 List. */ -}}}}\n'
            "{{- $items := list }}\n"
            + _parse_each(body, rel)
            + '{{- $hook := "" }}\n'
              '{{- if kindIs "map" $obj.metadata }}{{- if kindIs "map" $obj.metadata.annotations }}'
              '{{- $hook = index $obj.metadata.annotations "helm.sh/hook" | default "" }}{{- end }}{{- end }}\n'
            + f"{{{{- if or $hook (has (toString $obj.kind) (list {kinds})) }}}}\n"
              "---\n{{ toJson $obj }}\n"
              "{{- else }}\n{{- $items = append $items $obj }}\n{{- end }}\n"
              "{{- end }}\n{{- end }}\n"
              "{{- if $items }}\n---\napiVersion: v1\nkind: List\nmetadata:\n  name: vx-list\nitems:\n"
              "{{- range $item := $items }}\n  - {{ toJson $item }}\n{{- end }}\n{{- end }}\n")


def wrap_templates(root: Path, emit: Callable[[str, str], str]) -> int:
    """Move the body of every manifest template into a ``define`` of a ``_vx-bodies.tpl`` partial of the same
    chart; the template itself now renders that body, parses each document, and emits it via ``emit``."""
    wrapped = 0
    for chart in chart_dirs(root):
        templates = chart / "templates"
        scope = chart.relative_to(root.parent).as_posix()
        defines: list[str] = []
        for path in template_files(chart):
            if path.name.startswith("_") or path.suffix not in MANIFEST_SUFFIXES:
                continue
            rel = path.relative_to(templates).as_posix()
            body = f"vx-body.{scope}/{rel}"
            # "{{ end }}" without trimming: the body keeps its final newline (a block scalar's last "\n").
            defines.append(f'{{{{- define "{body}" }}}}\n{path.read_text()}{{{{ end }}}}\n')
            path.write_text(emit(body, rel))
            wrapped += 1
        if defines:
            header = "{{- /* self-check variant: the original bodies of this chart's templates. */ -}}\n"
            (templates / "_vx-bodies.tpl").write_text(header + "\n".join(defines))
    return wrapped


def decorate_crd_files(root: Path) -> int:
    """The extra label and annotation on the CRDs of ``crds/`` directories too (plain YAML, re-serialized)."""
    changed = 0
    for chart in chart_dirs(root):
        crds = chart / "crds"
        for path in sorted(crds.rglob("*.y*ml")) if crds.is_dir() else []:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
            for doc in docs:
                meta = doc.setdefault("metadata", {})
                for field in ("labels", "annotations"):
                    meta[field] = {**(meta.get(field) or {}), EXTRA_KEY: "yes"}
            path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            changed += 1
    return changed


# -- quoting -------------------------------------------------------------------------------------------------------
_BLOCK_START = re.compile(r"^(?P<indent>\s*)(?:- +)?[^#]*:\s+[|>][-+0-9]*\s*(?:#.*)?$")
_SCALAR_LINE = re.compile(r"""^(?P<lead>\s*(?:- +)?(?:[A-Za-z0-9_.\-/]+:[ ]+|(?<=- )))"""
                          r"""(?P<value>"[^"'\\]*"|[A-Za-z/<][A-Za-z0-9_./:<>@+=-]*)(?P<tail>\s+#.*)?$""")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _plain_is_string(value: str) -> bool:
    if value.lower() in _YAML11_WORDS or ": " in value:
        return False
    try:
        return yaml.safe_load(f"k: {value}")["k"] == value
    except yaml.YAMLError:
        return False


def requote(text: str) -> str:
    """The same YAML with other quoting: ``"x"`` -> ``'x'`` and plain strings -> ``"x"``, outside block
    scalars and only where the meaning cannot change (YAML 1.1 words, numbers, dates stay as they are)."""
    out: list[str] = []
    block_indent: int | None = None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                out.append(line)
                continue
            block_indent = None
        start = _BLOCK_START.match(line)
        if start:
            block_indent = len(start["indent"])
            out.append(line)
            continue
        match = _SCALAR_LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            value = match["value"]
            if value.startswith('"'):
                value = f"'{value[1:-1]}'"
            elif _plain_is_string(value):
                value = f'"{value}"'
            line = match["lead"] + value + (match["tail"] or "")
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def requote_values(root: Path) -> int:
    changed = 0
    for chart in chart_dirs(root):
        values = chart / "values.yaml"
        if values.is_file():
            text = values.read_text()
            new = requote(text)
            assert yaml.safe_load(new) == yaml.safe_load(text), f"requoting changed the meaning of {values}"
            if new != text:
                values.write_text(new)
                changed += 1
    return changed


# -- extra objects -----------------------------------------------------------------------------------------------
def add_extra_objects(root: Path) -> None:
    """Our large CRD and an unrelated ConfigMap, as templates of the top chart."""
    for asset, name in (("widgets-crd.yaml", "vx-widgets-crd.yaml"), ("extra-configmap.yaml", "vx-extra-configmap.yaml")):
        (root / "templates" / name).write_text((ASSETS / asset).read_text())


# -- the builds ------------------------------------------------------------------------------------------------------
def build_restructured(root: Path) -> None:
    wrap_templates(root, lambda body, rel: documents_emitter(body, rel, decorate=True))
    decorate_crd_files(root)
    rename_helpers(root)
    rename_template_files(root)
    add_extra_objects(root)


def build_listed(root: Path) -> None:
    wrap_templates(root, list_emitter)
    requote_values(root)
    add_extra_objects(root)


BUILDS: dict[str, Callable[[Path], None]] = {"restructured": build_restructured, "listed": build_listed}
VARIANT_NAMES = tuple(BUILDS)


def build_variant(variant: str, chart: str, destination: Path) -> Path:
    """A copy of chart ``chart`` under ``destination/<variant>/`` with the ``variant`` transformations."""
    root = copy_chart(chart, destination / variant)
    BUILDS[variant](root)
    return root
