"""Transcription: the notes played in an audio window, answered as MIDI event tokens.

A row names its notes either inline or by MIDI file::

    {"audio": "a.wav", "task": "transcription", "notes": [[pitch, start, end, velocity, program], ...]}
    {"audio": "a.wav", "task": "transcription", "midi": "a.mid"}

Times are seconds from the start of the audio file. The embedded corpus's 4-element notes
``[start, end, pitch, velocity]`` are read too, with the row's ``program`` (default 0).
The answer for a training window is its event tokens (held section, ``<|tie|>``, events);
a prediction is the stitched note list of the whole clip, as JSON in the 5-element form,
scored with mir_eval against the reference notes.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from audiollm.errors import AudioLLMError, ManifestError
from audiollm.metrics.notes import transcription_scores
from audiollm.music.midi_file import MidiFileError, read_midi
from audiollm.music.notes import Note
from audiollm.tasks.base import Row, Task, register_task, row_label
from audiollm.tokenizers.midi import TIE

TRANSCRIPTION_QUESTIONS: tuple[str, ...] = (
    "Transcribe the notes.",
    "Write down the notes being played.",
    "Transcribe this music into MIDI.",
    "Which notes are played, and when?",
)


@lru_cache(maxsize=64)
def _midi_notes(path: str) -> tuple[Note, ...]:
    return tuple(read_midi(path))


def parse_notes(items: Any, where: str, program: int = 0) -> list[Note]:
    """A manifest's note list → Notes; ManifestError naming ``where`` and the bad entry."""
    if not isinstance(items, (list, tuple)):
        raise ManifestError(f"{where}: 'notes' must be a list of [pitch, start, end, velocity, program]")
    out = []
    for k, item in enumerate(items):
        try:
            if len(item) == 5:
                pitch, start, end, velocity, prog = item
            elif len(item) == 4:  # the embedded corpus: [start, end, pitch, velocity]
                start, end, pitch, velocity = item
                prog = program
            else:
                raise ValueError("expected 5 values")
            note = Note(int(pitch), float(start), float(end), int(velocity), int(prog))
            if int(pitch) != pitch or int(prog) != prog:
                raise ValueError("pitch and program must be integers")
        except (TypeError, ValueError) as e:
            raise ManifestError(f"{where}: note {k} {item!r} is not [pitch, start, end, velocity, program] ({e})") from None
        if not (0 <= note.pitch <= 127 and 0 <= note.program <= 127 and 0 <= note.velocity <= 127):
            raise ManifestError(f"{where}: note {k} {item!r} has pitch, velocity or program outside 0-127")
        if not (math.isfinite(note.start) and math.isfinite(note.end)) or note.start < 0 or note.end <= note.start:
            raise ManifestError(f"{where}: note {k} {item!r} needs 0 <= start < end")
        out.append(note)
    return out


def notes_to_json(notes: Sequence[Note]) -> str:
    """Notes → the prediction string ``[[pitch, start, end, velocity, program], ...]``."""
    return json.dumps([[n.pitch, round(n.start, 4), round(n.end, 4), n.velocity, n.program] for n in notes])


