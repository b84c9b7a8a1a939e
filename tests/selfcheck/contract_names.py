"""Inner-run plugin (``-p tests.selfcheck.contract_names``): a suite test without a ``contract`` marker gets
the id its name spells (``test_adp_pool_02_...`` -> ``ADP-POOL-02``, ``test_mon_01_...`` -> ``MON-01``), so
``--contract`` selects it and ``results.json`` names it. Tests that carry the marker are left as they are."""

from __future__ import annotations

import re

import pytest

_NAME_ID = re.compile(r"^test_((?:adp|mon|hyp)(?:_[a-z][a-z0-9]*)*?_\d{2})(?:_|$|\[)")


def id_from_test_name(name: str) -> str:
    """The contract id a test function name starts with, or ""."""
    match = _NAME_ID.match(name.split("::")[-1])
    return match[1].upper().replace("_", "-") if match else ""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("contract") is None:
            cid = id_from_test_name(getattr(item, "originalname", item.name))
            if cid:
                item.add_marker(pytest.mark.contract(cid))
