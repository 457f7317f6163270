"""Static pictures of trees through ``py_trees.display`` and Graphviz.

``create_tree`` lets py_trees' own renderer draw a YAML tree::

    py-trees-render vla_bt.viz.render.create_tree -k '{"path": "trees/fetch_object.yaml"}'

(py-trees-render's ``--name`` option hides decorator children; name the
root node in the YAML instead.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import py_trees

from vla_bt.tree.loader import load_tree
from vla_bt.tree.registry import Registry

FORMATS = {".svg": "svg", ".png": "png", ".dot": "raw"}


class RenderError(Exception):
    """The picture cannot be made (unknown format, Graphviz missing, unwritable file)."""


def render(root: py_trees.behaviour.Behaviour, out: str | Path, with_blackboard: bool = False) -> Path:
    """Draw a tree to ``out``; the format follows the suffix (.svg, .png or .dot).

    Args:
        root: the tree's root behaviour
        out: output path
        with_blackboard: add the blackboard keys each node reads and writes

    Returns:
        the path written

    Raises:
        RenderError: unknown suffix, Graphviz's ``dot`` missing for svg/png, or the file cannot be written
    """
    out = Path(out)
    file_format = FORMATS.get(out.suffix.lower())
    if file_format is None:
        raise RenderError(f"{out}: unknown output format '{out.suffix}' (use .svg, .png or .dot)")
    if file_format != "raw" and shutil.which("dot") is None:
        raise RenderError("Graphviz's 'dot' program is needed for .svg and .png "
                          "(Debian/Ubuntu: apt-get install graphviz); .dot output works without it")
    graph = py_trees.display.dot_tree(root, with_blackboard_variables=with_blackboard)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        graph.write(str(out), format=file_format)
    except OSError as exc:
        raise RenderError(f"{out}: cannot write: {exc.strerror or exc}") from None
    return out


def create_tree(path: str, import_allowlist: list[str] | None = None) -> py_trees.behaviour.Behaviour:
    """Load a YAML tree and return its root, for ``py-trees-render``.

    Args:
        path: the tree file
        import_allowlist: modules the tree may import behaviours from by dotted path

    Returns:
        the root behaviour
    """
    registry = Registry.default(import_allowlist=import_allowlist or ())
    return load_tree(path, registry).root