@register_task("transcription")
class TranscriptionTask(Task):
    questions = TRANSCRIPTION_QUESTIONS
    required_keys = ("audio",)
    answers_are_events = True
    #: The window's onsets follow the audio in time: with a CTC head the encoder also learns to
    #: emit each note-on as it sounds (see ``head_targets``).
    aligned_answer = True
    window_seconds = 5.0
    pipeline = "transcribe"
    #: Answer budget per window; a CLI's smaller text budget does not apply to event answers.
    max_new_tokens = 1024

    def validate(self, row: Row, index: int | None = None) -> None:
        super().validate(row, index)
        if row.get("notes") is None and not row.get("midi"):
            raise ManifestError(f"{self.name} {row_label(row, index)} needs 'notes' or 'midi'")
        if row.get("notes") is not None:
            parse_notes(row["notes"], f"{self.name} {row_label(row, index)}", int(row.get("program", 0)))

    def notes(self, row: Row) -> list[Note]:
        """The row's reference notes (inline, else read from its MIDI file)."""
        if row.get("notes") is not None:
            return parse_notes(row["notes"], f"{self.name} {row_label(row)}", int(row.get("program", 0)))
        if not row.get("midi"):
            raise ManifestError(f"{self.name} {row_label(row)} needs 'notes' or 'midi'")
        return list(_midi_notes(str(row["midi"])))

    def prepare_rows(self, rows: list[Row], source: str = "") -> list[Row]:
        """Drop rows whose MIDI file is corrupt or whose notes are empty, warning once with
        the count and the files."""
        kept, skipped = [], []
        for i, row in enumerate(rows):
            self.validate(row, i)
            try:
                if not self.notes(row):
                    raise MidiFileError(f"{row_label(row, i)} has no notes")
            except MidiFileError as e:
                skipped.append(str(e))
                continue
            kept.append(row)
        if skipped:
            shown = "; ".join(skipped[:3]) + ("; …" if len(skipped) > 3 else "")
            warnings.warn(f"{source or 'manifest'}: skipped {len(skipped)} of {len(rows)} transcription row(s): {shown}",
                          stacklevel=2)
        return kept

    def answer(self, row: Row) -> str:
        """The whole clip's reference notes as JSON (what ``references`` and reports show)."""
        return notes_to_json(self.notes(row))

    def references(self, row: Row) -> list[str]:
        return [self.answer(row)]

    def target_ids(self, row: Row, tokenizer: Any, start: float, duration: float) -> list[int]:
        """Event token ids of the window ``[start, start + duration)``: the notes sounding at
        ``start`` go in the held section, onsets and offsets inside the window follow."""
        vocab = tokenizer.midi
        if vocab is None:
            raise AudioLLMError("the tokenizer has no MIDI vocabulary; transcription needs one (TextTokenizer.with_midi)")
        length = max(1, vocab.steps(duration))
        tokens = vocab.encode_window(vocab.quantize(self.notes(row)), vocab.steps(start), length)
        return tokenizer.encode_events(tokens)

    def head_targets(self, row: Row, answer_ids: Sequence[int], tokenizer: Any, start: float,
                     duration: float) -> dict[str, Any]:
        """The window's targets for the auxiliary heads.

        ``ctc``: its note-on tokens after ``<|tie|>``, in onset order (a chord's notes by pitch,
        as the codec writes them). Time shifts, velocities, programs, note-offs and held notes
        carry no new sound event of their own, so the encoder is not asked to place them;
        pitch onsets are what it must hear. ``note_activity``: each note sounding in the window
        as ``(start, end, pitch)`` relative to it, clipped to it."""
        tokens = tokenizer.decode_events(answer_ids)
        if len(tokens) != len(answer_ids) or TIE not in tokens:
            raise AudioLLMError("a transcription target must be event tokens with a <|tie|>")
        tie = tokens.index(TIE)
        onsets = [i for i, t in zip(answer_ids[tie + 1:], tokens[tie + 1:]) if t.startswith("<|on_")]
        end = start + duration
        sounding = [(max(n.start, start) - start, min(n.end, end) - start, n.pitch)
                    for n in self.notes(row) if n.start < end and n.end > start]
        return {"ctc": onsets, "note_activity": sounding}

    def prediction(self, result: Sequence[Note]) -> str:
        """A clip's stitched notes → the JSON note list `score` reads."""
        return notes_to_json(result)

    def score(self, predictions: Sequence[str], rows: Sequence[Row]) -> dict[str, float]:
        """mir_eval note scores averaged over clips: ``note_precision``, ``note_recall``,
        ``note_f1`` (onsets within 50 ms), ``note_offset_f1``, ``note_offset_velocity_f1``."""
        self._check_pairs(predictions, rows)
        if not rows:
            return {"n": 0}
        estimates = []
        for k, pred in enumerate(predictions):
            try:
                estimates.append(parse_notes(json.loads(pred) if pred.strip() else [], f"prediction {k}"))
            except (json.JSONDecodeError, ManifestError) as e:
                raise AudioLLMError(f"transcription prediction {k} is not a note list ({e})") from None
        return {"n": len(rows), **transcription_scores([self.notes(r) for r in rows], estimates)}
