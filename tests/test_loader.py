"""YAML task trees (DESIGN §5): what loads, what it builds, and how bad trees are refused.

Positions are asserted exactly (``FILE:LINE:COL``, 1-based). They are computed
from the YAML text with ``at()`` (the position of a piece of text in the file),
independently of the loader, so a test fails when the loader points anywhere
else.
"""

from __future__ import annotations

import operator
import sys
import textwrap
from pathlib import Path

import py_trees
import pytest

import vla_bt.tree.registry as registry_module
from vla_bt import blackboard as keys
from vla_bt.guards import Guard
from vla_bt.leaves import Ask, Confirm, ExecutePlan, Grasp, Listen, Navigate, ParseIntent, Say
from vla_bt.tree import BlackboardRef, Diagnostic, LoadedTree, Mark, Registry, TreeError, TreeLoader, load_tree

Status = py_trees.common.Status
Blackboard = py_trees.blackboard.Blackboard

HERE = Path(__file__).parent
TREES = HERE / "trees"
REPO = HERE.parent


# -- helpers -------------------------------------------------------------------


def write(directory: Path, name: str, text: str) -> Path:
    """Write a dedented YAML file (creating sub-directories) and return its path."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def at(path: Path, needle: str, nth: int = 1) -> Mark:
    """The 1-based position of the ``nth`` occurrence of ``needle`` in ``path``."""
    text = path.read_text(encoding="utf-8")
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return Mark(str(path), line, col)


def registry(*allowlist: str) -> Registry:
    return Registry.default(import_allowlist=allowlist, plugins=False)


def load(path: Path, *allowlist: str) -> LoadedTree:
    return TreeLoader(registry(*allowlist)).load(str(path))


def refused(path: Path, *allowlist: str) -> list[Diagnostic]:
    """Load a tree that must be refused; return its diagnostics."""
    with pytest.raises(TreeError) as info:
        load(path, *allowlist)
    diagnostics = info.value.diagnostics
    assert diagnostics, "a TreeError must carry at least one diagnostic"
    return diagnostics


def only(diagnostics: list[Diagnostic]) -> Diagnostic:
    assert len(diagnostics) == 1, "\n".join(map(str, diagnostics))
    return diagnostics[0]


def find(diagnostics: list[Diagnostic], fragment: str) -> Diagnostic:
    """The one diagnostic whose message contains ``fragment``."""
    hits = [d for d in diagnostics if fragment in d.message]
    assert len(hits) == 1, f"{fragment!r} in:\n" + "\n".join(map(str, diagnostics))
    return hits[0]


def node(root: py_trees.behaviour.Behaviour, name: str) -> py_trees.behaviour.Behaviour:
    """The one behaviour called ``name`` in the tree under ``root``."""
    hits = [b for b in root.iterate() if b.name == name]
    assert len(hits) == 1, f"{name!r}: {[b.name for b in root.iterate()]}"
    return hits[0]


def last_turn() -> dict:
    history = Blackboard.get(keys.DIALOGUE_HISTORY)
    return history[-1]


# -- every construct of §5 builds a real py_trees tree --------------------------


def test_design_section5_example_builds_the_tree_it_describes():
    loaded = load(TREES / "valid" / "design_example.yaml")

    assert isinstance(loaded.tree, py_trees.trees.BehaviourTree)
    root = loaded.root
    assert root is loaded.tree.root
    assert isinstance(root, py_trees.composites.Sequence)
    assert (root.name, root.memory) == ("Fetch", True)
    listen, guard = root.children
    assert isinstance(listen, Listen) and listen.name == "Listen"
    assert isinstance(guard, Guard)
    assert guard.params["conditions"] == ["estop_released", {"battery_above": 0.2}]
    assert guard.params["on_trip"] == "fail"
    parallel = guard.decorated
    assert isinstance(parallel, py_trees.composites.Parallel)
    assert isinstance(parallel.policy, py_trees.common.ParallelPolicy.SuccessOnAll)
    assert [type(c) for c in parallel.children] == [Ask, ParseIntent, ExecutePlan]
    assert [c.name for c in parallel.children] == ["Ask", "ParseIntent", "ExecutePlan"]

    document = loaded.document
    assert document.name == "fetch_object"
    assert document.description == "Listen for an instruction and carry it out."
    assert document.blackboard == {"/robot/max_speed": 0.5}
    assert list(document.subtrees) == ["confirm_then_grasp"]
    assert document.subtrees["confirm_then_grasp"].params == ["object"]


def test_shipped_example_tree_loads():
    loaded = load(REPO / "trees" / "fetch_object.yaml")
    assert loaded.root.name == "Fetch"
    assert loaded.document.name == "fetch_object"


def test_document_name_defaults_to_file_stem_and_description_to_empty(tmp_path):
    path = write(tmp_path, "wave_hello.yaml", """
        version: 1
        root: {type: Success}
    """)
    loaded = load(path)
    assert (loaded.document.name, loaded.document.description) == ("wave_hello", "")
    assert isinstance(loaded.root, py_trees.behaviours.Success)
    assert loaded.root.name == "Success"  # name defaults to the type


def test_apply_blackboard_writes_initial_values_only_when_asked(tmp_path):
    path = write(tmp_path, "bb.yaml", """
        version: 1
        blackboard:
          /robot/max_speed: 0.5
          /plan/done: false
          /perception/objects: [{id: cup_red, pose: [1.0, 2.0, 0.0]}]
        root: {type: Success}
    """)
    loaded = load(path)
    assert not Blackboard.exists("/robot/max_speed")  # loading alone writes nothing

    loaded.apply_blackboard()

    assert Blackboard.get("/robot/max_speed") == 0.5
    assert Blackboard.get("/plan/done") is False
    assert Blackboard.get("/perception/objects") == [{"id": "cup_red", "pose": [1.0, 2.0, 0.0]}]


def test_initial_blackboard_values_are_visible_to_the_ticked_tree(tmp_path):
    path = write(tmp_path, "bb.yaml", """
        version: 1
        blackboard:
          /robot/battery: 0.9
        root:
          type: CheckBlackboardVariableValue
          check: {variable: /robot/battery, operator: ">", value: 0.2}
    """)
    loaded = load(path)
    loaded.apply_blackboard()
    loaded.tree.tick()
    assert loaded.root.status == Status.SUCCESS


def test_partial_placeholder_is_string_interpolation(tmp_path):
    path = write(tmp_path, "sub.yaml", """
        version: 1
        subtrees:
          confirm_then_grasp:
            params: [object]
            root:
              type: Sequence
              memory: true
              children:
                - {type: Confirm, question: "Shall I pick up ${object}?"}
                - {type: Grasp, object: "${object}"}
        root: {type: Subtree, ref: confirm_then_grasp, with: {object: red cup}}
    """)
    root = load(path).root
    assert isinstance(root, py_trees.composites.Sequence) and root.memory is True
    confirm, grasp = root.children
    assert isinstance(confirm, Confirm) and isinstance(grasp, Grasp)
    assert confirm.params["question"] == "Shall I pick up red cup?"
    assert grasp.params["object"] == "red cup"


def test_whole_value_placeholder_keeps_the_values_type(tmp_path):
    path = write(tmp_path, "sub.yaml", """
        version: 1
        subtrees:
          go:
            params: [where, secs, count, threshold]
            root:
              type: Timeout
              duration: "${secs}"
              child:
                type: Retry
                num_failures: "${count}"
                child:
                  type: Sequence
                  memory: true
                  children:
                    - {type: Navigate, target: "${where}"}
                    - type: CheckBlackboardVariableValue
                      check: {variable: /robot/battery, operator: ">=", value: "${threshold}"}
                    - {type: Say, text: "going to ${where} within ${secs} s"}
        root: {type: Subtree, ref: go, with: {where: [1, 2, 0.5], secs: 2, count: 3, threshold: 0.25}}
    """)
    root = load(path).root
    assert isinstance(root, py_trees.decorators.Timeout)
    assert root.duration == 2.0 and isinstance(root.duration, float)  # converted for Timeout
    retry = root.decorated
    assert retry.num_failures == 3 and isinstance(retry.num_failures, int)
    navigate, check, say = retry.decorated.children
    assert navigate.params["target"] == [1, 2, 0.5]
    assert check.check.value_generator() == 0.25
    assert say.params["text"] == "going to [1, 2, 0.5] within 2 s"


def test_subtree_name_override_and_default_name(tmp_path):
    path = write(tmp_path, "names.yaml", """
        version: 1
        subtrees:
          greet:
            params: [who]
            root: {type: Say, text: "hello ${who}"}
        root:
          type: Sequence
          memory: true
          children:
            - {type: Subtree, ref: greet, with: {who: Alice}, name: Greet Alice}
            - {type: Subtree, ref: greet, with: {who: Bob}, name: "Greet ${who}"}
            - {type: Subtree, ref: greet, with: {who: Carol}}
    """)
    with pytest.raises(TreeError) as info:  # ${who} is not a parameter of the main tree
        load(path)
    assert only(info.value.diagnostics).mark == at(path, '"Greet ${who}"')

    path.write_text(path.read_text().replace('name: "Greet ${who}"', "name: Greet Bob"))
    root = load(path).root
    assert [c.name for c in root.children] == ["Greet Alice", "Greet Bob", "Say"]
    assert [c.params["text"] for c in root.children] == ["hello Alice", "hello Bob", "hello Carol"]


def test_same_subtree_used_twice_builds_independent_behaviours(tmp_path):
    path = write(tmp_path, "twice.yaml", """
        version: 1
        subtrees:
          go: {params: [to], root: {type: Navigate, target: "${to}"}}
        root:
          type: Sequence
          memory: true
          children:
            - {type: Subtree, ref: go, with: {to: kitchen}, name: To kitchen}
            - {type: Subtree, ref: go, with: {to: dock}, name: To dock}
    """)
    root = load(path).root
    first, second = root.children
    assert first is not second
    assert first.parent is root and second.parent is root
    assert (first.params["target"], second.params["target"]) == ("kitchen", "dock")


def test_nested_subtrees_pass_params_down(tmp_path):
    path = write(tmp_path, "nested.yaml", """
        version: 1
        subtrees:
          outer:
            params: [obj, place]
            root:
              type: Sequence
              name: "Fetch ${obj}"
              memory: true
              children:
                - {type: Subtree, ref: middle, with: {thing: "${obj}", target: "${place}"}}
          middle:
            params: [thing, target]
            root:
              type: Sequence
              memory: true
              children:
                - {type: Navigate, target: "${target}"}
                - {type: Subtree, ref: inner, with: {what: "${thing}"}}
          inner:
            params: [what]
            root: {type: Grasp, object: "the ${what}"}
        root: {type: Subtree, ref: outer, with: {obj: cup, place: [4.0, 2.0, 0.0]}}
    """)
    root = load(path).root
    assert root.name == "Fetch cup"
    (middle,) = root.children
    navigate, grasp = middle.children
    assert isinstance(navigate, Navigate) and navigate.params["target"] == [4.0, 2.0, 0.0]
    assert isinstance(grasp, Grasp) and grasp.params["object"] == "the cup"


def test_includes_string_list_and_nested_from_a_subdirectory(tmp_path, monkeypatch):
    # The working directory must not matter: includes are relative to the including file.
    monkeypatch.chdir(tmp_path)
    loaded = load(TREES / "valid" / "with_includes.yaml")

    assert set(loaded.document.subtrees) == {"say_twice", "fetch", "careful_grasp", "local_wave"}
    assert loaded.document.subtrees["careful_grasp"].mark == at(
        TREES / "valid" / "lib" / "grippers" / "grip.yaml", "careful_grasp")
    say_twice, fetch, wave = loaded.root.children
    assert [c.params["text"] for c in say_twice.children] == ["hello", "hello, again"]
    navigate, retry = fetch.children
    assert navigate.params["target"] == "kitchen"
    assert isinstance(retry, py_trees.decorators.Retry)
    assert (retry.name, retry.num_failures) == ("Grasp red cup", 3)
    assert isinstance(retry.decorated, Grasp) and retry.decorated.params["object"] == "red cup"
    assert isinstance(wave, Say) and wave.params["text"] == "bye"


def test_include_as_a_single_string(tmp_path):
    write(tmp_path, "parts/greet.yaml", """
        version: 1
        subtrees:
          greet: {root: {type: Say, text: hi}}
    """)
    path = write(tmp_path, "main.yaml", """
        version: 1
        subtrees:
          include: parts/greet.yaml
        root: {type: Subtree, ref: greet}
    """)
    root = load(path).root
    assert isinstance(root, Say) and root.params["text"] == "hi"


def test_blackboard_remapped_say_text_is_read_when_ticked(tmp_path):
    path = write(tmp_path, "say.yaml", """
        version: 1
        root: {type: Say, text: {key: /greeting}}
    """)
    loaded = load(path)
    say = loaded.root
    assert say.params["text"] == BlackboardRef("/greeting")

    Blackboard.set("/greeting", "hello there")  # set after building: read at run time
    loaded.tree.tick()
    assert say.status == Status.SUCCESS
    assert (last_turn()["role"], last_turn()["text"]) == ("robot", "hello there")

    Blackboard.set("/greeting", "and again")
    loaded.tree.tick()
    assert [t["text"] for t in Blackboard.get(keys.DIALOGUE_HISTORY)] == ["hello there", "and again"]


def test_blackboard_remapped_param_that_is_unset_fails_with_reason(tmp_path):
    path = write(tmp_path, "say.yaml", """
        version: 1
        root: {type: Say, text: {key: /greeting}}
    """)
    loaded = load(path)
    loaded.tree.tick()
    assert loaded.root.status == Status.FAILURE
    assert "/greeting" in loaded.root.feedback_message
    assert not Blackboard.exists(keys.DIALOGUE_HISTORY)


def test_blackboard_remapping_passed_through_a_subtree_parameter(tmp_path):
    path = write(tmp_path, "say.yaml", """
        version: 1
        subtrees:
          announce: {params: [what], root: {type: Say, text: "${what}"}}
        root: {type: Subtree, ref: announce, with: {what: {key: /llm/answer}}}
    """)
    loaded = load(path)
    Blackboard.set("/llm/answer", "the cup is in the kitchen")
    loaded.tree.tick()
    assert last_turn()["text"] == "the cup is in the kitchen"


@pytest.mark.parametrize(("synchronise", "second_tick"), [
    ("", Status.SUCCESS),                     # default: synchronise, a succeeded child is not re-ticked
    ("synchronise: true", Status.SUCCESS),
    ("synchronise: false", Status.FAILURE),   # re-ticked, the queue's second status is FAILURE
])
def test_parallel_success_on_all_with_synchronise(tmp_path, synchronise, second_tick):
    path = write(tmp_path, "par.yaml", f"""
        version: 1
        root:
          type: Parallel
          policy: success_on_all
          {synchronise}
          children:
            - {{type: TickCounter, duration: 1, completion_status: SUCCESS}}
            - {{type: StatusQueue, queue: [SUCCESS], eventually: FAILURE}}
    """)
    loaded = load(path)
    assert isinstance(loaded.root.policy, py_trees.common.ParallelPolicy.SuccessOnAll)
    assert loaded.root.policy.synchronise is (second_tick == Status.SUCCESS)
    loaded.tree.tick()
    assert loaded.root.status == Status.RUNNING
    loaded.tree.tick()
    assert loaded.root.status == second_tick


def test_parallel_success_on_one(tmp_path):
    path = write(tmp_path, "par.yaml", """
        version: 1
        root:
          type: Parallel
          policy: success_on_one
          children: [{type: Running}, {type: Success}]
    """)
    loaded = load(path)
    assert isinstance(loaded.root.policy, py_trees.common.ParallelPolicy.SuccessOnOne)
    loaded.tree.tick()
    assert loaded.root.status == Status.SUCCESS


def test_py_trees_builtins_get_converted_params(tmp_path):
    path = write(tmp_path, "builtins.yaml", """
        version: 1
        root:
          type: Sequence
          memory: false
          children:
            - {type: Timeout, duration: 5, child: {type: Success}}
            - {type: Timeout, name: Default timeout, child: {type: Success}}
            - {type: Retry, num_failures: 2, child: {type: Failure}}
            - {type: TickCounter, duration: 2, completion_status: SUCCESS}
            - {type: StatusQueue, queue: [RUNNING, SUCCESS], eventually: null}
            - {type: StatusQueue, name: Then fail, queue: [SUCCESS], eventually: FAILURE}
            - type: CheckBlackboardVariableValue
              check: {variable: /robot/battery, operator: ">=", value: 0.2}
            - {type: OneShot, policy: ON_COMPLETION, child: {type: Success}}
    """)
    root = load(path).root
    timeout, default_timeout, retry, counter, queue, then_fail, check, oneshot = root.children

    assert isinstance(timeout, py_trees.decorators.Timeout)
    assert timeout.duration == 5.0 and isinstance(timeout.duration, float)
    assert default_timeout.duration == 5.0
    assert isinstance(retry, py_trees.decorators.Retry) and retry.num_failures == 2
    assert isinstance(counter, py_trees.behaviours.TickCounter)
    assert counter.duration == 2 and counter.completion_status is Status.SUCCESS
    assert isinstance(queue, py_trees.behaviours.StatusQueue)
    assert queue.queue == [Status.RUNNING, Status.SUCCESS] and queue.eventually is None
    assert then_fail.eventually is Status.FAILURE
    assert isinstance(check, py_trees.behaviours.CheckBlackboardVariableValue)
    assert check.check.variable == "/robot/battery"
    assert check.check.operator is operator.ge
    assert check.check.value_generator() == 0.2
    assert isinstance(oneshot, py_trees.decorators.OneShot)
    assert oneshot.policy is py_trees.common.OneShotPolicy.ON_COMPLETION


def test_py_trees_builtins_tick_as_configured(tmp_path):
    path = write(tmp_path, "builtins.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - type: CheckBlackboardVariableValue
              check: {variable: /robot/battery, operator: ">=", value: 0.2}
            - {type: TickCounter, duration: 1, completion_status: SUCCESS}
            - {type: Retry, num_failures: 2, child: {type: StatusQueue, queue: [FAILURE], eventually: SUCCESS}}
    """)
    loaded = load(path)
    Blackboard.set("/robot/battery", 0.1)
    loaded.tree.tick()
    assert loaded.root.status == Status.FAILURE  # battery below the threshold

    Blackboard.set("/robot/battery", 0.5)
    statuses = []
    for _ in range(3):
        loaded.tree.tick()
        statuses.append(loaded.root.status)
    # tick 1: counter running; tick 2: counter done, retry's child fails once (RUNNING); tick 3: succeeds
    assert statuses == [Status.RUNNING, Status.RUNNING, Status.SUCCESS]


