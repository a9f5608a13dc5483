"""Audio encoder trained from scratch: log-mel → 2 stride-2 convs (×4 subsampling) → transformer.

Whisper-like front end (Conv1d + GELU, twice, each halving the frame rate: 100 → 25 frames/s
with the default 10 ms hop), then bidirectional `TransformerBlock`s (the same block as the
LM, ``causal=False``, RoPE positions) with a key-padding mask, then a final RMSNorm.

Variable length: frames past each clip's length are zeroed before and after every conv
(which is exactly what the conv's own zero padding does at a clip's end when it is alone)
and masked as attention keys, so a clip's real outputs do not depend on batch padding.

Optional SpecAugment (training mode only): a few random frequency bands and time spans of
each clip's real frames are set to 0 (the normalised log-mel's neutral value).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from audiollm.data.augment import spec_augment
from audiollm.errors import ConfigError
from audiollm.models.lm import (
    RMSNorm,
    RotaryEmbedding,
    TransformerBlock,
    init_weights,
    make_attention_mask,
)
from audiollm.models.registry import register_audio_encoder


@dataclass
class AudioEncoderConfig:
    n_mels: int = 64  # input mel bands (must equal frontend.n_mels)
    conv_channels: int = 256  # channels of the two stride-2 conv layers
    d_model: int = 256  # transformer width (= output_dim handed to the projector)
    n_layers: int = 4  # bidirectional transformer blocks
    n_heads: int = 4  # attention heads; d_model // n_heads must be even (RoPE)
    ffn_hidden: int = 704  # SwiGLU inner width
    rope_theta: float = 10000.0  # RoPE base frequency for frame positions
    norm_eps: float = 1e-5  # RMSNorm epsilon
    dropout: float = 0.0  # attention/residual dropout (training only)
    spec_augment: bool = False  # random time/frequency masking of the input in training mode
    freq_masks: int = 2  # SpecAugment: frequency bands masked per clip
    freq_mask_width: int = 8  # SpecAugment: max mel bands per frequency mask
    time_masks: int = 2  # SpecAugment: time spans masked per clip
    time_mask_width: int = 20  # SpecAugment: max frames per time mask (10 ms frames)

    def __post_init__(self) -> None:
        for name in ("n_mels", "conv_channels", "d_model", "n_layers", "n_heads", "ffn_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"audio_encoder_config.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads != 0 or (self.d_model // self.n_heads) % 2 != 0:
            raise ConfigError(
                f"audio_encoder_config.d_model ({self.d_model}) / n_heads ({self.n_heads}) must be an even integer"
            )
        for name in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"audio_encoder_config.{name} must be an integer >= 0, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"audio_encoder_config.dropout must be in [0, 1), got {self.dropout}")
        if not self.rope_theta > 0 or not self.norm_eps > 0:
            raise ConfigError("audio_encoder_config.rope_theta and norm_eps must be > 0")

    @classmethod
    def tiny(cls) -> "AudioEncoderConfig":
        return cls(n_mels=16, conv_channels=32, d_model=32, n_layers=2, n_heads=4, ffn_hidden=64)


def conv_out_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Output frames of a kernel-3, stride-2, padding-1 conv: ceil(len / 2)."""
    return (lengths + 1) // 2


def _zero_past(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero frames t >= lengths[b] of a channels-first (B, C, T) tensor."""
    valid = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]  # (B, T)
    return x * valid[:, None, :].to(x.dtype)


@register_audio_encoder("conv_transformer", AudioEncoderConfig)
class AudioEncoder(nn.Module):
    """(B, n_mels, F) log-mel + frame lengths → (B, ceil(ceil(F/2)/2), d_model) + lengths."""

    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        self.config = config
        self.output_dim = config.d_model
        self.conv1 = nn.Conv1d(config.n_mels, config.conv_channels, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(config.conv_channels, config.d_model, kernel_size=3, stride=2, padding=1)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                config.d_model,
                config.n_heads,
                config.n_heads,
                config.ffn_hidden,
                config.norm_eps,
                config.dropout,
                causal=False,
            )
            for _ in range(config.n_layers)
        )
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.rope = RotaryEmbedding(config.d_model // config.n_heads, config.rope_theta)
        init_weights(self.blocks, config.n_layers)
        # The convs keep PyTorch's default (fan-in) init: a 0.02-std init would shrink the
        # log-mel signal ~50× before the first block.

    def output_lengths(self, frame_lengths: torch.Tensor) -> torch.Tensor:
        return conv_out_lengths(conv_out_lengths(frame_lengths))

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if features.shape[1] != self.config.n_mels:
            raise ValueError(f"expected {self.config.n_mels} mel bands, got features of shape {tuple(features.shape)}")
        frame_lengths = frame_lengths.to(features.device).long()
        x = _zero_past(features.to(self.conv1.weight.dtype), frame_lengths)  # (B, n_mels, F)
        if self.training and self.config.spec_augment:
            c = self.config
            x = spec_augment(x, frame_lengths, c.freq_masks, c.freq_mask_width, c.time_masks, c.time_mask_width)
        len1 = conv_out_lengths(frame_lengths)
        lengths = conv_out_lengths(len1)
        x = _zero_past(F.gelu(self.conv1(x)), len1)  # (B, conv_channels, F/2)
        x = _zero_past(F.gelu(self.conv2(x)), lengths)  # (B, d_model, F/4)
        x = x.transpose(1, 2)  # (B, F/4, d_model)

        B, T, _ = x.shape
        key_valid = torch.arange(T, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        mask = make_attention_mask(key_valid, T, T, causal=False, device=x.device)
        positions = torch.arange(T, device=x.device).expand(B, T)  # (B, T)
        cos, sin = self.rope(positions, x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        x = self.norm(x)
        return x * key_valid[..., None].to(x.dtype), lengths
