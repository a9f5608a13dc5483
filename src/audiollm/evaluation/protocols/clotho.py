"""Clotho captioning scored the DCASE way: BLEU-1, BLEU-4, METEOR, ROUGE-L and CIDEr-D
against all five references of each clip.

Text is lowercased and stripped of punctuation (:func:`audiollm.evaluation.protocols.cider.tokenize`,
our stand-in for the Java PTB tokenizer the COCO toolkit runs). Then:

* ``bleu_1``, ``bleu_4``: nltk ``corpus_bleu`` (corpus-level clipped counts, closest
  reference length, no smoothing);
* ``meteor``: nltk ``meteor_score`` with all references (best one counts), averaged;
* ``rouge_l``: COCO's ROUGE-L — max LCS precision and max recall over references, F with
  β = 1.2 — averaged;
* ``cider_d``: :mod:`audiollm.evaluation.protocols.cider`, document frequencies from this test set's
  references.

SPICE (and so SPIDEr) needs Java and a parser model and is not computed.
"""

from __future__ import annotations

from audiollm.evaluation.protocols.base import (
    Protocol,
    ProtocolContext,
    ProtocolResult,
    register_protocol,
)
from audiollm.evaluation.protocols.cider import cider_d, tokenize
from audiollm.metrics.text import WordNetMissingError, corpus_bleu_tokens, rouge_l_coco
from audiollm.tasks import get_task


@register_protocol("clotho")
class ClothoProtocol(Protocol):
    task = "caption"
    datasets = ("clotho",)

    def score(self, rows, predictions, questions, ctx: ProtocolContext) -> ProtocolResult:
        from nltk.translate.meteor_score import meteor_score

        task = get_task("caption")
        refs = [task.references(r) for r in rows]
        cand_tok = [tokenize(p) for p in predictions]
        ref_tok = [[tokenize(r) for r in rs] for rs in refs]
        try:
            meteor = sum(meteor_score(rt, ct) for ct, rt in zip(cand_tok, ref_tok)) / len(rows)
        except LookupError:
            raise WordNetMissingError("METEOR needs NLTK's WordNet: run `python -m audiollm.metrics.wordnet`") from None
        result = {
            "n": float(len(rows)),
            "bleu_1": corpus_bleu_tokens(cand_tok, ref_tok, max_n=1),
            "bleu_4": corpus_bleu_tokens(cand_tok, ref_tok, max_n=4),
            "meteor": meteor,
            "rouge_l": sum(rouge_l_coco(ct, rt) for ct, rt in zip(cand_tok, ref_tok)) / len(rows),
            "cider_d": cider_d(predictions, refs),
        }
        return ProtocolResult({"clotho": result}, ["SPICE/SPIDEr not computed (they need Java)"])
