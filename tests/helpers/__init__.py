"""Small behaviours, utterance sources and the command line in a subprocess (``cli``), used by the tests.

Importable as ``tests.helpers`` once the repository root is on ``sys.path``.
"""
