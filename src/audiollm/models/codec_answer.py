"""Answers made of codec tokens: per-codebook embeddings and heads on the causal LM.

An AudioLLM whose config names a codec (``model.audio_answer.codec``) can answer with audio:
after the prompt, the LM reads and writes codec frames laid out by a `decoding.codec_pattern`
(MusicGen's delay pattern by default, flattening as the option). Each codebook has its own
embedding table and its own output head (one matrix of K·V rows, V = codebook size + PAD +
EOA); a step's input is the sum of its codebooks' embeddings, and its hidden state gives K sets
of logits. The codec itself is not part of the model: its directory (or hub id) and the
fingerprint of its weights are recorded, and audio is decoded by loading it
(`inference.speak`), refusing another codec's weights by name.

`CodecAnswerLM` wraps the LM for the one decoding loop: ``embed_tokens`` takes a step's picked
codec ids, ``forward`` returns the heads' logits, and the KV cache is the LM's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from audiollm.decoding.codec_pattern import IGNORE, PATTERNS, CodecPattern, make_pattern
from audiollm.errors import ConfigError


@dataclass
class AudioAnswerConfig:
    codec: str = ""  # codec model directory or transformers hub id whose codes the model writes;
    #   "" = a text-only model (no codec heads)
    num_codebooks: int = 0  # codebooks per frame the model writes (0 = what the codes cache holds)
    codebook_size: int = 0  # codes per codebook (0 = read from the codec at training start)
    frame_rate: float = 0.0  # codec frames per second (filled from the codec)
    sample_rate: int = 0  # the codec's audio rate (filled from the codec)
    fingerprint: str = ""  # the codec weights' fingerprint (filled from the codec; checked on decoding)
    pattern: str = "delay"  # codebook layout: delay (MusicGen) or flatten (music_llm, VALL-E-style)

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ConfigError(f"audio_answer.pattern={self.pattern!r}; allowed: {', '.join(PATTERNS)}")
        for name in ("num_codebooks", "codebook_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"audio_answer.{name} must be an integer ≥ 0, got {value!r}")
        if self.codec and Path(self.codec).exists():
            self.codec = str(Path(self.codec).resolve())  # found from any working directory

    @property
    def enabled(self) -> bool:
        return bool(self.codec)

    @property
    def resolved(self) -> bool:
        """True once the codec's shape and fingerprint are known (a buildable model)."""
        return self.enabled and self.num_codebooks > 0 and self.codebook_size > 0


class CodecAnswer(nn.Module):
    """K embedding tables and K output heads of V = C + 2 ids each, stored as one table and one matrix."""

    def __init__(self, config: AudioAnswerConfig, d_model: int):
        super().__init__()
        if not config.resolved:
            raise ConfigError("audio_answer needs its codec's num_codebooks and codebook_size (set them, or train "
                              "with data.codes_cache so they are read from the codec)")
        self.config = config
        self.pattern: CodecPattern = make_pattern(config.pattern, config.num_codebooks, config.codebook_size)
        K, V = self.pattern.K, self.pattern.V
        self.embed = nn.Embedding(K * V, d_model)
        self.head = nn.Linear(d_model, K * V, bias=False)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.head.weight, std=0.02)

    def embed_steps(self, flat_ids: torch.Tensor) -> torch.Tensor:
        """(..., width) flat ids → (..., d_model): the sum of the step's codebook embeddings."""
        return self.embed(flat_ids).sum(dim=-2)

    def loss_sum(self, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy of hidden states (B, S, D) against targets (B, S, K) (-100 ignored),
        and the number of real targets. Only positions with a target reach the heads."""
        K, V = self.pattern.K, self.pattern.V
        real = targets != IGNORE  # (B, S, K)
        at = real.any(-1)  # (B, S) positions with something to predict
        if not bool(at.any()):
            return self.head.weight.sum() * 0.0 + hidden.sum() * 0.0, real.sum()
        logits = F.linear(hidden[at], self.head.weight).float().view(-1, K, V)  # (N, K, V)
        loss = F.cross_entropy(logits.view(-1, V), targets[at].view(-1), ignore_index=IGNORE, reduction="sum")
        return loss, real.sum()


class CodecAnswerLM:
    """The LM as the decoding loop sees it when the answer is codec tokens (see the module docstring)."""

    def __init__(self, lm: nn.Module, answer: CodecAnswer):
        self.lm, self.answer, self.pattern = lm, answer, answer.pattern

    @property
    def max_seq_len(self) -> int:
        return int(getattr(self.lm, "max_seq_len", 0) or 0)

    def new_cache(self, *args, **kwargs):
        return self.lm.new_cache(*args, **kwargs)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """A step's picked tokens (R, 1) or (R, 1, K) → (R, 1, d_model)."""
        return self.answer.embed_steps(self.pattern.to_flat(tokens))

    def __call__(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None, cache=None,
                 logits_to_keep: int = 0) -> torch.Tensor:
        """(R, T, K, V) (delay) or (R, T, K·V) (flatten) scores of the next step."""
        hidden = self.lm.hidden_states(inputs_embeds=inputs_embeds, attention_mask=attention_mask, cache=cache)
        if logits_to_keep > 0:
            hidden = hidden[:, -logits_to_keep:]
        return self.pattern.step_logits(self.answer.head(hidden))