def test_dotted_import_path_on_the_allowlist(tmp_path):
    path = write(tmp_path, "dotted.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - {type: py_trees.behaviours.Success}
            - {type: py_trees.behaviours.TickCounter, name: Count, duration: 3, completion_status: FAILURE}
    """)
    loaded = load(path, "py_trees.behaviours")
    success, counter = loaded.root.children
    assert type(success) is py_trees.behaviours.Success and success.name == "Success"
    assert type(counter) is py_trees.behaviours.TickCounter and counter.name == "Count"
    assert (counter.duration, counter.completion_status) == (3, Status.FAILURE)


def test_dotted_import_of_a_project_leaf_from_an_allowlisted_package(tmp_path):
    path = write(tmp_path, "dotted.yaml", """
        version: 1
        root: {type: vla_bt.leaves.dialogue.Say, text: {key: /greeting}}
    """)
    loaded = load(path, "vla_bt.leaves")  # a submodule of an allowlisted package
    assert type(loaded.root) is Say and loaded.root.name == "Say"
    Blackboard.set("/greeting", "hi")
    loaded.tree.tick()
    assert last_turn()["text"] == "hi"


def test_load_tree_and_check(tmp_path):
    good = write(tmp_path, "good.yaml", "version: 1\nroot: {type: Success}\n")
    bad = write(tmp_path, "bad.yaml", "version: 1\nroot: {type: Sucess}\n")
    assert isinstance(load_tree(good), LoadedTree)
    loader = TreeLoader(registry())
    assert loader.check(good) == []
    (diagnostic,) = loader.check(bad)
    assert diagnostic.mark == at(bad, "Sucess")
    assert loader.check(good) == []  # errors of an earlier file do not stick


# -- malformed trees: refused with FILE:LINE:COL and a helpful message -----------


def test_unknown_node_type_suggests_the_nearest_name(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - type: Listen
            - {type: Navigat, target: kitchen}
    """)
    with pytest.raises(TreeError) as info:
        load(path)
    diagnostic = only(info.value.diagnostics)
    assert diagnostic.mark == at(path, "Navigat")
    assert diagnostic.message == "unknown node type 'Navigat' (did you mean 'Navigate'?)"
    # the DESIGN §5 rendering: one "FILE:LINE:COL: message" per line
    assert str(info.value) == f"{path}:7:14: unknown node type 'Navigat' (did you mean 'Navigate'?)"


