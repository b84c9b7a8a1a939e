"""Repository-wide pytest setup.

The Chartproof plugin is normally loaded through its ``pytest11`` entry point (``pip install -e .``);
when the package is not installed (a plain ``python -m pytest`` from a checkout), load it from here.
"""

from importlib.metadata import entry_points

if not any(ep.name == "chartproof" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["chartproof.plugin"]
