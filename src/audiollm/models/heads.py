"""Auxiliary heads: extra objectives on the audio encoder's frames, as registered plug-ins.

A model config names its heads and their loss weights, ``model.heads: {ctc: 1.0,
note_activity: 0.3}``; each is built from `HEADS` and trained next to the LM loss. The data
side is one hook: a task's ``head_targets(...)`` returns, per head name, the targets of one
training example (`audiollm.tasks.base.Task.head_targets`), and `collate` pads whatever
targets appear with each head's own `collate`. Decoding reaches a head by name
(``model.heads["ctc"]``).

    ctc            CTC over the LM's vocabulary plus a blank, trained on transcript-like
                   answers (ASR transcripts, a transcription window's note-ons in order): the
                   encoder learns to align sound and tokens much sooner; decoding can score
                   transcripts jointly with it (`audiollm.decoding.ctc_prefix`) or read note
                   onsets off its greedy path.
    note_activity  per frame, which of the 128 MIDI pitches sound (a piano roll), trained with
                   binary cross-entropy on the notes of a window; transcription reads note
                   ends and extra onsets off it.

A new head is one class here with ``@register_head("name")``: ``collate(rows)`` pads the
per-row targets (None for a row without any) into tensors, ``loss_sum(frames, frame_lengths,
audio_lengths, **targets)`` returns the summed loss over the rows that have targets (a
zero-weighted term otherwise, so every process runs the head and DDP sees its gradient) and
the unweighted figures to log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from audiollm.audio import SAMPLE_RATE
from audiollm.decoding.ctc_prefix import CTCPrefixScorer
from audiollm.errors import ConfigError

Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]  # name → (sum, count), for the training log

HEADS: dict[str, type["Head"]] = {}


def register_head(name: str) -> Callable[[type["Head"]], type["Head"]]:
    """Class decorator: ``@register_head("ctc")`` adds the head to `HEADS`."""

    def decorator(cls: type[Head]) -> type[Head]:
        if name in HEADS:
            raise ValueError(f"head {name!r} registered twice")
        cls.name = name
        HEADS[name] = cls
        return cls

    return decorator


def check_heads(heads: Any) -> dict[str, float]:
    """A ``model.heads`` mapping, validated: registered names, weights > 0 (a ConfigError otherwise)."""
    if not isinstance(heads, dict):
        raise ConfigError(f"model.heads must map head names to loss weights, e.g. {{ctc: 1.0}}, got {heads!r}")
    for name, weight in heads.items():
        if name not in HEADS:
            raise ConfigError(f"unknown head {name!r} in model.heads; registered heads: {', '.join(HEADS)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise ConfigError(f"model.heads.{name} must be a loss weight > 0, got {weight!r}")
    return {name: float(heads[name]) for name in HEADS if name in heads}  # registry order: fixed init order


class Head(nn.Module):
    """Base class of the auxiliary heads (see the module docstring)."""

    name = ""

    def __init__(self, d_enc: int, vocab_size: int, weight: float):
        super().__init__()
        self.weight = weight

    @staticmethod
    def collate(rows: Sequence[Any | None]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss_sum(self, frames: torch.Tensor, frame_lengths: torch.Tensor, audio_lengths: torch.Tensor,
                 **targets: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        raise NotImplementedError


@register_head("ctc")
class CTCHead(Head):
    """Encoder frames → CTC log-probabilities over the LM vocabulary plus one blank (the last index)."""

    def __init__(self, d_enc: int, vocab_size: int, weight: float):
        super().__init__(d_enc, vocab_size, weight)
        self.proj = nn.Linear(d_enc, vocab_size + 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.proj(frames)  # (B, F', V + 1)

    @staticmethod
    def collate(rows: Sequence[list[int] | None]) -> dict[str, torch.Tensor]:
        """Token ids per row (None or [] = no CTC loss for that row) → labels (B, L), lengths (B,)."""
        lists = [r or [] for r in rows]
        lengths = torch.tensor([len(r) for r in lists], dtype=torch.long)
        labels = torch.zeros(len(lists), max(1, int(lengths.max())), dtype=torch.long)
        for i, r in enumerate(lists):
            if r:
                labels[i, : len(r)] = torch.tensor(r)
        return {"labels": labels, "lengths": lengths}

    def loss_sum(self, frames, frame_lengths, audio_lengths, *, labels, lengths):
        """Summed CTC loss of the rows with ``lengths > 0``; its log figure is per row."""
        rows = lengths.to(frames.device) > 0
        logits = self(frames).float()  # (B, F', V + 1)
        if not bool(rows.any()):
            loss = logits.sum() * 0.0
        else:
            log_probs = F.log_softmax(logits[rows], dim=-1).transpose(0, 1)  # (F', B_ctc, V + 1)
            loss = F.ctc_loss(log_probs, labels[rows].to(frames.device), frame_lengths[rows],
                              lengths.to(frames.device)[rows], blank=logits.shape[-1] - 1, reduction="sum",
                              zero_infinity=True)  # a transcript longer than its audio adds nothing, not inf
            loss = loss + logits.sum() * 0.0
        return loss, {"ctc_loss": (loss.detach(), rows.sum())}

    def prefix_scorer(self, frames: torch.Tensor, frame_lengths: torch.Tensor, *, weight: float,
                      eos_id: int | None, rows: Sequence[bool] | None = None) -> CTCPrefixScorer:
        """A decoding processor scoring the rows marked in ``rows`` (all when None) jointly with
        this head (joint CTC/attention decoding)."""
        active = None if rows is None else torch.tensor([bool(r) for r in rows])
        log_probs = F.log_softmax(self(frames).float(), dim=-1)  # (B, F', V + 1)
        return CTCPrefixScorer(log_probs, frame_lengths, weight=weight, eos_id=eos_id, active=active)


N_PITCHES = 128  # MIDI pitches the note-activity head scores


def frame_seconds(audio_lengths: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
    """(B,) seconds per encoder frame of each row: its audio's length over its frame count."""
    return audio_lengths.float() / SAMPLE_RATE / frame_lengths.clamp(min=1).float()


