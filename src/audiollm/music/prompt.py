"""Music prompts: a clip's labels → the caption text_to_midi is trained on, and a user's text →
the attributes it asks for (instrument, tempo, key), which adherence is scored against.

One grammar on both sides, so what a model was trained to hear is exactly what a request is
read as:

* **instrument**: a General MIDI name as pretty_midi spells it ("Church Organ",
  "Electric Bass (finger)") or the embedded corpus's phrase ("fingered electric bass"),
  case-insensitive, parentheses optional; the longest name in the text wins;
* **tempo**: ``NNN bpm``, or a class word ``slow`` / ``medium-tempo`` / ``fast``
  (the corpus's classes: slow < 80 ≤ medium ≤ 120 < fast);
* **key**: ``<tonic> major|minor`` with tonic A-G and an optional ``#``/``b``
  ("F# minor", "Bb major"), or just ``major`` / ``minor``;
* **style**: a genre word from the corpus's sources (baroque, renaissance, classical, folk);
  it is conditioning only, not scored.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from audiollm.errors import AudioLLMError
from audiollm.music.quiet_import import quiet_import
from audiollm.music.theory import BY_PROGRAM, INSTRUMENTS

TEMPO_WORDS = {"slow": "slow", "medium-tempo": "medium", "medium tempo": "medium", "fast": "fast"}
CLASS_WORD = {"slow": "slow", "medium": "medium-tempo", "fast": "fast"}
# The corpus's composer label → a style word a user would write (music21's sources by era).
STYLE_OF_COMPOSER = {"Bach": "baroque", "Palestrina": "renaissance", "Monteverdi": "renaissance",
                     "Haydn": "classical", "Mozart": "classical", "traditional": "folk"}
STYLES = tuple(dict.fromkeys(STYLE_OF_COMPOSER.values()))
_PITCH_CLASS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_KEY = re.compile(r"\b([a-g])([#♯b♭]?)[\s-]+(major|minor)\b")
_BPM = re.compile(r"\b(\d{2,3})\s*bpm\b")


@dataclass(frozen=True)
class MusicRequest:
    """What a text asks for; None = not asked."""

    program: int | None = None
    bpm: float | None = None
    tempo_class: str | None = None  # slow | medium | fast
    tonic: int | None = None  # pitch class 0-11
    mode: str | None = None  # major | minor
    style: str | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.program, self.bpm, self.tempo_class, self.mode, self.style))


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[()\[\],.;:!?]", " ", text.lower()).split())


@lru_cache(maxsize=1)
def instrument_names() -> dict[str, int]:
    """Every recognised instrument name (normalised) → GM program."""
    pretty_midi = quiet_import("pretty_midi")

    names = {_normalise(pretty_midi.program_to_instrument_name(p)): p for p in range(128)}
    for inst in INSTRUMENTS:
        names.setdefault(_normalise(inst.phrase.split(" ", 1)[1]), inst.program)  # "an oboe" → "oboe"
    return names


def instrument_phrase(program: int) -> str:
    """How captions name a program: the corpus phrase without its article, else the GM name."""
    pretty_midi = quiet_import("pretty_midi")

    inst = BY_PROGRAM.get(program)
    return inst.phrase.split(" ", 1)[1] if inst else pretty_midi.program_to_instrument_name(program).lower()


def parse_request(text: str) -> MusicRequest:
    """The attributes ``text`` asks for, by the grammar in the module docstring."""
    t = _normalise(text)
    padded = f" {t} "
    program, best = None, 0
    for name, prog in instrument_names().items():
        if len(name) > best and f" {name} " in padded:
            program, best = prog, len(name)
    bpm = tempo_class = None
    m = _BPM.search(t)
    if m:
        bpm = float(m.group(1))
    for word, cls in TEMPO_WORDS.items():
        if re.search(rf"\b{word}\b", t):
            tempo_class = cls
            break
    tonic = mode = None
    k = _KEY.search(text.lower().replace("♯", "#").replace("♭", "b"))
    if k:
        tonic = (_PITCH_CLASS[k.group(1)] + {"#": 1, "b": -1}.get(k.group(2), 0)) % 12
        mode = k.group(3)
    elif re.search(r"\b(major|minor)\b", t):
        mode = re.search(r"\b(major|minor)\b", t).group(1)
    style = next((s for s in STYLES if re.search(rf"\b{s}\b", t)), None)
    return MusicRequest(program, bpm, tempo_class, tonic, mode, style)


def check_request(text: str, programs: Sequence[int]) -> MusicRequest:
    """``parse_request``, raising AudioLLMError when the text names an instrument the MIDI
    vocabulary lacks (the message lists the ones it has)."""
    req = parse_request(text)
    if req.program is not None and req.program not in programs:
        valid = ", ".join(instrument_phrase(p) for p in programs)
        raise AudioLLMError(f"{text!r} asks for {instrument_phrase(req.program)}, which this model's MIDI "
                            f"vocabulary lacks; valid instruments: {valid}")
    return req


def caption(labels: Mapping[str, Any], rng: random.Random) -> str:
    """A caption of a clip's labels: the instrument always, tempo (bpm or class word), key and
    style each with probability 0.75 (so short requests like "a cello" are in distribution),
    as a tag list or a sentence."""
    inst = instrument_phrase(int(labels["program"]))
    parts: dict[str, str] = {"instrument": inst}
    if rng.random() < 0.75:
        parts["tempo"] = f"{labels['tempo_bpm']} bpm" if rng.random() < 0.5 else CLASS_WORD[labels["tempo_class"]]
    if rng.random() < 0.75:
        parts["key"] = str(labels["key"])
    style = STYLE_OF_COMPOSER.get(str(labels.get("composer")))
    if style and rng.random() < 0.75:
        parts["style"] = style
    if rng.random() < 0.5:
        tags = list(parts.values())
        rng.shuffle(tags)
        return ", ".join(tags)
    words = ["A"]
    if parts.get("tempo") and not parts["tempo"].endswith("bpm"):
        words.append(parts["tempo"])
    if "style" in parts:
        words.append(parts["style"])
    words += ["piece for", inst]
    if "key" in parts:
        words += ["in", parts["key"]]
    if parts.get("tempo", "").endswith("bpm"):
        words += ["at", parts["tempo"]]
    return " ".join(words) + "."
