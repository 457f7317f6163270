"""The documentation and shipped artefacts agree with the code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vla_bt.tree import TreeLoader
from vla_bt.tree.reference import node_reference
from vla_bt.tree.registry import Registry
from vla_bt.tree.schema import tree_schema

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def yaml_examples() -> list[tuple[str, str]]:
    """Every complete tree document (``version: 1`` and ``root``) shown in the docs."""
    found = []
    for doc in DOCS:
        for index, block in enumerate(YAML_BLOCK.findall(doc.read_text())):
            if re.search(r"^version: 1$", block, re.M) and re.search(r"^root:", block, re.M):
                found.append((f"{doc.name}#{index}", block))
    return found


@pytest.mark.parametrize(("where", "text"), yaml_examples(), ids=[w for w, _ in yaml_examples()])
def test_every_tree_shown_in_the_docs_is_valid(where: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(text)
    allowlist = ["py_trees.behaviours"]  # what the docs' dotted-path example relies on
    assert TreeLoader(Registry.default(import_allowlist=allowlist, plugins=False)).check(path) == [], where


def test_docs_show_enough_examples() -> None:
    assert len(yaml_examples()) >= 8


def test_node_reference_is_up_to_date() -> None:
    expected = node_reference(Registry.default(plugins=False))
    assert (ROOT / "docs" / "nodes.md").read_text() == expected, \
        "regenerate: python -m vla_bt.tree.reference > docs/nodes.md"


def test_shipped_schema_is_up_to_date() -> None:
    shipped = json.loads((ROOT / "vla_bt" / "schema" / "tree.schema.json").read_text())
    assert shipped == tree_schema(Registry.default(plugins=False)), \
        "regenerate vla_bt/schema/tree.schema.json (see docs/yaml-reference.md)"


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start, re.S)
    assert len(commands) == 2, "Quick start has exactly two commands"
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci.splitlines()


def test_readme_demo_command_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    demo = re.findall(r"```bash\n(.*?)\n```", readme.split("## Quick start", 1)[1], re.S)[0]
    args = demo.split("&&", 1)[1].split()
    assert args[0] == ".venv/bin/vla-bt"
    quoted = re.findall(r'"([^"]*)"', demo)
    argv = [a for a in args[1:] if not a.startswith('"') and not a.endswith('"')]
    argv = argv[:argv.index("--say") + 1] + quoted if "--say" in argv else argv
    result = subprocess.run([sys.executable, "-m", "vla_bt", *argv, "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "SUCCESS"


def test_every_relative_link_in_the_docs_exists() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_every_example_tree_is_valid() -> None:
    trees = sorted((ROOT / "trees").glob("*.yaml"))
    assert trees
    loader = TreeLoader(Registry.default(plugins=False))
    for tree in trees:
        assert loader.check(tree) == [], tree.name


def test_tutorial_error_position_is_real(tmp_path: Path) -> None:
    tutorial = (ROOT / "docs" / "tutorial.md").read_text()
    first = yaml_examples()
    text = next(t for w, t in first if w.startswith("tutorial.md"))
    path = tmp_path / "my_first.yaml"
    path.write_text(text.replace("type: Listen", "type: Listn"))
    (diagnostic,) = TreeLoader(Registry.default(plugins=False)).check(path)
    shown = re.search(r"^my_first\.yaml:(\d+):(\d+): (.*)$", tutorial, re.M)
    assert shown is not None
    assert (diagnostic.mark.line, diagnostic.mark.col) == (int(shown.group(1)), int(shown.group(2)))
    assert diagnostic.message == shown.group(3)
