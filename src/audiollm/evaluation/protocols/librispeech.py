"""LibriSpeech scored as ASR papers report it: corpus WER per subset (test-clean and
test-other are never pooled), after an English text normaliser applied to both sides
(:func:`audiollm.evaluation.protocols.english.normalize_english`, Whisper's published rules without
its number and full spelling tables). WER is jiwer's: (S + D + I) / reference words.
"""

from __future__ import annotations

from audiollm.evaluation.protocols.base import (
    Protocol,
    ProtocolContext,
    ProtocolResult,
    register_protocol,
)
from audiollm.evaluation.protocols.english import normalize_english


def wer(predictions: list[str], references: list[str]) -> float:
    """Corpus WER (jiwer) after :func:`normalize_english`; an empty normalised reference adds
    its prediction's words as insertions and nothing to the denominator."""
    import jiwer

    hyps = [normalize_english(p) for p in predictions]
    refs = [normalize_english(r) for r in references]
    keep = [i for i, r in enumerate(refs) if r]
    errors = sum(len(hyps[i].split()) for i in range(len(refs)) if not refs[i])
    words = 0
    if keep:
        out = jiwer.process_words([refs[i] for i in keep], [hyps[i] for i in keep])
        errors += out.substitutions + out.deletions + out.insertions
        words += out.substitutions + out.deletions + out.hits
    return errors / max(words, 1)


@register_protocol("librispeech")
class LibriSpeechProtocol(Protocol):
    task = "asr"
    datasets = ("librispeech",)

    def score(self, rows, predictions, questions, ctx: ProtocolContext) -> ProtocolResult:
        """``librispeech/<subset>``: ``wer`` and ``n`` for each subset, sorted by name
        (rows without a ``subset`` form ``librispeech/all``)."""
        groups: dict[str, tuple[list[str], list[str]]] = {}
        for row, pred in zip(rows, predictions):
            preds, refs = groups.setdefault(str(row.get("subset") or "all"), ([], []))
            preds.append(pred)
            # The original transcript when the row keeps it (``text``), else the answer.
            refs.append(str(row.get("text") or row.get("answer") or ""))
        results = {f"librispeech/{s}": {"n": float(len(p)), "wer": wer(p, r)} for s, (p, r) in sorted(groups.items())}
        return ProtocolResult(results, ["WER after the English normaliser (lowercase, brackets, fillers, contractions, "
                                        "punctuation, a small British→American table; numbers are not rewritten)"])