def test_unknown_node_type_without_a_close_name_points_to_the_catalogue(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: Xyzzyqq}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "Xyzzyqq")
    assert diagnostic.message.startswith("unknown node type 'Xyzzyqq'")
    assert "did you mean" not in diagnostic.message
    assert "vla-bt nodes" in diagnostic.message


def test_unknown_parameter_suggests_the_nearest_parameter(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root: {type: Say, txt: hello}
    """)
    diagnostics = refused(path)
    unknown = find(diagnostics, "unknown parameter")
    assert unknown.mark == at(path, "txt")
    assert unknown.message == "unknown parameter 'txt' for Say (did you mean 'text'?)"
    missing = find(diagnostics, "needs parameter")
    assert missing.mark == at(path, "{type: Say")
    assert missing.message == "Say needs parameter 'text' (string)"
    assert len(diagnostics) == 2


def test_unknown_parameter_of_a_node_without_parameters_says_so(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: Success, colour: red}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "colour")
    assert diagnostic.message == "unknown parameter 'colour' for Success (parameters: none)"


def test_mistyped_boolean_parameter(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequence
          memory: yes please
          children: [{type: Success}]
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "yes please")
    assert diagnostic.message == "parameter 'memory' of Sequence: expected boolean, got string 'yes please'"


def test_mistyped_project_leaf_parameter(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root: {type: Navigate, target: [1, 2], speed: -1}
    """)
    diagnostics = refused(path)
    assert [d.mark for d in diagnostics] == [at(path, "[1, 2]"), at(path, "-1")]
    assert diagnostics[0].message.startswith("parameter 'target' of Navigate:")
    assert diagnostics[1].message.startswith("parameter 'speed' of Navigate:")
    assert "-1" in diagnostics[1].message


