"""Modules on the import allowlist that fail as they are imported: reported at the tree's ``type``, never a traceback.

A tree may name ``module.Class`` when the module is on the allowlist of
``config/registry.yaml``. A module missing, or a class missing from it, was
always a clean diagnostic; a module whose own code raises (a ``RuntimeError``
at import, a syntax error) or whose class cannot be introspected must be one
too, as a constructor's refusal is ("cannot create …").
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.cli import cli_env, run_cli
from vla_bt.tree import Registry, TreeLoader
from vla_bt.tree.diagnostics import Diagnostic, Mark

TREE = "version: 1\nname: t\nroot:\n  type: {module}.X\n"
TYPE_MARK = (4, 9)  # line and column of the value of 'type' in TREE

MODULES = {
    "vlabt_boom_at_import": 'raise RuntimeError("boom at import")\n',
    "vlabt_syntax_error": "def broken(:\n",
    "vlabt_bad_annotation": textwrap.dedent("""
        from __future__ import annotations

        import py_trees


        class X(py_trees.behaviour.Behaviour):
            def __init__(self, name: str = "X", speed: Nowhere = 1.0):
                super().__init__(name)
    """),
    "vlabt_constructor_refuses": textwrap.dedent("""
        import py_trees


        class X(py_trees.behaviours.Success):
            def __init__(self, name: str = "X"):
                raise RuntimeError("boom in the constructor")
    """),
}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding the modules above (and none of them imported yet)."""
    folder = tmp_path / "site"
    folder.mkdir()
    for name, source in MODULES.items():
        (folder / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    for name in MODULES:
        sys.modules.pop(name, None)
    yield folder
    for name in MODULES:
        sys.modules.pop(name, None)


def check(tmp_path: Path, module: str) -> tuple[Path, list[Diagnostic]]:
    tree = tmp_path / "tree.yaml"
    tree.write_text(TREE.format(module=module), encoding="utf-8")
    loader = TreeLoader(Registry.default(import_allowlist=[module], plugins=False))
    return tree, loader.check(tree)


def test_module_raising_at_import_is_a_diagnostic_at_the_type(tmp_path: Path, site: Path) -> None:
    tree, diagnostics = check(tmp_path, "vlabt_boom_at_import")
    assert diagnostics == [Diagnostic(Mark(str(tree), *TYPE_MARK),
                                      "cannot import 'vlabt_boom_at_import': RuntimeError: boom at import")]
    assert "vlabt_boom_at_import" not in sys.modules


def test_module_with_a_syntax_error_is_a_diagnostic_at_the_type(tmp_path: Path, site: Path) -> None:
    tree, diagnostics = check(tmp_path, "vlabt_syntax_error")
    assert len(diagnostics) == 1 and diagnostics[0].mark == Mark(str(tree), *TYPE_MARK)
    assert diagnostics[0].message.startswith("cannot import 'vlabt_syntax_error': SyntaxError: ")


def test_class_whose_annotations_name_nothing_is_a_diagnostic_at_the_type(tmp_path: Path, site: Path) -> None:
    tree, diagnostics = check(tmp_path, "vlabt_bad_annotation")
    assert diagnostics == [Diagnostic(Mark(str(tree), *TYPE_MARK),
                                      "cannot read the parameters of 'vlabt_bad_annotation.X': "
                                      "NameError: name 'Nowhere' is not defined")]


def test_constructor_error_stays_a_cannot_create_diagnostic(tmp_path: Path, site: Path) -> None:
    # Control: the message a constructor's refusal has always had.
    _, diagnostics = check(tmp_path, "vlabt_constructor_refuses")
    assert [d.message for d in diagnostics] == [
        "cannot create vlabt_constructor_refuses.X 'X': RuntimeError: boom in the constructor"]


def test_validate_command_reports_a_module_raising_at_import(tmp_path: Path, site: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "registry.yaml").write_text("import_allowlist:\n  - vlabt_boom_at_import\n", encoding="utf-8")
    tree = tmp_path / "tree.yaml"
    tree.write_text(TREE.format(module="vlabt_boom_at_import"), encoding="utf-8")
    env = cli_env()
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    done: subprocess.CompletedProcess[str] = run_cli("--config", str(config), "validate", str(tree), env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{tree}:4:9: cannot import 'vlabt_boom_at_import': RuntimeError: boom at import" in done.stderr
    assert "1 of 1 tree file(s) invalid" in done.stderr
