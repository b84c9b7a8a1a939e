"""YAML in and out through libyaml where PyYAML has it: the same safe loader and dumper semantics (PyYAML's
own constructor, representer and resolver; only the scanner, parser and emitter are C), about ten times
faster. Every YAML the engine reads or writes on a test's path goes through here."""

from __future__ import annotations

from typing import Any

import yaml

try:
    from yaml import CSafeDumper as DUMPER
    from yaml import CSafeLoader as LOADER
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as DUMPER  # type: ignore[assignment]
    from yaml import SafeLoader as LOADER  # type: ignore[assignment]

def load(text: str) -> Any:
    """``yaml.safe_load(text)``; text that does not parse raises PyYAML's own error (its wording, which
    messages quote, is not libyaml's)."""
    try:
        return yaml.load(text, Loader=LOADER)
    except yaml.YAMLError:
        return yaml.safe_load(text)


def load_all(text: str) -> list[Any]:
    """``list(yaml.safe_load_all(text))``, errors as ``load``'s."""
    try:
        return list(yaml.load_all(text, Loader=LOADER))
    except yaml.YAMLError:
        return list(yaml.safe_load_all(text))


def dump(data: Any, **options: Any) -> str:
    """``yaml.safe_dump(data, **options)``."""
    return yaml.dump(data, Dumper=DUMPER, **options)


def dump_all(documents: Any, **options: Any) -> str:
    """``yaml.safe_dump_all(documents, **options)``."""
    return yaml.dump_all(documents, Dumper=DUMPER, **options)
