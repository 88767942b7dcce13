"""Load a Python file that is not on ``sys.path`` (a script, a docs snippet) as a fresh module."""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType


def load_file(path: Path, name: str) -> ModuleType:
    """``path`` executed as module ``name``; registered in ``sys.modules`` only while it runs
    (dataclasses look their module up there), so every call gives a new module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module
