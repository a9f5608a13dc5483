"""Evaluation metrics: short wrappers around the field's libraries.

Every function takes predictions and references as lists of strings (one per example),
normalises both with :func:`normalize_text` and returns a float (or a dict of floats).
All scores are on a **0–1 scale**, including BLEU (sacrebleu's 0–100 score divided by 100),
so one results table reads the same way throughout. WER and CER are error rates (lower is
better, and can exceed 1 when the model inserts words); everything else is higher-is-better.

Libraries: jiwer (WER/CER), sacrebleu (BLEU), rouge-score (ROUGE-L), nltk (METEOR, which
needs WordNet: ``python -m audiollm.metrics_setup`` installs it offline), mir_eval (note
transcription scores, which take note lists instead of strings). Only multi-label
F1 is computed here, because it is a few lines and scikit-learn is not a dependency.

Functions that accept several references per example (``bleu``, ``rouge_l``, ``meteor``,
``exact_match``) take each reference either as a string or as a list of strings.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from audiollm.errors import AudioLLMError
from audiollm.quiet_import import quiet_import

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


def _check(preds: Sequence, refs: Sequence) -> None:
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
    _check(preds, refs)
    ref_lists = _ref_lists(refs)
    hits = sum(normalize_text(p) in rs for p, rs in zip(preds, ref_lists))
    return hits / len(preds)


def accuracy(preds: Sequence[str], refs: Sequence[str]) -> float:
    """Classification accuracy: fraction of predicted labels equal to the reference label
    after normalisation (so "Piano." and "piano" agree)."""
    _check(preds, refs)
    return sum(normalize_text(p) == normalize_text(r) for p, r in zip(preds, refs)) / len(preds)


def multilabel_f1(
    pred_label_sets: Sequence[Iterable[str]], ref_label_sets: Sequence[Iterable[str]]
) -> dict[str, float]:
    """Per-label F1 plus micro and macro averages for multi-label tagging.

    Labels are normalised. The label vocabulary is the set of reference labels; a predicted
    label outside it is a false positive in the micro counts but gets no per-label entry.
    Returns ``{"micro_precision", "micro_recall", "micro_f1", "macro_f1", "f1/<label>"...}``;
    F1 = 2·TP / (2·TP + FP + FN), 0 when undefined.
    """
    _check(pred_label_sets, ref_label_sets)
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


def wer_cer(preds: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Corpus-level word and character error rates (jiwer), after normalisation.

    Corpus-level means total edits over total reference words (characters), not a mean
    of per-sentence rates. An empty reference contributes its prediction's length as
    insertions and nothing to the denominator (older jiwer versions refuse empty references,
    so those rows are counted here). If every reference is empty the rate is the number of
    inserted units (0.0 when the predictions are empty too).
    """
    import jiwer

    _check(preds, refs)
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

    _check(preds, refs)
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

    _check(preds, refs)
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
    ``python -m audiollm.metrics_setup`` when NLTK cannot find it.
    """
    from nltk.translate.meteor_score import meteor_score

    _check(preds, refs)
    ref_lists = _ref_lists(refs)
    total = 0.0
    try:
        for p, rs in zip(preds, ref_lists):
            total += meteor_score([r.split() for r in rs], normalize_text(p).split())
    except LookupError:
        raise WordNetMissingError(
            "METEOR needs NLTK's WordNet: run `python -m audiollm.metrics_setup`"
        ) from None
    return total / len(preds)


def text_similarity(preds: Sequence[str], refs: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """The free-text trio used for captions and answers: BLEU, ROUGE-L and METEOR."""
    return {"bleu": bleu(preds, refs), "rouge_l": rouge_l(preds, refs), "meteor": meteor(preds, refs)}


def _note_arrays(notes: Sequence) -> tuple:
    """Notes (anything with pitch/start/end/velocity) → mir_eval's intervals, Hz and velocities."""
    import numpy as np
    from mir_eval.util import midi_to_hz

    intervals = np.array([[n.start, n.end] for n in notes], dtype=float).reshape(-1, 2)
    pitches = midi_to_hz(np.array([n.pitch for n in notes], dtype=float))
    velocities = np.array([n.velocity for n in notes], dtype=float)
    return intervals, pitches, velocities