# Each of these values fails the parameter's schema. The loader must report it
# (position of the bad value, the parameter, what is wrong) instead of feeding
# it to the parameter's conversion and crashing with a raw Python exception.
CONVERTED_PARAM_CASES = {
    "timeout_duration_five": (
        "{type: Timeout, duration: five, child: {type: Success}}", "five",
        "parameter 'duration' of Timeout: expected number, got string 'five'"),
    "tick_counter_status_lowercase": (
        "{type: TickCounter, duration: 2, completion_status: success}", "success",
        "parameter 'completion_status' of TickCounter: 'success' is not one of"),
    "status_queue_misspelt_item": (
        "{type: StatusQueue, queue: [SUCCESS, SUCESS], eventually: null}", "SUCESS",
        "parameter 'queue' of StatusQueue: 'SUCESS' is not one of"),
    "comparison_unknown_operator": (
        "{type: CheckBlackboardVariableValue, check: {variable: /x, operator: '=~', value: 1}}", "'=~'",
        "parameter 'check' of CheckBlackboardVariableValue: '=~' is not one of"),
    "comparison_missing_value": (
        "{type: CheckBlackboardVariableValue, check: {variable: /x, operator: '=='}}", "{variable",
        "parameter 'check' of CheckBlackboardVariableValue: 'value' is a required property"),
    "oneshot_unknown_policy": (
        "{type: OneShot, policy: ON_COMPLETE, child: {type: Success}}", "ON_COMPLETE",
        "parameter 'policy' of OneShot: 'ON_COMPLETE' is not one of"),
}


@pytest.mark.parametrize("case", CONVERTED_PARAM_CASES)
def test_mistyped_converted_builtin_param_is_reported_not_crashed(tmp_path, case):
    node_yaml, bad, message = CONVERTED_PARAM_CASES[case]
    path = write(tmp_path, "x.yaml", f"version: 1\nroot: {node_yaml}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, bad)
    assert diagnostic.message.startswith(message), diagnostic.message


def test_mistyped_converted_param_does_not_hide_the_other_errors(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - {type: Timeout, duration: five, child: {type: Success}}
            - {type: Navigat}
    """)
    diagnostics = refused(path)
    assert [d.mark for d in diagnostics] == [at(path, "five"), at(path, "Navigat")]


def test_mistyped_value_from_a_subtree_parameter_names_the_use_site(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          announce:
            params: [what]
            root: {type: Say, text: "${what}"}
        root:
          type: Sequence
          memory: true
          children:
            - {type: Subtree, ref: announce, with: {what: hello}}
            - {type: Subtree, ref: announce, with: {what: 12}}
    """)
    diagnostic = only(refused(path))
    use_site = at(path, "{type: Subtree", nth=2)
    assert diagnostic.mark == at(path, '"${what}"')
    assert diagnostic.message == ("parameter 'text' of Say: expected string, got integer 12 "
                                  f"(from a subtree parameter; subtree used at {use_site})")


def test_missing_required_parameter(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - type: Navigate
              speed: 0.3
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "type: Navigate")
    assert diagnostic.message == "Navigate needs parameter 'target' (string or list of number)"


def test_missing_required_parameter_of_a_composite(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: Selector, children: [{type: Success}]}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "{type: Selector")
    assert diagnostic.message == "Selector needs parameter 'memory' (boolean)"


