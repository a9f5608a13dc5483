"""Tagging: name the instrument family (or families) playing in a clip.

Single-label rows have one label in ``answer`` ("piano"). Multi-label rows list several,
either comma-separated in ``answer`` ("piano, strings") or as a ``labels`` list. The label
vocabulary is whatever the references contain; nothing is fixed here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from audiollm.metrics.labels import multilabel_f1
from audiollm.metrics.text import normalize_text
from audiollm.tasks.base import Row, Task, register_task

TAGGING_QUESTIONS: tuple[str, ...] = (
    "Which instrument family is playing?",
    "What family of instrument is this?",
    "Name the instrument family you hear.",
    "Which kind of instrument plays in this clip?",
    "Tag the instrument family.",
)

_LABEL_SEP = re.compile(r"[,;]")


def split_labels(text: str) -> list[str]:
    """"Piano, strings; brass" → ["piano", "strings", "brass"] (normalised, empties dropped,
    duplicates removed, first-seen order)."""
    labels = [normalize_text(part) for part in _LABEL_SEP.split(text)]
    return list(dict.fromkeys(label for label in labels if label))


@register_task("tagging")
class TaggingTask(Task):
    questions = TAGGING_QUESTIONS
    required_keys = ("audio", "answer")

    def reference_labels(self, row: Row) -> list[str]:
        """The row's label set: its ``labels`` list if present, else the split ``answer``."""
        labels = row.get("labels")
        if isinstance(labels, (list, tuple)):
            normalised = [normalize_text(str(x)) for x in labels]
            unique = list(dict.fromkeys(x for x in normalised if x))
            if unique:
                return unique
        return split_labels(self.answer(row))

    def score(self, predictions: Sequence[str], rows: Sequence[Row]) -> dict[str, float]:
        """``accuracy``: the predicted label set equals the reference set (for one label,
        normalised string equality). When any row has several labels, also
        ``micro_f1``/``macro_f1``/``micro_precision``/``micro_recall`` and ``f1/<label>``."""
        self._check_pairs(predictions, rows)
        if not rows:
            return {"n": 0}
        pred_sets = [split_labels(p) for p in predictions]
        ref_sets = [self.reference_labels(r) for r in rows]
        # Set equality, so label order does not matter ("strings, piano" == "piano, strings");
        # with one label per row this is accuracy on normalised strings.
        hits = sum(set(p) == set(r) for p, r in zip(pred_sets, ref_sets))
        out: dict[str, float] = {"n": len(rows), "accuracy": hits / len(rows)}
        if any(len(r) > 1 for r in ref_sets):
            out.update(multilabel_f1(pred_sets, ref_sets))
        return out
