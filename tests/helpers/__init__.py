"""Small behaviours and utterance sources used by the tests (importable as ``tests.helpers``)."""
