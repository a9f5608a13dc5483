"""Logits processors: what shapes a decoding step beyond plain sampling.

A processor is called on each step's next-token scores of the rows still decoding and is told
the tokens that were picked::

    scores = processor(rows, scores)   # rows: original sequence index of each active row
    processor.advance(rows, tokens)     # tokens (n,) long, one per active row

The loop applies processors in order, then samples. A processor with ``branches = G`` > 1
combines G branch rows of each sequence into one (classifier-free guidance: conditional and
unconditional); the prefix then holds G branches, branch-major, and every branch is fed the
sequence's token. A new kind of constraint (a codec's delay pattern over codebooks, a
vocabulary mask per position) is a new processor; the loop does not change.
"""

from __future__ import annotations

from typing import Protocol

import torch

from audiollm.errors import AudioLLMError

LOG_PROB_FLOOR = -1e4  # floored log-probabilities: guidance must never compute -inf - (-inf)


class LogitsProcessor(Protocol):
    branches: int

    def __call__(self, rows: list[int], scores: torch.Tensor) -> torch.Tensor: ...

    def advance(self, rows: list[int], tokens: torch.Tensor) -> None: ...


class Processor:
    """Base class: one branch, nothing to remember."""

    branches = 1

    def __call__(self, rows: list[int], scores: torch.Tensor) -> torch.Tensor:
        return scores

    def advance(self, rows: list[int], tokens: torch.Tensor) -> None:
        return None


class LogProbabilities(Processor):
    """Scores → floored log-probabilities (``LOG_PROB_FLOOR``), refusing non-finite logits (a
    diverged model) with a clear error instead of sampling garbage."""

    def __call__(self, rows, scores):
        scores = scores.float()
        if not bool(torch.isfinite(scores).all()):
            raise AudioLLMError("the model produced non-finite logits while decoding (diverged weights?)")
        return torch.log_softmax(scores, dim=-1).clamp(min=LOG_PROB_FLOOR)


class ClassifierFreeGuidance(Processor):
    """Classifier-free guidance on log-probabilities: ``uncond + scale · (cond − uncond)``.

    The prefix holds each sequence twice: its prompt (rows 0…n-1), then the unconditional
    prompt the model was trained on by condition dropout (rows n…2n-1); both continue with the
    same token. ``scale`` 1 is the conditional model alone (callers then skip the second branch).
    Put it after `LogProbabilities`."""

    branches = 2

    def __init__(self, scale: float):
        self.scale = float(scale)

    def __call__(self, rows, scores):
        n = len(rows)
        cond, uncond = scores[:n], scores[n:]
        return uncond + self.scale * (cond - uncond)  # (n, V)


class StateMask(Processor):
    """Rule out, each step, the tokens a per-sequence state machine forbids: ``machine.mask(rows,
    device)`` gives (n, V) True where allowed, ``machine.advance(rows, tokens)`` moves it on (the
    MIDI event grammar, `audiollm.music.grammar`)."""

    def __init__(self, machine):
        self.machine = machine

    def __call__(self, rows, scores):
        return scores.masked_fill(~self.machine.mask(rows, scores.device), float("-inf"))

    def advance(self, rows, tokens):
        self.machine.advance(rows, tokens.tolist())