def note_scores(ref_notes: Sequence, est_notes: Sequence, onset_tolerance: float = 0.05) -> dict[str, float]:
    """mir_eval note-level scores of one piece (the MAESTRO / Onsets-and-Frames protocol).

    ``note_precision``/``note_recall``/``note_f1``: onset within ``onset_tolerance`` (50 ms)
    and the same pitch; ``note_offset_f1``: also the offset within 20 % of the note's length
    (at least 50 ms); ``note_offset_velocity_f1``: also the velocity within 0.1 after
    mir_eval rescales the estimate's velocities onto the reference's range.
    """
    import warnings

    from mir_eval import transcription, transcription_velocity

    ri, rp, rv = _note_arrays(ref_notes)
    ei, ep, ev = _note_arrays(est_notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns on an empty estimate; it scores 0, as it should
        p, r, f, _ = transcription.precision_recall_f1_overlap(
            ri, rp, ei, ep, onset_tolerance=onset_tolerance, offset_ratio=None)
        _, _, f_off, _ = transcription.precision_recall_f1_overlap(
            ri, rp, ei, ep, onset_tolerance=onset_tolerance, offset_ratio=0.2, offset_min_tolerance=0.05)
        _, _, f_vel, _ = transcription_velocity.precision_recall_f1_overlap(
            ri, rp, rv, ei, ep, ev, onset_tolerance=onset_tolerance, offset_ratio=0.2,
            offset_min_tolerance=0.05, velocity_tolerance=0.1)
    return {"note_precision": float(p), "note_recall": float(r), "note_f1": float(f),
            "note_offset_f1": float(f_off), "note_offset_velocity_f1": float(f_vel)}


def transcription_scores(ref_pieces: Sequence[Sequence], est_pieces: Sequence[Sequence]) -> dict[str, float]:
    """:func:`note_scores` per piece, averaged over pieces (the field's convention)."""
    _check(est_pieces, ref_pieces)
    if any(len(r) == 0 for r in ref_pieces):
        raise AudioLLMError("a reference piece has no notes: note scores are undefined for it")
    per_piece = [note_scores(r, e) for r, e in zip(ref_pieces, est_pieces)]
    return {k: sum(d[k] for d in per_piece) / len(per_piece) for k in per_piece[0]}


# --------------------------------------------------------------------------- text → MIDI adherence

TEMPO_TOLERANCE = 0.08  # relative, as mir_eval.tempo's default
TEMPO_FACTORS = (1.0, 2.0, 0.5, 3.0, 1 / 3)  # metrical levels counted as the same tempo (MIREX "accuracy 2")


def midi_round_trip(notes: Sequence) -> bool:
    """True when the notes make a MIDI file that pretty_midi writes and reads back with the
    same number of notes (and there is at least one)."""
    import io

    pretty_midi = quiet_import("pretty_midi")

    if not notes:
        return False
    try:
        pm = pretty_midi.PrettyMIDI()
        by_prog: dict[int, object] = {}
        for n in notes:
            inst = by_prog.setdefault(n.program, pretty_midi.Instrument(program=n.program))
            inst.notes.append(pretty_midi.Note(velocity=int(n.velocity), pitch=int(n.pitch), start=float(n.start),
                                               end=float(n.end)))
        pm.instruments = list(by_prog.values())
        buf = io.BytesIO()
        pm.write(buf)
        buf.seek(0)
        back = pretty_midi.PrettyMIDI(buf)
    except Exception:  # mido/pretty_midi raise many types for unwritable notes
        return False
    return sum(len(i.notes) for i in back.instruments) == len(notes)


TEMPO_SEARCH_BPM = (40.0, 200.0, 0.5)  # candidate beat rates: lowest, highest, step
TEMPO_ONSET_SIGMA = 0.025  # seconds: how far an onset may sit from a beat and still count (Gaussian width)


def estimate_tempo(notes: Sequence) -> float | None:
    """The beat rate (bpm) whose best-phased beat grid fits the onsets, or None with < 2 onsets.

    Onsets that share a time are one onset of strength = the number of notes struck there (a
    chord marks a beat more than a passing note). For each candidate rate and phase, two
    Gaussian-tolerant matches (``TEMPO_ONSET_SIGMA``) are made: *recall*, the share of onset
    strength that falls on beats, and *precision*, how strongly each beat from the phase to the
    last onset is struck (its nearest onset's strength over the strongest onset's). Their
    harmonic mean is the fit; the best fit over ``TEMPO_SEARCH_BPM`` wins. A finer grid raises
    recall but lowers precision (its extra beats land on weak or no onsets), a coarser one the
    reverse, so the grid of the most strongly and regularly struck level wins. Which metrical
    level that is stays ambiguous from notes alone (a piece at 60 bpm in running eighths is
    the same notes as 120 bpm in quarters); :func:`tempo_matches` forgives that for a bpm.
    """
    import numpy as np

    from collections import Counter

    strength = Counter(round(float(n.start), 3) for n in notes)
    if len(strength) < 2:
        return None
    times = np.array(sorted(strength))
    weight = np.array([strength[t] for t in sorted(strength)], dtype=float)
    times -= times[0]
    lo, hi, step = TEMPO_SEARCH_BPM
    best_fit, best_bpm = -1.0, None
    for bpm in np.arange(lo, hi + step / 2, step):
        period = 60.0 / bpm
        phases = np.linspace(0.0, period, 24, endpoint=False)[:, None]  # (P, 1)
        off_beat = np.abs((times[None, :] - phases + period / 2) % period - period / 2)  # (P, N)
        recall = (np.exp(-((off_beat / TEMPO_ONSET_SIGMA) ** 2)) * weight).sum(1) / weight.sum()
        n_beats = int(np.floor(times[-1] / period)) + 1
        beats = phases + period * np.arange(n_beats)[None, :]  # (P, K)
        valid = beats <= times[-1] + 1e-9
        near = np.exp(-(((beats[:, :, None] - times[None, None, :]) / TEMPO_ONSET_SIGMA) ** 2)) * weight
        precision = (near.max(2) * valid).sum(1) / (np.maximum(valid.sum(1), 1) * weight.max())
        fit = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        if fit.max() > best_fit:
            best_fit, best_bpm = float(fit.max()), float(bpm)
    return best_bpm


def tempo_matches(estimate: float | None, bpm: float) -> bool:
    """Estimate within ``TEMPO_TOLERANCE`` of the requested bpm at one of ``TEMPO_FACTORS``
    (an onset-based estimate cannot tell a beat from its half or double)."""
    return estimate is not None and any(abs(estimate - f * bpm) <= TEMPO_TOLERANCE * f * bpm for f in TEMPO_FACTORS)


def tempo_fits(estimate: float | None, request) -> bool:
    """Whether a tempo estimate is what a :class:`audiollm.music_prompt.MusicRequest` asks for:
    :func:`tempo_matches` for a bpm, inside the class's bpm range for a tempo word (True when
    it asks for no tempo)."""
    from audiollm.data.synth.templates import TEMPO_RANGES

    if request.bpm is not None:
        return tempo_matches(estimate, request.bpm)
    if request.tempo_class is not None:
        lo, hi = TEMPO_RANGES[request.tempo_class]
        return estimate is not None and lo <= estimate <= hi
    return True


def analyse_key(notes: Sequence) -> tuple[int, str]:
    """(tonic pitch class, "major"|"minor") by music21's key analysis (Krumhansl-Schmuckler with
    the Aarden-Essen profiles of ``stream.analyze('key')``), the analysis the corpus's key
    labels come from."""
    import numpy as np

    from audiollm.data.synth.music import key_of

    return key_of(np.array([[n.start, n.end, n.pitch] for n in notes], dtype=float))


def _rates(hits: dict[str, list[bool]]) -> dict[str, float]:
    """``{name}_adherence``: the share of True per attribute, for those with any requests."""
    return {f"{name}_adherence": sum(v) / len(v) for name, v in hits.items() if v}


def tempo_adherence(requests: Sequence, estimates: Sequence[float | None]) -> dict[str, float]:
    """``tempo_adherence``, ``tempo_bpm_adherence`` and ``tempo_class_adherence`` (see
    :func:`attribute_adherence`) of each piece's tempo estimate (None: an invalid piece, or
    fewer than two onsets), over the requests that ask for a tempo."""
    hits: dict[str, list[bool]] = {"tempo_bpm": [], "tempo_class": []}
    for req, est in zip(requests, estimates, strict=True):
        if req.bpm is not None or req.tempo_class is not None:
            hits["tempo_bpm" if req.bpm is not None else "tempo_class"].append(tempo_fits(est, req))
    return _rates({"tempo": hits["tempo_bpm"] + hits["tempo_class"], **hits})


def attribute_adherence(requests: Sequence, pieces: Sequence[Sequence],
                        tempi: Sequence[float | None] | None = None) -> dict[str, float]:
    """How well generated pieces follow their requests (:class:`audiollm.music_prompt.MusicRequest`).

    ``valid_rate``: pieces that survive a MIDI round trip (:func:`midi_round_trip`). Over the
    valid pieces whose request names the attribute: ``instrument_adherence`` (the most common
    program among the notes is the requested one), ``tempo_adherence`` (:func:`tempo_matches`
    for a bpm; the estimate inside the class's bpm range for a tempo word; the two kinds of
    request also apart as ``tempo_bpm_adherence`` and ``tempo_class_adherence`` — a class
    word is judged at the estimate's own metrical level, which notes alone leave ambiguous,
    so expect it lower even for the reference notes),
    ``key_adherence`` (:func:`analyse_key` gives the requested tonic and mode, or the mode when
    only the mode is asked for). An attribute no request names is left out; an invalid piece
    counts as not adhering. ``tempi``: each piece's :func:`estimate_tempo` when the caller has
    it already (estimated here otherwise).
    """
    from collections import Counter

    _check(pieces, requests)
    if not pieces:
        return {}
    valid = [midi_round_trip(p) for p in pieces]
    wants_tempo = [r.bpm is not None or r.tempo_class is not None for r in requests]
    if tempi is None:
        tempi = [estimate_tempo(p) if ok and want else None for p, ok, want in zip(pieces, valid, wants_tempo)]
    instrument: list[bool] = []
    key: list[bool] = []
    for req, notes, ok in zip(requests, pieces, valid):
        if req.program is not None:
            top = Counter(n.program for n in notes).most_common(1)
            instrument.append(ok and top[0][0] == req.program)
        if req.mode is not None:
            if not ok:
                key.append(False)
                continue
            tonic, mode = analyse_key(notes)
            key.append(mode == req.mode and (req.tonic is None or tonic == req.tonic))
    tempo = tempo_adherence(requests, [t if ok else None for t, ok in zip(tempi, valid)])
    return {"valid_rate": sum(valid) / len(valid), **_rates({"instrument": instrument}), **tempo,
            **_rates({"key": key})}


# --------------------------------------------------------------------------- published protocols
# Wrappers that reproduce how particular papers scored, quirks included (audiollm.protocols
# uses them). They do NOT apply normalize_text: the protocols decide their own text handling.


def nltk_sentence_bleu(candidate: str, reference: str, weights: Sequence[float] = (0.25, 0.25, 0.25, 0.25)) -> float:
    """nltk ``sentence_bleu([reference], candidate)`` on the **raw strings**, as MU-LLaMA's
    evaluation calls it. Iterating a Python string yields characters, so this is BLEU over
    character n-grams (1–4 characters with the default weights), not words; no smoothing,
    so a pair that shares no character 4-gram scores ~0 (nltk warns; silenced here)."""
    import warnings

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
        raise WordNetMissingError("METEOR needs NLTK's WordNet: run `python -m audiollm.metrics_setup`") from None


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
    import warnings

    from nltk.translate.bleu_score import corpus_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(corpus_bleu([list(map(list, rs)) for rs in references], [list(c) for c in candidates],
                                 weights=tuple([1.0 / max_n] * max_n)))


def tag_auc(scores, targets) -> dict[str, float]:
    """Macro ROC-AUC and PR-AUC (average precision) over tags, with scikit-learn.

    ``scores`` and ``targets`` are (clips, tags) arrays: a real-valued score and a 0/1
    label per clip and tag. Tags whose column is all 0 or all 1 have no AUC and are left
    out of the averages (``n_tags`` counts the rest). Returns ``roc_auc``, ``pr_auc`` and
    ``n_tags``.
    """
    import numpy as np
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
