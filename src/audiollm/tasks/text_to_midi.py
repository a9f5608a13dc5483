"""Text → MIDI: a caption in, the notes of a clip out as MIDI event tokens. No audio.

A row is a music clip's labels and notes, without audio::

    {"task": "text_to_midi", "question": "A baroque piece for a cello in D minor at 72 bpm.",
     "notes": [[start, end, pitch, velocity], ...], "program": 42, "tempo_bpm": 72, "key": "D minor",
     "duration": 4.0, ...}

The embedded corpus writes one per music clip (``audiollm data synth``), and
``audiollm data text-to-midi`` derives them from an older corpus's caption rows. A row
without ``question`` gets a caption drawn from its labels (:func:`audiollm.music.prompt.caption`).
The answer is built exactly as transcription's (same :class:`MidiVocab`, held section,
``<|tie|>``, events) for a window of at most ``window_seconds`` of the clip; training draws
the caption away with probability ``data.tasks.text_to_midi.cond_dropout`` (classifier-free
guidance) and trains on label-consistent variants with probability ``…variants``.

Evaluation samples with guidance and the grammar mask (the ``compose`` pipeline,
:attr:`eval_options`) and scores the MIDI itself (:func:`audiollm.metrics.notes.attribute_adherence`):
valid MIDI, and whether instrument, tempo and key are what the caption asked for.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audiollm.decoding.options import DecodingOptions
from audiollm.errors import AudioLLMError, ConfigError, ManifestError
from audiollm.metrics.notes import attribute_adherence, midi_round_trip, tempo_adherence
from audiollm.music.analysis import analyse_key, estimate_tempo
from audiollm.music.prompt import MusicRequest, caption, parse_request
from audiollm.music.tempo_fit import fit_tempo
from audiollm.music.theory import (
    BY_PROGRAM,
    TEMPO_RANGES,
    key_name,
    octave_for,
    tempo_class,
)
from audiollm.tasks.base import Row, TaskOptions, register_task, row_label
from audiollm.tasks.transcription import TranscriptionTask, parse_notes

LABEL_KEYS = ("program", "tempo_bpm", "tempo_class", "key")
#: A variant's tempo change: the notes' durations are multiplied by a factor in this range
#: (slower up to twice as long; faster down to 0.8, so a 4 s clip still gives a 3.2 s piece).
VARIANT_STRETCH = (0.8, 2.0)
VARIANT_SHIFTS = range(-6, 6)  # semitones a variant transposes by (before fitting the instrument's octave)


def request_of(row: Row) -> MusicRequest:
    """What the row asks for: its question's attributes, else all of its labels."""
    if isinstance(row.get("question"), str) and row["question"].strip():
        return parse_request(row["question"])
    text = f"{row['key']} {row['tempo_bpm']} bpm"
    req = parse_request(text)
    return MusicRequest(int(row["program"]), req.bpm, None, req.tonic, req.mode)


@dataclass
class TextToMidiOptions(TaskOptions):
    """text_to_midi's section of a training config (``data.tasks.text_to_midi``)."""

    cond_dropout: float = 0.0  # probability of training on the empty prompt instead of the caption: the
    #   unconditional model classifier-free guidance needs (0.1-0.2)
    variants: float = 0.0  # probability that an example is a label-consistent variant of its row
    #   (`TextToMidiTask.variant`: another tempo, key and instrument, captioned to match), so every
    #   attribute is seen with many pieces

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ConfigError(f"data.tasks.text_to_midi.cond_dropout must be in [0, 1), got {self.cond_dropout}")
        if not 0.0 <= self.variants <= 1.0:
            raise ConfigError(f"data.tasks.text_to_midi.variants must be in [0, 1], got {self.variants}")


