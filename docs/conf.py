"""Sphinx configuration of the sessiondata documentation.

Built in CI as ``sphinx-build -W --keep-going -b html docs DIR`` against the *installed*
package (the compiled core must be importable; autodoc reads the docstrings from it), with no
network: no intersphinx, no theme or font downloaded.  The user guide is the Markdown pages
of this folder (myst-parser); the API reference (api.rst) is made from the docstrings of the
public names (a name that it does not file under a heading is listed at its end), and the
build fails when a name of ``sessiondata.__all__`` is missing from it.
"""

from __future__ import annotations

import inspect
import logging as logging_std
import re
from pathlib import Path

import sessiondata
from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

project = "sessiondata"
author = "sessiondata developers"
copyright = "2026, sessiondata developers"
release = sessiondata.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: headings get anchors (`[...](live.md#the-revise-policy)` links resolve and are
# checked), fenced code stays code.
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

# autodoc + numpydoc: the docstrings are numpydoc; the signatures come from the code (the
# compiled kernels embed theirs).  A docstring parameter that is not in the signature (a
# renamed parameter) is an error under -W.
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = {"PR02"}

html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "Intraday bar data of a trading session"}

nitpicky = False


def _check_public_api(app, env) -> None:  # noqa: ANN001
    """Every name of ``sessiondata.__all__`` has an entry in the API reference."""
    documented = set(env.get_domain("py").objects)
    missing = [n for n in sessiondata.__all__ if f"sessiondata.{n}" not in documented]
    if missing:
        logging.getLogger(__name__).warning(
            "api.rst does not document these names of sessiondata.__all__: %s",
            ", ".join(missing))


class PublicNamesNotListed(SphinxDirective):
    """``.. public-names-not-listed::`` documents every name of ``sessiondata.__all__`` that
    the page has no ``auto...::`` entry for, so a name added to the package is in the
    reference at once (and its docstring checked), before someone files it under a heading."""

    def run(self) -> list[nodes.Node]:
        text = Path(self.env.doc2path(self.env.docname)).read_text(encoding="utf-8")
        listed = set(re.findall(r"^\.\. auto\w+::\s+(\w+)", text, re.MULTILINE))
        lines = []
        for name in sessiondata.__all__:
            if name in listed:
                continue
            obj = getattr(sessiondata, name)
            kind = ("autoclass" if inspect.isclass(obj)
                    else "autofunction" if callable(obj) else "autodata")
            lines += [f".. {kind}:: {name}", ""]
        if not lines:
            lines = ["(Every public name is listed above.)"]
        return self.parse_text_to_nodes("\n".join(lines))


class _EmptyGlobIsFine(logging_std.Filter):
    """index.md lists the guide's pages in reading order and then ``*`` for pages added
    since; that the ``*`` finds none is no fault (Sphinx gives this warning no type that
    ``suppress_warnings`` could name)."""

    def filter(self, record: logging_std.LogRecord) -> bool:
        return "glob pattern '*' didn't match any documents" not in record.getMessage()


def setup(app):  # noqa: ANN001, ANN201
    app.connect("env-check-consistency", _check_public_api)
    app.add_directive("public-names-not-listed", PublicNamesNotListed)
    logging_std.getLogger("sphinx.sphinx.directives.other").addFilter(_EmptyGlobIsFine())
    return {"parallel_read_safe": True}
