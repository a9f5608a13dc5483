"""MIDI files ⇄ note lists, through pretty_midi: the sustain pedal is folded into note ends
(pretty_midi leaves CC64 as raw control changes), and files are written atomically.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audiollm.errors import AudioLLMError
from audiollm.files import atomic_file
from audiollm.music.notes import Note
from audiollm.music.quiet_import import quiet_import

SUSTAIN_CC = 64  # damper pedal; value >= 64 means down (the General MIDI convention)


class MidiFileError(AudioLLMError):
    """A MIDI file that is missing, corrupt, or has no notes."""


def program_name(program: int) -> str:
    pretty_midi = quiet_import("pretty_midi")

    return pretty_midi.program_to_instrument_name(program)


def fold_sustain(notes: list[Note], control_changes: Iterable[Any], file_end: float) -> list[Note]:
    """Lengthen notes released while the sustain pedal (CC64 >= 64) is down.

    A note released under the pedal sounds until the pedal lifts, or until the same key is
    struck again, whichever comes first (what a piano's dampers do).
    """
    intervals: list[tuple[float, float]] = []
    down = None
    for cc in sorted((c for c in control_changes if c.number == SUSTAIN_CC), key=lambda c: c.time):
        if cc.value >= 64 and down is None:
            down = cc.time
        elif cc.value < 64 and down is not None:
            intervals.append((down, cc.time))
            down = None
    if down is not None:
        intervals.append((down, max(file_end, down)))
    if not intervals:
        return notes
    onsets: dict[tuple[int, int], list[float]] = {}
    for n in notes:
        onsets.setdefault((n.program, n.pitch), []).append(n.start)
    for v in onsets.values():
        v.sort()
    out = []
    for n in notes:
        end = n.end
        for lo, hi in intervals:
            if lo <= n.end < hi:
                end = hi
                break
        if end > n.end:
            later = [s for s in onsets[(n.program, n.pitch)] if s > n.start]
            if later:
                end = max(n.end, min(end, later[0]))
        out.append(Note(n.pitch, n.start, end, n.velocity, n.program))
    return out


def read_midi(path: str | Path, *, sustain: bool = True) -> list[Note]:
    """Every pitched note of a MIDI file (sorted), with the sustain pedal folded in.

    Raises :class:`MidiFileError` for a missing or unreadable file, a file without notes,
    and a drum track (percussion has no place in the pitched vocabulary).
    """
    pretty_midi = quiet_import("pretty_midi")

    p = Path(path)
    if not p.is_file():
        raise MidiFileError(f"{p}: no such MIDI file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pretty_midi warns about harmless meta events
            pm = pretty_midi.PrettyMIDI(str(p))
    except Exception as e:  # mido and pretty_midi raise many types for corrupt files
        msg = " ".join(str(e).split()) or type(e).__name__
        raise MidiFileError(f"{p}: not a readable MIDI file ({msg})") from None
    notes: list[Note] = []
    end_time = pm.get_end_time()
    for inst in pm.instruments:
        if inst.is_drum:
            if inst.notes:
                raise MidiFileError(f"{p}: has a drum track ({inst.name or 'channel 10'}); only pitched instruments can be tokenised")
            continue
        own = [Note(int(n.pitch), float(n.start), float(n.end), int(n.velocity), int(inst.program))
               for n in inst.notes if n.end > n.start]
        notes += fold_sustain(own, inst.control_changes, end_time) if sustain else own
    if not notes:
        raise MidiFileError(f"{p}: has no notes")
    notes.sort(key=Note.sort_key)
    return notes


def write_midi(notes: Iterable[Note], path: str | Path) -> Path:
    """Write notes as a type-1 MIDI file, one track per program (120 bpm, 220 ticks/beat), atomically."""
    pretty_midi = quiet_import("pretty_midi")

    pm = pretty_midi.PrettyMIDI()
    by_program: dict[int, Any] = {}
    for n in sorted(notes, key=Note.sort_key):
        inst = by_program.get(n.program)
        if inst is None:
            inst = by_program[n.program] = pretty_midi.Instrument(program=n.program, name=program_name(n.program))
        inst.notes.append(pretty_midi.Note(velocity=min(127, max(1, int(n.velocity))), pitch=int(n.pitch),
                                           start=float(n.start), end=float(n.end)))
    pm.instruments = [by_program[k] for k in sorted(by_program)]
    with atomic_file(path) as tmp:
        pm.write(str(tmp))
    return Path(path)

