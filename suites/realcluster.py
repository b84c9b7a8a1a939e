"""Moved to ``chartproof.incluster``; this re-export keeps old imports working for now."""
from chartproof.incluster import *  # noqa: F401,F403
from chartproof.incluster import __all__  # noqa: F401
