"""What notes alone say about a piece: its tempo (a beat-grid fit to the onsets) and its key
(Krumhansl-Schmuckler with music21's Aarden-Essen profiles). Used by the corpus (key labels),
text-to-MIDI scoring and tempo fitting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from audiollm.music.theory import TEMPO_RANGES

TEMPO_TOLERANCE = 0.08  # relative, as mir_eval.tempo's default


TEMPO_FACTORS = (1.0, 2.0, 0.5, 3.0, 1 / 3)  # metrical levels counted as the same tempo (MIREX "accuracy 2")


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
    """Whether a tempo estimate is what a :class:`audiollm.music.prompt.MusicRequest` asks for:
    :func:`tempo_matches` for a bpm, inside the class's bpm range for a tempo word (True when
    it asks for no tempo)."""
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
    return key_of(np.array([[n.start, n.end, n.pitch] for n in notes], dtype=float))


def key_of(notes: np.ndarray) -> tuple[int, str]:
    """(tonic pitch class, "major"|"minor") of a note array (onset, offset, midi).

    music21's key analysis (Krumhansl–Schmuckler correlation of the duration-weighted
    pitch-class histogram with the Aarden–Essen profiles that ``stream.analyze('key')`` uses),
    computed with numpy on our note arrays: building music21 streams per excerpt cost ~15 ms.
    """
    from music21.analysis.discrete import AardenEssen

    hist = np.zeros(12)
    np.add.at(hist, notes[:, 2].astype(int) % 12, notes[:, 1] - notes[:, 0])
    ae = AardenEssen()
    best: tuple[float, int, str] | None = None
    for mode in ("major", "minor"):
        profile = np.array(ae.getWeights(mode))
        for tonic in range(12):
            r = np.corrcoef(hist, np.roll(profile, tonic))[0, 1]
            r = -1.0 if np.isnan(r) else r
            if best is None or r > best[0]:
                best = (r, tonic, mode)
    assert best is not None
    return best[1], best[2]

