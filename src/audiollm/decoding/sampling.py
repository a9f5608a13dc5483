"""Next-token selection: greedy, temperature, top-k and top-p (nucleus) sampling.

Filters work on scores and return scores with the removed tokens set to ``-inf``, so they
compose: temperature first, then top-k, then top-p, then one draw from the softmax.
"""

from __future__ import annotations

import torch


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits per row (ties with the k-th are kept); k=0 or k>=V is a no-op."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability sums to >= p.

    A token is kept when the probability mass strictly before it (in descending order) is < p,
    so the most likely token is always kept and the kept set is the minimal one reaching p.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    remove_sorted = mass_before >= p
    remove_sorted[..., 0] = False
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def sample_next_token(
    scores: torch.Tensor,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row from next-token scores (B, V) → (B,) long; (B, W, V) scores (W
    tokens per step) give (B, W), each drawn from its own distribution.

    temperature == 0 is greedy (argmax; top_k/top_p are then irrelevant). Otherwise the scores
    are divided by the temperature, filtered by top-k then top-p, and one token is drawn with
    `torch.multinomial` using ``generator`` (seed it for reproducible sampling).
    """
    if temperature == 0.0:
        return scores.argmax(dim=-1)
    if scores.dim() == 3:
        B, W, V = scores.shape
        return sample_next_token(scores.reshape(B * W, V), temperature, top_k, top_p, generator).view(B, W)
    scores = scores.float() / temperature
    scores = top_k_filter(scores, int(top_k))
    scores = top_p_filter(scores, top_p)
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
