"""Residual vector quantisation of a codec's latent frames, with quantizer dropout.

Level 0 quantises each latent frame to the nearest of ``codebook_size`` codes, level 1 quantises
what level 0 left, and so on for ``num_codebooks`` levels (SoundStream's RVQ). The first ``k``
levels alone are a coarser code of the same frame, so one model serves bitrates 1…K codebooks:
in training a share ``dropout`` of the examples keeps only a random number of levels (quantizer
dropout), which teaches the decoder every prefix.

Codebooks are learned by exponential moving averages of the vectors assigned to each code
(VQ-VAE-2), initialised by k-means on the first batch; a code whose average count falls below
``dead_code_threshold`` is re-seeded from a random vector of the batch, so no code stays unused.
Gradients reach the encoder through the straight-through estimator plus a commitment loss. With
several processes the assignment statistics are summed over all of them and re-seeding is
decided on process 0 and broadcast, so every process keeps identical codebooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn as nn

from audiollm.errors import ConfigError
from audiollm.models.quantizer import _nearest, kmeans


@dataclass
class ResidualVQConfig:
    num_codebooks: int = 4  # residual levels K (the most a code uses); bitrate = frame rate · K · log2(size)
    codebook_size: int = 1024  # codes per level (10 bits)
    codebook_dim: int = 64  # width of the latent frames being quantised
    ema_decay: float = 0.99  # EMA decay of code statistics
    dead_code_threshold: float = 1.0  # codes whose EMA count falls below this are re-seeded from the batch
    kmeans_iters: int = 10  # Lloyd iterations of the k-means initialisation on the first batch
    dropout: float = 0.5  # share of training examples that keep only a random 1…K levels (0 = off)

    def __post_init__(self) -> None:
        for name in ("num_codebooks", "codebook_size", "codebook_dim", "kmeans_iters"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model.quantizer.{name} must be a positive integer, got {value!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"model.quantizer.ema_decay must be in (0, 1), got {self.ema_decay}")
        if not 0.0 <= self.dropout <= 1.0:
            raise ConfigError(f"model.quantizer.dropout must be in [0, 1], got {self.dropout}")

    @classmethod
    def tiny(cls) -> "ResidualVQConfig":
        return cls(num_codebooks=3, codebook_size=16, codebook_dim=8, kmeans_iters=2)


class Quantized(NamedTuple):
    latents: torch.Tensor  # (B, F, D) the quantised frames (straight-through: gradients reach the input)
    codes: torch.Tensor  # (B, K, F) int64 code of each level
    commitment: torch.Tensor  # () sum over valid frames and active levels of ||residual − code||² / D
    usage: torch.Tensor  # (K,) perplexity of each level's codes in this batch (how many codes are in use)


class ResidualVQ(nn.Module):
    def __init__(self, config: ResidualVQConfig):
        super().__init__()
        self.config = config
        K, C, D = config.num_codebooks, config.codebook_size, config.codebook_dim
        self.register_buffer("codebooks", torch.zeros(K, C, D))
        self.register_buffer("cluster_size", torch.zeros(K, C))
        self.register_buffer("embed_sum", torch.zeros(K, C, D))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, num_codebooks: torch.Tensor | None = None) -> Quantized:
        """x (B, F, D) latent frames; mask (B, F) True on real frames; ``num_codebooks`` (B,) levels
        each example keeps (None: all, or quantizer dropout when training)."""
        cfg = self.config
        B, F, D = x.shape
        x32 = x.float()
        if num_codebooks is None:
            num_codebooks = self._levels_to_keep(B, x.device)
        if self.training and not bool(self.initialised):
            self._initialise(x32[mask])
        residual = x32
        quantized = torch.zeros_like(x32)
        codes, usage = [], []
        commitment = x32.new_zeros(())
        for k in range(cfg.num_codebooks):
            codebook = self.codebooks[k]
            idx = _nearest(residual.reshape(-1, D), codebook).view(B, F)  # (B, F)
            q = codebook[idx]  # (B, F, D)
            active = mask & (k < num_codebooks)[:, None]  # (B, F) frames this level codes
            if self.training:
                self._ema_update(k, residual[mask], idx[mask])
            commitment = commitment + ((residual - q.detach()).square().sum(-1) * active).sum() / D
            quantized = quantized + q * active[..., None]
            usage.append(_perplexity(idx[mask], cfg.codebook_size))
            codes.append(idx)
            residual = residual - q
        latents = x + (quantized - x32).detach().to(x.dtype)  # straight-through estimator
        return Quantized(latents, torch.stack(codes, 1), commitment, torch.stack(usage))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, k, F) codes of the first k levels → (B, F, D) latent frames."""
        out = 0
        for level in range(codes.shape[1]):
            out = out + self.codebooks[level][codes[:, level]]
        return out

    def _levels_to_keep(self, batch: int, device: torch.device) -> torch.Tensor:
        K = self.config.num_codebooks
        keep = torch.full((batch,), K, device=device)
        if self.training and self.config.dropout > 0:
            drop = torch.rand(batch, device=device) < self.config.dropout
            keep = torch.where(drop, torch.randint(1, K + 1, (batch,), device=device), keep)
        return keep

    @torch.no_grad()
    def _initialise(self, frames: torch.Tensor) -> None:
        """k-means per level on the first batch's frames and their residuals (process 0, broadcast)."""
        cfg = self.config
        gen = torch.Generator().manual_seed(0)
        residual = frames
        for k in range(cfg.num_codebooks):
            centroids, counts = kmeans(residual, cfg.codebook_size, cfg.kmeans_iters, gen)
            self.codebooks[k] = centroids
            self.cluster_size[k] = counts.clamp(min=1.0)
            self.embed_sum[k] = centroids * self.cluster_size[k, :, None]
            residual = residual - centroids[_nearest(residual, centroids)]
        _broadcast(self.codebooks, self.cluster_size, self.embed_sum)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, level: int, vectors: torch.Tensor, idx: torch.Tensor) -> None:
        cfg = self.config
        counts = torch.bincount(idx, minlength=cfg.codebook_size).to(vectors.dtype)
        sums = torch.zeros_like(self.embed_sum[level]).index_add_(0, idx, vectors)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        decay = cfg.ema_decay
        self.cluster_size[level].mul_(decay).add_(counts, alpha=1 - decay)
        self.embed_sum[level].mul_(decay).add_(sums, alpha=1 - decay)
        n = self.cluster_size[level].sum()
        smoothed = (self.cluster_size[level] + 1e-5) / (n + cfg.codebook_size * 1e-5) * n  # Laplace smoothing
        self.codebooks[level] = self.embed_sum[level] / smoothed[:, None]
        dead = self.cluster_size[level] < cfg.dead_code_threshold
        if bool(dead.any()) and vectors.shape[0] > 0:
            pick = torch.randint(vectors.shape[0], (int(dead.sum()),), device=vectors.device)
            self.codebooks[level][dead] = vectors[pick]
            self.cluster_size[level][dead] = cfg.dead_code_threshold
            self.embed_sum[level][dead] = vectors[pick] * cfg.dead_code_threshold
            _broadcast(self.codebooks, self.cluster_size, self.embed_sum)


def _perplexity(idx: torch.Tensor, size: int) -> torch.Tensor:
    if idx.numel() == 0:
        return torch.zeros(())
    p = torch.bincount(idx, minlength=size).float() / idx.numel()
    return torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum())


def _broadcast(*tensors: torch.Tensor) -> None:
    if dist.is_available() and dist.is_initialized():
        for t in tensors:
            dist.broadcast(t, src=0)
