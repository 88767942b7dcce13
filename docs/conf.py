"""Sphinx configuration of the provider's documentation (``make docs``)."""

from __future__ import annotations

import importlib
from typing import Any

from airflow_provider_plugz import __version__

project = "airflow-provider-plugz"
author = "airflow-provider-plugz developers"
copyright = "airflow-provider-plugz developers"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "snippets", "Thumbs.db", ".DS_Store"]

# Markdown pages: anchors for headings (links such as hook.md#retries), ::: fences for directives.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

html_theme = "furo"
html_title = f"airflow-provider-plugz {release}"

# The API reference: every public module, generated from the docstrings (private ``_x`` modules
# are left out by autosummary's recursion; see api.rst).
autosummary_generate = True
autosummary_imported_members = False
# Each object is documented once, in the module that defines it: a name a module re-exports
# (``hooks.plugz.PinStatus`` is ``endpoints.PinStatus``) is not documented again there.
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# `-n` (nitpicky) checks every reference to this package; types of other libraries (Airflow,
# requests, httpx, the standard library) have no inventory offline, so they are not resolved.
nitpicky = True
# Private names (``_protocol``, ``_R_co``, ...) are not documented either, so a docstring's
# reference to one is not resolved.
_ROLES = ("py:class", "py:exc", "py:obj", "py:func", "py:meth", "py:mod", "py:data", "py:attr")
nitpick_ignore_regex = [(role, r"(?!airflow_provider_plugz\.).*") for role in _ROLES] + [
    (role, r"airflow_provider_plugz\.(.*\.)?_\w+(\..*)?") for role in _ROLES
]


def _resolve_reexport(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """A reference to a name a module re-exports (``hooks.plugz.preload_async_transport``) goes
    to where the name is defined and documented (``transports.async_httpx``)."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("airflow_provider_plugz."):
        return None
    module_name, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return None
    home = getattr(obj, "__module__", None)
    if not home or home == module_name:
        return None
    node["reftarget"] = f"{home}.{name}"
    domain = env.get_domain("py")
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], node["reftarget"], node, contnode
    )


def setup(app: Any) -> None:
    app.connect("missing-reference", _resolve_reexport)