def piano_roll(notes: torch.Tensor, counts: torch.Tensor, audio_lengths: torch.Tensor,
               frame_lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, n_frames, 128) float targets: 1 where a pitch sounds at a frame's centre.

    ``notes`` (B, N, 3) holds each row's ``(start_s, end_s, pitch)`` relative to its window, the
    first ``counts[i]`` real (a negative count: none). Frame f of row i is centred at
    ``(f + 0.5) · frame_seconds``; a note covers the frames whose centre is in ``[start, end)``.
    """
    B, N, _ = notes.shape
    centres = (torch.arange(n_frames, device=notes.device).float()[None, :] + 0.5) \
        * frame_seconds(audio_lengths, frame_lengths)[:, None]  # (B, F)
    real = torch.arange(N, device=notes.device)[None, :] < counts[:, None]  # (B, N)
    on = (notes[:, None, :, 0] <= centres[..., None]) & (centres[..., None] < notes[:, None, :, 1]) & real[:, None, :]
    pitch = F.one_hot(notes[..., 2].long().clamp(0, N_PITCHES - 1), N_PITCHES).float()  # (B, N, 128)
    return (on.float() @ pitch).clamp(max=1.0)  # (B, F, 128)


@register_head("note_activity")
class NoteActivityHead(Head):
    """Encoder frames → one logit per MIDI pitch per frame (which pitches sound)."""

    def __init__(self, d_enc: int, vocab_size: int, weight: float):
        super().__init__(d_enc, vocab_size, weight)
        self.proj = nn.Linear(d_enc, N_PITCHES)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.proj(frames)  # (B, F', 128)

    def probabilities(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(frames).float())

    @staticmethod
    def collate(rows: Sequence[list[tuple[float, float, int]] | None]) -> dict[str, torch.Tensor]:
        """Each row's ``(start_s, end_s, pitch)`` notes (None: the row has no note targets; []: a
        silent window, every pitch off) → notes (B, N, 3), counts (B,) with -1 for None."""
        counts = torch.tensor([-1 if r is None else len(r) for r in rows], dtype=torch.long)
        notes = torch.zeros(len(rows), max(1, int(counts.max())), 3)
        for i, r in enumerate(rows):
            if r:
                notes[i, : len(r)] = torch.tensor(r, dtype=torch.float32)
        return {"notes": notes, "counts": counts}

    def loss_sum(self, frames, frame_lengths, audio_lengths, *, notes, counts):
        """Summed binary cross-entropy against each row's piano roll (:func:`piano_roll`), over
        the row's real frames and all 128 pitches; rows with ``counts < 0`` are left out."""
        logits = self(frames).float()  # (B, F', 128)
        roll = piano_roll(notes.to(frames.device), counts.to(frames.device), audio_lengths.to(frames.device),
                          frame_lengths, logits.shape[1])
        keep = (torch.arange(logits.shape[1], device=frames.device)[None, :] < frame_lengths[:, None]) \
            & (counts.to(frames.device) >= 0)[:, None]  # (B, F')
        bce = F.binary_cross_entropy_with_logits(logits, roll, reduction="none").sum(-1)  # (B, F')
        return (bce * keep).sum() + logits.sum() * 0.0, {}


def collate_targets(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, torch.Tensor]]:
    """Per-example head targets (``{head: target}``) → ``{head: padded tensors}`` for every head
    any example names."""
    names = [n for n in HEADS if any(n in r for r in rows)]
    return {n: HEADS[n].collate([r.get(n) for r in rows]) for n in names}
