"""Where utterances come from: typed text now, recorded and live audio later."""

from .text import ConsoleUtterances, ScriptedUtterances, UtteranceSource

__all__ = ["ConsoleUtterances", "ScriptedUtterances", "UtteranceSource"]
