"""Captioning: describe a clip in a sentence.

Scored with corpus BLEU, ROUGE-L and METEOR (all 0–1, on normalised text). A row may carry
several reference captions in an ``answers`` list; every metric then uses all of them
(``answer``, the training target, counts as one of the references).
"""

from __future__ import annotations

from collections.abc import Sequence

from audiollm.metrics.text import text_similarity
from audiollm.tasks.base import Row, Task, register_task

CAPTION_QUESTIONS: tuple[str, ...] = (
    "Describe this audio.",
    "Write a caption for this clip.",
    "Describe what you hear.",
    "Give a short description of this recording.",
    "Caption this audio.",
)


@register_task("caption")
class CaptionTask(Task):
    questions = CAPTION_QUESTIONS
    required_keys = ("audio", "answer")

    def score(self, predictions: Sequence[str], rows: Sequence[Row]) -> dict[str, float]:
        """``bleu``, ``rouge_l`` and ``meteor`` against every reference of each row."""
        self._check_pairs(predictions, rows)
        if not rows:
            return {"n": 0}
        refs = [self.references(r) for r in rows]
        return {"n": len(rows), **text_similarity(predictions, refs)}
