"""The one parser of phrasings: phrase templates and JSGF rule bodies, the dialects it reads."""

from __future__ import annotations

import re

import pytest

from vla_bt.intent.grammar import FAMILIES, KINDS, TemplateError, parse_template
from vla_bt.intent.phrasing import (
    JSGF,
    Alt,
    Node,
    Opt,
    PhrasingError,
    Repeat,
    RuleRef,
    Seq,
    SlotRef,
    Syntax,
    Word,
    parse_phrasing,
    walk,
)
from vla_bt.speech.fsg import GrammarError, WordAutomaton, parse_jsgf


def words(*texts: str) -> Seq:
    return Seq(tuple(Word(t) for t in texts))


def as_rules(node: Node) -> Node:
    """A template's tree with every slot read as a JSGF rule reference of the same name."""
    if isinstance(node, SlotRef):
        return RuleRef(node.name)
    if isinstance(node, Seq):
        return Seq(tuple(as_rules(item) for item in node.items))
    if isinstance(node, Alt):
        return Alt(tuple(Seq(tuple(as_rules(item) for item in option.items)) for option in node.options))
    if isinstance(node, Opt):
        body = as_rules(node.body)
        assert isinstance(body, Alt)
        return Opt(body)
    return node


@pytest.mark.parametrize("template", [t if isinstance(t, str) else t[0] for f in FAMILIES for t in f.templates])
def test_every_built_in_template_reads_the_same_as_a_jsgf_rule_body(template: str) -> None:
    as_jsgf = re.sub(r"\{(\w+)(?::\w+)?\}", r"<\1>", template)
    assert parse_phrasing(as_jsgf, JSGF) == as_rules(parse_template(template))


def test_words_groups_and_options() -> None:
    tree = parse_phrasing("(go | drive) [back] to the kitchen")
    go_or_drive = Alt((words("go"), words("drive")))
    assert tree == Alt((Seq((go_or_drive, Opt(Alt((words("back"),))), Word("to"), Word("the"), Word("kitchen"))),))
    assert [type(n).__name__ for n in walk(parse_phrasing("a [b]"))] == ["Alt", "Seq", "Word", "Opt", "Alt", "Seq",
                                                                         "Word"]


def test_template_slots_and_words_as_names() -> None:
    tree = parse_template("Go to the Living_Room {where:place} {what}")
    assert tree == Alt((Seq((*words("go", "to", "the", "living", "room").items, SlotRef("where", "place"),
                             SlotRef("what"))),))
    with pytest.raises(TemplateError, match="bad slot"):
        parse_template("go to {x:colour}")


def test_jsgf_references_weights_and_repeats() -> None:
    tree = parse_phrasing("/2/ <a> | /0.5/ b+ (c d)*", JSGF)
    repeats = Seq((Repeat(Word("b"), 1), Repeat(Alt((words("c", "d"),)), 0)))
    assert tree == Alt((Seq((RuleRef("a"),)), repeats))


def test_the_characters_of_a_feature_that_is_off_are_words() -> None:
    assert parse_phrasing("a <b> * /c/ {d}") == Alt((words("a", "<b>", "*", "/c/", "{d}"),))
    assert parse_phrasing("say {tag}", JSGF) == Alt((words("say", "{tag}"),))  # JSGF tags are not read
    slots = Syntax(slot_kinds=KINDS)
    assert parse_phrasing("{x:place} <y>", slots) == Alt((Seq((SlotRef("x", "place"), Word("<y>"))),))


@pytest.mark.parametrize(("text", "syntax", "message"), [
    ("go to (the kitchen", Syntax(), "expected ')', found 'the end'"),
    ("go to [the] kitchen]", Syntax(), "expected 'the end', found ']'"),
    ("a | | b", Syntax(), "an empty alternative"),
    ("[ ]", Syntax(), "an empty alternative"),
    ("   ", Syntax(), "empty"),
    ("* a", JSGF, "'*' follows nothing"),
    ("{bad slot}", Syntax(slot_kinds=KINDS), "bad slot"),
])
def test_malformed_phrasings(text: str, syntax: Syntax, message: str) -> None:
    with pytest.raises(PhrasingError, match=re.escape(message)):
        parse_phrasing(text, syntax)


def test_each_reader_says_which_template_or_rule_is_malformed() -> None:
    with pytest.raises(TemplateError, match=r"template 'go \(to': expected '\)'"):
        parse_template("go (to")
    with pytest.raises(GrammarError, match=r"rule <s>: expected '\)'"):
        parse_jsgf("#JSGF V1.0;\ngrammar t;\npublic <s> = go ( to;\n")


def test_a_template_as_a_speech_grammar() -> None:
    body = re.sub(r"\{(\w+)\}", r"<\1>", "(go | drive) [back] to {place}")
    automaton = WordAutomaton.from_jsgf(f"#JSGF V1.0;\ngrammar t;\npublic <s> = {body};\n<place> = kitchen | hall;\n")
    assert automaton.accepts("drive back to hall".split())
    assert not automaton.accepts("go back to".split())
