"""Grammar-constrained decoding of MIDI event tokens: a per-sequence state machine over the
event grammar of :mod:`audiollm.tokenizers.midi` that masks, at every step, the tokens that
would make the sequence invalid or unlike anything the encoder writes.

Allowed next tokens, by state (``t`` = steps elapsed, ``L`` = window length in steps):

* held section (before ``<|tie|>``): ``<|prog_*|>`` (not right after another), ``<|on_P|>``
  for a key not yet held under the current program, ``<|tie|>``; no end of sequence;
* right after ``<|vel_*|>``: only a note-on (the encoder writes a velocity only before one);
* event section otherwise: ``<|shift_N|>`` with ``t + N <= L`` (``< L`` while the piece has
  no note yet, so one can still start); ``<|prog_*|>`` (not twice in a row);
  ``<|vel_*|>`` while ``t < L``; ``<|on_P|>`` when ``t < L``, a velocity has been set and
  (program, P) is not sounding; ``<|off_P|>`` for a (program, P) sounding since before ``t``
  (no zero-length notes); end of sequence once the piece has a note (notes still sounding then
  close at the window end, as :meth:`MidiVocab.decode_window` does);
* never text tokens, specials or a second ``<|tie|>``.

With ``attributes=True`` (a vocabulary with attribute tokens, for text-to-MIDI) a sequence
first writes one ``<|bpm_*|>``, then one ``<|key_*|>``, then ``<|tie|>``, and only then events;
``choices`` can narrow each sequence's tempo bins and keys (e.g. to what its caption asks for,
:func:`plan_choices`).

Every sequence the mask allows decodes without a single repair and with at least one note, so
it always becomes a valid MIDI file. Each instant admits finitely many tokens (a key starts at
most once per instant, velocity and program tokens cannot repeat), so time keeps moving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from audiollm.music.theory import TEMPO_RANGES
from audiollm.tokenizers.midi import (
    TEMPO_BINS,
    TIE,
    MidiVocab,
    bin_tempo,
    key_index,
    tempo_bin,
)


@dataclass
class EventIds:
    """Where each kind of event token sits in the model vocabulary."""

    tie: int
    shift: torch.Tensor  # (max_shift_steps,) id of shift_1 … shift_N
    vel: torch.Tensor  # (velocity_bins,)
    on: torch.Tensor  # (128,) by pitch
    off: torch.Tensor  # (128,)
    prog: dict[int, int]  # program → id (empty without explicit programs)
    bpm: torch.Tensor  # (TEMPO_BINS,) attribute tokens by bin; empty when the vocabulary has none
    key: torch.Tensor  # (24,) by key index
    eos: int
    vocab_size: int

    @classmethod
    def of(cls, tokenizer) -> "EventIds":
        vocab: MidiVocab = tokenizer.midi
        ids = lambda names: torch.tensor(tokenizer.encode_events(names), dtype=torch.long)  # noqa: E731
        return cls(
            tie=tokenizer.encode_events([TIE])[0],
            shift=ids([f"<|shift_{i}|>" for i in range(1, vocab.max_shift_steps + 1)]),
            vel=ids([f"<|vel_{i}|>" for i in range(vocab.velocity_bins)]),
            on=ids([f"<|on_{p}|>" for p in range(128)]),
            off=ids([f"<|off_{p}|>" for p in range(128)]),
            prog=dict(zip(vocab.programs, tokenizer.encode_events([f"<|prog_{p}|>" for p in vocab.programs])))
            if vocab.explicit_programs else {},
            bpm=ids([f"<|bpm_{b}|>" for b in range(TEMPO_BINS)] if vocab.attributes else []),
            key=ids([f"<|key_{k}|>" for k in range(24)] if vocab.attributes else []),
            eos=tokenizer.eos_id,
            vocab_size=tokenizer.vocab_size,
        )


@dataclass
class EventState:
    """The grammar state of one sequence."""

    length: int  # window length in steps
    program: int  # current program (the vocabulary's first until a prog token)
    held: bool = True  # still in the held section
    t: int = 0
    velocity_set: bool = False
    last: str = ""  # kind of the previous token
    n_notes: int = 0  # note-ons so far (held ones included)
    plan: list[str] = field(default_factory=list)  # token kinds still due before any event, in order
    choices: dict[str, list[int]] = field(default_factory=dict)  # "bpm"/"key" → allowed bins/keys (absent: all)
    sounding: dict[tuple[int, int], int] = field(default_factory=dict)  # (program, pitch) → start step


class MidiGrammar:
    """Masks for a batch of sequences decoded in lockstep; ``advance`` feeds the chosen tokens."""

    def __init__(self, tokenizer, batch: int, length_steps: int | Sequence[int], *, held: bool = True,
                 attributes: bool = False, choices: Sequence[dict[str, list[int]]] | None = None):
        if tokenizer.midi is None:
            raise ValueError("grammar-constrained decoding needs a tokenizer with a MIDI vocabulary")
        if attributes and not tokenizer.midi.attributes:
            raise ValueError("this MIDI vocabulary has no attribute tokens")
        self.vocab = tokenizer.midi
        self.ids = EventIds.of(tokenizer)
        first = self.vocab.programs[0]
        lengths = [length_steps] * batch if isinstance(length_steps, int) else list(length_steps)
        if len(lengths) != batch:
            raise ValueError(f"{len(lengths)} window lengths for {batch} sequences")
        plan = ["bpm", "key", "tie"] if attributes else []
        choices = list(choices) if choices is not None else [{}] * batch
        if len(choices) != batch:
            raise ValueError(f"{len(choices)} attribute choices for {batch} sequences")
        self.states = [EventState(n, first, held=held, plan=list(plan), choices=dict(c)) for n, c in zip(lengths, choices)]
        self._prog_ids = torch.tensor(list(self.ids.prog.values()), dtype=torch.long)
        # id → (kind, value), for advance()
        self.kind: dict[int, tuple[str, int]] = {self.ids.tie: ("tie", 0)}
        for name in ("shift", "vel", "on", "off", "bpm", "key"):
            for k, i in enumerate(getattr(self.ids, name).tolist()):
                self.kind[i] = (name, k + 1 if name == "shift" else k)
        self.kind.update({i: ("prog", p) for p, i in self.ids.prog.items()})

    def allowed(self, s: EventState, m: torch.Tensor) -> None:
        """Set ``m`` (V,) True at the tokens state ``s`` allows."""
        ids = self.ids
        if s.plan:  # the attributes (among the sequence's choices), then <|tie|>, before anything else
            kind = s.plan[0]
            if kind == "tie":
                m[ids.tie] = True
            else:
                table = getattr(ids, kind)
                m[table[s.choices[kind]] if s.choices.get(kind) else table] = True
            return
        mine = [p for (q, p) in s.sounding if q == s.program]  # keys sounding under the current program
        if s.last == "vel":  # a velocity is always followed by its note-on
            m[ids.on] = True
            m[ids.on[mine]] = False
            return
        if len(self._prog_ids) and s.last != "prog":
            m[self._prog_ids] = True
        if s.held:
            m[ids.on] = True
            m[ids.on[mine]] = False
            m[ids.tie] = True
            return
        room = s.length - s.t
        longest = min(room if s.n_notes else room - 1, len(ids.shift))
        if longest > 0:
            m[ids.shift[:longest]] = True
        if room > 0:
            m[ids.vel] = True
            if s.velocity_set:
                m[ids.on] = True
                m[ids.on[mine]] = False
        ended = [p for (q, p), start in s.sounding.items() if q == s.program and start < s.t]
        m[ids.off[ended]] = True
        if s.n_notes:
            m[ids.eos] = True

    def mask(self, rows: list[int], device=None) -> torch.Tensor:
        """(len(rows), V) bool: True where a token is allowed for sequence ``rows[j]``."""
        out = torch.zeros(len(rows), self.ids.vocab_size, dtype=torch.bool)
        for j, r in enumerate(rows):
            self.allowed_row(r, out[j])
        return out.to(device) if device is not None else out

    def allowed_row(self, r: int, m: torch.Tensor) -> None:
        """Set ``m`` (V,) True at the tokens sequence ``r`` may take next."""
        self.allowed(self.states[r], m)

    def advance(self, rows: list[int], tokens: list[int]) -> None:
        """Update sequence ``rows[j]`` with its new token ``tokens[j]`` (eos ends it)."""
        for r, tok in zip(rows, tokens):
            s = self.states[r]
            kind, value = self.kind.get(tok, ("other", 0))
            s.last = kind
            if s.plan and s.plan[0] == kind:
                s.plan.pop(0)
            if kind == "tie":
                s.held, s.program = False, self.vocab.programs[0]  # program state resets after the tie
            elif kind == "prog":
                s.program = value
            elif kind == "shift":
                s.t += value
            elif kind == "vel":
                s.velocity_set = True
            elif kind == "on":
                # Held notes began before the window: any event-section time is after their start.
                s.sounding[(s.program, value)] = s.t if not s.held else -1
                s.n_notes += 1
            elif kind == "off":
                s.sounding.pop((s.program, value), None)


def plan_choices(vocab: MidiVocab, request) -> dict[str, list[int]]:
    """The tempo bins and keys consistent with a request (:class:`audiollm.music.prompt.MusicRequest`):
    the bin of its bpm, or the bins whose centres lie in its tempo word's range; its key, or the
    12 keys of its mode. An attribute the request leaves open is not narrowed."""
    out: dict[str, list[int]] = {}
    if request.bpm is not None:
        out["bpm"] = [tempo_bin(request.bpm)]
    elif request.tempo_class is not None:
        lo, hi = TEMPO_RANGES[request.tempo_class]
        out["bpm"] = [b for b in range(TEMPO_BINS) if lo <= bin_tempo(b) <= hi] or [tempo_bin((lo + hi) / 2)]
    if request.mode is not None:
        tonics = [request.tonic] if request.tonic is not None else range(12)
        out["key"] = [key_index(t, request.mode) for t in tonics]
    return out


class AnchoredGrammar(MidiGrammar):
    """The grammar, with every note onset of the event section fixed in advance.

    ``anchors[r]`` lists sequence r's onsets as ``(step, pitch)`` (under the vocabulary's first
    program; e.g. read off a CTC head, :func:`audiollm.inference.transcribe.ctc_onsets`). On top of the
    grammar: time may not pass an onset still to be written; at an onset's step, only its
    pitches may start (a velocity first when none is set) and time waits until all have; a
    note-on that is not an anchor is never allowed; the sequence may end only once every anchor
    is written. Everything else — the held section, velocities, note-offs and so the note
    lengths — stays the model's choice. Duplicate anchors collapse; steps past the window clamp
    to its last step.
    """

    def __init__(self, tokenizer, batch: int, length_steps: int | Sequence[int],
                 anchors: Sequence[Sequence[tuple[int, int]]], *, held: bool = True):
        super().__init__(tokenizer, batch, length_steps, held=held)
        if len(anchors) != batch:
            raise ValueError(f"{len(anchors)} anchor lists for {batch} sequences")
        # Per sequence: the anchors still to write, as {step: {pitch, ...}}, and the steps in order.
        self.pending: list[dict[int, set[int]]] = []
        for s, row in zip(self.states, anchors):
            todo: dict[int, set[int]] = {}
            for step, pitch in row:
                todo.setdefault(min(max(int(step), 0), max(s.length - 1, 0)), set()).add(int(pitch))
            self.pending.append(todo)

    def allowed_row(self, r: int, m: torch.Tensor) -> None:
        super().allowed_row(r, m)
        s, todo = self.states[r], self.pending[r]
        if s.held:
            return
        ids = self.ids
        m[ids.on] = False  # onsets come only from the anchors
        if not todo:  # all written (or none heard): no new notes; the window may end
            m[ids.vel] = False
            m[ids.eos] = True
            return
        nxt = min(todo)
        sounding = {p for (q, p) in s.sounding if q == s.program}
        if s.t < nxt:  # time may move up to the next anchor, not past it
            m[ids.shift[nxt - s.t:]] = False
            m[ids.vel] = False
            m[ids.eos] = False
            return
        # At an anchor's step: write its pitches (silencing one first if it is still sounding).
        free = [p for p in todo[nxt] if p not in sounding]
        m[ids.shift] = False
        m[ids.eos] = False
        if not free:
            m[ids.vel] = False  # only the note-offs that free an anchor's key remain
            return
        if s.last == "vel" or s.velocity_set:
            m[ids.on[free]] = True
        if s.last == "vel":
            m[ids.vel] = False

    def advance(self, rows: list[int], tokens: list[int]) -> None:
        for r, tok in zip(rows, tokens):
            s = self.states[r]
            kind, pitch = self.kind.get(tok, ("other", 0))
            if kind == "on" and not s.held:
                todo = self.pending[r]
                todo.get(s.t, set()).discard(pitch)
                if s.t in todo and not todo[s.t]:
                    del todo[s.t]
        super().advance(rows, tokens)