def test_decorator_without_child(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Inverter
          name: Not
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "type: Inverter")
    assert diagnostic.message == "decorator 'Inverter' has no 'child' (it decorates exactly one node)"


def test_decorator_with_children(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Timeout
          duration: 2
          children: [{type: Success}]
    """)
    diagnostics = refused(path)
    wrong = find(diagnostics, "is a decorator")
    assert wrong.mark == at(path, "children")
    assert wrong.message == "'Timeout' is a decorator: it takes one node in 'child', not 'children'"
    no_child = find(diagnostics, "has no 'child'")
    assert no_child.mark == at(path, "type: Timeout")
    assert len(diagnostics) == 2


def test_leaf_with_children(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Say
          text: hi
          children: [{type: Success}]
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "children")
    assert diagnostic.message == "'Say' is a leaf: it takes no children, not 'children'"


def test_leaf_with_child(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: Success, child: {type: Success}}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "child")
    assert diagnostic.message == "'Success' is a leaf: it takes no children, not 'child'"


def test_composite_whose_children_is_a_mapping(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            type: Success
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "type: Success")
    assert diagnostic.message == "'children' of composite 'Sequence' must be a list of nodes, got a mapping"


def test_composite_without_children(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Selector
          memory: false
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "type: Selector")
    assert diagnostic.message == "'children' of composite 'Selector' must be a list of nodes, got nothing"


def test_composite_with_child_instead_of_children(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          child: {type: Success}
    """)
    diagnostics = refused(path)
    wrong = find(diagnostics, "is a composite")
    assert wrong.mark == at(path, "child")
    assert wrong.message == "'Sequence' is a composite: it takes a list of nodes in 'children', not 'child'"
    assert find(diagnostics, "must be a list of nodes").mark == at(path, "type: Sequence")


def test_child_that_is_not_a_node(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - Success
            - Sequence:
            - {type: 3}
    """)
    diagnostics = refused(path)
    assert [(d.mark, d.message) for d in diagnostics] == [
        (at(path, "Success"), "expected a node (a mapping with 'type'), got the string 'Success'"),
        (at(path, "Sequence:"),
         "node has no 'type' (every node is a mapping with 'type'; did you mean 'type: Sequence'?)"),
        (at(path, "3}"), "'type' must be a node type name, got a number"),
    ]


def test_empty_file(tmp_path):
    path = write(tmp_path, "x.yaml", "")
    diagnostic = only(refused(path))
    assert diagnostic.mark == Mark(str(path), 1, 1)
    assert diagnostic.message == "empty file: expected a tree document with 'version: 1' and 'root'"


def test_file_with_only_comments_is_empty(tmp_path):
    path = write(tmp_path, "x.yaml", "# nothing here yet\n")
    assert only(refused(path)).message.startswith("empty file")


@pytest.mark.parametrize("text", ["- version: 1\n- root: {type: Success}\n", "just a sentence\n"])
def test_top_level_that_is_not_a_mapping(tmp_path, text):
    path = write(tmp_path, "x.yaml", text)
    diagnostic = only(refused(path))
    assert diagnostic.mark == Mark(str(path), 1, 1)
    assert diagnostic.message == "expected a mapping with 'version: 1' and 'root' at the top level"


@pytest.mark.parametrize(("version", "shown"), [("2", "2"), ("'1'", "'1'"), ("true", "True"), ("null", "None")])
def test_wrong_version(tmp_path, version, shown):
    path = write(tmp_path, "x.yaml", f"name: t\nversion: {version}\nroot: {{type: Success}}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == Mark(str(path), 2, 10)
    assert diagnostic.message == f"unsupported version {shown} (expected 1)"


def test_missing_version(tmp_path):
    path = write(tmp_path, "x.yaml", "# a tree\nname: t\nroot: {type: Success}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == Mark(str(path), 2, 1)  # the document mapping
    assert diagnostic.message == "missing 'version' (expected 'version: 1')"


def test_missing_root(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nname: t\n")
    diagnostics = refused(path)
    assert find(diagnostics, "missing 'root'").mark == Mark(str(path), 1, 1)
    assert all(d.mark == Mark(str(path), 1, 1) for d in diagnostics)


def test_unknown_top_level_key_suggests_the_nearest(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        descripton: typo
        colour: red
        root: {type: Success}
    """)
    diagnostics = refused(path)
    assert [(d.mark, d.message) for d in diagnostics] == [
        (at(path, "descripton"), "unknown top-level key 'descripton' (did you mean 'description'?)"),
        (at(path, "colour"), "unknown top-level key 'colour' "
                             "(expected one of version, name, description, blackboard, subtrees, root)"),
    ]


def test_header_fields_of_the_wrong_type(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        name: [a, b]
        description: 3
        blackboard: [1, 2]
        root: {type: Success}
    """)
    diagnostics = refused(path)
    assert [(d.mark, d.message) for d in diagnostics] == [
        (at(path, "[a, b]"), "'name' must be a string"),
        (at(path, "3"), "'description' must be a string"),
        (at(path, "[1, 2]"), "'blackboard' must be a mapping of /absolute/keys to values"),
    ]


def test_yaml_syntax_error_points_at_the_problem(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Success
           name: oops
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, ": oops")
    assert diagnostic.message == "YAML syntax error: mapping values are not allowed here"


def test_yaml_tab_indentation_points_at_the_tab(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot:\n\ttype: Success\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == Mark(str(path), 3, 1)
    assert diagnostic.message.startswith("YAML syntax error:")
    assert "found character '\\t'" in diagnostic.message


def test_yaml_unclosed_flow_mapping_is_a_syntax_error(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: Success\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark.file == str(path)
    assert diagnostic.message.startswith("YAML syntax error:")
    assert "expected ',' or '}'" in diagnostic.message


def test_two_documents_in_one_file_say_only_one_is_expected(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: Success}\n---\nversion: 1\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "---")
    # PyYAML's problem text alone ("but found another document") does not say what was expected
    assert "single document" in diagnostic.message, diagnostic.message


def test_duplicate_key(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          memory: false
          children: []
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "memory", nth=2)
    assert diagnostic.message == "duplicate key 'memory' (first defined at line 4)"


def test_recursive_yaml_alias_is_refused_not_crashed(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: &loop {type: Sequence, memory: true, children: [*loop]}\n")
    with pytest.raises(TreeError) as info:  # not RecursionError
        load(path)
    assert info.value.diagnostics[0].mark.file == str(path)


def test_missing_include_names_the_path(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          include: [parts/missing.yaml]
        root: {type: Success}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "parts/missing.yaml")
    assert diagnostic.message == (f"included file 'parts/missing.yaml' not found "
                                  f"(looked for {tmp_path / 'parts' / 'missing.yaml'})")


def test_include_of_something_that_is_not_a_path(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          include: {file: a.yaml}
        root: {type: Success}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "{file")
    assert diagnostic.message == "'include' takes a file path or a list of file paths"


def test_include_cycle_between_two_files(tmp_path):
    a = write(tmp_path, "a.yaml", """
        version: 1
        subtrees:
          include: lib/b.yaml
        root: {type: Success}
    """)
    b = write(tmp_path, "lib/b.yaml", """
        version: 1
        subtrees:
          include: ../a.yaml
    """)
    diagnostic = only(refused(a))
    assert diagnostic.mark == at(b, "../a.yaml")
    assert diagnostic.message == f"include cycle: {a} → {b} → {a}"


def test_file_including_itself(tmp_path):
    path = write(tmp_path, "self.yaml", """
        version: 1
        subtrees:
          include: ./self.yaml
        root: {type: Success}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "./self.yaml")
    assert diagnostic.message == f"include cycle: {path} → {path}"


