"""Offline speech-to-text: pocketsphinx held to the robot's command grammar; faster-whisper optionally.

``SphinxRecognizer`` (the default) recognises only what the robot can be
asked: the same command grammar as the embedded planner
(:class:`vla_bt.intent.grammar.Grammar`: the registered skills' phrasings,
the world's places, objects, colours and people), plus yes/no answers and
the short replies to a clarification question ("the red one", "the
kitchen"). Held to that grammar, pocketsphinx (whose wheel bundles its US
English model) is fast (real-time factor about 0.03) and accurate; with its
general language model it is not usable for commands.

How the grammar is prepared (:func:`speech_jsgf`, :class:`~vla_bt.speech.fsg.WordAutomaton`):

- hesitation fillers ("um", "uh", "er", "well", "so", "hey", "hi") are left
  out: in speech they are noise, and as words they match any short noise;
- free text (``say …``) is limited to ``max_text_words`` words from the
  world's names and everyday words;
- the grammar is compiled to its minimal word automaton (about a hundred
  states instead of pocketsphinx's own 5,000 for the shipped world).

Words missing from the pronunciation dictionary (a world's unusual names)
are given a pronunciation, in this order: ``pronunciations`` given by the
user (``{"zorblax": "Z AO R B L AE K S"}``), two dictionary words joined
("storeroom" = store + room), espeak-ng's phonemes when it is installed;
a word that gets none is left out of the grammar and named in ``problems``.

When the decoder's best path ends inside a sentence (noise after the speech
made it guess a word), the longest whole sentence it begins with is taken;
if there is none, the result is "" (nothing understood).

``WhisperRecognizer`` transcribes open vocabulary with faster-whisper from a
model directory the user provides (no download; not installed by default).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .audio import SAMPLE_RATE, to_pcm16
from .fsg import WordAutomaton

if TYPE_CHECKING:
    from vla_bt.intent.grammar import Grammar

log = logging.getLogger(__name__)

DISFLUENCIES = frozenset({"um", "uh", "er", "well", "so", "hey", "hi"})
"""Filler words the speech grammar leaves out."""

ANSWERS = (
    "yes", "yeah", "yep", "sure", "okay", "ok", "yes please", "go ahead", "do it", "go on", "of course", "correct",
    "affirmative", "that's right", "right",
    "no", "nope", "no thanks", "no thank you", "cancel", "cancel that", "never mind", "don't", "do not", "wait",
    "negative", "abort", "stop", "not now",
)
"""Spoken answers to a yes/no question (``Confirm``), besides the commands."""

REPLIES = ("thanks", "thank you", "help", "what can you do")
"""Other short turns the planner understands."""

DEFAULT_OPTIONS: Mapping[str, Any] = {"wip": 0.05}
"""Decoder settings measured on synthetic and recorded commands (word insertion penalty lowered from 0.65)."""
WHOLE_OPTIONS: Mapping[str, Any] = {"cmn": "batch", "bestpath": True}
"""For whole recordings: each normalised by its own mean, and the lattice's best path (most accurate)."""
LIVE_OPTIONS: Mapping[str, Any] = {"cmn": "live", "bestpath": False}
"""For live audio: a running mean, and the forward search's result (the lattice's best path takes up
to 0.2 s once the sentence ends, against 1 ms, and recognised the test commands no better)."""


class Recognizer(Protocol):
    """Anything that turns 16 kHz mono speech into text."""

    def transcribe(self, samples: np.ndarray) -> str:
        """The words said ("" when nothing was understood)."""


class RecognizerError(RuntimeError):
    """A recogniser cannot be set up (missing package, bad model directory, bad grammar)."""


# -- the speech grammar ----------------------------------------------------------------------

