"""CIDEr-D (Vedantam et al. 2015), the captioning consensus metric of COCO and DCASE Clotho.

No dependency of ours implements it (the reference implementation lives in
``pycocoevalcap``, which needs Java for its tokenizer), so it is written here, following the
published definition that ``pycocoevalcap.cider`` computes:

* Each text is a token list (:func:`tokenize`: the project's normalisation, then split on
  whitespace — the stand-in for the PTB tokenizer, which also lowercases and drops
  punctuation).
* For n = 1..4, a text becomes a tf-idf vector over its n-grams:
  ``g(w) = count(w) · (log N − log max(1, df(w)))`` where N is the number of clips in the
  *reference* corpus and ``df(w)`` the number of clips whose references contain ``w``.
* For a candidate c and one reference r, per order n:
  ``s_n(c, r) = Σ_w min(g_c(w), g_r(w)) · g_r(w) / (‖g_c‖ · ‖g_r‖)`` (0 when a norm is 0) —
  the "-D" clipping of candidate weights by reference weights — times the Gaussian length
  penalty ``exp(−(len(c) − len(r))² / (2σ²))`` with σ = 6 (lengths in tokens).
* ``CIDEr-D(c, R) = 10 · (1/|R|) Σ_{r∈R} (1/4) Σ_n s_n(c, r)``, and the corpus score is the
  mean over clips. The ×10 puts typical scores in the 0–1+ range COCO reports.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from audiollm.errors import AudioLLMError
from audiollm.metrics.text import normalize_text

MAX_N = 4
SIGMA = 6.0


def tokenize(text: str) -> list[str]:
    """Lowercased, punctuation-free tokens (:func:`audiollm.metrics.text.normalize_text`)."""
    return normalize_text(text).split()


def ngram_counts(tokens: Sequence[str], max_n: int = MAX_N) -> list[Counter]:
    """Per order n = 1..max_n, the counts of the n-grams (tuples) of ``tokens``."""
    return [Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)) for n in range(1, max_n + 1)]


def _tfidf(counts: list[Counter], df: Counter, log_n: float) -> tuple[list[dict], list[float]]:
    vecs, norms = [], []
    for by_n in counts:
        vec = {g: tf * (log_n - math.log(max(1.0, df[g]))) for g, tf in by_n.items()}
        vecs.append(vec)
        norms.append(math.sqrt(sum(v * v for v in vec.values())))
    return vecs, norms


def cider_d_per_clip(candidates: Sequence[str], references: Sequence[Sequence[str]],
                     sigma: float = SIGMA) -> list[float]:
    """CIDEr-D of each candidate against its clip's references; document frequencies come
    from all of ``references`` (the corpus being scored), so scores depend on the corpus."""
    if len(candidates) != len(references):
        raise AudioLLMError(f"{len(candidates)} candidates but {len(references)} reference sets")
    if not candidates:
        raise AudioLLMError("nothing to score: no candidates")
    ref_counts = []
    for refs in references:
        if not refs:
            raise AudioLLMError("a clip has no reference captions")
        ref_counts.append([ngram_counts(tokenize(r)) for r in refs])
    df: Counter = Counter()
    for clip in ref_counts:
        df.update({g for counts in clip for by_n in counts for g in by_n})  # once per clip
    log_n = math.log(float(len(references)))

    scores = []
    for cand, clip, refs in zip(candidates, ref_counts, references):
        c_tokens = tokenize(cand)
        c_vec, c_norm = _tfidf(ngram_counts(c_tokens), df, log_n)
        total = 0.0
        for r_counts, r_text in zip(clip, refs):
            r_vec, r_norm = _tfidf(r_counts, df, log_n)
            delta = len(c_tokens) - len(tokenize(r_text))
            penalty = math.exp(-(delta * delta) / (2.0 * sigma * sigma))
            per_n = 0.0
            for n in range(MAX_N):
                if c_norm[n] == 0.0 or r_norm[n] == 0.0:
                    continue
                dot = sum(min(w, r_vec[n][g]) * r_vec[n][g] for g, w in c_vec[n].items() if g in r_vec[n])
                per_n += dot / (c_norm[n] * r_norm[n]) * penalty
            total += per_n / MAX_N
        scores.append(10.0 * total / len(refs))
    return scores


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]], sigma: float = SIGMA) -> float:
    """Corpus CIDEr-D: the mean of :func:`cider_d_per_clip`."""
    per_clip = cider_d_per_clip(candidates, references, sigma)
    return sum(per_clip) / len(per_clip)
