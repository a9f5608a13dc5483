"""Tempo fitting: generated notes played at the requested tempo, only their time axis moved."""

from __future__ import annotations

import json
import math

import pytest

from audiollm.music.analysis import estimate_tempo, tempo_fits
from audiollm.music.notes import Note
from audiollm.music.prompt import MusicRequest, parse_request
from audiollm.music.tempo_fit import MAX_STRETCH, candidate_factors, fit_tempo, stretch
from audiollm.tasks import get_task
from audiollm.tasks.transcription import notes_to_json

SCALE = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60, 67]


def quarters(bpm: float, seconds: float = 4.0) -> list[Note]:
    """Quarter notes of a C major scale at ``bpm`` (accented downbeats), as many as fit."""
    beat = 60.0 / bpm
    count = int(seconds / beat)
    return [Note(SCALE[i % len(SCALE)], i * beat, (i + 0.9) * beat, 100 if i % 2 == 0 else 70, 40)
            for i in range(count)]


@pytest.mark.parametrize("bpm,asked", [(120.0, 90.0), (120.0, 150.0), (96.0, 66.0)])
def test_bpm_request_moves_the_measured_tempo_there(bpm, asked):
    notes = quarters(bpm)
    request = parse_request(f"a cello at {asked:.0f} bpm")
    assert not tempo_fits(estimate_tempo(notes), request)
    fit = fit_tempo(notes, request, 4.0)
    assert fit.fits and tempo_fits(estimate_tempo(fit.notes), request)
    assert fit.after == estimate_tempo(fit.notes) and fit.before == estimate_tempo(notes)
    assert 1 / MAX_STRETCH <= fit.factor <= MAX_STRETCH and fit.factor != 1.0
    # only the time axis moved: same pitches, velocities and programs in the same order, times scaled
    assert len(fit.notes) <= len(notes)
    for old, new in zip(notes, fit.notes):
        assert (new.pitch, new.velocity, new.program) == (old.pitch, old.velocity, old.program)
        assert new.start == pytest.approx(old.start * fit.factor)
        assert new.end == pytest.approx(min(old.end * fit.factor, 4.0))
    assert all(n.start < 4.0 and n.end <= 4.0 for n in fit.notes)


def test_slowing_down_cuts_the_notes_at_the_piece_end():
    notes = quarters(120.0)  # 8 onsets in 4 s
    out = stretch(notes, 1.5, 4.0)
    assert [n.start for n in out] == pytest.approx([i * 0.75 for i in range(6)])  # 4.5 s and later dropped
    assert out[-1].end == pytest.approx(4.0)  # 3.75 + 0.675 cut at the end


@pytest.mark.parametrize("word,lo,hi", [("slow", 50, 79), ("fast", 121, 190)])
def test_tempo_word_moves_the_estimate_into_its_range(word, lo, hi):
    notes = quarters(100.0)
    fit = fit_tempo(notes, parse_request(f"a {word} piece for oboe"), 4.0)
    assert lo <= estimate_tempo(fit.notes) <= hi and fit.factor != 1.0


def test_nothing_to_fit_leaves_the_notes_alone():
    notes = quarters(120.0)
    for request in (parse_request("a cello in D minor"), parse_request("a cello at 120 bpm"),
                    parse_request("a cello at 60 bpm"),  # 120 is 60's double: the same tempo
                    parse_request("a medium-tempo cello")):
        fit = fit_tempo(notes, request, 4.0)
        assert fit.notes == notes and fit.factor == 1.0 and fit.fits
    lone = [Note(60, 0.5, 1.0), Note(64, 0.5, 1.0)]  # one onset: no tempo to measure
    fit = fit_tempo(lone, parse_request("a cello at 90 bpm"), 4.0)
    assert fit.notes == lone and fit.before is None and not fit.fits
    fit = fit_tempo(notes, parse_request("a cello at 10 bpm"), 4.0)  # no level within ×2 reaches it
    assert fit.notes == notes and fit.factor == 1.0 and not fit.fits


def test_candidates_put_the_exact_levels_first_and_stay_within_the_limit():
    request = MusicRequest(bpm=70.0)
    factors = candidate_factors(150.0, request)
    assert factors[0] == pytest.approx(150 / 140)  # 2 × 70 is the level nearest 150
    assert 150 / 70 not in factors  # a stretch beyond MAX_STRETCH is never tried
    assert all(abs(math.log(f)) <= math.log(MAX_STRETCH) + 1e-9 for f in factors)
    assert not any(f == pytest.approx(150 / 210) for f in factors)  # 3 × 70 is beyond the estimator's 200 bpm
    assert factors[1:3] == pytest.approx([2 ** (1 / 12), 2 ** (-1 / 12)])  # then the smallest steps
    assert candidate_factors(100.0, MusicRequest(bpm=60.0))[:2] == pytest.approx([100 / 120, 100 / 60])


def test_task_scores_the_fitted_tempo_beside_the_models_own():
    task = get_task("text_to_midi")
    notes = quarters(120.0)
    rows = [{"task": "text_to_midi", "question": "a cello at 90 bpm", "notes": [[0, 4, 60, 80]], "duration": 4.0},
            {"task": "text_to_midi", "question": "a slow cello", "notes": [[0, 4, 60, 80]], "duration": 4.0}]
    scores = task.score([notes_to_json(notes)] * 2, rows)
    assert scores["tempo_adherence"] == 0.0 and scores["tempo_adherence_fitted"] == 1.0
    assert scores["tempo_bpm_adherence_fitted"] == 1.0 and scores["tempo_class_adherence_fitted"] == 1.0
    assert json.loads(notes_to_json(notes))  # the predictions themselves are not changed
