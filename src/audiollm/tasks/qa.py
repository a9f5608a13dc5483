"""Open question answering about a clip ("What is the tempo?", "Which key is it in?").

The question is part of the data, so every row must have one: there are no paraphrases to
fall back on. Scored with ``exact_match`` (after normalisation; any of the row's ``answers``
counts) and, for longer free-form answers, BLEU, ROUGE-L and METEOR.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from audiollm.errors import ManifestError
from audiollm.metrics.text import exact_match, text_similarity
from audiollm.tasks.base import Row, Task, register_task, row_label


@register_task("qa")
class QATask(Task):
    questions: tuple[str, ...] = ()
    required_keys = ("audio", "question", "answer")

    def question(self, row: Row, rng: random.Random) -> str:
        """The row's ``question``; a row without one is a manifest error."""
        q = row.get("question")
        if not isinstance(q, str) or not q.strip():
            raise ManifestError(f"qa {row_label(row)} has no 'question' (qa rows must carry their question)")
        return q.strip()

    def score(self, predictions: Sequence[str], rows: Sequence[Row]) -> dict[str, float]:
        """``exact_match``, ``bleu``, ``rouge_l``, ``meteor`` against each row's references."""
        self._check_pairs(predictions, rows)
        if not rows:
            return {"n": 0}
        refs = [self.references(r) for r in rows]
        return {
            "n": len(rows),
            "exact_match": exact_match(predictions, refs),
            **text_similarity(predictions, refs),
        }
