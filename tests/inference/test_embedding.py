"""MuLaN embeddings in the library: prompt ensembles for labels, reranking generated clips."""

from __future__ import annotations

import torch
from helpers import tone

from audiollm.inference.embedding import (
    embed_texts,
    generate_and_rerank,
    label_embeddings,
    rerank,
    score,
)
from audiollm.models import hub


def test_label_prompts_are_averaged(mulan_dirs):
    model, tok = hub.load(mulan_dirs[0])
    templates = ["A slow {label} piece.", "{label} {x}"]  # other braces are left as they are
    got = label_embeddings(model, tok, ["piano", "organ"], templates)
    per = torch.stack([embed_texts(model, tok, [t.replace("{label}", l) for l in ("piano", "organ")]) for t in templates])
    want = torch.nn.functional.normalize(per.mean(0), dim=-1)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, per[0])  # the second prompt changed the label embeddings


def test_rerank_keeps_the_best_scoring_clip(mulan_dirs):
    model, tok = hub.load(mulan_dirs[0])
    clips = [torch.from_numpy(tone(0.5, f)) for f in (220.0, 440.0, 880.0, 1760.0)]
    sims = score(model, tok, clips, ["bright piano"])[:, 0]
    best = rerank(model, tok, "bright piano", clips, keep=2)
    assert [i for i, _ in best] == sims.argsort(descending=True)[:2].tolist()
    it = iter(clips)
    kept = generate_and_rerank(model, tok, "bright piano", lambda text: next(it), n=4, keep=1)
    assert torch.equal(kept[0][0], clips[best[0][0]])


