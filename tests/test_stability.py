"""The stability check finds a test whose outcome changes between runs."""

from chartproof.stability import compare


def test_compare_names_tests_that_changed_and_ignores_stable_ones():
    runs = [{"a": "passed", "b": "failed", "c": "passed"}, {"a": "passed", "b": "passed"}]
    assert compare(runs) == {"b": ["failed", "passed"], "c": ["passed", "absent"]}
    assert compare([{"a": "passed"}, {"a": "passed"}]) == {}
