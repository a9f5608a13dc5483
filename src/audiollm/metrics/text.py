"""Text metrics: short wrappers around the field's libraries.

Every function takes predictions and references as lists of strings (one per example),
normalises both with :func:`normalize_text` and returns a float (or a dict of floats).
All scores are on a **0–1 scale**, including BLEU (sacrebleu's 0–100 score divided by 100),
so one results table reads the same way throughout. WER and CER are error rates (lower is
better, and can exceed 1 when the model inserts words); everything else is higher-is-better.

Libraries: jiwer (WER/CER), sacrebleu (BLEU), rouge-score (ROUGE-L), nltk (METEOR, which
needs WordNet: ``python -m audiollm.metrics.wordnet`` installs it offline). Functions that
accept several references per example (``bleu``, ``rouge_l``, ``meteor``, ``exact_match``)
take each reference either as a string or as a list of strings. The ``*_coco``/``nltk_*``
variants reproduce published scoring scripts (evaluation protocols).
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Sequence

from audiollm.errors import AudioLLMError

Refs = Sequence[str | Sequence[str]]


# Curly and modifier apostrophes, which NFKC leaves alone, count as the ASCII apostrophe.
_APOSTROPHES = {"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\uff07": "'"}


def normalize_text(s: str) -> str:
    """Normalise text before any comparison (ASR transcripts, answers, labels, captions).

    The rule, applied in this order:

    1. Unicode NFKC normalisation (full-width and compatibility characters become their
       plain forms, e.g. "ｆｕｌｌ" → "full", "ﬁ" → "fi"), then lowercase; curly
       apostrophes (’ ‘ ʼ) become "'".
    2. Every punctuation character (Unicode category P*) becomes a space, except three kinds
       that carry meaning inside a token: an apostrophe between two letters or digits
       ("don't", "90's"), a period between two digits ("3.5"), and "#" right after a letter
       (the musical sharp: "c# minor"). Symbols such as "+", "%", "♯" are kept.
    3. Whitespace runs collapse to one space; leading and trailing whitespace is removed.

    Example: ``"  Don't STOP—it's 3.5 kHz, in C#!  "`` → ``"don't stop it's 3.5 khz in c#"``.
    """
    s = unicodedata.normalize("NFKC", s).lower()
    s = "".join(_APOSTROPHES.get(c, c) for c in s)
    out = []
    n = len(s)
    for i, c in enumerate(s):
        if unicodedata.category(c).startswith("P"):
            prev = s[i - 1] if i > 0 else ""
            nxt = s[i + 1] if i + 1 < n else ""
            keep = (
                (c == "'" and prev.isalnum() and nxt.isalnum())
                or (c == "." and prev.isdigit() and nxt.isdigit())
                or (c == "#" and prev.isalpha())
            )
            out.append(c if keep else " ")
        else:
            out.append(c)
    return " ".join("".join(out).split())


def check_pairs(preds: Sequence, refs: Sequence) -> None:
    if len(preds) != len(refs):
        raise AudioLLMError(f"{len(preds)} predictions but {len(refs)} references: they must pair up")
    if len(preds) == 0:
        raise AudioLLMError("nothing to score: no predictions")


def _ref_lists(refs: Refs) -> list[list[str]]:
    """Each reference as a non-empty list of normalised strings."""
    out = []
    for r in refs:
        rs = [r] if isinstance(r, str) else list(r)
        if not rs:
            raise AudioLLMError("an example has an empty list of references")
        out.append([normalize_text(x) for x in rs])
    return out


def exact_match(preds: Sequence[str], refs: Refs) -> float:
    """Fraction of predictions equal to (any of) their reference(s) after normalisation."""
    check_pairs(preds, refs)
    ref_lists = _ref_lists(refs)
    hits = sum(normalize_text(p) in rs for p, rs in zip(preds, ref_lists))
    return hits / len(preds)


def accuracy(preds: Sequence[str], refs: Sequence[str]) -> float:
    """Classification accuracy: fraction of predicted labels equal to the reference label
    after normalisation (so "Piano." and "piano" agree)."""
    check_pairs(preds, refs)
    return sum(normalize_text(p) == normalize_text(r) for p, r in zip(preds, refs)) / len(preds)


def wer_cer(preds: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Corpus-level word and character error rates (jiwer), after normalisation.

    Corpus-level means total edits over total reference words (characters), not a mean
    of per-sentence rates. An empty reference contributes its prediction's length as
    insertions and nothing to the denominator (older jiwer versions refuse empty references,
    so those rows are counted here). If every reference is empty the rate is the number of
    inserted units (0.0 when the predictions are empty too).
    """
    import jiwer

    check_pairs(preds, refs)
    hyps = [normalize_text(p) for p in preds]
    refs_n = [normalize_text(r) for r in refs]
    keep = [i for i, r in enumerate(refs_n) if r]
    empty_ref_words = sum(len(hyps[i].split()) for i in range(len(refs_n)) if not refs_n[i])
    empty_ref_chars = sum(len(hyps[i]) for i in range(len(refs_n)) if not refs_n[i])

    words_err, words_ref = empty_ref_words, 0
    chars_err, chars_ref = empty_ref_chars, 0
    if keep:
        r = [refs_n[i] for i in keep]
        h = [hyps[i] for i in keep]
        w = jiwer.process_words(r, h)
        words_err += w.substitutions + w.deletions + w.insertions
        words_ref += w.substitutions + w.deletions + w.hits
        c = jiwer.process_characters(r, h)
        chars_err += c.substitutions + c.deletions + c.insertions
        chars_ref += c.substitutions + c.deletions + c.hits
    return {
        "wer": words_err / max(words_ref, 1),
        "cer": chars_err / max(chars_ref, 1),
    }


