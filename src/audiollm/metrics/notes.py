"""Note metrics: mir_eval transcription scores, whether notes survive a MIDI round trip, and
how well generated pieces follow a request (instrument, tempo, key).
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

from audiollm.errors import AudioLLMError
from audiollm.metrics.text import check_pairs
from audiollm.music.analysis import analyse_key, estimate_tempo, tempo_fits
from audiollm.music.quiet_import import quiet_import


def _note_arrays(notes: Sequence) -> tuple:
    """Notes (anything with pitch/start/end/velocity) → mir_eval's intervals, Hz and velocities."""
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
    check_pairs(est_pieces, ref_pieces)
    if any(len(r) == 0 for r in ref_pieces):
        raise AudioLLMError("a reference piece has no notes: note scores are undefined for it")
    per_piece = [note_scores(r, e) for r, e in zip(ref_pieces, est_pieces)]
    return {k: sum(d[k] for d in per_piece) / len(per_piece) for k in per_piece[0]}


def midi_round_trip(notes: Sequence) -> bool:
    """True when the notes make a MIDI file that pretty_midi writes and reads back with the
    same number of notes (and there is at least one)."""
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
    """How well generated pieces follow their requests (:class:`audiollm.music.prompt.MusicRequest`).

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
    check_pairs(pieces, requests)
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

