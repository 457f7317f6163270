"""vla-bt: streaming language models as behaviour-tree leaves, with a safety layer.

The language model stream is exposed as py_trees leaves (``Listen``, ``Ask``,
``ParseIntent``, ``Navigate`` …), composed in YAML task trees and wrapped in
guard decorators so that nothing the model says reaches a motor unchecked.
"""

__version__ = "0.1.0"