def speech_jsgf(grammar: Grammar, *, answers: bool = True, max_text_words: int = 3, name: str = "vla_bt") -> str:
    """The command grammar as a JSGF speech grammar: commands, yes/no answers and short replies.

    Args:
        grammar: the planner's command grammar
        answers: also accept yes/no answers and replies to clarification questions
        max_text_words: the most words of free text (``say …``); 0 leaves free text out
        name: the JSGF grammar name

    Returns:
        JSGF text whose public rule is ``<utterance>``
    """
    from vla_bt.intent.grammar import to_jsgf

    text = to_jsgf(grammar, name)
    lines = []
    defined = set(re.findall(r"^<([^<>\s]+)>\s*=", text, flags=re.MULTILINE))
    for line in text.splitlines():
        if line.startswith("<filler> = "):
            kept = [f.strip() for f in line[len("<filler> = "):-1].split("|")]
            kept = [f for f in kept if f and f not in DISFLUENCIES and f != "<NULL>"]
            line = f"<filler> = {' | '.join(kept) or '<NULL>'};"
        elif line.startswith("<text> = "):
            if max_text_words <= 0:
                line = "<text> = <VOID>;"
            else:
                words = "<word>"
                for _ in range(max_text_words - 1):
                    words = f"<word> [ {words} ]"
                line = f"<text> = {words};"
        elif line.startswith("<word> = "):
            line = f"<word> = {' | '.join(_text_words(grammar))};"
        elif line.startswith("public <command> = "):
            line = line[len("public "):]
        lines.append(line)
    parts = ["<command>"]
    if answers:
        replies = [f"<{rule}>" for rule in ("object", "place_ref", "human") if rule in defined]
        lines.append(f"<answer> = {' | '.join(ANSWERS)};")
        lines.append(f"<reply> = {' | '.join([*REPLIES, *replies])};")
        parts += ["<answer>", "<reply>"]
    lines.insert(4, f"public <utterance> = {' | '.join(parts)};")
    return "\n".join(lines) + "\n"


def _text_words(grammar: Grammar) -> list[str]:
    """Words of free text: everyday words and the world's names (every word of the grammar would slow decoding)."""
    from vla_bt.intent.grammar import COMMON_WORDS, spoken

    vocabulary = grammar.vocabulary
    names = [*vocabulary.places, *vocabulary.labels, *vocabulary.colors, *vocabulary.humans.values()]
    words = {w for name in names for w in spoken(name).split()} | set(COMMON_WORDS)
    return sorted(w for w in words if re.fullmatch(r"[a-z][a-z']*", w))


# -- pronunciations -------------------------------------------------------------------------

ESPEAK_TO_ARPABET: Mapping[str, str] = {
    # vowels and diphthongs (espeak-ng's English phoneme mnemonics, as printed by ``espeak-ng -x``)
    "aI@": "AY ER", "aI3": "AY ER", "aU@": "AW ER", "i@3": "IH R", "A@": "AA R", "A:": "AA", "aa": "AA",
    "a#": "AH", "a2": "AH", "aI": "AY", "aU": "AW", "a": "AE", "E2": "EH", "E@": "EH R", "e@": "EH R", "eI": "EY",
    "E": "EH", "i:": "IY", "i@": "IH R", "i": "IY", "I2": "IH", "I#": "IH", "I": "IH", "0": "AA", "O:": "AO",
    "O@": "AO R", "o@": "AO R", "oU": "OW", "OI": "OY", "O": "AO", "U@": "UH R", "u:": "UW", "U": "UH", "V": "AH",
    "@L": "AH L", "@r": "ER", "@2": "AH", "@5": "AH", "@": "AH", "3:": "ER", "3": "ER",
    # consonants
    "tS": "CH", "dZ": "JH", "t#": "T", "n-": "N", "l-": "L", "r-": "R", "T": "TH", "D": "DH", "S": "SH", "Z": "ZH",
    "N": "NG", "j": "Y", "*": "T", "x": "K", "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F",
    "v": "V", "s": "S", "z": "Z", "h": "HH", "m": "M", "n": "N", "l": "L", "r": "R", "w": "W",
}
_ESPEAK_KEYS = sorted(ESPEAK_TO_ARPABET, key=len, reverse=True)


