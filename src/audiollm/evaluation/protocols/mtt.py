"""MagnaTagATune auto-tagging scored as the field reports it: macro ROC-AUC and PR-AUC
(average precision) over the tag vocabulary (the top-50 tags the manifest was built with),
from a real-valued score per (clip, tag).

A generative model gives no score per tag, so one is computed (``tag_scores``):

* ``likelihood`` (the default for our models): the model's teacher-forced log-probability of
  generating the tag, ``log P(tag | audio, question, answer prefix)``, maximised over the
  answer prefixes ``""``, ``"t1, "``, ``"t1, t2, "``, … built from the model's own greedy
  tag list (at most :data:`MAX_PREFIXES`). The prefixes matter because MagnaTagATune answers
  list tags in vocabulary order: a tag is usually generated after others, not first.
  Cost: clips × tags × prefixes teacher-forced sequences.
* ``presence``: 1 if the tag is in the generated list, else 0 — what remains for a model
  that cannot score candidates. Ties make the AUCs coarse (a 0/1 score gives one point on
  the ROC curve), so ``likelihood`` numbers are the ones to compare with papers.

``auto`` takes ``likelihood`` when the model can score answers (``score_answers``) and a model is
available, else ``presence``; a note names the choice. Tags that every clip has or no clip
has have no AUC and are left out (``n_tags`` counts the tags scored).
"""

from __future__ import annotations

from collections import Counter

import torch
from tqdm.auto import tqdm

from audiollm.errors import AudioLLMError
from audiollm.evaluation.protocols.base import (
    Protocol,
    ProtocolContext,
    ProtocolResult,
    register_protocol,
)
from audiollm.metrics.labels import tag_auc
from audiollm.tasks import get_task, split_labels

MAX_PREFIXES = 8
TAG_SCORES = ("auto", "likelihood", "presence")


def likelihood_scores(model, rows, predictions, questions, vocab, batch_size: int = 8,
                      progress: bool = False) -> list[list[float]]:
    """(clips, tags) log-probabilities of generating each tag (see the module docstring), from a
    loaded model's ``score_answers``."""
    net = model.model
    was_training = net.training
    net.eval()
    out: list[list[float]] = []
    try:
        for start in tqdm(range(0, len(rows), batch_size), desc="tag scores", unit="batch", disable=not progress):
            idx = range(start, min(start + batch_size, len(rows)))
            pairs, spans = [], []
            for i in idx:
                generated = split_labels(predictions[i])[: MAX_PREFIXES - 1]
                prefixes = [", ".join(generated[:k]) + (", " if k else "") for k in range(len(generated) + 1)]
                pairs.append([(p, tag) for p in prefixes for tag in vocab])
                spans.append(len(prefixes))
            scores = model.score_answers([rows[i]["audio"] for i in idx], [questions[i] for i in idx], pairs)
            for flat, n_pre in zip(scores, spans):
                out.append([max(flat[p * len(vocab) + t] for p in range(n_pre)) for t in range(len(vocab))])
    finally:
        if was_training:
            net.train()
    return out


@register_protocol("mtt")
class MagnaTagATuneProtocol(Protocol):
    task = "tagging"
    datasets = ("magnatagatune",)

    def score(self, rows, predictions, questions, ctx: ProtocolContext) -> ProtocolResult:
        if ctx.tag_scores not in TAG_SCORES:
            raise AudioLLMError(f"tag_scores {ctx.tag_scores!r}: choose one of {', '.join(TAG_SCORES)}")
        task = get_task("tagging")
        labels = [task.reference_labels(r) for r in rows]
        counts = Counter(t for ls in labels for t in ls)
        vocab = sorted(counts, key=lambda t: (-counts[t], t))
        targets = [[int(t in set(ls)) for t in vocab] for ls in labels]
        can_score = ctx.model is not None and hasattr(ctx.model, "score_answers")
        mode = ("likelihood" if can_score else "presence") if ctx.tag_scores == "auto" else ctx.tag_scores
        if mode == "likelihood":
            if not can_score:
                raise AudioLLMError("tag_scores=likelihood needs a model that scores candidate answers "
                                    "(AudioLanguageModel.score_answers)")
            with torch.inference_mode():
                scores = likelihood_scores(ctx.model, rows, predictions, questions, vocab,
                                           batch_size=max(1, ctx.batch_size), progress=ctx.progress)
            note = (f"tag scores: log-likelihood of generating each of {len(vocab)} tags "
                    f"(max over the greedy answer's prefixes)")
        else:
            generated = [set(split_labels(p)) for p in predictions]
            scores = [[float(t in g) for t in vocab] for g in generated]
            note = ("tag scores: presence in the generated tag list (0/1), a coarse stand-in for probabilities; "
                    "AUCs are not comparable with published ones")
        result = {"n": float(len(rows)), **tag_auc(scores, targets)}
        return ProtocolResult({"mtt": result}, [note])
