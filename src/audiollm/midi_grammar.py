"""Grammar-constrained decoding of MIDI event tokens: a per-sequence state machine over the
event grammar of :mod:`audiollm.tokenizers.midi` that masks, at every step, the tokens that
would make the sequence invalid.

Allowed next tokens, by state (``t`` = steps elapsed, ``L`` = window length in steps):

* held section (before ``<|tie|>``): ``<|prog_*|>``, ``<|on_P|>`` for a key not yet held
  under the current program, ``<|tie|>``; no end of sequence (the section must close);
* event section: ``<|shift_N|>`` with ``t + N <= L``; ``<|prog_*|>``; ``<|vel_*|>``;
  ``<|on_P|>`` when ``t < L``, a velocity has been set, and (program, P) is not sounding;
  ``<|off_P|>`` only for a sounding (program, P); end of sequence at any time (notes still
  sounding then close at the window end, as :meth:`MidiVocab.decode_window` does);
* never text tokens, specials or a second ``<|tie|>``.

Every sequence the mask allows decodes without a single repair, so it always becomes a
valid MIDI file (a note-on re-striking a sounding key would be repaired: it is not allowed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .tokenizers.midi import TIE, MidiVocab


@dataclass
class EventIds:
    """Where each kind of event token sits in the model vocabulary."""

    tie: int
    shift: torch.Tensor  # (max_shift_steps,) id of shift_1 … shift_N
    vel: torch.Tensor  # (velocity_bins,)
    on: torch.Tensor  # (128,) by pitch
    off: torch.Tensor  # (128,)
    prog: dict[int, int]  # program → id (empty without explicit programs)
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
    sounding: set[tuple[int, int]] = field(default_factory=set)  # (program, pitch)


class MidiGrammar:
    """Masks for a batch of sequences decoded in lockstep; ``advance`` feeds the chosen tokens."""

    def __init__(self, tokenizer, batch: int, length_steps: int, *, held: bool = True):
        if tokenizer.midi is None:
            raise ValueError("grammar-constrained decoding needs a tokenizer with a MIDI vocabulary")
        self.vocab = tokenizer.midi
        self.ids = EventIds.of(tokenizer)
        first = self.vocab.programs[0]
        self.states = [EventState(length_steps, first, held=held) for _ in range(batch)]
        # id → (kind, value), for advance()
        self.kind: dict[int, tuple[str, int]] = {self.ids.tie: ("tie", 0)}
        for name in ("shift", "vel", "on", "off"):
            for k, i in enumerate(getattr(self.ids, name).tolist()):
                self.kind[i] = (name, k + 1 if name == "shift" else k)
        self.kind.update({i: ("prog", p) for p, i in self.ids.prog.items()})

    def mask(self, rows: list[int], device=None) -> torch.Tensor:
        """(len(rows), V) bool: True where a token is allowed for sequence ``rows[j]``."""
        ids = self.ids
        out = torch.zeros(len(rows), ids.vocab_size, dtype=torch.bool)
        prog_ids = torch.tensor(list(ids.prog.values()), dtype=torch.long)
        for j, r in enumerate(rows):
            s = self.states[r]
            m = out[j]
            if len(prog_ids):
                m[prog_ids] = True
            pitches_on = [p for q, p in s.sounding if q == s.program]
            if s.held:
                m[ids.on] = True
                m[ids.on[pitches_on]] = False
                m[ids.tie] = True
                continue
            room = s.length - s.t
            if room > 0:
                m[ids.shift[: min(room, len(ids.shift))]] = True
            m[ids.vel] = True
            if room > 0 and s.velocity_set:
                m[ids.on] = True
                m[ids.on[pitches_on]] = False
            m[ids.off[pitches_on]] = True
            m[ids.eos] = True
        return out.to(device) if device is not None else out

    def advance(self, rows: list[int], tokens: list[int]) -> None:
        """Update sequence ``rows[j]`` with its new token ``tokens[j]`` (eos ends it)."""
        for r, tok in zip(rows, tokens):
            s = self.states[r]
            kind, value = self.kind.get(tok, ("other", 0))
            if kind == "tie":
                s.held, s.program = False, self.vocab.programs[0]  # program state resets after the tie
            elif kind == "prog":
                s.program = value
            elif kind == "shift":
                s.t += value
            elif kind == "vel":
                s.velocity_set = True
            elif kind == "on":
                s.sounding.add((s.program, value))
            elif kind == "off":
                s.sounding.discard((s.program, value))
