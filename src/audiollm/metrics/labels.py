"""Label metrics: multi-label F1 (a few lines; scikit-learn is not a dependency) and
per-tag ROC/PR-AUC (scikit-learn, for the MagnaTagATune protocol).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from audiollm.errors import AudioLLMError
from audiollm.metrics.text import check_pairs, normalize_text


def multilabel_f1(
    pred_label_sets: Sequence[Iterable[str]], ref_label_sets: Sequence[Iterable[str]]
) -> dict[str, float]:
    """Per-label F1 plus micro and macro averages for multi-label tagging.

    Labels are normalised. The label vocabulary is the set of reference labels; a predicted
    label outside it is a false positive in the micro counts but gets no per-label entry.
    Returns ``{"micro_precision", "micro_recall", "micro_f1", "macro_f1", "f1/<label>"...}``;
    F1 = 2·TP / (2·TP + FP + FN), 0 when undefined.
    """
    check_pairs(pred_label_sets, ref_label_sets)
    preds = [{normalize_text(x) for x in s} - {""} for s in pred_label_sets]
    refs = [{normalize_text(x) for x in s} - {""} for s in ref_label_sets]
    vocab = sorted(set().union(*refs))
    tp_all = fp_all = fn_all = 0
    per_label: dict[str, float] = {}
    for label in vocab:
        tp = sum(label in p and label in r for p, r in zip(preds, refs))
        fp = sum(label in p and label not in r for p, r in zip(preds, refs))
        fn = sum(label not in p and label in r for p, r in zip(preds, refs))
        per_label[f"f1/{label}"] = _f1(tp, fp, fn)
    for p, r in zip(preds, refs):
        tp_all += len(p & r)
        fp_all += len(p - r)
        fn_all += len(r - p)
    return {
        "micro_precision": tp_all / (tp_all + fp_all) if tp_all + fp_all else 0.0,
        "micro_recall": tp_all / (tp_all + fn_all) if tp_all + fn_all else 0.0,
        "micro_f1": _f1(tp_all, fp_all, fn_all),
        "macro_f1": sum(per_label.values()) / len(per_label) if per_label else 0.0,
        **per_label,
    }


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def tag_auc(scores, targets) -> dict[str, float]:
    """Macro ROC-AUC and PR-AUC (average precision) over tags, with scikit-learn.

    ``scores`` and ``targets`` are (clips, tags) arrays: a real-valued score and a 0/1
    label per clip and tag. Tags whose column is all 0 or all 1 have no AUC and are left
    out of the averages (``n_tags`` counts the rest). Returns ``roc_auc``, ``pr_auc`` and
    ``n_tags``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = np.asarray(scores, dtype=float)
    y = np.asarray(targets, dtype=int)
    if s.shape != y.shape or s.ndim != 2:
        raise AudioLLMError(f"tag scores {s.shape} and targets {y.shape} must be the same (clips, tags) shape")
    cols = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < y.shape[0]]
    if not cols:
        raise AudioLLMError("no tag has both positive and negative clips: ROC-AUC is undefined")
    roc = [roc_auc_score(y[:, j], s[:, j]) for j in cols]
    pr = [average_precision_score(y[:, j], s[:, j]) for j in cols]
    return {"roc_auc": float(np.mean(roc)), "pr_auc": float(np.mean(pr)), "n_tags": float(len(cols))}

