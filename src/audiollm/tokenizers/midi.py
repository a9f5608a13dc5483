"""MIDI event tokens: note lists and MIDI files ⇄ the token sequence of one audio window.

A window's answer is a *held section* then an *event section*, separated by ``<|tie|>``::

    <|prog_0|> <|on_60|>            # held: program 0, pitch 60 was already sounding at the window start
    <|tie|>                          # always present; ends the held section
    <|vel_20|> <|on_64|>             # t=0: note-on 64 at velocity bin 20 (program still unset → program 0)
    <|shift_50|> <|off_60|>          # t=0.50 s: the held note ends
    <|shift_100|> <|shift_20|> <|off_64|>   # t=1.70 s: shifts are chained past 1 s

Time is window-relative and quantised to ``time_step`` (10 ms): a shift token advances the clock
by 1…``max_shift_steps`` steps, so a window of any length needs only ``max_shift_steps`` time
tokens (not one token per position). Program and velocity tokens are *state*: they are written
only when they change, and the state is reset after ``<|tie|>``. At one instant note-offs come
before note-ons (a re-struck key ends, then starts again), each sorted by (program, pitch).
With one program in the vocabulary no program tokens exist at all.

A vocabulary built with ``attributes=True`` also has *attribute tokens*: ``<|bpm_B|>`` (one of
``TEMPO_BINS`` log-spaced tempo bins) and ``<|key_K|>`` (tonic pitch class, + 12 for minor).
A text-to-MIDI answer opens with them, before ``<|tie|>``: the model first writes the tempo and
key it will play, then notes that follow them. Decoding skips them (they are not notes).

Held markers let a note longer than a window survive windowing: window k+1 lists the notes
still sounding at its start, and :func:`decode_windows` joins them to the note that began in an
earlier window, so stitched windows give back each note exactly once.

We write the codec here rather than use miditok: miditok's tokenizers (MIDILike, TSD, REMI…)
work on whole files with time measured in beats and have no notion of a note already sounding
when an audio window starts, which transcription of fixed-length audio windows needs (the
design follows the MT3 paper's codec: absolute seconds, shift events, a tie section).
MIDI files are read and written with pretty_midi, which is already a dependency; the sustain
pedal is folded into note ends here because pretty_midi leaves CC64 as raw control changes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audiollm.errors import AudioLLMError
from audiollm.music.midi_file import program_name
from audiollm.music.notes import Note

TIE = "<|tie|>"
_TOKEN = re.compile(r"<\|(tie|shift|vel|on|off|prog|bpm|key)(?:_(\d+))?\|>")
#: Tempo bins of the attribute tokens: log-spaced from ``TEMPO_BIN_LOW`` bpm, each ``TEMPO_BIN_RATIO``
#: times the last (4 %: a bin's centre is within 2 % of every tempo in it), up to 240 bpm.
TEMPO_BIN_LOW = 40.0
TEMPO_BIN_RATIO = 1.04
TEMPO_BINS = 47  # centres 40 … 243 bpm


def tempo_bin(bpm: float) -> int:
    """The attribute tempo bin of ``bpm`` (clamped to the binned range)."""
    return min(TEMPO_BINS - 1, max(0, round(math.log(bpm / TEMPO_BIN_LOW) / math.log(TEMPO_BIN_RATIO))))


def bin_tempo(b: int) -> float:
    """A tempo bin's centre in bpm."""
    return TEMPO_BIN_LOW * TEMPO_BIN_RATIO**b


def key_index(tonic: int, mode: str) -> int:
    """The attribute key token's index: the tonic pitch class, + 12 for minor."""
    return int(tonic) + (12 if mode == "minor" else 0)


class MidiTokenError(AudioLLMError):
    """Notes the vocabulary cannot express (unknown program, pitch out of range, bad times)."""


@dataclass(frozen=True)
class WindowNote:
    """A decoded note of one window, in steps from the window start.

    ``held`` notes began before the window (their onset and velocity live in an earlier
    window); ``open`` notes are still sounding at the window end.
    """

    program: int
    pitch: int
    start: int
    end: int
    velocity: int
    held: bool = False
    open: bool = False


@dataclass
class DecodedWindow:
    notes: list[WindowNote]
    n_invalid: int = 0  # tokens dropped while repairing the sequence (see decode_window)


def _ranges(values: Sequence[int]) -> str:
    """[0, 1, 2, 5] → "0-2, 5"."""
    out, run = [], [values[0]]
    for v in values[1:]:
        if v == run[-1] + 1:
            run.append(v)
        else:
            out.append(run)
            run = [v]
    out.append(run)
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in out)


