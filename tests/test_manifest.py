"""The manifest parser reads exactly what helm renders: a corpus of tricky but valid manifests."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from chartproof import manifest as manifest_module
from chartproof import yamlio
from chartproof.manifest import (
    PARTS_FROM,
    Manifest,
    ManifestError,
    env_map,
    prune,
    quantity,
    same_quantity,
    split_documents,
    top_level_parts,
)


def big_crd(properties: int = 400) -> str:
    """A real-world-sized CRD (hundreds of properties) whose descriptions hold markdown: indented `---`
    rules, `key: value` text, lists, code fences and very long lines."""
    description = textwrap.indent(textwrap.dedent("""\
        Widget configures a widget.
        ---
        key: value
        - not: a list item
        ```yaml
        apiVersion: v1
        kind: ConfigMap
        ---
        ```
        --- also a rule, indented
        """), " " * 14)
    props = "\n".join(
        f"              field{i}:\n                description: |\n{textwrap.indent(description, '    ')}"
        f"                type: string" for i in range(properties))
    return (
        "# Source: chart/templates/crd.yaml\n"
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata:\n  name: widgets.example.com\n"
        "spec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n"
        "  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n"
        "        type: object\n        description: >-\n          " + "x" * 20000 + "\n"
        "        properties:\n          spec:\n            type: object\n            properties:\n"
        + props + "\n")


CORPUS = [
    ("plain two documents", "a: 1\n---\nkind: ConfigMap\nmetadata: {name: one}\n---\nkind: Secret\nmetadata: {name: two}\n",
     [("ConfigMap", "one"), ("Secret", "two")]),
    ("leading separator and empty documents", "---\n---\n# only a comment\n---\nkind: ConfigMap\nmetadata:\n  name: a\n---\n\n",
     [("ConfigMap", "a")]),
    ("separator followed by a comment", "kind: ConfigMap\nmetadata: {name: a}\n--- # next\nkind: ConfigMap\nmetadata: {name: b}\n",
     [("ConfigMap", "a"), ("ConfigMap", "b")]),
    ("indented --- in a block scalar", "kind: ConfigMap\nmetadata: {name: md}\ndata:\n  README.md: |\n    # Title\n    ---\n"
                                       "    key: value\n    --- \n", [("ConfigMap", "md")]),
    ("v1 List", "apiVersion: v1\nkind: List\nitems:\n- kind: ConfigMap\n  metadata: {name: x}\n"
                "- kind: Service\n  metadata: {name: y}\n", [("ConfigMap", "x"), ("Service", "y")]),
    ("typed list", "apiVersion: v1\nkind: ConfigMapList\nitems:\n- kind: ConfigMap\n  metadata: {name: x}\n",
     [("ConfigMap", "x")]),
    ("document end marker", "kind: ConfigMap\nmetadata: {name: a}\n...\n---\nkind: ConfigMap\nmetadata: {name: b}\n",
     [("ConfigMap", "a"), ("ConfigMap", "b")]),
    ("---word is not a separator", "kind: ConfigMap\nmetadata: {name: a}\ndata:\n  x: |-\n    text\n---b\n",
     None),  # YAML error: "---b" at column 0 is a plain scalar where a key is expected
    ("very long string", "kind: ConfigMap\nmetadata: {name: long}\ndata:\n  v: \"" + "y" * 200000 + "\"\n",
     [("ConfigMap", "long")]),
    ("big CRD with markdown descriptions", big_crd() + "---\nkind: ConfigMap\nmetadata: {name: after}\n",
     [("CustomResourceDefinition", "widgets.example.com"), ("ConfigMap", "after")]),
]


@pytest.mark.parametrize("text, expected", [(t, e) for _, t, e in CORPUS], ids=[n for n, _, _ in CORPUS])
def test_parser_corpus(text, expected):
    if expected is None:
        with pytest.raises(ManifestError):
            len(Manifest(text))
        return
    manifest = Manifest(text)
    assert [(o["kind"], o["metadata"]["name"]) for o in manifest] == expected


def test_block_scalars_keep_their_text():
    m = Manifest("kind: ConfigMap\nmetadata: {name: md}\ndata:\n  README.md: |\n    # Title\n    ---\n    key: value\n")
    assert m.objects[0]["data"]["README.md"] == "# Title\n---\nkey: value\n"


def test_big_crd_descriptions_are_intact():
    crd = Manifest(big_crd(50)).objects[0]
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert len(props) == 50
    assert "---\nkey: value\n" in props["field7"]["description"]


def test_matches_pyyaml_on_the_whole_text():
    """Our split plus per-document parsing gives what a YAML stream parser gives for the whole text."""
    text = "\n---\n".join(t for _, t, e in CORPUS if e is not None and "List" not in t)
    reference = [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind")]
    assert Manifest(text).objects == [prune(d) for d in reference]


PAD = "spec:\n  padding: |\n" + "".join(f"    line {i} of text that fills the document up\n" for i in range(400))
LARGE = [  # documents past PARTS_FROM, parsed key by key where that means the same, whole where it does not
    ("plain", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n" + PAD),
    ("top-level list at column 0", "kind: Role\nmetadata: {name: r}\nrules:\n- apiGroups: ['']\n  verbs: [get]\n-\n  x: 1\n" + PAD),
    ("alias to another part's anchor", "kind: ConfigMap\nmetadata: &meta {name: m}\nother: *meta\n" + PAD),
    ("anchor and alias in one part", "kind: ConfigMap\nmetadata:\n  name: &n m\n  labels: {x: *n}\n" + PAD),
    ("duplicate key, the last null", "kind: ConfigMap\nmetadata: {name: d}\nextra: 1\nextra: null\n" + PAD),
    ("duplicate key", "kind: ConfigMap\nmetadata: {name: d}\nextra: 1\nextra: 2\n" + PAD),
    ("null part", "kind: ConfigMap\nmetadata: {name: n}\nempty:\n" + PAD),
    ("merge key", "base: &b {x: 1}\n<<: *b\nkind: ConfigMap\nmetadata: {name: mk}\n" + PAD),
    ("quoted scalar over a column-0 line", 'kind: ConfigMap\nmetadata: {name: q}\nnote: "first\nsecond: still the note"\n' + PAD),
    ("flow mapping over a column-0 line", "kind: ConfigMap\nmetadata: {name: f,\nlabels: {a: b}}\n" + PAD),
    ("date and quoted keys", "kind: ConfigMap\n\"metadata\": {name: t}\n'when': 2024-01-02\n" + PAD),
    ("comments and blank lines", "# Source: c/templates/x.yaml\n\nkind: ConfigMap\n# between\nmetadata:\n\n  name: c\n" + PAD),
    ("a top-level sequence", "- kind: ConfigMap\n- b\n" + PAD.replace("spec:", "- spec:")),
    ("a YAML error", "kind: ConfigMap\nmetadata:\n  name: [unclosed\n" + PAD),
]


@pytest.mark.parametrize("text", [t for _, t in LARGE], ids=[n for n, _ in LARGE])
def test_large_documents_parse_as_pyyaml_parses_them_whole(text, monkeypatch):
    assert len(text) >= PARTS_FROM
    try:
        expected = [prune(d) for d in yaml.load_all(text, Loader=yamlio.LOADER)]
    except yaml.YAMLError:
        expected = None
    for _ in range(2):  # parsed, then parts remembered (a new document sharing parts with the first)
        monkeypatch.setattr(manifest_module, "_PARSED", manifest_module._ParsedDocuments())
        for variant in (text, text.replace("kind: ConfigMap", "kind: Secret")):
            if expected is None:
                with pytest.raises(yaml.YAMLError):
                    manifest_module._PARSED.load(variant)
                continue
            found = manifest_module._PARSED.load(variant)
            wanted = expected if variant == text else [prune(d) for d in yaml.load_all(variant, Loader=yamlio.LOADER)]
            assert repr(found) == repr(wanted)  # the same values, keys in the same order


def test_a_changed_key_of_a_large_document_reparses_only_that_part():
    manifest_module._PARSED.load("kind: A\nmetadata: {name: one}\n" + PAD)
    before = manifest_module._PARSED.misses
    found = manifest_module._PARSED.load("kind: A\nmetadata: {name: two}\n" + PAD)
    assert found[0]["metadata"] == {"name": "two"}
    # the document and its one new part; "kind" and "spec" were known
    assert manifest_module._PARSED.misses - before == 2
    assert top_level_parts("kind: A\n- x\n") == ["kind: A\n- x\n"]
    assert top_level_parts("[a, b]\n") is None and top_level_parts("# only\n") is None


def test_sources_follow_their_documents():
    text = "---\n# Source: c/templates/a.yaml\nkind: ConfigMap\nmetadata: {name: a}\n---\n# Source: c/templates/b.yaml\n" \
           "kind: ConfigMap\nmetadata: {name: b}\n"
    m = Manifest(text)
    assert [m.source_of(o) for o in m] == ["c/templates/a.yaml", "c/templates/b.yaml"]
    assert [s for s, _, _ in split_documents(text)] == ["c/templates/a.yaml", "c/templates/b.yaml"]


def test_the_fast_cut_is_the_line_by_line_cut():
    """Text whose lines end in "\\n" only is cut with str.find; it gives what the line-by-line cut gives (the
    documents, their sources and first line numbers) on generated texts, and defers to it otherwise."""
    pieces = ["---", "---\n", "--- # c\n", "--- \n", "---\t\n", "----\n", "---x\n", " ---\n", "a---\n", "\n",
              "# Source: c/templates/a.yaml\n", "# note\n", "kind: A\n", "  k: v\n", "x", "-", " "]
    random = __import__("random").Random(1203)
    plain = 0
    for _ in range(20000):
        text = "".join(random.choice(pieces) for _ in range(random.randrange(12)))
        fast = manifest_module._split_plain(text)
        if fast is not None:
            plain += 1
            assert fast == list(manifest_module._split_lines(text)), repr(text)
        assert list(split_documents(text)) == list(manifest_module._split_lines(text)), repr(text)
    assert plain > 15000
    for text in ("a\n--- {b: c}\nd\n", "a\r\n---\r\nb\r\n", "a\n---\nb\u2028c\n", "a\x0cb\n---\nc"):
        assert list(split_documents(text)) == list(manifest_module._split_lines(text))
    assert manifest_module._split_plain("a\n--- {b: c}\nd\n") is None


def test_yaml_errors_name_the_template_and_line():
    text = "# Source: c/templates/ok.yaml\nkind: ConfigMap\nmetadata: {name: a}\n---\n# Source: c/templates/bad.yaml\n" \
           "kind: ConfigMap\nmetadata:\n  name: [unclosed\n"
    with pytest.raises(ManifestError, match=r"c/templates/bad.yaml, line \d+"):
        len(Manifest(text))


def test_null_is_the_same_as_absent():
    m = Manifest("kind: Deployment\nmetadata: {name: d, labels: null}\nspec:\n  replicas: 2\n  paused: null\n")
    assert m.objects[0] == {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 2}}


def test_quantities_compare_by_value():
    assert quantity("1Gi") == quantity("1024Mi")
    assert quantity(2) == quantity("2000m")
    assert same_quantity("10Gi", "10240Mi") and not same_quantity("10G", "10Gi")
    with pytest.raises(AssertionError, match="not a Kubernetes quantity"):
        quantity("ten")


def test_selection_by_labels_and_pod_template():
    m = Manifest("kind: Deployment\nmetadata:\n  name: x\n  labels: {app: a, extra: e}\nspec:\n  template:\n"
                 "    metadata: {labels: {pool: p1}}\n    spec:\n      containers: [{name: c, image: reg/img:1}]\n"
                 "---\nkind: Deployment\nmetadata: {name: y, labels: {app: b}}\n")
    assert [o["metadata"]["name"] for o in m.select("Deployment", labels={"app": "a"})] == ["x"]
    assert m.one("Deployment", pod_labels={"pool": "p1"})["metadata"]["name"] == "x"
    assert [o["metadata"]["name"] for o in m.with_image("reg/img")] == ["x"]
    with pytest.raises(AssertionError, match=r"no Deployment with labels app=c; objects of that kind: Deployment x, Deployment y"):
        m.one("Deployment", labels={"app": "c"})


def test_env_map_keeps_literal_and_reference_values():
    c = {"env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                 {"name": "C"}]}
    assert env_map(c) == {"A": "1", "B": {"secretKeyRef": {"name": "s", "key": "k"}}, "C": ""}


PLAIN_AND_UNUSUAL = [  # what the fast construction builds itself, and what it leaves to PyYAML's constructor
    "kind: ConfigMap\nmetadata: {name: a, labels: {x: '1', y: \"2\"}}\ndata: {k: v, empty: '', n: null, t: ~}\n",
    "ints: [0o17, 0x1F, 1_000, 010, 1:30, -0, +12, 12345678901234567890]\nfloats: [1.5, 1e3, 6.02e+23, .inf, -.Inf, .nan]\n",
    "bools: [yes, No, on, OFF, true, False, y, n]\nkeys: {1: a, 2.5: b, true: c, null: d, ~: e}\n",
    "a: 1\na: null\nb: null\nb: 2\nc: {x: null, y: [null, {z: null}]}\n",
    "stamps: [2024-01-02, 2024-01-02T03:04:05Z, '2024-01-02']\n",
    "bin: !!binary aGVsbG8=\nset: !!set {a, b}\nomap: !!omap [{a: 1}, {b: 2}]\npairs: !!pairs [{a: 1}]\n",
    "base: &b {x: 1, y: null}\nmerged:\n  <<: *b\n  z: 2\nalias: *b\nscalar: &s text\nagain: *s\n",
    "str: !!str 12\nint: !!int '7'\nfloat: !!float '1'\nnull: !!null ''\nmap: !!map {a: 1}\nseq: !!seq [1]\n",
    "? [complex, key]\n: value\n",
    "? {a: 1}\n: value\n",
    "tagged: !custom value\n",
    "eq: =\n",
    "", "# only a comment\n", "--- \n", "---\n...\n---\na: 1\n", "- a\n- [b, {c: null}]\n", "plain scalar\n", "'quoted'\n",
    "a: [unclosed\n", "a: b: c\n", "\ta: tab\n", "a: *undefined\n",
]


@pytest.mark.parametrize("text", PLAIN_AND_UNUSUAL + [t for _, t, _ in CORPUS] + [t for _, t in LARGE] + [big_crd(40)])
def test_fast_construction_is_pyyamls(text):
    try:
        expected: object = repr([prune(d) for d in yaml.load_all(text, Loader=yamlio.LOADER)])
    except yaml.YAMLError as exc:
        expected = f"error: {exc}"
    try:
        found: object = repr(manifest_module.parse_documents(text))
    except yaml.YAMLError as exc:
        found = f"error: {exc}"
    assert found == expected, f"{text[:200]!r}: expected PyYAML's {expected[:300]}, found {found[:300]}"


def test_fast_construction_leaves_only_unusual_nodes_to_pyyaml(monkeypatch):
    calls = []
    original = yamlio.LOADER.construct_document
    monkeypatch.setattr(yamlio.LOADER, "construct_document",
                        lambda self, node: calls.append(node) or original(self, node))
    manifest_module.parse_documents(PLAIN_AND_UNUSUAL[0] + "---\n" + PLAIN_AND_UNUSUAL[1] + "---\n" + big_crd(40))
    assert calls == [], "plain documents are built without PyYAML's constructor"
    manifest_module.parse_documents(PLAIN_AND_UNUSUAL[6])
    assert len(calls) == 1, "a document with a merge key and aliases is PyYAML's to build"


def test_a_value_that_contains_itself_is_a_yaml_error_not_a_crash():
    with pytest.raises(ManifestError, match="contains itself"):
        len(Manifest("# Source: c/templates/loop.yaml\nkind: A\nmetadata: {name: x}\nspec: &a [*a]\n"))
    with pytest.raises(ManifestError):  # ours past the recursion limit, or libyaml's own nesting limit
        len(Manifest("kind: A\nspec: " + "[" * 3000 + "]" * 3000 + "\n"))


def test_a_selection_by_kind_parses_only_the_documents_that_can_hold_that_kind():
    text = ("# Source: c/templates/cm.yaml\nkind: ConfigMap\nmetadata: {name: cm}\n---\n"
            "# Source: c/templates/bad.yaml\nkind: Secret\nmetadata:\n  name: [unclosed\n---\n"
            "# Source: c/templates/deploy.yaml\nkind: Deployment\nmetadata: {name: d1}\n---\n"
            "# Source: c/templates/escaped.yaml\nkind: \"\\x44eployment\"\nmetadata: {name: d2}\n---\n"
            "# Source: c/templates/list.yaml\nkind: List\nitems:\n- {kind: Deployment, metadata: {name: d3}}\n")
    m = Manifest(text)
    found = m.select("Deployment")
    assert [o["metadata"]["name"] for o in found] == ["d1", "d2", "d3"], "an escaped kind and a List's items count"
    assert m._parsed[0] is None and m._parsed[1] is None, "documents without the kind's name are not parsed"
    assert m.source_of(found[1]) == "c/templates/escaped.yaml"
    assert m.one("ConfigMap")["metadata"]["name"] == "cm"
    with pytest.raises(ManifestError, match=r"c/templates/bad.yaml, line \d+"):
        len(m)  # everything: the document that is not YAML fails it