def espeak_arpabet(mnemonics: str) -> str | None:
    """ARPAbet phones (pocketsphinx's dictionary alphabet) for espeak-ng phoneme mnemonics; ``None`` if none."""
    phones, i = [], 0
    while i < len(mnemonics):
        for key in _ESPEAK_KEYS:
            if mnemonics.startswith(key, i):
                phones.append(ESPEAK_TO_ARPABET[key])
                i += len(key)
                break
        else:
            i += 1  # stress and length marks, syllable breaks
    return " ".join(phones) or None


def espeak_pronunciation(word: str, voice: str = "en-us") -> str | None:
    """The ARPAbet pronunciation espeak-ng gives a word, or ``None`` (no espeak-ng, or no answer)."""
    program = shutil.which("espeak-ng")
    if program is None or not re.fullmatch(r"[a-z][a-z']*", word):
        return None
    try:
        result = subprocess.run([program, "-q", "-x", "-v", voice, word], capture_output=True, text=True, timeout=10,
                                check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return espeak_arpabet(result.stdout.strip()) if result.returncode == 0 else None


def compound_pronunciation(word: str, lookup: Any) -> str | None:
    """Phones of a word made of two dictionary words ("storeroom"), or ``None``."""
    for cut in range(2, len(word) - 1):
        head, tail = lookup(word[:cut]), lookup(word[cut:])
        if head and tail:
            return f"{head} {tail}"
    return None


# -- pocketsphinx ----------------------------------------------------------------------------

@dataclass
class Transcript:
    """What a recogniser heard.

    Args:
        text: the words, as a sentence of the grammar ("" when nothing was understood)
        raw: the decoder's best path before it was cut to a whole sentence
        seconds: decoding time
    """

    text: str
    raw: str = ""
    seconds: float = 0.0


@dataclass
class _Prepared:
    automaton: WordAutomaton
    decoder: Any  # whole recordings: each is normalised by its own mean
    make_live: Any  # builds the decoder for live audio
    added: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    live_decoder: Any = None
    live_utterances: int = 0

    @property
    def live(self) -> Any:
        if self.live_decoder is None:
            self.live_decoder = self.make_live()
        return self.live_decoder


class SphinxRecognizer:
    """pocketsphinx with the command grammar: fast, offline, for what the robot can do.

    Args:
        grammar: the planner's command grammar (``LocalPlanner.grammar``, or ``Grammar(world, tools)``)
        jsgf: a JSGF grammar to use instead (its first public rule)
        pronunciations: extra pronunciations, word → ARPAbet phones ("Z AO R B L AE K S")
        answers: also recognise yes/no answers and replies (see :func:`speech_jsgf`)
        max_text_words: the most words of free text after ``say``
        guess_pronunciations: ask espeak-ng (if installed) for words still missing
        options: pocketsphinx decoder settings (over ``DEFAULT_OPTIONS``, and ``WHOLE_OPTIONS`` or
            ``LIVE_OPTIONS``)

    The decoder is loaded on first use (or by ``load()``, about 0.2 s);
    ``transcribe`` may be called from any thread, one call at a time.

    Example:
        >>> recognizer = SphinxRecognizer(LocalPlanner(world, tools).grammar)
        >>> recognizer.transcribe(read_wav("bring_cup.wav").samples)
        'bring me the red cup'
    """

    def __init__(self, grammar: Grammar | None = None, *, jsgf: str | None = None,
                 pronunciations: Mapping[str, str] | None = None, answers: bool = True, max_text_words: int = 3,
                 guess_pronunciations: bool = True, options: Mapping[str, Any] | None = None):
        if grammar is None and jsgf is None:
            raise ValueError("give a grammar or a JSGF text")
        self.grammar = grammar
        self._jsgf = jsgf
        self.answers = answers
        self.max_text_words = max_text_words
        self.pronunciations = {k.lower(): v.upper() for k, v in (pronunciations or {}).items()}
        self.guess_pronunciations = guess_pronunciations
        self.options = {**DEFAULT_OPTIONS, **(options or {})}
        self._prepared: _Prepared | None = None
        self._lock = threading.Lock()

    @property
    def jsgf(self) -> str:
        """The speech grammar (JSGF)."""
        if self._jsgf is None:
            assert self.grammar is not None
            self._jsgf = speech_jsgf(self.grammar, answers=self.answers, max_text_words=self.max_text_words)
        return self._jsgf

    @property
    def problems(self) -> list[str]:
        """Words left out of the grammar (no pronunciation), as messages."""
        prepared = self.load()
        return [f"'{w}' has no pronunciation (give one with pronunciations={{'{w}': 'PHONES'}}); sentences "
                f"with it cannot be recognised" for w in prepared.dropped]

    @property
    def added(self) -> dict[str, str]:
        """Pronunciations added to the dictionary, word → phones."""
        return dict(self.load().added)

    @property
    def automaton(self) -> WordAutomaton:
        """The compiled grammar (the sentences that can be recognised)."""
        return self.load().automaton

    def load(self) -> _Prepared:
        """Compile the grammar and load the decoder (once).

        Raises:
            RecognizerError: pocketsphinx is missing, or the grammar cannot be compiled
        """
        with self._lock:
            if self._prepared is None:
                self._prepared = self._prepare()
            return self._prepared

    def _prepare(self) -> _Prepared:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise RecognizerError("offline speech recognition needs pocketsphinx: pip install 'vla-bt[speech]'") \
                from exc
        from .fsg import GrammarError

        try:
            automaton = WordAutomaton.from_jsgf(self.jsgf)
        except GrammarError as exc:
            raise RecognizerError(f"the speech grammar cannot be compiled: {exc}") from None
        probe = pocketsphinx.Decoder(loglevel="FATAL", lm=None, **self.options)
        added: dict[str, str] = {}
        missing = []
        for word in sorted(automaton.words):
            if probe.lookup_word(word) is not None:
                continue
            phones = self.pronunciations.get(word) or compound_pronunciation(word, probe.lookup_word)
            if phones is None and self.guess_pronunciations:
                phones = espeak_pronunciation(word)
            if phones is None:
                missing.append(word)
                continue
            try:
                probe.add_word(word, phones, False)
            except (RuntimeError, ValueError) as exc:
                log.warning("speech: pronunciation '%s' for '%s' refused: %s", phones, word, exc)
                missing.append(word)
                continue
            added[word] = phones
        if missing:
            log.warning("speech: no pronunciation for %s; sentences with them are left out", ", ".join(missing))
            try:
                automaton = automaton.without(missing)
            except GrammarError as exc:
                raise RecognizerError(f"the speech grammar is empty once words without a pronunciation "
                                      f"({', '.join(missing)}) are left out: {exc}") from None

        def ready(decoder: Any) -> Any:
            for word, phones in added.items():
                decoder.add_word(word, phones, False)
            decoder.add_fsg("utterance", automaton.to_pocketsphinx(decoder, "utterance"))
            decoder.activate_search("utterance")
            return decoder

        # A whole recording is normalised by its own mean (the same result whatever came before);
        # live audio by a running mean that adapts to the microphone over the session.
        whole = ready(pocketsphinx.Decoder(loglevel="FATAL", lm=None, **{**WHOLE_OPTIONS, **self.options}))
        return _Prepared(automaton, whole, lambda: ready(pocketsphinx.Decoder(
            loglevel="FATAL", lm=None, **{**LIVE_OPTIONS, **self.options})), added, missing)

    def transcribe(self, samples: np.ndarray) -> str:
        """The sentence of the grammar said in ``samples`` (16 kHz mono float), or ""."""
        return self.decode(samples).text

    def stream(self) -> SphinxStream:
        """Start recognising live audio, fed piece by piece while it is spoken.

        The live decoder is held until the stream's ``finish()`` or ``cancel()``.
        """
        prepared = self.load()
        with self._lock:
            prepared.live  # noqa: B018 - built on first use (about 0.2 s), not while a stream holds the lock
        return SphinxStream(prepared, self._lock)

    def decode(self, samples: np.ndarray) -> Transcript:
        """Like ``transcribe``, with the decoder's raw best path and the time it took.

        A whole recording is normalised by its own mean: the result does not
        depend on what was heard before.
        """
        prepared = self.load()
        data = to_pcm16(samples)
        if len(data) < 2 * SAMPLE_RATE // 10:
            return Transcript("")
        with self._lock:
            started = time.perf_counter()
            decoder = prepared.decoder
            decoder.reinit_feat()  # its noise estimate carries over between utterances otherwise
            decoder.start_utt()
            decoder.process_raw(data, full_utt=True)
            decoder.end_utt()
            hypothesis = decoder.hyp()
            seconds = time.perf_counter() - started
        return _sentence(prepared.automaton, hypothesis.hypstr if hypothesis is not None else "", seconds)


def _sentence(automaton: WordAutomaton, raw: str, seconds: float) -> Transcript:
    """The decoder's best path cut to its longest whole sentence of the grammar."""
    words = raw.split()
    return Transcript(" ".join(words[:automaton.longest_sentence_prefix(words)]), raw, seconds)


class SphinxStream:
    """One utterance being recognised as it is spoken (from :meth:`SphinxRecognizer.stream`).

    ``feed`` decodes each piece at once (about 1 ms per 20 ms of audio), so the
    words so far are known at every moment: :attr:`words` and :attr:`complete`
    let the caller end the utterance as soon as a whole command has been said.
    The live decoder normalises by a running mean that adapts to the
    microphone over a session. Before the first utterance that mean is a
    generic guess, far off for a loud or quiet input: the first
    ``PRIME_SECONDS`` of the first utterance are held back, their own mean is
    measured, and decoding starts from it (and catches up at once).
    """

    PRIME_SECONDS = 0.5

    def __init__(self, prepared: _Prepared, lock: threading.Lock):
        self._prepared = prepared
        self._lock = lock
        self._lock.acquire()
        self._decoder = prepared.live
        self._held: list[np.ndarray] | None = [] if prepared.live_utterances == 0 else None
        self._open = True
        self._seconds = 0.0
        self._decoder.start_utt()

    def feed(self, samples: np.ndarray) -> None:
        """Decode the next piece of audio (16 kHz mono float)."""
        if not self._open or not len(samples):
            return
        if self._held is not None:
            self._held.append(np.asarray(samples, dtype=np.float32))
            if sum(len(h) for h in self._held) >= self.PRIME_SECONDS * SAMPLE_RATE:
                self._prime()
            return
        started = time.perf_counter()
        self._decoder.process_raw(to_pcm16(samples), full_utt=False)
        self._seconds += time.perf_counter() - started

    def _prime(self) -> None:
        """Start the running mean from the held audio's own mean, then decode that audio."""
        held, self._held = np.concatenate(self._held or [np.zeros(0, np.float32)]), None
        if len(held) >= SAMPLE_RATE // 10:
            batch = self._prepared.decoder
            batch.reinit_feat()
            batch.start_utt()
            batch.process_raw(to_pcm16(held), full_utt=True)
            batch.end_utt()
            self._decoder.set_cmn(batch.get_cmn(False))
        self.feed(held)

    @property
    def words(self) -> list[str]:
        """The best path so far (none while the first audio is held back)."""
        hypothesis = self._decoder.hyp() if self._open and self._held is None else None
        return hypothesis.hypstr.split() if hypothesis is not None else []

    @property
    def complete(self) -> tuple[bool, bool]:
        """Whether the words so far are a whole sentence, and whether a longer sentence could follow."""
        words, automaton = self.words, self._prepared.automaton
        return automaton.accepts(words), automaton.can_continue(words)

    def finish(self) -> Transcript:
        """End the utterance: the sentence heard (cut to a whole sentence of the grammar)."""
        if not self._open:
            return Transcript("")
        started = time.perf_counter()
        try:
            if self._held is not None:
                self._prime()
            self._decoder.end_utt()
            hypothesis = self._decoder.hyp()
            self._prepared.live_utterances += 1
        finally:
            self._release()
        raw = hypothesis.hypstr if hypothesis is not None else ""
        return _sentence(self._prepared.automaton, raw, self._seconds + time.perf_counter() - started)

    def cancel(self) -> None:
        """Drop the utterance (the decoder is free again)."""
        if self._open:
            try:
                self._decoder.end_utt()
            finally:
                self._release()

    def _release(self) -> None:
        self._open = False
        self._lock.release()


# -- faster-whisper (optional) --------------------------------------------------------------------

class WhisperRecognizer:
    """Open-vocabulary transcription with faster-whisper, from a model directory on disk.

    Args:
        model_dir: a CTranslate2 Whisper model directory (``model.bin``, ``config.json``,
            ``tokenizer.json``, ``vocabulary.*``), e.g. a converted ``base.en``
        device: ``cpu`` or ``cuda``
        compute_type: ``int8`` (CPU), ``float16`` (GPU) …
        language: the spoken language
        hints: words to prime the model with (the world's names, say)

    Nothing is downloaded: the directory must exist. Needs ``pip install faster-whisper``.
    """

    def __init__(self, model_dir: str | Path, *, device: str = "cpu", compute_type: str = "int8",
                 language: str = "en", hints: Iterable[str] = ()):
        self.model_dir = Path(model_dir)
        self.device = device
        self.compute_type = compute_type
        self.language = language
        self.hints = " ".join(dict.fromkeys(hints))
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        """Load the model (once).

        Raises:
            RecognizerError: faster-whisper is not installed, or the directory is not a model
        """
        with self._lock:
            if self._model is None:
                if not (self.model_dir / "model.bin").is_file():
                    raise RecognizerError(f"{self.model_dir}: not a faster-whisper model directory (no model.bin)")
                try:
                    from faster_whisper import WhisperModel
                except ImportError as exc:
                    raise RecognizerError("the whisper engine needs faster-whisper: pip install faster-whisper") \
                        from exc
                try:
                    self._model = WhisperModel(str(self.model_dir), device=self.device,
                                               compute_type=self.compute_type, local_files_only=True)
                except Exception as exc:  # noqa: BLE001 - the library's own errors, named for the user
                    raise RecognizerError(f"{self.model_dir}: cannot load the model: {exc}") from None
            return self._model

    def transcribe(self, samples: np.ndarray) -> str:
        model = self.load()
        segments, _ = model.transcribe(np.asarray(samples, dtype=np.float32), language=self.language,
                                       beam_size=1, vad_filter=False, initial_prompt=self.hints or None)
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return re.sub(r"\s+", " ", text)


def make_recognizer(grammar: Grammar, whisper_model: str | Path | None = None,
                    pronunciations: Mapping[str, str] | None = None) -> Recognizer:
    """The recogniser for a run: faster-whisper when a model directory is given, else pocketsphinx.

    Args:
        grammar: the command grammar (pocketsphinx's grammar; the whisper engine's word hints)
        whisper_model: a faster-whisper model directory, or ``None``
        pronunciations: extra pocketsphinx pronunciations, word → ARPAbet phones
    """
    if whisper_model is not None:
        return WhisperRecognizer(whisper_model, hints=sorted(grammar.vocabulary.words()))
    return SphinxRecognizer(grammar, pronunciations=pronunciations)


__all__ = ["ANSWERS", "DEFAULT_OPTIONS", "DISFLUENCIES", "LIVE_OPTIONS", "WHOLE_OPTIONS", "Recognizer",
           "RecognizerError", "SphinxRecognizer", "SphinxStream", "Transcript", "WhisperRecognizer",
           "compound_pronunciation", "espeak_arpabet", "espeak_pronunciation", "make_recognizer", "speech_jsgf"]
