"""Retrieval metrics of paired embeddings: Recall@k and median rank, both directions."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def ranks_of_targets(sim: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each row's target column in that row's descending similarities.
    Ties count against the target (a constant scorer gets the worst rank, not the best)."""
    target_sim = sim.gather(1, targets[:, None])
    return (sim >= target_sim).sum(dim=1)


def retrieval_metrics(audio_embeds: torch.Tensor, text_embeds: torch.Tensor, ks: Iterable[int] = (1, 5, 10)) -> dict[str, float]:
    """Pair i of audio and text belongs together. Text→audio and audio→text Recall@k and
    median rank (1 = perfect) over the whole set."""
    sim = audio_embeds.float() @ text_embeds.float().T  # (N, N)
    targets = torch.arange(sim.shape[0])
    out: dict[str, float] = {}
    for name, s in (("t2a", sim.T), ("a2t", sim)):
        ranks = ranks_of_targets(s, targets).float()
        for k in ks:
            out[f"{name}_r{k}"] = float((ranks <= k).float().mean())
        out[f"{name}_median_rank"] = float(ranks.median())
    out["n"] = float(sim.shape[0])
    return out

