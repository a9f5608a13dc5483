"""Music theory shared by the corpus, the tasks, decoding and generation: the General MIDI
instruments we name (family, phrase, comfortable range), key names, and tempo classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Instrument:
    """A General MIDI program we render, with its family and a comfortable pitch range."""

    program: int        # GM program number, 0-based
    family: str         # the tagging label
    gm_name: str        # the General MIDI name, as pretty_midi spells it
    phrase: str         # how answers say it: singular, with its article ("a church organ")
    low: int            # lowest comfortable MIDI pitch
    high: int           # highest comfortable MIDI pitch


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(0, "piano", "Acoustic Grand Piano", "an acoustic grand piano", 21, 108),
    Instrument(1, "piano", "Bright Acoustic Piano", "a bright acoustic piano", 21, 108),
    Instrument(4, "piano", "Electric Piano 1", "an electric piano", 28, 103),
    Instrument(6, "piano", "Harpsichord", "a harpsichord", 29, 89),
    Instrument(16, "organ", "Drawbar Organ", "a drawbar organ", 24, 96),
    Instrument(19, "organ", "Church Organ", "a church organ", 24, 96),
    Instrument(20, "organ", "Reed Organ", "a reed organ", 36, 96),
    Instrument(21, "organ", "Accordion", "an accordion", 41, 89),
    Instrument(24, "guitar", "Acoustic Guitar (nylon)", "a nylon-string guitar", 40, 83),
    Instrument(25, "guitar", "Acoustic Guitar (steel)", "a steel-string guitar", 40, 83),
    Instrument(26, "guitar", "Electric Guitar (jazz)", "a jazz electric guitar", 40, 86),
    Instrument(27, "guitar", "Electric Guitar (clean)", "a clean electric guitar", 40, 86),
    Instrument(32, "bass", "Acoustic Bass", "an acoustic bass", 28, 60),
    Instrument(33, "bass", "Electric Bass (finger)", "a fingered electric bass", 28, 62),
    Instrument(34, "bass", "Electric Bass (pick)", "a picked electric bass", 28, 62),
    Instrument(35, "bass", "Fretless Bass", "a fretless bass", 28, 62),
    Instrument(40, "strings", "Violin", "a violin", 55, 100),
    Instrument(41, "strings", "Viola", "a viola", 48, 88),
    Instrument(42, "strings", "Cello", "a cello", 36, 76),
    Instrument(44, "strings", "Tremolo Strings", "a tremolo string section", 36, 96),
    Instrument(56, "brass", "Trumpet", "a trumpet", 54, 86),
    Instrument(57, "brass", "Trombone", "a trombone", 40, 72),
    Instrument(58, "brass", "Tuba", "a tuba", 28, 58),
    Instrument(60, "brass", "French Horn", "a French horn", 34, 77),
    Instrument(61, "brass", "Brass Section", "a brass section", 36, 84),
    Instrument(64, "reed", "Soprano Sax", "a soprano saxophone", 56, 88),
    Instrument(65, "reed", "Alto Sax", "an alto saxophone", 49, 81),
    Instrument(66, "reed", "Tenor Sax", "a tenor saxophone", 44, 76),
    Instrument(68, "reed", "Oboe", "an oboe", 58, 91),
    Instrument(70, "reed", "Bassoon", "a bassoon", 34, 72),
    Instrument(71, "reed", "Clarinet", "a clarinet", 50, 91),
    Instrument(72, "pipe", "Piccolo", "a piccolo", 74, 108),
    Instrument(73, "pipe", "Flute", "a flute", 60, 96),
    Instrument(74, "pipe", "Recorder", "a recorder", 60, 96),
    Instrument(75, "pipe", "Pan Flute", "a pan flute", 60, 96),
    Instrument(80, "synth lead", "Lead 1 (square)", "a square-wave synth lead", 36, 96),
    Instrument(81, "synth lead", "Lead 2 (sawtooth)", "a sawtooth synth lead", 36, 96),
)


BY_PROGRAM: dict[int, Instrument] = {i.program: i for i in INSTRUMENTS}


FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(i.family for i in INSTRUMENTS))


_MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


_MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")


def key_name(tonic: int, mode: str) -> str:
    """"D minor", "Bb major": one fixed spelling per pitch class and mode."""
    names = _MAJOR_NAMES if mode == "major" else _MINOR_NAMES
    return f"{names[tonic % 12]} {mode}"


def octave_for(pitches: np.ndarray, inst: Instrument) -> int:
    """The octave shift (in semitones) that puts most notes inside the instrument's range;
    ties go to the smallest move."""
    best = min(range(-3, 4), key=lambda k: (int(np.sum((pitches + 12 * k < inst.low) |
                                                        (pitches + 12 * k > inst.high))), abs(k)))
    return 12 * best


TEMPO_CLASSES: tuple[str, ...] = ("slow", "medium", "fast")


# Inclusive bpm bounds per class: slow < 80 <= medium <= 120 < fast.
TEMPO_RANGES: dict[str, tuple[int, int]] = {"slow": (50, 79), "medium": (80, 120), "fast": (121, 190)}


# How each class reads inside a sentence ("a fast organ piece", "a medium-tempo organ piece").
TEMPO_ADJECTIVE: dict[str, str] = {"slow": "slow", "medium": "medium-tempo", "fast": "fast"}


def tempo_class(bpm: float) -> str:
    """"slow" below 80 bpm, "fast" above 120, "medium" in between (inclusive)."""
    if bpm < 80:
        return "slow"
    if bpm > 120:
        return "fast"
    return "medium"

