"""Next-token selection: greedy, temperature, top-k and top-p (nucleus) sampling.

One implementation, used by `Decoder.generate` (the LM alone) and `AudioLLM.generate`
(which hands its audio+prompt prefix to `Decoder.generate`). Filters work on logits and
return logits with the removed tokens set to ``-inf``, so they compose: temperature first,
then top-k, then top-p, then one draw from the softmax.
"""

from __future__ import annotations

from typing import Any

import torch

from audiollm.errors import ConfigError


def check_sampling_args(temperature: float, top_k: int, top_p: float) -> None:
    """Raise `ConfigError` naming the bad argument (these come straight from CLI flags)."""
    if not temperature >= 0.0:  # also rejects NaN
        raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if int(top_k) != top_k or top_k < 0:
        raise ConfigError(f"top_k must be an integer >= 0 (0 = off), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1] (1 = off), got {top_p}")


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
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row from next-token logits (B, V) → (B,) long.

    temperature == 0 is greedy (argmax; top_k/top_p are then irrelevant). Otherwise the logits
    are divided by the temperature, filtered by top-k then top-p, and one token is drawn with
    `torch.multinomial` using ``generator`` (seed it for reproducible sampling).
    """
    check_sampling_args(temperature, top_k, top_p)
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    logits = top_k_filter(logits, int(top_k))
    logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def pick_next_token(
    rows: list[int],
    logits: torch.Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
    rescorer: Any = None,
) -> torch.Tensor:
    """One decoding step's tokens (b,) for the active ``rows`` (original batch indices).

    A ``rescorer`` (e.g. :class:`audiollm.ctc_prefix.CTCPrefixScorer`) re-scores the LM's
    next-token logits first (``rescore(rows, logits) -> logits``) and is told the pick after
    (``advance(rows, tokens)``). Shared by every LM's batched ``generate``.
    """
    if rescorer is not None:
        logits = rescorer.rescore(rows, logits)
    next_tok = sample_next_token(logits.float(), temperature, top_k, top_p, generator)
    if rescorer is not None:
        rescorer.advance(rows, next_tok)
    return next_tok


def record_step(
    rows: list[int],
    next_tok: torch.Tensor,
    logits: torch.Tensor,
    tokens: list[list[int]],
    step_logits: list[list[torch.Tensor]] | None,
    eos_id: int | None,
) -> list[int]:
    """Append one decoding step's tokens (and logits) to the still-active rows.

    ``rows[j]`` is the original batch row of active row ``j``. Returns the active positions
    that go on (not stopped at ``eos_id``). Shared by every LM's batched ``generate``.
    """
    keep = []
    for j, (row, tok) in enumerate(zip(rows, next_tok.tolist())):
        if step_logits is not None:
            step_logits[row].append(logits[j].float())
        if eos_id is not None and tok == eos_id:
            continue
        tokens[row].append(tok)
        keep.append(j)
    return keep


def finish(tokens: list[list[int]], step_logits: list[list[torch.Tensor]] | None, vocab_size: int):
    """``tokens``, or ``(tokens, per-row (n_steps, V) logits)`` when logits were recorded."""
    if step_logits is None:
        return tokens
    return tokens, [torch.stack(s) if s else torch.empty(0, vocab_size) for s in step_logits]
