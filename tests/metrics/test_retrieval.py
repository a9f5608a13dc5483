"""Retrieval metrics: recall@k and median rank both ways, ties counted against."""

from __future__ import annotations

import torch

from audiollm.metrics.retrieval import retrieval_metrics


def test_retrieval_metrics_are_right():
    e = torch.eye(12)
    m = retrieval_metrics(e, e)
    assert m["t2a_r1"] == 1.0 and m["a2t_median_rank"] == 1.0
    m = retrieval_metrics(e, e.roll(1, 0))  # every text matches the next clip
    assert m["t2a_r1"] == 0.0 and m["t2a_r10"] == 0.0 and m["t2a_median_rank"] == 12.0  # ties count against
    texts = torch.eye(12) + 0.9 * torch.eye(12).roll(1, 1)  # text j also resembles clip j+1
    m = retrieval_metrics(torch.eye(12), texts)
    assert m["a2t_r1"] == 1.0 and m["t2a_r1"] == 1.0  # still each pair's best match
    m = retrieval_metrics(torch.eye(12), torch.eye(12) * 0.5 + torch.eye(12).roll(1, 1))
    assert m["t2a_r1"] == 0.0 and m["t2a_r5"] == 1.0 and m["t2a_median_rank"] == 2.0
    m = retrieval_metrics(torch.ones(4, 3), torch.ones(4, 3))  # constant scores: worst rank, not best
    assert m["t2a_r1"] == 0.0 and m["t2a_median_rank"] == 4.0