@dataclass(frozen=True)
class MidiVocab:
    """The event vocabulary and its time/velocity resolution (saved with the tokenizer)."""

    time_step: float = 0.01  # seconds per time step: onsets and offsets are quantised to it
    max_shift_steps: int = 100  # longest single shift token (100 × 10 ms = 1 s); longer gaps chain
    velocity_bins: int = 32  # MIDI velocities 1-127 fall into this many equal-width bins
    programs: tuple[int, ...] = tuple(range(128))  # GM programs the vocabulary can name, sorted
    #: Attribute tokens: a tempo bin (``<|bpm_B|>``) and a key (``<|key_K|>``) that a generated
    #: piece's answer opens with, before its ``<|tie|>`` (see :meth:`attribute_tokens`).
    attributes: bool = False
    tokens: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.001 <= self.time_step <= 0.1:
            raise MidiTokenError(f"time_step must be within 0.001-0.1 s, got {self.time_step}")
        if not 1 <= self.max_shift_steps <= 1000:
            raise MidiTokenError(f"max_shift_steps must be within 1-1000, got {self.max_shift_steps}")
        if not 1 <= self.velocity_bins <= 127:
            raise MidiTokenError(f"velocity_bins must be within 1-127, got {self.velocity_bins}")
        programs = tuple(sorted({int(p) for p in self.programs}))
        if not programs or programs[0] < 0 or programs[-1] > 127:
            raise MidiTokenError(f"programs must be a non-empty list of GM programs 0-127, got {self.programs}")
        object.__setattr__(self, "programs", programs)
        toks = [TIE]
        toks += [f"<|shift_{i}|>" for i in range(1, self.max_shift_steps + 1)]
        toks += [f"<|vel_{i}|>" for i in range(self.velocity_bins)]
        toks += [f"<|on_{p}|>" for p in range(128)]
        toks += [f"<|off_{p}|>" for p in range(128)]
        if self.explicit_programs:
            toks += [f"<|prog_{p}|>" for p in programs]
        if self.attributes:
            toks += [f"<|bpm_{b}|>" for b in range(TEMPO_BINS)]
            toks += [f"<|key_{k}|>" for k in range(24)]
        object.__setattr__(self, "tokens", tuple(toks))

    # ------------------------------------------------------------------ config

    @property
    def explicit_programs(self) -> bool:
        """Program tokens exist only when there is more than one program to tell apart."""
        return len(self.programs) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_step": self.time_step,
            "max_shift_steps": self.max_shift_steps,
            "velocity_bins": self.velocity_bins,
            "programs": list(self.programs),
            "attributes": self.attributes,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "MidiVocab":
        allowed = {"time_step", "max_shift_steps", "velocity_bins", "programs", "attributes"}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise MidiTokenError(f"unknown MIDI vocabulary key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
        return cls(**{k: (tuple(v) if k == "programs" else v) for k, v in values.items()})

    def steps(self, seconds: float) -> int:
        """Seconds → whole time steps (nearest)."""
        return int(round(seconds / self.time_step))

    def check_window(self, window_seconds: float) -> int:
        """The window length in steps; it must be a whole number of steps."""
        n = self.steps(window_seconds)
        if n < 1 or abs(n * self.time_step - window_seconds) > 1e-6:
            raise MidiTokenError(
                f"window of {window_seconds} s is not a positive multiple of the {self.time_step} s time step"
            )
        return n

    # ------------------------------------------------------------------ velocity

    def velocity_bin(self, velocity: int) -> int:
        return min(self.velocity_bins - 1, max(0, int(velocity)) * self.velocity_bins // 128)

    def bin_velocity(self, b: int) -> int:
        """A bin's centre velocity, within 1-127."""
        return min(127, max(1, int(round((b + 0.5) * 128 / self.velocity_bins))))

    # ------------------------------------------------------------------ attributes

    def attribute_tokens(self, bpm: float, tonic: int, mode: str) -> list[str]:
        """The tokens a piece of this tempo and key opens with: its tempo bin, then its key
        (``K`` = tonic pitch class, + 12 for minor)."""
        if not self.attributes:
            raise MidiTokenError("this MIDI vocabulary has no attribute tokens")
        if mode not in ("major", "minor") or not 0 <= int(tonic) <= 11 or not bpm > 0:
            raise MidiTokenError(f"no attribute tokens for {bpm} bpm, tonic {tonic}, mode {mode!r}")
        return [f"<|bpm_{tempo_bin(bpm)}|>", f"<|key_{key_index(tonic, mode)}|>"]

    @staticmethod
    def read_attributes(tokens: Iterable[str]) -> dict[str, Any]:
        """The tempo (bin centre, bpm) and key (tonic, mode) a token sequence opens with."""
        out: dict[str, Any] = {}
        for tok in tokens:
            kind, _, arg = tok[2:-2].partition("_")
            if kind == "bpm":
                out["bpm"] = bin_tempo(int(arg))
            elif kind == "key":
                out["tonic"], out["mode"] = int(arg) % 12, ("minor" if int(arg) >= 12 else "major")
            elif kind == "tie":
                break
        return out

    # ------------------------------------------------------------------ notes → steps

    def check_program(self, program: int) -> None:
        if program not in self.programs:
            valid = (
                ", ".join(f"{p} ({program_name(p)})" for p in self.programs)
                if len(self.programs) <= 8 else f"GM programs {_ranges(self.programs)}"
            )
            raise MidiTokenError(
                f"program {program} ({program_name(program) if 0 <= program <= 127 else 'not a GM program'}) "
                f"is not in the MIDI vocabulary; valid: {valid}"
            )

    def quantize(self, notes: Iterable[Note]) -> list[WindowNote]:
        """Notes → whole-step notes (absolute steps), sorted, one voice per (program, pitch).

        A note is at least one step long. When two notes of the same program and pitch
        overlap, the earlier one ends where the later one starts (a key cannot sound twice);
        two with the same onset merge into the longer.
        """
        by_key: dict[tuple[int, int], list[list[int]]] = {}
        for n in notes:
            if not 0 <= n.pitch <= 127:
                raise MidiTokenError(f"pitch {n.pitch} is outside MIDI's 0-127")
            if not (math.isfinite(n.start) and math.isfinite(n.end)) or n.start < 0 or n.end < n.start:
                raise MidiTokenError(f"note {n.pitch} has bad times start={n.start} end={n.end}")
            self.check_program(n.program)
            a = self.steps(n.start)
            b = max(self.steps(n.end), a + 1)
            by_key.setdefault((n.program, n.pitch), []).append([a, b, self.velocity_bin(n.velocity)])
        out: list[WindowNote] = []
        for (prog, pitch), items in by_key.items():
            items.sort()
            kept: list[list[int]] = []
            for a, b, v in items:
                if kept and kept[-1][0] == a:  # same onset: one note, the longer one
                    kept[-1][1] = max(kept[-1][1], b)
                    continue
                if kept and kept[-1][1] > a:
                    kept[-1][1] = a
                kept.append([a, b, v])
            out += [WindowNote(prog, pitch, a, b, v) for a, b, v in kept]
        out.sort(key=lambda w: (w.start, w.program, w.pitch))
        return out

    # ------------------------------------------------------------------ encode

    def encode_window(self, qnotes: Sequence[WindowNote], start: int, length: int) -> list[str]:
        """Tokens for the window of steps ``[start, start + length)`` of quantised notes.

        Held: notes with onset before ``start`` still sounding after it. Note-ons: onsets in
        the window. Note-offs: ends in ``(start, start + length]``; notes still sounding at the
        window end get no note-off (the next window holds them).
        """
        stop = start + length
        held = sorted((w.program, w.pitch) for w in qnotes if w.start < start < w.end)
        out: list[str] = []
        prog = None
        for p, pitch in held:
            if self.explicit_programs and p != prog:
                out.append(f"<|prog_{p}|>")
                prog = p
            out.append(f"<|on_{pitch}|>")
        out.append(TIE)
        events = []  # (time, 0 = off / 1 = on, program, pitch, velocity bin)
        for w in qnotes:
            if start <= w.start < stop:
                events.append((w.start - start, 1, w.program, w.pitch, w.velocity))
            if start < w.end <= stop and w.start < stop:
                events.append((w.end - start, 0, w.program, w.pitch, 0))
        events.sort()
        t, prog, vel = 0, None, None
        for time, kind, p, pitch, v in events:
            while t < time:
                d = min(time - t, self.max_shift_steps)
                out.append(f"<|shift_{d}|>")
                t += d
            if self.explicit_programs and p != prog:
                out.append(f"<|prog_{p}|>")
                prog = p
            if kind == 1:
                if v != vel:
                    out.append(f"<|vel_{v}|>")
                    vel = v
                out.append(f"<|on_{pitch}|>")
            else:
                out.append(f"<|off_{pitch}|>")
        return out

    def encode_windows(self, notes: Iterable[Note], window_seconds: float, total_seconds: float | None = None) -> list[list[str]]:
        """Split a note list into consecutive windows and tokenise each.

        ``total_seconds`` (default: the last note end) sets how many windows there are;
        notes after it are cut at it.
        """
        n = self.check_window(window_seconds)
        q = self.quantize(notes)
        total = self.steps(total_seconds) if total_seconds is not None else max((w.end for w in q), default=0)
        q = [w if w.end <= total else WindowNote(w.program, w.pitch, w.start, total, w.velocity) for w in q if w.start < total]
        count = max(1, -(-total // n))
        return [self.encode_window(q, k * n, min(n, total - k * n) if total > k * n else n) for k in range(count)]

    # ------------------------------------------------------------------ decode

    def decode_window(self, tokens: Iterable[str], length: int) -> DecodedWindow:
        """Tokens of one window → notes in steps, repairing invalid sequences.

        Repairs: a token in the wrong section or outside the vocabulary is dropped; a note-off
        with no sounding note is dropped; a note-on of a key already sounding ends it first;
        a note-on before any velocity token gets velocity 64, before any program token the
        first program; time past the window end is clamped to it, and a note-on there is
        dropped; notes still sounding at the end are closed at the window end (``open=True``).
        Without ``<|tie|>`` there is no held section.
        """
        toks = list(tokens)
        valid = set(self.tokens)
        held_part = TIE in toks
        default_prog = self.programs[0]
        active: dict[tuple[int, int], list[Any]] = {}  # key → [start, velocity, held]
        notes: list[WindowNote] = []
        bad = 0
        t, prog, vel = 0, default_prog, None
        for tok in toks:
            if tok not in valid:
                bad += 1
                continue
            kind, _, arg = tok[2:-2].partition("_")
            value = int(arg) if arg else 0
            if held_part:
                if kind == "tie":
                    held_part, prog = False, default_prog
                elif kind == "prog":
                    prog = value
                elif kind == "on":
                    if (prog, value) in active:
                        bad += 1
                    else:
                        active[(prog, value)] = [0, 0, True]
                elif kind not in ("bpm", "key"):  # attribute tokens open a piece; they are no notes
                    bad += 1
                continue
            if kind == "shift":
                t = min(length, t + value)
            elif kind == "prog":
                prog = value
            elif kind == "vel":
                vel = value
            elif kind == "on":
                if t >= length:
                    bad += 1
                    continue
                key = (prog, value)
                if key in active:
                    s, v, h = active.pop(key)
                    if t > s:
                        notes.append(WindowNote(prog, value, s, t, v, h))
                v = self.bin_velocity(vel) if vel is not None else 64
                active[key] = [t, v, False]
            elif kind == "off":
                key = (prog, value)
                if key not in active:
                    bad += 1
                    continue
                s, v, h = active.pop(key)
                notes.append(WindowNote(prog, value, s, max(t, s + 1), v, h))
            else:  # a second <|tie|>
                bad += 1
        for (p, pitch), (s, v, h) in active.items():
            notes.append(WindowNote(p, pitch, s, max(length, s + 1), v, h, open=True))
        notes.sort(key=lambda w: (w.start, w.program, w.pitch))
        return DecodedWindow(notes, bad)

    def decode_windows(self, windows: Sequence[Sequence[str]], window_seconds: float,
                       total_seconds: float | None = None) -> tuple[list[Note], int]:
        """Stitch consecutive windows' tokens into one note list in absolute seconds.

        A note still sounding at the end of window k continues when window k+1 holds its
        (program, pitch), and ends at window k+1's start otherwise. A held note with nothing
        to continue (its onset was missed) is dropped. Returns the notes and the number of
        dropped tokens and orphan held notes.
        """
        n = self.check_window(window_seconds)
        total = self.steps(total_seconds) if total_seconds is not None else n * len(windows)
        active: dict[tuple[int, int], list[int]] = {}  # key → [absolute start, velocity]
        out: list[Note] = []
        bad = 0

        def finish(key: tuple[int, int], start: int, end: int, velocity: int) -> None:
            out.append(Note(key[1], start * self.time_step, max(end, start + 1) * self.time_step, velocity, key[0]))

        for k, toks in enumerate(windows):
            k0 = k * n
            length = min(n, total - k0) if total > k0 else n
            dec = self.decode_window(toks, length)
            bad += dec.n_invalid
            held = {(w.program, w.pitch): w for w in dec.notes if w.held}
            for key in list(active):
                start, velocity = active[key]
                w = held.pop(key, None)
                if w is not None and w.open:
                    continue
                del active[key]
                finish(key, start, k0 + (w.end if w is not None else 0), velocity)
            bad += len(held)
            for w in dec.notes:
                if w.held:
                    continue
                if w.open:
                    active[(w.program, w.pitch)] = [k0 + w.start, w.velocity]
                else:
                    finish((w.program, w.pitch), k0 + w.start, k0 + w.end, w.velocity)
        for key, (start, velocity) in active.items():
            finish(key, start, total, velocity)
        out.sort(key=Note.sort_key)
        return out, bad


# ---------------------------------------------------------------------------- token text


def tokens_to_text(tokens: Iterable[str]) -> str:
    """Event tokens as one answer string (what the text tokenizer encodes)."""
    return "".join(tokens)


def text_to_tokens(text: str) -> list[str]:
    """Event tokens found in decoded model text, in order (other text is ignored)."""
    return [m.group(0) for m in _TOKEN.finditer(text)]


# ---------------------------------------------------------------------------- MIDI files