def test_diamond_include_defines_the_shared_subtrees_once(tmp_path):
    write(tmp_path, "common.yaml", "version: 1\nsubtrees:\n  ok: {root: {type: Success}}\n")
    write(tmp_path, "left.yaml", "version: 1\nsubtrees:\n  include: common.yaml\n")
    write(tmp_path, "right.yaml", "version: 1\nsubtrees:\n  include: common.yaml\n")
    path = write(tmp_path, "main.yaml", """
        version: 1
        subtrees:
          include: [left.yaml, right.yaml]
        root: {type: Subtree, ref: ok}
    """)
    # One definition in one file, reached twice: not a redefinition
    # ("subtree 'ok' is already defined at common.yaml:3:3", pointing at itself).
    loaded = load(path)
    assert isinstance(loaded.root, py_trees.behaviours.Success)


def test_subtree_defined_twice_across_files(tmp_path):
    lib = write(tmp_path, "lib.yaml", "version: 1\nsubtrees:\n  greet: {root: {type: Success}}\n")
    path = write(tmp_path, "main.yaml", """
        version: 1
        subtrees:
          include: lib.yaml
          greet: {root: {type: Failure}}
        root: {type: Subtree, ref: greet}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "greet:")
    assert diagnostic.message == f"subtree 'greet' is already defined at {at(lib, 'greet')}"


def test_error_inside_an_included_file_names_that_file():
    main = TREES / "invalid" / "include_broken.yaml"
    lib = TREES / "invalid" / "lib" / "broken.yaml"
    diagnostics = refused(main)
    assert [(d.mark, d.message) for d in diagnostics] == [
        (at(lib, "Navigat"), "unknown node type 'Navigat' (did you mean 'Navigate'?)"),
        (at(lib, "{type: Grasp"), "Grasp needs parameter 'object' (string)"),
        (at(lib, "objet"), "unknown parameter 'objet' for Grasp (did you mean 'object'?)"),
    ]
    assert all(str(d).startswith(f"{lib}:") for d in diagnostics)


def test_version_error_inside_an_included_file(tmp_path):
    lib = write(tmp_path, "lib/skills.yaml", "subtrees:\n  ok: {root: {type: Success}}\n")
    path = write(tmp_path, "main.yaml", """
        version: 1
        subtrees:
          include: lib/skills.yaml
        root: {type: Subtree, ref: ok}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == Mark(str(lib), 1, 1)
    assert diagnostic.message == "missing 'version' (expected 'version: 1')"


def test_syntax_error_inside_an_included_file(tmp_path):
    lib = write(tmp_path, "lib.yaml", "version: 1\nsubtrees:\n  ok:\n    root: {type: Success}\n   params: []\n")
    path = write(tmp_path, "main.yaml", "version: 1\nsubtrees:\n  include: lib.yaml\nroot: {type: Success}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark.file == str(lib)
    assert diagnostic.message.startswith("YAML syntax error:")


def test_subtree_cycle_in_unused_subtrees_is_reported(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          a: {root: {type: Subtree, ref: b}}
          b: {root: {type: Inverter, child: {type: Subtree, ref: a}}}
        root: {type: Success}
    """)
    diagnostics = refused(path)
    # each cycle is reported at the reference that closes it
    assert [(d.mark, d.message) for d in diagnostics] == [
        (at(path, "b}}"), "subtree cycle: b → a → b"),
        (at(path, "a}}}"), "subtree cycle: a → b → a"),
    ]


def test_subtree_cycle_used_from_the_root_reports_only_the_cycle(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          a:
            root:
              type: Sequence
              memory: true
              children: [{type: Subtree, ref: b}]
          b: {root: {type: Subtree, ref: a}}
        root: {type: Subtree, ref: a}
    """)
    diagnostics = refused(path)
    # no "cannot create Sequence ...: TypeError: children must be behaviours" noise
    assert all("subtree cycle" in d.message for d in diagnostics), "\n".join(map(str, diagnostics))
    assert [d.mark for d in diagnostics] == [at(path, "b}]"), at(path, "a}}")]


def test_subtree_referencing_itself(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          again: {root: {type: Inverter, child: {type: Subtree, ref: again}}}
        root: {type: Success}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "again}")
    assert diagnostic.message == "subtree cycle: again → again"


def test_unknown_subtree_ref_suggests_the_nearest(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          confirm_then_grasp: {params: [object], root: {type: Grasp, object: "${object}"}}
        root: {type: Subtree, ref: confirm_then_grap, with: {object: cup}}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "confirm_then_grap,")
    assert diagnostic.message == "unknown subtree 'confirm_then_grap' (did you mean 'confirm_then_grasp'?)"


def test_unknown_subtree_ref_without_subtrees(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: Subtree, ref: nope}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "nope")
    assert diagnostic.message == "unknown subtree 'nope' (subtrees: none defined)"


def test_subtree_node_with_unknown_key_and_no_ref(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          grab: {params: [object], root: {type: Grasp, object: "${object}"}}
        root:
          type: Sequence
          memory: true
          children:
            - {type: Subtree, ref: grab, wiht: {object: cup}}
            - {type: Subtree, name: nothing}
    """)
    diagnostics = refused(path)
    assert [(d.mark, d.message) for d in diagnostics] == [
        (at(path, "{type: Subtree, ref: grab"), "subtree 'grab' needs object in 'with'"),
        (at(path, "wiht"), "unknown key 'wiht' for Subtree (did you mean 'with'?)"),
        (at(path, "{type: Subtree, name"), "Subtree needs 'ref': the name of a subtree"),
    ]


def test_missing_and_extra_with_params(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          fetch: {params: [object, place], root: {type: Grasp, object: "${object} at ${place}"}}
        root:
          type: Sequence
          memory: true
          children:
            - {type: Subtree, ref: fetch, with: {object: cup}}
            - {type: Subtree, ref: fetch, with: {object: cup, place: kitchen, colour: red}}
            - {type: Subtree, ref: fetch, with: {objects: cup, place: kitchen}}
            - {type: Subtree, ref: fetch}
    """)
    diagnostics = refused(path)
    assert [(d.mark, d.message) for d in diagnostics] == [
        (at(path, "{type: Subtree", 1), "subtree 'fetch' needs place in 'with'"),
        (at(path, "colour"), "subtree 'fetch' has no parameter 'colour' (params: object, place)"),
        (at(path, "{type: Subtree", 3), "subtree 'fetch' needs object in 'with'"),
        (at(path, "objects"), "subtree 'fetch' has no parameter 'objects' (did you mean 'object'?)"),
        (at(path, "{type: Subtree", 4), "subtree 'fetch' needs object, place in 'with'"),
    ]


def test_unknown_placeholder_in_the_main_tree(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root: {type: Say, text: "hello ${x}"}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, '"hello')
    assert diagnostic.message == "unknown subtree parameter '${x}' in the main tree (declared: none)"


def test_unknown_placeholder_in_a_subtree_suggests_the_declared_one(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          grab:
            params: [object]
            root: {type: Grasp, object: "${objet}"}
        root: {type: Success}
    """)
    diagnostic = only(refused(path))  # reported although the subtree is never used
    assert diagnostic.mark == at(path, '"${objet}"')
    assert diagnostic.message == ("unknown subtree parameter '${objet}' in subtree 'grab' "
                                  "(declared: object) (did you mean 'object'?)")


def test_error_in_an_unused_subtree_is_reported(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          spare:
            root: {type: Sequence, memory: maybe, children: [{type: Success}]}
        root: {type: Success}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "maybe")
    assert diagnostic.message == "parameter 'memory' of Sequence: expected boolean, got string 'maybe'"


def test_blackboard_ref_on_a_builtin_param_is_refused(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Timeout
          duration: {key: /config/timeout}
          child: {type: Success}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "{key")
    assert diagnostic.message == ("parameter 'duration' of Timeout cannot be read from the blackboard "
                                  "at run time (it is fixed when the tree is built)")


def test_guard_conditions_cannot_be_remapped_to_the_blackboard(tmp_path):
    # Safety: what a guard checks is fixed in the tree, never taken from the blackboard.
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Guard
          conditions: {key: /llm/conditions}
          child: {type: Success}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "{key")
    assert diagnostic.message.startswith("parameter 'conditions' of Guard cannot be read from the blackboard")


def test_blackboard_ref_on_a_builtin_param_via_a_subtree_names_the_use_site(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          wait: {params: [secs], root: {type: Timeout, duration: "${secs}", child: {type: Success}}}
        root: {type: Subtree, ref: wait, with: {secs: {key: /t}}}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, '"${secs}"')
    assert diagnostic.message.endswith(f"(from a subtree parameter; subtree used at {at(path, '{type: Subtree')})")


def test_relative_blackboard_key_in_a_parameter(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: Say, text: {key: greeting}}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "{key")
    assert diagnostic.message == "blackboard key 'greeting' must be absolute, e.g. '/robot/max_speed'"


def test_relative_key_in_the_initial_blackboard(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        blackboard:
          /robot/max_speed: 0.5
          robot/battery: 1.0
        root: {type: Success}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "robot/battery")
    assert diagnostic.message == "blackboard key 'robot/battery' must be absolute, e.g. '/robot/max_speed'"


def test_node_name_with_a_colon(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        root: {type: Success, name: "step: one"}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, '"step')
    assert diagnostic.message == "node name 'step: one' may not contain ':' (it breaks Graphviz output)"


def test_subtree_name_with_a_colon(tmp_path):
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          "a:b": {root: {type: Success}}
        root: {type: Success}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, '"a:b"')
    assert diagnostic.message == "subtree name 'a:b' may not contain ':'"


def test_empty_node_name(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: Success, name: ''}\n")
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "''")
    assert diagnostic.message == "'name' must be a non-empty string, got the string ''"


# -- dotted import paths and the allowlist -----------------------------------------


PROBE = "vlabt_import_probe"


@pytest.fixture
def probe_module(tmp_path, monkeypatch):
    """An importable module that records being imported (a file next to it)."""
    directory = tmp_path / "site"
    directory.mkdir()
    (directory / f"{PROBE}.py").write_text(textwrap.dedent("""
        import pathlib

        import py_trees

        pathlib.Path(__file__).with_name("imported.flag").write_text("imported")


        class Probe(py_trees.behaviours.Success):
            pass
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(directory))
    sys.modules.pop(PROBE, None)
    yield directory / "imported.flag"
    sys.modules.pop(PROBE, None)


def test_allowlisted_probe_module_is_imported(tmp_path, probe_module):
    # Control for the next test: loading an allowlisted path does import the module.
    path = write(tmp_path, "x.yaml", f"version: 1\nroot: {{type: {PROBE}.Probe}}\n")
    loaded = load(path, PROBE)
    assert type(loaded.root).__name__ == "Probe" and loaded.root.name == "Probe"
    assert probe_module.exists() and PROBE in sys.modules


@pytest.mark.parametrize("allowlist", [(), ("py_trees.behaviours",), ("vlabt_import",), ("vlabt_import_probe.x",)])
def test_dotted_path_not_on_the_allowlist_is_refused_before_import(tmp_path, probe_module, allowlist):
    path = write(tmp_path, "x.yaml", f"version: 1\nroot: {{type: {PROBE}.Probe}}\n")
    diagnostic = only(refused(path, *allowlist))
    assert diagnostic.mark == at(path, PROBE)
    allowed = ", ".join(allowlist) or "nothing"
    assert diagnostic.message.startswith(
        f"'{PROBE}.Probe' is not on the import allowlist (allowed: {allowed};")
    assert not probe_module.exists(), "the module's code ran"
    assert PROBE not in sys.modules


def test_subprocess_popen_is_refused_by_the_allowlist(tmp_path, monkeypatch):
    imported = []
    monkeypatch.setattr(registry_module.importlib, "import_module",
                        lambda name, *a, **k: imported.append(name))
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: subprocess.Popen, args: [rm, -rf, /]}\n")
    diagnostics = refused(path, "py_trees.behaviours")
    assert find(diagnostics, "allowlist").mark == at(path, "subprocess.Popen")
    assert find(diagnostics, "allowlist").message.startswith(
        "'subprocess.Popen' is not on the import allowlist (allowed: py_trees.behaviours;")
    assert "import_allowlist" in find(diagnostics, "allowlist").message
    assert imported == []