@register_task("text_to_midi")
class TextToMidiTask(TranscriptionTask):
    questions = ()  # captions come from the row's labels (see question)
    required_keys = ("notes",)
    takes_audio = False
    pipeline = "compose"
    options_class = TextToMidiOptions
    #: The trained window: clips longer than this train on random windows of it, and
    #: generation refuses longer pieces (the corpus's clips are 4 s).
    window_seconds = 4.0
    #: Sampling used by ``audiollm evaluate`` (seeded, so a run is repeatable for the same rows
    #: and batch size): adherence is a property of what the model samples, not of its argmax.
    eval_options = DecodingOptions(max_new_tokens=1024, guidance=3.0, temperature=1.0, top_p=0.95, seed=0)

    def validate(self, row: Row, index: int | None = None) -> None:
        where = f"{self.name} {row_label(row, index)}"
        if row.get("notes") is None:
            raise ManifestError(f"{where} lacks required key 'notes'")
        parse_notes(row["notes"], where, int(row.get("program", 0)))
        if not (isinstance(row.get("question"), str) and row["question"].strip()):
            missing = [k for k in LABEL_KEYS if row.get(k) is None]
            if missing:
                raise ManifestError(f"{where} has no 'question', so it needs the labels {', '.join(LABEL_KEYS)} "
                                    f"to caption it (missing {missing[0]!r})")

    def variant(self, row: Row, rng: random.Random, tokenizer: Any) -> Row:
        """The row's notes as a new request whose caption is true of them: time stretched to
        another tempo of the corpus's range (``VARIANT_STRETCH``), transposed (``VARIANT_SHIFTS``,
        then by octaves into the new instrument's comfortable range, as the corpus renders),
        given to another instrument the vocabulary names, relabelled (tempo, class, key,
        program, family) and captioned from the new labels. The tempo label is the score's
        beat rate scaled exactly as the notes are, and the key label is the old one moved by
        the transposition, so every label stays exact. A row without the labels is returned as is.
        """

        if any(row.get(k) is None for k in LABEL_KEYS) or tokenizer.midi is None:
            return row
        key = parse_request(str(row["key"]))
        if key.tonic is None or key.mode is None:
            return row
        old_bpm = float(row["tempo_bpm"])
        lo = max(min(r[0] for r in TEMPO_RANGES.values()), math.ceil(old_bpm / VARIANT_STRETCH[1]))
        hi = min(max(r[1] for r in TEMPO_RANGES.values()), math.floor(old_bpm / VARIANT_STRETCH[0]))
        bpm = rng.randint(lo, hi) if lo <= hi else int(old_bpm)
        stretch = old_bpm / bpm
        program = rng.choice(tokenizer.midi.programs)
        notes = self.notes(row)
        shift = rng.choice(VARIANT_SHIFTS)
        if program in BY_PROGRAM:
            shift += octave_for(np.array([n.pitch for n in notes]) + shift, BY_PROGRAM[program])
        new_key = key_name((key.tonic + shift) % 12, key.mode)
        labels = {
            "program": program, "tempo_bpm": bpm, "tempo_class": tempo_class(bpm),
            "key": new_key, "tonic": new_key.rsplit(" ", 1)[0], "mode": key.mode,
            "duration": self.duration(row) * stretch,
            "notes": [[min(127, max(0, n.pitch + shift)), n.start * stretch, n.end * stretch, n.velocity, program]
                      for n in notes],
        }
        if "transpose" in row:
            labels["transpose"] = int(row["transpose"]) + shift
        if program in BY_PROGRAM:
            labels |= {"family": BY_PROGRAM[program].family, "instrument": BY_PROGRAM[program].gm_name}
        new = {k: v for k, v in row.items() if k not in ("question", "midi")} | labels
        new["question"] = caption(new, rng)
        return new

    def target_ids(self, row: Row, tokenizer: Any, start: float, duration: float) -> list[int]:
        """Transcription's event tokens of the window, opened by the piece's attribute tokens
        (tempo bin, key) when the vocabulary has them: a plan the model writes first and then
        follows. The row's ``tempo_bpm`` and ``key`` labels give them; a row without them gets
        the tempo and key its notes show (:func:`estimate_tempo`, :func:`analyse_key`)."""
        ids = super().target_ids(row, tokenizer, start, duration)
        if not tokenizer.midi.attributes:
            return ids
        return tokenizer.encode_events(tokenizer.midi.attribute_tokens(*self.attributes(row))) + ids

    def attributes(self, row: Row) -> tuple[float, int, str]:
        """(bpm, tonic pitch class, mode) of the row: its labels, else its notes' analysis."""
        notes = None
        bpm = row.get("tempo_bpm")
        if bpm is None:
            notes = self.notes(row)
            bpm = estimate_tempo(notes) or 120.0
        key = parse_request(str(row["key"])) if row.get("key") else None
        if key is None or key.tonic is None or key.mode is None:
            return float(bpm), *analyse_key(notes or self.notes(row))
        return float(bpm), key.tonic, key.mode

    def question(self, row: Row, rng: random.Random) -> str:
        q = row.get("question")
        if isinstance(q, str) and q.strip():
            return q.strip()
        return caption(row, rng)

    def duration(self, row: Row) -> float:
        """Seconds the row's notes span: its ``duration`` label, else the last note end."""
        if row.get("duration"):
            return float(row["duration"])
        return max(n.end for n in self.notes(row))

    def generation_seconds(self, row: Row, time_step: float) -> float:
        """How long a piece evaluation asks for: the row's duration, at most the trained window,
        on the tokenizer's time grid."""
        return round(min(self.duration(row), self.window_seconds) / time_step) * time_step

    def score(self, predictions: Sequence[str], rows: Sequence[Row]) -> dict[str, float]:
        """``valid_rate`` (notes that survive a MIDI file round trip), and the share of pieces
        whose MIDI has the requested ``instrument`` / ``tempo`` / ``key`` (each over the rows
        that ask for it; see :func:`audiollm.metrics.notes.attribute_adherence`). The tempo scores
        are also given for the pieces as ``audiollm generate`` writes them by default, played
        at the requested tempo (:func:`audiollm.music.tempo_fit.fit_tempo`): ``tempo_adherence_fitted``,
        ``tempo_bpm_adherence_fitted``, ``tempo_class_adherence_fitted``."""
        self._check_pairs(predictions, rows)
        if not rows:
            return {"n": 0}
        pieces = []
        for k, pred in enumerate(predictions):
            try:
                pieces.append(parse_notes(json.loads(pred) if pred.strip() else [], f"prediction {k}"))
            except (json.JSONDecodeError, ManifestError) as e:
                raise AudioLLMError(f"text_to_midi prediction {k} is not a note list ({e})") from None
        requests = [request_of(r) for r in rows]
        fits = [fit_tempo(p, req, min(self.duration(r), self.window_seconds)) for p, req, r in zip(pieces, requests, rows)]
        scores = attribute_adherence(requests, pieces, tempi=[f.before for f in fits])
        fitted = tempo_adherence(requests, [f.after if midi_round_trip(f.notes) else None for f in fits])
        return {"n": len(rows), **scores, **{f"{k}_fitted": v for k, v in fitted.items()}}
