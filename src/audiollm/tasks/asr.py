"""ASR: transcribe the speech in a clip.

Scored with corpus WER and CER (jiwer) after :func:`audiollm.metrics.text.normalize_text`, and
``exact_match``: the fraction of utterances transcribed exactly (sentence accuracy; for
spoken-digit data, where each clip is one digit, this is digit accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence

from audiollm.metrics.text import exact_match, wer_cer
from audiollm.tasks.base import Row, Task, register_task

ASR_QUESTIONS: tuple[str, ...] = (
    "Transcribe the speech.",
    "What does the speaker say?",
    "Write down the spoken words.",
    "Transcribe this recording.",
    "What is being said?",
)


@register_task("asr")
class ASRTask(Task):
    questions = ASR_QUESTIONS
    required_keys = ("audio", "answer")
    aligned_answer = True  # a transcript follows the speech in time: CTC can supervise it

    def score(self, predictions: Sequence[str], rows: Sequence[Row]) -> dict[str, float]:
        """``wer``, ``cer`` (lower is better) and ``exact_match`` over the rows' answers."""
        self._check_pairs(predictions, rows)
        if not rows:
            return {"n": 0}
        refs = [self.answer(r) for r in rows]
        return {
            "n": len(rows),
            **wer_cer(predictions, refs),
            "exact_match": exact_match(predictions, refs),
        }
