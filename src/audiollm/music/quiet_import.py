"""Import third-party modules that print on stdout while importing.

pyfluidsynth, which pretty_midi and basic-pitch import, prints "'fluidsynth' was found at …"
on stdout at import whenever the environment variable ``CI`` is set. That line would corrupt
what our commands promise on stdout: one JSON object from a benchmark, ``--json`` answers.
Import such modules through :func:`quiet_import`: the first import runs with stdout captured,
and every later plain ``import`` finds the module already loaded.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from types import ModuleType


def quiet_import(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with anything printed on stdout meanwhile discarded
    (errors still raise)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module(name)
