"""Projector: audio-encoder frames → LM-width "audio tokens".

Concatenates ``stack`` consecutive encoder frames (time downsampling, as in SALMONN/
Qwen-Audio style adapters), then a 2-layer MLP (Linear → GELU → Linear) to the LM width.
With the default encoder (25 frames/s) and stack=2 that is 12.5 audio tokens per second.
Padded frames are zeroed before stacking, and output tokens past ceil(len / stack) are
zeroed, so a clip's audio tokens do not depend on batch padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from audiollm.errors import ConfigError
from audiollm.models.registry import register_projector


@dataclass
class ProjectorConfig:
    stack: int = 2  # consecutive encoder frames concatenated into one audio token
    hidden: int = 512  # MLP hidden width
    dropout: float = 0.0  # dropout after the GELU (training only)

    def __post_init__(self) -> None:
        for name in ("stack", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"projector_config.{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"projector_config.dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def tiny(cls) -> "ProjectorConfig":
        return cls(stack=2, hidden=32)


@register_projector("mlp", ProjectorConfig)
class Projector(nn.Module):
    """(B, F, in_dim) + lengths → (B, ceil(F / stack), out_dim) + ceil(lengths / stack)."""

    def __init__(self, config: ProjectorConfig, in_dim: int, out_dim: int):
        super().__init__()
        self.config = config
        self.fc1 = nn.Linear(in_dim * config.stack, config.hidden)
        self.fc2 = nn.Linear(config.hidden, out_dim)
        self.drop = nn.Dropout(config.dropout)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        k = self.config.stack
        return (lengths + k - 1) // k

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, D = x.shape
        k = self.config.stack
        lengths = lengths.to(x.device).long()
        valid = torch.arange(T, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        x = x * valid[..., None].to(x.dtype)
        pad = (-T) % k
        if pad:
            x = F.pad(x, (0, 0, 0, pad))  # (B, T + pad, D): zero frames complete the last group
        x = x.reshape(B, (T + pad) // k, k * D)  # (B, A, stack * D): k consecutive frames side by side
        x = self.fc2(self.drop(F.gelu(self.fc1(x.to(self.fc1.weight.dtype)))))  # (B, A, out_dim)
        out_lengths = self.output_lengths(lengths)
        out_valid = torch.arange(x.shape[1], device=x.device)[None, :] < out_lengths[:, None]  # (B, A)
        return x * out_valid[..., None].to(x.dtype), out_lengths
