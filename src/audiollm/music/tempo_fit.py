"""Tempo fitting: play generated notes at the tempo the text asks for.

A piece of MIDI notes has no tempo of its own until it is played: a sequencer plays the same
notes at any rate. A text-to-MIDI model learns tempo late (a number in the caption has to become
note spacing), so after sampling, :func:`fit_tempo` can choose the rate: it scales every note
time by one factor so that the notes' beat rate, measured with the estimator adherence is scored
with (:func:`audiollm.music.analysis.estimate_tempo`), is the one the text asks for
(:func:`audiollm.music.analysis.tempo_fits`: the bpm at one of its metrical levels, or inside a tempo
word's range).

Which factor: the estimator's metrical level can jump when notes move apart (a slowed-down
piece's eighth notes become its beat), so a factor is *tried*: the notes are scaled and measured
again. The factors tried, each at most :data:`MAX_STRETCH` either way:

1. the ones that would put the current estimate exactly on the request: every metrical level of
   a bpm inside the estimator's search range; for a tempo word, the nearest point of its range
   narrowed by :data:`RANGE_MARGIN` on each side, then the range's centre;
2. then steps of :data:`STEP` (a semitone's ratio, ~6 %) out to the limit.

Within each group the smallest change goes first; the first factor whose measured tempo fits is
kept. When none fits, the notes come back unchanged.

Pitches, velocities, programs and the order of events never change: only the time axis moves.
Slowing down pushes the last notes past ``seconds``; they are cut there (a note starting at or
after it is dropped, one sounding across it ends there). Speeding up leaves the piece shorter
than ``seconds``. A piece with fewer than two onsets, or a request with no tempo, comes back as
it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from audiollm.music.analysis import (
    TEMPO_FACTORS,
    TEMPO_SEARCH_BPM,
    estimate_tempo,
    tempo_fits,
)
from audiollm.music.notes import Note
from audiollm.music.prompt import MusicRequest
from audiollm.music.theory import TEMPO_RANGES

MAX_STRETCH = 2.0  # note times are scaled by at most this factor, or at least its inverse
STEP = 2 ** (1 / 12)  # the ratio between tried factors after the exact ones
RANGE_MARGIN = 0.1  # a tempo word's target range, narrowed by this share of its bounds on each side


@dataclass(frozen=True)
class TempoFit:
    """What :func:`fit_tempo` did: the notes, the time factor (1.0: untouched), the tempo
    estimates before and after (None: fewer than two onsets, or no tempo requested), and
    whether the notes now have the requested tempo (True when none was requested)."""

    notes: list[Note]
    factor: float
    before: float | None
    after: float | None
    fits: bool


def exact_factors(estimate: float, request: MusicRequest) -> list[float]:
    """Time factors that would move ``estimate`` onto the request at the same metrical level."""
    lo, hi, _ = TEMPO_SEARCH_BPM
    if request.bpm is not None:
        targets = [f * request.bpm for f in TEMPO_FACTORS if lo <= f * request.bpm <= hi]
    else:
        r_lo, r_hi = TEMPO_RANGES[request.tempo_class]
        nearest = min(max(estimate, r_lo * (1 + RANGE_MARGIN)), r_hi * (1 - RANGE_MARGIN))
        targets = [nearest, math.sqrt(r_lo * r_hi)]
    return sorted({estimate / t for t in targets}, key=lambda f: abs(math.log(f)))


def candidate_factors(estimate: float, request: MusicRequest) -> list[float]:
    """The factors :func:`fit_tempo` tries, in order (see the module docstring)."""
    limit = math.log(MAX_STRETCH) + 1e-9
    steps = [STEP ** (sign * k) for k in range(1, round(math.log(MAX_STRETCH, STEP)) + 1) for sign in (1, -1)]
    return [f for f in exact_factors(estimate, request) + steps if abs(math.log(f)) <= limit]


def stretch(notes: Sequence[Note], factor: float, seconds: float) -> list[Note]:
    """Every time × ``factor``, then cut at ``seconds`` (notes starting there or later dropped)."""
    out = []
    for n in notes:
        start = n.start * factor
        if start < seconds:
            out.append(replace(n, start=start, end=min(n.end * factor, seconds)))
    return out


def fit_tempo(notes: Sequence[Note], request: MusicRequest, seconds: float) -> TempoFit:
    """``notes`` rescaled in time so their measured tempo is the one ``request`` asks for (see
    the module docstring; :func:`audiollm.music.prompt.parse_request` reads a text's request)."""
    notes = list(notes)
    if request.bpm is None and request.tempo_class is None:
        return TempoFit(notes, 1.0, None, None, True)
    before = estimate_tempo(notes)
    if tempo_fits(before, request):
        return TempoFit(notes, 1.0, before, before, True)
    for factor in candidate_factors(before, request) if before is not None else ():
        scaled = stretch(notes, factor, seconds)
        after = estimate_tempo(scaled)
        if tempo_fits(after, request):
            return TempoFit(scaled, factor, before, after, True)
    return TempoFit(notes, 1.0, before, before, False)
