"""Intent: the command grammar of the embedded planner, and grounding of references in the scene.

- ``vla_bt.intent.grammar``: the command language (phrase templates generated from
  the registered skills and the world's vocabulary), its parser and its JSGF export
  for offline speech recognition;
- ``vla_bt.intent.phrasing``: the one parser for phrase templates and JSGF rule bodies
  (the same bracket and alternative syntax);
- ``vla_bt.intent.grounding``: references in words ("the red cup", "it", "there")
  resolved to things in the scene.

Submodules are imported explicitly; importing this package loads neither.
"""
