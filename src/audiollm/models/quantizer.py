"""`MuLaNEmbedQuantizer`: residual vector quantisation of joint embeddings → conditioning tokens.

A MuLaN embedding (audio or text: they share one space) becomes ``num_quantizers`` code
indices, one per residual level: level 0 quantises the embedding, level 1 what level 0 left,
and so on. Each index is a conditioning token: ``token_ids`` flattens (level, code) into one id
range ``[0, num_quantizers · codebook_size)``, and ``forward(embeds, namespace)`` looks the codes
up in a per-namespace table of shape (num_quantizers, codebook_size, conditioning_dim), the
interface MusicLM's semantic/coarse/fine stages consume.

Codebooks are LEARNED, never random at use time: ``fit`` runs k-means per level on a set of
embeddings; ``update`` is one exponential-moving-average step (VQ-VAE-2 style) on a batch, with
k-means initialisation on the first batch and dead codes re-seeded from the batch. The training
loop calls ``update`` on the gathered global batch, so every process holds the same codebooks.
Codebooks, EMA statistics and tables are buffers/parameters, so they are saved and loaded with
the model's ``model.safetensors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from audiollm.errors import AudioLLMError, ConfigError


@dataclass
class QuantizerConfig:
    num_quantizers: int = 8  # residual levels = conditioning tokens per embedding
    codebook_size: int = 256  # codes per level
    namespaces: list[str] = field(default_factory=lambda: ["semantic", "coarse", "fine"])  # conditioning tables
    conditioning_dims: list[int] = field(default_factory=lambda: [1024, 1024, 1024])  # width of each table
    ema_decay: float = 0.95  # EMA decay of code statistics (closer to 1 = slower codebooks)
    kmeans_iters: int = 10  # Lloyd iterations for the k-means initialisation / fit
    dead_code_threshold: float = 0.5  # codes whose EMA count falls below this are re-seeded from the batch

    def __post_init__(self) -> None:
        for name in ("num_quantizers", "codebook_size", "kmeans_iters"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"quantizer.{name} must be a positive integer, got {value!r}")
        self.namespaces, self.conditioning_dims = list(self.namespaces), list(self.conditioning_dims)
        if not self.namespaces or len(self.namespaces) != len(self.conditioning_dims):
            raise ConfigError(
                f"quantizer.namespaces ({len(self.namespaces)}) and quantizer.conditioning_dims "
                f"({len(self.conditioning_dims)}) must be non-empty and of equal length"
            )
        if len(set(self.namespaces)) != len(self.namespaces):
            raise ConfigError(f"quantizer.namespaces must be distinct, got {self.namespaces}")
        if any(not isinstance(d, int) or d < 1 for d in self.conditioning_dims):
            raise ConfigError(f"quantizer.conditioning_dims must be positive integers, got {self.conditioning_dims}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"quantizer.ema_decay must be in (0, 1), got {self.ema_decay}")

    @classmethod
    def tiny(cls) -> "QuantizerConfig":
        return cls(num_quantizers=2, codebook_size=8, namespaces=["semantic", "coarse"], conditioning_dims=[16, 24])


def _nearest(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(N, D) × (K, D) → (N,) index of the closest code (squared Euclidean)."""
    d = x.square().sum(1, keepdim=True) - 2 * x @ codebook.T + codebook.square().sum(1)[None, :]  # (N, K)
    return d.argmin(dim=1)


def kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means; centroids start at ``k`` random points (with replacement when N < k).
    Returns (centroids (k, D), counts (k,)). Empty clusters keep their previous centroid."""
    n = x.shape[0]
    pick = torch.randperm(n, generator=generator)[:k] if n >= k else torch.randint(n, (k,), generator=generator)
    centroids = x[pick.to(x.device)].clone()
    counts = torch.zeros(k, device=x.device, dtype=x.dtype)
    for _ in range(iters):
        idx = _nearest(x, centroids)
        counts = torch.bincount(idx, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, idx, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids, counts


class MuLaNEmbedQuantizer(nn.Module):
    """(B, dim) embeddings → (B, num_quantizers) code indices → conditioning tokens/embeddings."""

    def __init__(self, dim: int, config: QuantizerConfig):
        super().__init__()
        self.config, self.dim = config, dim
        Q, K = config.num_quantizers, config.codebook_size
        self.register_buffer("codebooks", torch.zeros(Q, K, dim))
        self.register_buffer("cluster_size", torch.zeros(Q, K))
        self.register_buffer("embed_sum", torch.zeros(Q, K, dim))
        self.register_buffer("initted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # seeds the dead-code draws
        self.cond_embeddings = nn.ParameterDict(
            {ns: nn.Parameter(torch.randn(Q, K, d) * d**-0.5) for ns, d in zip(config.namespaces, config.conditioning_dims)}
        )
        self.default_namespace = config.namespaces[0]

    @property
    def num_codebooks(self) -> int:
        return self.config.num_quantizers

    @property
    def vocab_size(self) -> int:
        """Size of the flat conditioning-token vocabulary of `token_ids`."""
        return self.config.num_quantizers * self.config.codebook_size

    def set_default_namespace(self, namespace: str) -> None:
        self._check_namespace(namespace)
        self.default_namespace = namespace

    def _check_namespace(self, namespace: str) -> None:
        if namespace not in self.cond_embeddings:
            raise AudioLLMError(f"unknown namespace {namespace!r}; this quantizer has: {', '.join(self.cond_embeddings)}")

    # -- learning the codebooks ----------------------------------------------------------------

    @torch.no_grad()
    def fit(self, embeds: torch.Tensor, seed: int = 0) -> None:
        """k-means per residual level on ``embeds`` (N, dim); replaces the codebooks."""
        gen = torch.Generator().manual_seed(seed)
        residual = embeds.detach().float()
        for q in range(self.config.num_quantizers):
            centroids, counts = kmeans(residual, self.config.codebook_size, self.config.kmeans_iters, gen)
            self.codebooks[q] = centroids
            self.cluster_size[q] = counts
            self.embed_sum[q] = centroids * counts[:, None]
            residual = residual - centroids[_nearest(residual, centroids)]
        self.initted.fill_(True)

    @torch.no_grad()
    def update(self, embeds: torch.Tensor) -> None:
        """One EMA step on a batch (N, dim); the first call initialises with k-means on it."""
        x = embeds.detach().float()
        if not bool(self.initted):
            self.fit(x, seed=int(self.updates))
            self.updates += 1
            return
        c = self.config
        gen = torch.Generator().manual_seed(int(self.updates))  # same draws in every process
        residual = x
        for q in range(c.num_quantizers):
            idx = _nearest(residual, self.codebooks[q])
            counts = torch.bincount(idx, minlength=c.codebook_size).to(x.dtype)
            sums = torch.zeros_like(self.codebooks[q]).index_add_(0, idx, residual)
            self.cluster_size[q].mul_(c.ema_decay).add_(counts, alpha=1 - c.ema_decay)
            self.embed_sum[q].mul_(c.ema_decay).add_(sums, alpha=1 - c.ema_decay)
            n = self.cluster_size[q].sum()
            # Laplace smoothing keeps rarely used codes finite (as in VQ-VAE-2's EMA update).
            smoothed = (self.cluster_size[q] + 1e-5) / (n + c.codebook_size * 1e-5) * n
            self.codebooks[q] = self.embed_sum[q] / smoothed[:, None]
            dead = self.cluster_size[q] < c.dead_code_threshold
            if bool(dead.any()):
                pick = torch.randint(residual.shape[0], (int(dead.sum()),), generator=gen).to(x.device)
                self.codebooks[q][dead] = residual[pick]
                self.embed_sum[q][dead] = residual[pick]
                self.cluster_size[q][dead] = 1.0
            residual = residual - self.codebooks[q][_nearest(residual, self.codebooks[q])]
        self.updates += 1

    # -- using them ----------------------------------------------------------------------------

    @torch.no_grad()
    def quantize(self, embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, dim) → (quantised (B, dim), indices (B, num_quantizers))."""
        if not bool(self.initted):
            raise AudioLLMError("the quantizer's codebooks were never learned (train the model or call fit())")
        residual = embeds.detach().float()
        quantized = torch.zeros_like(residual)
        indices = []
        for q in range(self.config.num_quantizers):
            idx = _nearest(residual, self.codebooks[q])
            chosen = self.codebooks[q][idx]
            quantized, residual = quantized + chosen, residual - chosen
            indices.append(idx)
        return quantized, torch.stack(indices, dim=1)

    def token_ids(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, Q) code indices → (B, Q) flat token ids: level q's code k is q · codebook_size + k."""
        offsets = torch.arange(self.config.num_quantizers, device=indices.device) * self.config.codebook_size
        return indices + offsets

    def forward(self, embeds: torch.Tensor, namespace: str | None = None) -> torch.Tensor:
        """(B, dim) embeddings → (B, num_quantizers, conditioning_dim) of ``namespace``'s table."""
        namespace = namespace or self.default_namespace
        self._check_namespace(namespace)
        _, indices = self.quantize(embeds)
        table = self.cond_embeddings[namespace]  # (Q, K, cond_dim)
        levels = torch.arange(self.config.num_quantizers, device=indices.device)
        return table[levels[None, :], indices]  # (B, Q, cond_dim)
