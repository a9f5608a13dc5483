"""MusicQA scored as MU-LLaMA published it (Liu et al. 2023, ``ModelEvaluations/evaluate.py``).

Per (prediction, reference) pair, on the raw strings (no normalisation), then averaged:

* ``bleu``: nltk ``sentence_bleu([ref], pred)`` with the default uniform weights
  (¼, ¼, ¼, ¼). The strings are passed un-tokenised, so nltk iterates **characters**: this
  is BLEU over character 1–4-grams. The quirk is reproduced on purpose — it is what the
  published MusicQA table means by BLEU — and it is why those BLEU values are far higher than
  word-level BLEU.
* ``bleu4``: the same with weights (0, 0, 0, 1): character 4-gram precision × brevity penalty.
* ``meteor``: nltk ``meteor_score`` on ``wordpunct_tokenize`` tokens.
* ``rouge_l_recall``: rouge-score ROUGE-L **recall** with the Porter stemmer.
* ``bertscore_recall``: BERTScore recall (the paper: roberta-large layer 17 through the
  ``bert_score`` package, no idf, no rescaling). Computed by
  :mod:`audiollm.evaluation.protocols.bertscore` over the encoder folder the user gives
  (``--bertscore-model``); without one it is skipped and a note says so.

One reference per question (the MusicQA answer). Each metric comes with
``shuffled_ref/<metric>``: the same metric with every prediction paired with *another
clip's* reference to the same question (:func:`shuffled_references`). Generic music
answers score well on these metrics whatever the clip; a model is only listening when its
score clearly beats that baseline.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from audiollm.evaluation.protocols.base import (
    Protocol,
    ProtocolContext,
    ProtocolResult,
    Row,
    register_protocol,
)
from audiollm.evaluation.protocols.bertscore import BertScorer
from audiollm.metrics.text import (
    meteor_wordpunct,
    nltk_sentence_bleu,
    normalize_text,
    rouge_l_recall,
)
from audiollm.tasks import get_task


def _clip_of(row: Row) -> str:
    return str(row.get("audio_name") or row.get("clip") or row.get("audio") or "")


def shuffled_references(rows: Sequence[Row], references: Sequence[str], seed: int = 0) -> tuple[list[str], int, int]:
    """For each row, the reference of a row about **another clip**, chosen deterministically.

    The pool for row i is, first, the rows with the same question (compared after
    :func:`~audiollm.metrics.text.normalize_text`) about other clips; if there are none, the rows
    with the same ``qa_type`` about other clips; if none either, every row about another
    clip. One is drawn with ``random.Random(f"{seed}:{i}")`` from the pool in row order, so
    the pairing is the same on every run. Returns (references, rows that fell back to the
    qa_type pool, rows that fell back to any clip). A manifest about a single clip has no
    other clip: its rows keep their own reference (and the baseline equals the score).
    """
    clips = [_clip_of(r) for r in rows]
    by_question: dict[str, list[int]] = {}
    by_type: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_question.setdefault(normalize_text(str(r.get("question") or "")), []).append(i)
        by_type.setdefault(str(r.get("qa_type") or ""), []).append(i)
    out, n_type, n_any = [], 0, 0
    for i, r in enumerate(rows):
        rng = random.Random(f"{seed}:{i}")
        pool = [j for j in by_question[normalize_text(str(r.get("question") or ""))] if clips[j] != clips[i]]
        if not pool and r.get("qa_type"):
            pool = [j for j in by_type[str(r["qa_type"])] if clips[j] != clips[i]]
            n_type += bool(pool)
        if not pool:
            pool = [j for j in range(len(rows)) if clips[j] != clips[i]]
            n_any += bool(pool)
        out.append(references[rng.choice(pool)] if pool else references[i])
    return out, n_type, n_any


def pair_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """The four string metrics, averaged over pairs."""
    n = len(predictions)
    totals = {"bleu": 0.0, "bleu4": 0.0, "meteor": 0.0, "rouge_l_recall": 0.0}
    for p, r in zip(predictions, references):
        totals["bleu"] += nltk_sentence_bleu(p, r)
        totals["bleu4"] += nltk_sentence_bleu(p, r, weights=(0.0, 0.0, 0.0, 1.0))
        totals["meteor"] += meteor_wordpunct(p, r)
        totals["rouge_l_recall"] += rouge_l_recall(p, r)
    return {k: v / n for k, v in totals.items()}


@register_protocol("mullama")
class MuLlamaProtocol(Protocol):
    task = "qa"
    datasets = ("musicqa",)

    def score(self, rows, predictions, questions, ctx: ProtocolContext) -> ProtocolResult:
        task = get_task("qa")
        refs = [task.answer(r) for r in rows]
        shuffled, n_type, n_any = shuffled_references(rows, refs, ctx.seed)
        ours = pair_scores(predictions, refs)
        base = pair_scores(predictions, shuffled)
        notes = [f"BLEU is nltk sentence_bleu on raw strings, i.e. over character n-grams (as published); "
                 f"shuffled_ref/* pairs each prediction with another clip's answer to the same question "
                 f"(seed {ctx.seed})"]
        if n_type or n_any:
            notes.append(f"shuffled baseline: {n_type} row(s) had no other clip with the same question and used "
                         f"the same qa_type, {n_any} used any other clip")
        if ctx.bertscore_model:
            scorer = BertScorer(ctx.bertscore_model, layer=ctx.bertscore_layer, batch_size=ctx.batch_size)
            ours["bertscore_recall"] = sum(scorer.recall(predictions, refs)) / len(rows)
            base["bertscore_recall"] = sum(scorer.recall(predictions, shuffled)) / len(rows)
            notes.append(f"BERTScore recall with {scorer.name} from {ctx.bertscore_model}, no idf "
                         f"(the paper used roberta-large layer 17)")
        else:
            notes.append("BERTScore skipped: no encoder given (--bertscore-model DIR; the paper used roberta-large, "
                         "layer 17)")
        result: dict[str, float] = {"n": float(len(rows))}
        for k, v in ours.items():
            result[k] = v
            result[f"shuffled_ref/{k}"] = base[k]
        return ProtocolResult({"mullama": result}, notes)
