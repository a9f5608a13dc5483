"""Contrastive losses for joint audio–text embeddings, exact across processes.

Every loss takes the LOCAL rows' embeddings ``a``/``t`` (b, D), L2-normalised, and compares
them with the GLOBAL batch (all processes' rows, gathered with gradients). It returns the sum
of the local rows' losses; the training loop divides by the global pair count and multiplies
by the world size (DDP averages gradients), the same normalisation as the language-model loss.
Summed over processes, that is the loss of one process holding the whole global batch, and so
are the gradients: `all_gather_with_grad` sends each row's gradient back to the process that
owns it (an all-reduce of the gathered gradient, then each process keeps its slice).

    softmax    CLIP / InfoNCE, symmetric, learnable temperature (Radford et al. 2021)
    decoupled  DCL: the positive pair is left out of the softmax denominator (Yeh et al. 2022)
    sigmoid    SigLIP: an independent binary loss per pair, learnable scale and bias
               (Zhai et al. 2023)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Gathering across processes
# ---------------------------------------------------------------------------------------------


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class _AllGather(torch.autograd.Function):
    """all_gather whose backward returns to each process the gradient of its own rows, summed
    over every process's loss. Written out (all-reduce + slice) so it runs on gloo too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world, rank = _world()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.rows = rank, x.shape[0]
        return torch.cat(parts)  # (world · b, D)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def all_gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(b, D) local rows → (world · b, D) global rows, and the offset of the local rows in it.

    Every process must hold the same number of rows (the loop splits the global batch evenly).
    """
    world, rank = _world()
    if world == 1:
        return x, 0
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    if len({int(s) for s in sizes}) != 1:
        raise ValueError(f"every process must embed the same number of rows, got {[int(s) for s in sizes]}")
    return _AllGather.apply(x), rank * x.shape[0]


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------


@dataclass
class LossConfig:
    init_temperature: float = 0.07  # softmax/decoupled: logits = cos / T; T is learned (log-parametrised)
    max_scale: float = 100.0  # upper clamp on 1/T (CLIP's), keeps training stable
    init_scale: float = 10.0  # sigmoid: initial logit scale (SigLIP: 10)
    init_bias: float = -10.0  # sigmoid: initial logit bias (SigLIP: -10, as most pairs are negatives)


class SoftmaxContrastive(nn.Module):
    """Symmetric InfoNCE: each audio picks its text among all texts of the global batch and
    vice versa; mean of the two cross-entropies per pair."""

    def __init__(self, config: LossConfig):
        super().__init__()
        self.max_log_scale = math.log(config.max_scale)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    def logits(self, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(Na, D) × (Nt, D) → (Na, Nt) scaled similarities (used for zero-shot probabilities)."""
        return self.scale * a @ t.T

    def row_losses(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, reduction="none")

    def forward(self, a: torch.Tensor, t: torch.Tensor, gather: bool = True) -> torch.Tensor:
        A, offset = all_gather_with_grad(a) if gather else (a, 0)
        T, _ = all_gather_with_grad(t) if gather else (t, 0)
        targets = torch.arange(a.shape[0], device=a.device) + offset
        a2t = self.row_losses(self.logits(a, T), targets)  # (b,) local audio vs all texts
        t2a = self.row_losses(self.logits(t, A), targets)  # (b,) local texts vs all audio
        return 0.5 * (a2t.sum() + t2a.sum())


class DecoupledContrastive(SoftmaxContrastive):
    """DCL: -s_ii + logsumexp_{j≠i} s_ij; without the positive in the denominator the loss
    does not saturate once a pair is matched, which helps small batches."""

    def row_losses(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(logits.shape[0], device=logits.device)
        positive = logits[rows, targets]
        negatives = logits.masked_fill(F.one_hot(targets, logits.shape[1]).bool(), float("-inf"))
        return torch.logsumexp(negatives, dim=1) - positive


class SigmoidContrastive(nn.Module):
    """SigLIP: -log σ(±(scale · cos + bias)) for every (audio, text) pair, + on the diagonal.
    The local audio rows against ALL texts cover each pair of the global matrix once."""

    def __init__(self, config: LossConfig):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.init_scale)))
        self.bias = nn.Parameter(torch.tensor(float(config.init_bias)))

    def logits(self, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * a @ t.T + self.bias

    def forward(self, a: torch.Tensor, t: torch.Tensor, gather: bool = True) -> torch.Tensor:
        T, offset = all_gather_with_grad(t) if gather else (t, 0)
        logits = self.logits(a, T)  # (b, N)
        labels = -torch.ones_like(logits)
        rows = torch.arange(a.shape[0], device=a.device)
        labels[rows, rows + offset] = 1.0
        return -F.logsigmoid(labels * logits).sum()


CONTRASTIVE_LOSSES: dict[str, type[nn.Module]] = {
    "softmax": SoftmaxContrastive,
    "decoupled": DecoupledContrastive,
    "sigmoid": SigmoidContrastive,
}