def bleu(preds: Sequence[str], refs: Refs) -> float:
    """Corpus BLEU (sacrebleu, 13a tokenisation) on normalised text, scaled to 0–1.

    Uses sacrebleu's ``effective_order``: n-gram orders that no prediction is long enough to
    have are left out of the geometric mean, so a corpus of 1–3 word answers is not scored 0
    for lacking 4-grams. For ordinary corpora this equals standard corpus BLEU.
    """
    from sacrebleu.metrics import BLEU

    check_pairs(preds, refs)
    ref_lists = _ref_lists(refs)
    n_streams = max(len(rs) for rs in ref_lists)
    # sacrebleu wants one stream per reference slot; None fills slots a row does not have.
    streams = [[rs[k] if k < len(rs) else None for rs in ref_lists] for k in range(n_streams)]
    hyps = [normalize_text(p) for p in preds]
    return BLEU(effective_order=True).corpus_score(hyps, streams).score / 100.0


def rouge_l(preds: Sequence[str], refs: Refs) -> float:
    """Mean ROUGE-L F-measure (rouge-score, Porter stemmer); with several references the
    best-matching one counts, as in ``RougeScorer.score_multi``."""
    from rouge_score import rouge_scorer

    check_pairs(preds, refs)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    ref_lists = _ref_lists(refs)
    total = 0.0
    for p, rs in zip(preds, ref_lists):
        total += scorer.score_multi(rs, normalize_text(p))["rougeL"].fmeasure
    return total / len(preds)


class WordNetMissingError(AudioLLMError):
    """NLTK cannot find WordNet, which METEOR needs for synonym matching."""


def meteor(preds: Sequence[str], refs: Refs) -> float:
    """Mean METEOR (nltk ``meteor_score``: exact, Porter-stem and WordNet-synonym matches),
    on normalised text split on whitespace; with several references the best one counts.

    Needs WordNet: raises :class:`WordNetMissingError` pointing at
    ``python -m audiollm.metrics.wordnet`` when NLTK cannot find it.
    """
    from nltk.translate.meteor_score import meteor_score

    check_pairs(preds, refs)
    ref_lists = _ref_lists(refs)
    total = 0.0
    try:
        for p, rs in zip(preds, ref_lists):
            total += meteor_score([r.split() for r in rs], normalize_text(p).split())
    except LookupError:
        raise WordNetMissingError(
            "METEOR needs NLTK's WordNet: run `python -m audiollm.metrics.wordnet`"
        ) from None
    return total / len(preds)


def text_similarity(preds: Sequence[str], refs: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """The free-text trio used for captions and answers: BLEU, ROUGE-L and METEOR."""
    return {"bleu": bleu(preds, refs), "rouge_l": rouge_l(preds, refs), "meteor": meteor(preds, refs)}


def nltk_sentence_bleu(candidate: str, reference: str, weights: Sequence[float] = (0.25, 0.25, 0.25, 0.25)) -> float:
    """nltk ``sentence_bleu([reference], candidate)`` on the **raw strings**, as MU-LLaMA's
    evaluation calls it. Iterating a Python string yields characters, so this is BLEU over
    character n-grams (1–4 characters with the default weights), not words; no smoothing,
    so a pair that shares no character 4-gram scores ~0 (nltk warns; silenced here)."""
    from nltk.translate.bleu_score import sentence_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sentence_bleu([reference], candidate, weights=tuple(weights)))


def meteor_wordpunct(candidate: str, reference: str) -> float:
    """nltk METEOR of one pair, both split with nltk ``wordpunct_tokenize`` (no lowercasing:
    nltk's METEOR lowercases by itself)."""
    from nltk.tokenize import wordpunct_tokenize
    from nltk.translate.meteor_score import meteor_score

    try:
        return float(meteor_score([wordpunct_tokenize(reference)], wordpunct_tokenize(candidate)))
    except LookupError:
        raise WordNetMissingError("METEOR needs NLTK's WordNet: run `python -m audiollm.metrics.wordnet`") from None


def rouge_l_recall(candidate: str, reference: str) -> float:
    """rouge-score ROUGE-L **recall** (LCS / reference length) with the Porter stemmer, on the
    raw strings (rouge-score lowercases and drops non-alphanumerics itself)."""
    from rouge_score import rouge_scorer

    return float(rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, candidate)["rougeL"].recall)


def rouge_l_coco(candidate: Sequence[str], references: Sequence[Sequence[str]], beta: float = 1.2) -> float:
    """ROUGE-L as the COCO caption evaluation computes it for one candidate: LCS precision
    and recall against each reference (rouge-score on pre-tokenised text), the **maximum**
    precision and maximum recall over references, then F_β with β = 1.2."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    # rouge-score tokenises strings itself; pass tokens joined by spaces (already clean).
    cand = " ".join(candidate)
    scores = [scorer.score(" ".join(r), cand)["rougeL"] for r in references]
    p = max(s.precision for s in scores)
    r = max(s.recall for s in scores)
    if p == 0.0 or r == 0.0:
        return 0.0
    return (1 + beta**2) * p * r / (r + beta**2 * p)


def corpus_bleu_tokens(candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]],
                       max_n: int = 4) -> float:
    """nltk ``corpus_bleu`` over token lists with uniform weights up to ``max_n`` (BLEU-1 with
    max_n=1, BLEU-4 with 4): clipped counts summed over the corpus, brevity penalty from the
    closest reference lengths, no smoothing (0 when some order has no match)."""
    from nltk.translate.bleu_score import corpus_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(corpus_bleu([list(map(list, rs)) for rs in references], [list(c) for c in candidates],
                                 weights=tuple([1.0 / max_n] * max_n)))