def test_default_registry_allows_no_imports(tmp_path):
    path = write(tmp_path, "x.yaml", "version: 1\nroot: {type: py_trees.behaviours.Success}\n")
    with pytest.raises(TreeError) as info:
        load_tree(path)
    diagnostic = only(info.value.diagnostics)
    assert diagnostic.mark == at(path, "py_trees")
    assert "is not on the import allowlist (allowed: nothing;" in diagnostic.message


@pytest.mark.parametrize(("dotted", "message"), [
    ("py_trees.behaviours.Nope",
     "cannot import 'py_trees.behaviours.Nope': module 'py_trees.behaviours' has no attribute 'Nope'"),
    ("py_trees.behaviours.missing_module.Thing", "cannot import 'py_trees.behaviours.missing_module.Thing':"),
    ("py_trees.behaviours.copy", "'py_trees.behaviours.copy' is not a py_trees.behaviour.Behaviour subclass"),
])
def test_allowlisted_path_that_is_not_a_behaviour(tmp_path, dotted, message):
    path = write(tmp_path, "x.yaml", f"version: 1\nroot: {{type: {dotted}}}\n")
    diagnostic = only(refused(path, "py_trees.behaviours"))
    assert diagnostic.mark == at(path, dotted)
    assert diagnostic.message.startswith(message), diagnostic.message


