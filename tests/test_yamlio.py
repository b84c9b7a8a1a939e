"""chartproof.yamlio: libyaml's speed, PyYAML's safe semantics and PyYAML's error wording."""

from __future__ import annotations

import pytest
import yaml

from chartproof import yamlio

TEXTS = [
    "a: 1\nb: [yes, no, on, off, ~, 0o17, 017, 1_000, 1e3, .inf, 2024-01-02]\nc: {d: 'x', e: \"\\u00e9\"}\n",
    "anchors: &x {k: v}\nuse: *x\nmerged: {<<: *x, k2: v2}\n",
    "text: |\n  line one\n  line two\nfolded: >-\n  a\n  b\n",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_loads_and_dumps_are_pyyamls_safe_ones(text):
    assert yamlio.load(text) == yaml.safe_load(text)
    assert yamlio.load_all(text + "---\nz: 1\n") == list(yaml.safe_load_all(text + "---\nz: 1\n"))
    data = yaml.safe_load(text)
    assert yaml.safe_load(yamlio.dump(data, sort_keys=True)) == data, "a dump reads back as the same values"


def test_libyaml_is_the_loader_where_pyyaml_has_it():
    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("this PyYAML is built without libyaml")
    assert yamlio.LOADER is yaml.CSafeLoader and yamlio.DUMPER is yaml.CSafeDumper


def test_an_error_is_worded_as_pyyaml_words_it():
    text = "a: b\n  c: d\n"
    with pytest.raises(yaml.YAMLError) as theirs:
        yaml.safe_load(text)
    with pytest.raises(yaml.YAMLError) as ours:
        yamlio.load(text)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(yaml.YAMLError) as ours_all:
        yamlio.load_all("ok: 1\n---\n" + text)
    assert getattr(ours_all.value, "problem", None) == getattr(theirs.value, "problem", None)