# -- all errors of a file, in order --------------------------------------------------


def test_file_with_many_errors_reports_all_of_them_sorted_by_position():
    path = TREES / "invalid" / "many_errors.yaml"
    with pytest.raises(TreeError) as info:
        load(path)
    diagnostics = info.value.diagnostics
    expected = [
        (at(path, "nmae"), "unknown top-level key 'nmae' (did you mean 'name'?)"),
        (at(path, "yes please"), "parameter 'memory' of Sequence: expected boolean, got string 'yes please'"),
        (at(path, "Navigat"), "unknown node type 'Navigat' (did you mean 'Navigate'?)"),
        (at(path, "{type: Say, txt"), "Say needs parameter 'text' (string)"),
        (at(path, "txt"), "unknown parameter 'txt' for Say (did you mean 'text'?)"),
        (at(path, "type: Inverter"), "decorator 'Inverter' has no 'child' (it decorates exactly one node)"),
        (at(path, "children: []"), "'Inverter' is a decorator: it takes one node in 'child', not 'children'"),
        (at(path, "nope"), "unknown subtree 'nope' (subtrees: none defined)"),
        (at(path, '"${x}"'), "unknown subtree parameter '${x}' in the main tree (declared: none)"),
        (at(path, '"a:b"'), "node name 'a:b' may not contain ':' (it breaks Graphviz output)"),
        (at(path, "{key: relative"), "blackboard key 'relative/key' must be absolute, e.g. '/robot/max_speed'"),
    ]
    assert [(d.mark, d.message) for d in diagnostics] == expected
    assert diagnostics == sorted(diagnostics)
    assert str(info.value).splitlines() == [f"{m}: {text}" for m, text in expected]


def test_children_of_an_unknown_node_type_are_still_checked(tmp_path):
    # "Validation reports all errors in a file, not just the first" (DESIGN §5):
    # a misspelt composite must not hide the errors of everything below it.
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequnce
          memory: true
          children:
            - {type: Navigat, target: kitchen}
    """)
    diagnostics = refused(path)
    assert [d.mark for d in diagnostics] == [at(path, "Sequnce"), at(path, "Navigat")]


def test_partial_placeholder_with_a_blackboard_ref_is_not_silently_stringified(tmp_path):
    # "Hello ${who}" with who = {key: /user/name} cannot be interpolated when the
    # tree is built; it must not become the text "Hello {'key': '/user/name'}".
    path = write(tmp_path, "x.yaml", """
        version: 1
        subtrees:
          greet: {params: [who], root: {type: Say, text: "Hello ${who}"}}
        root: {type: Subtree, ref: greet, with: {who: {key: /user/name}}}
    """)
    try:
        loaded = load(path)
    except TreeError as error:  # refused: at the placeholder or at the value given for it
        assert only(error.diagnostics).mark in (at(path, '"Hello'), at(path, "{key: /user"))
    else:  # or interpolated when the node runs
        Blackboard.set("/user/name", "Alice")
        loaded.tree.tick()
        assert last_turn()["text"] == "Hello Alice"


def test_refused_document_constructs_no_behaviours(tmp_path):
    # loader.py promises: "checks a document completely before building anything".
    # Building a valid Say registers a blackboard client; an invalid document must not.
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - {type: Say, text: hello}
            - {type: Navigat}
    """)
    refused(path)
    assert Blackboard.clients == {}


def test_non_finite_numbers_are_refused_where_the_tree_gives_them(tmp_path):
    """Regression: `.nan` and `.inf` passed validation and failed only when the robot was to move."""
    path = write(tmp_path, "x.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - {type: Navigate, target: [.nan, 1.0, 0.0]}
            - {type: Ask, timeout: 1.0e+400}
    """)
    found = refused(path)
    assert [(d.mark, d.message) for d in found] == [
        (at(path, "[.nan"), "parameter 'target' of Navigate: expected string or list of number, "
                            "got list [nan, 1.0, 0.0] (numbers must be finite)"),
        (at(path, "1.0e+400"), "parameter 'timeout' of Ask: expected number, got inf (numbers must be finite)")]


def test_a_composite_without_children_is_refused(tmp_path):
    """Regression: `children: []` loaded, and the composite ended at once having done nothing."""
    path = write(tmp_path, "x.yaml", """
        version: 1
        root: {type: Selector, memory: false, children: []}
    """)
    diagnostic = only(refused(path))
    assert diagnostic.mark == at(path, "[]")
    assert diagnostic.message == "'children' of composite 'Selector' is empty: give it at least one node"


def test_a_number_yaml_reads_as_text_gets_a_hint_how_to_write_it(tmp_path):
    """Regression: `timeout: 1e3` (text in YAML 1.1) was refused with no word on why it is not a number."""
    path = write(tmp_path, "x.yaml", """
        version: 1
        root: {type: Ask, timeout: 1e3}
    """)
    assert only(refused(path)).message == ("parameter 'timeout' of Ask: expected number, got string '1e3' "
                                           "(YAML reads 1e3 as text: write 1.0e+03)")
