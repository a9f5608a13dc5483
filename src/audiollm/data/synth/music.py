"""Music clips: excerpts of music21 corpus scores rendered through a General MIDI soundfont.

One clip = one score excerpt × one set of render settings (instrument, tempo, transposition,
velocity, number of voices). Every label is known exactly because we choose the settings and
read the notes from the score: family/program/instrument, tempo, key, voices, composer, and
the note list itself (for transcription).

Speed matters (the whole demo fits in minutes on 2 cores), so:

* a worker parses one piece once and cuts several excerpts from it, each with its own settings;
* notes go straight from the parsed score to FluidSynth (no MIDI file round trip), rendered
  directly at 16 kHz with reverb and chorus off so clips are clean and cut exactly;
* the 140 MB soundfont is loaded once per process: an "anchor" synth keeps it in FluidSynth's
  sample cache, so the fresh synth each job gets loads it in ~30 ms.

Determinism: a FluidSynth voice keeps a little state after it is killed, so reusing one synth
across an unknown sequence of jobs would make audio depend on scheduling. Each job therefore
gets a fresh synth and renders its clips in a fixed order, and note events are quantised to
FluidSynth's 64-sample block so they land exactly where the labels say.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiollm.audio import SAMPLE_RATE, save_audio
from audiollm.data.synth.templates import TRADITIONAL
from audiollm.errors import AudioLLMError
from audiollm.music.analysis import key_of
from audiollm.music.render import BLOCK, Renderer
from audiollm.music.theory import (
    BY_PROGRAM,
    FAMILIES,
    INSTRUMENTS,
    TEMPO_CLASSES,
    TEMPO_RANGES,
    key_name,
    octave_for,
    tempo_class,
)

# --------------------------------------------------------------------------- instruments


# A bass plays one line (two at most); more voices would be mud, not a bass part.
MAX_VOICES: dict[str, int] = {"bass": 2}

# --------------------------------------------------------------------------- pieces


@dataclass(frozen=True)
class Source:
    """A music21 corpus collection we draw pieces from."""

    name: str               # music21.corpus.getComposer() key
    composer: str           # the composer label
    weight: float           # share of pieces drawn from it
    suffixes: tuple[str, ...]


# Collections whose parts are single melodic lines (so "voices" = parts) and that parse fast.
# Beethoven's quartets are left out: 5-12 s to parse each. Ryan's Mammoth Collection (1883)
# holds traditional fiddle tunes; tunes whose encoding names a composer are skipped.
SOURCES: tuple[Source, ...] = (
    Source("bach", "Bach", 0.36, (".mxl",)),
    Source("palestrina", "Palestrina", 0.16, (".krn",)),
    Source("monteverdi", "Monteverdi", 0.10, (".mxl",)),
    Source("haydn", "Haydn", 0.04, (".mxl",)),
    Source("mozart", "Mozart", 0.04, (".mxl",)),
    Source("ryansMammoth", TRADITIONAL, 0.30, (".abc",)),
)
SOURCE_BY_NAME: dict[str, Source] = {s.name: s for s in SOURCES}


def list_pieces() -> dict[str, list[str]]:
    """Corpus paths (relative to music21's corpus folder) per source, sorted, so the same
    music21 install always yields the same list. Duplicated encodings ("_old") are dropped."""
    from music21 import common, corpus

    root = Path(common.getCorpusFilePath()).resolve()
    out: dict[str, list[str]] = {}
    for source in SOURCES:
        paths = []
        for p in corpus.getComposer(source.name):
            rel = Path(p).resolve().relative_to(root).as_posix()
            if rel.endswith(source.suffixes) and "_old" not in rel:
                paths.append(rel)
        out[source.name] = sorted(set(paths))
    if not any(out.values()):
        raise AudioLLMError(f"music21 corpus at {root} has no scores (is music21 installed completely?)")
    return out


def source_of(piece: str) -> Source:
    """The `Source` a corpus path belongs to (its first folder)."""
    return SOURCE_BY_NAME[piece.split("/", 1)[0]]


# --------------------------------------------------------------------------- render settings


@dataclass(frozen=True)
class MusicSpec:
    """Everything chosen for one clip before its score is parsed."""

    clip_id: str
    split: str
    audio: str              # path relative to the corpus folder
    program: int
    tempo_bpm: int
    shift: int              # pitch-class transposition, -5..5 (an octave may be added later)
    velocity: int
    voices_u: float         # in [0, 1): picks how many of the score's parts are played
    gain: float             # peak level after normalisation
    seed: int               # excerpt choice and per-note velocity jitter


def sample_settings(rng: random.Random) -> dict[str, Any]:
    """Random render settings: an instrument (family uniform, then program), a tempo (class
    uniform, then bpm — uniform bpm would make most clips fast), a transposition, velocity,
    voice fraction and output gain."""
    family = rng.choice(FAMILIES)
    program = rng.choice([i.program for i in INSTRUMENTS if i.family == family])
    lo, hi = TEMPO_RANGES[rng.choice(TEMPO_CLASSES)]
    return {
        "program": program,
        "tempo_bpm": rng.randint(lo, hi),
        "shift": rng.randint(-5, 5),
        "velocity": rng.randint(55, 115),
        "voices_u": rng.random(),
        "gain": round(rng.uniform(0.3, 0.9), 3),
        "seed": rng.randrange(2**31),
    }


# --------------------------------------------------------------------------- score → notes


@dataclass
class Piece:
    """A parsed score reduced to what rendering needs."""

    path: str
    parts: list[np.ndarray]                  # per part: (N, 3) onset_ql, offset_ql, midi
    meters: list[tuple[float, float, str]]   # (offset_ql, beat_ql, "3/4"), sorted
    has_composer: bool
    end_ql: float


def load_piece(path: str) -> Piece | None:
    """Parse a corpus path into per-part note arrays (ties merged, grace notes and chord
    symbols dropped); None when it has no pitched notes."""
    from music21 import common, converter, harmony, stream

    full = Path(common.getCorpusFilePath()) / path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # music21 warns about overfull measures etc.
        # No pickle cache: writing it (freeze, zip, re-thaw) costs more than the parse itself,
        # and a cache would make the first and later builds take different paths.
        score = converter.parse(full, forceSource=True, storePickle=False)
    if isinstance(score, stream.Opus):
        if not score.scores:
            return None
        score = score.scores[0]
    parts: list[np.ndarray] = []
    for part in score.parts:
        events: list[list[float]] = []
        open_ties: dict[int, int] = {}   # midi → index of the event a tie continues
        for n in part.flatten().notes:
            if isinstance(n, harmony.Harmony) or n.duration.isGrace or n.quarterLength <= 0:
                continue
            on = float(n.offset)
            off = on + float(n.quarterLength)
            for p in n.pitches:
                tie = (n.tie.type if n.tie is not None else None)
                idx = open_ties.get(p.midi)
                if tie in ("stop", "continue") and idx is not None and abs(events[idx][1] - on) < 1e-6:
                    events[idx][1] = off
                else:
                    idx = len(events)
                    events.append([on, off, float(p.midi)])
                if tie in ("start", "continue"):
                    open_ties[p.midi] = idx
                else:
                    open_ties.pop(p.midi, None)
        if events:
            parts.append(np.array(sorted(events), dtype=np.float64))
    if not parts:
        return None
    meters = []
    for ts in score.parts[0].flatten().getElementsByClass("TimeSignature"):
        # The notated beat, kept between a quarter and a half note: a whole-note beat (3/1)
        # or an eighth-note beat would put the bpm label far from what a listener counts.
        beat = min(max(float(ts.beatDuration.quarterLength), 1.0), 2.0)
        meters.append((float(ts.offset), beat, ts.ratioString))
    if not meters or meters[0][0] > 0:
        meters.insert(0, (0.0, 1.0, meters[0][2] if meters else "4/4"))
    md = score.metadata
    return Piece(path=path, parts=parts, meters=sorted(meters), has_composer=bool(md and md.composer),
                 end_ql=max(float(p[:, 1].max()) for p in parts))


def _meter_at(piece: Piece, offset: float) -> tuple[float, str]:
    beat, ratio = piece.meters[0][1], piece.meters[0][2]
    for off, b, r in piece.meters:
        if off <= offset + 1e-9:
            beat, ratio = b, r
    return beat, ratio


def _window(part: np.ndarray, start: float, end: float) -> np.ndarray:
    """Notes of one part that sound inside [start, end), clipped to it."""
    keep = (part[:, 1] > start + 1e-9) & (part[:, 0] < end - 1e-9)
    w = part[keep].copy()
    w[:, 0] = np.maximum(w[:, 0], start)
    w[:, 1] = np.minimum(w[:, 1], end)
    return w


def _coverage(notes: np.ndarray, start: float, end: float) -> float:
    """Fraction of [start, end) during which at least one note sounds."""
    if len(notes) == 0:
        return 0.0
    covered, cur_on, cur_off = 0.0, None, None
    for on, off in sorted(notes[:, :2].tolist()):
        if cur_off is None or on > cur_off:
            if cur_off is not None:
                covered += cur_off - cur_on
            cur_on, cur_off = on, off
        else:
            cur_off = max(cur_off, off)
    covered += cur_off - cur_on
    return covered / (end - start)


def _monophonic(notes: np.ndarray) -> bool:
    order = np.argsort(notes[:, 0], kind="stable")
    on, off = notes[order, 0], notes[order, 1]
    return bool(np.all(on[1:] >= off[:-1] - 1e-6))


@dataclass
class Excerpt:
    start_ql: float
    seconds_per_ql: float
    meter: str
    parts: list[int]                 # indices of the parts that play
    notes: list[np.ndarray]          # per played part: window notes (ql, relative to start)
    all_notes: np.ndarray            # every part's window notes (for the key)


def choose_excerpt(piece: Piece, bpm: int, voices_u: float, max_voices: int, clip_seconds: float,
                   rng: random.Random, tries: int = 40) -> Excerpt | None:
    """A window of ``clip_seconds`` at ``bpm`` where each chosen part stays a single line and
    sounds for at least 30% of the clip (so "voices" is what you hear), and some note sounds
    for at least 90% of it. Windows start on note onsets. None if the piece has none."""
    n_parts = min(len(piece.parts), max_voices)
    k = 1 + int(voices_u * n_parts)
    chosen = sorted(rng.sample(range(len(piece.parts)), k))
    starts = np.unique(np.concatenate([piece.parts[i][:, 0] for i in chosen])).tolist()
    rng.shuffle(starts)
    for start in starts[:tries]:
        beat, meter = _meter_at(piece, start)
        sec_per_ql = 60.0 / (bpm * beat)
        end = start + clip_seconds / sec_per_ql
        if end > piece.end_ql + 1e-9:
            continue
        windows = [_window(piece.parts[i], start, end) for i in chosen]
        if any(len(w) == 0 or not _monophonic(w) or _coverage(w, start, end) < 0.3 for w in windows):
            continue
        if _coverage(np.concatenate(windows), start, end) < 0.9:
            continue
        everything = np.concatenate([_window(p, start, end) for p in piece.parts])
        rel = [w - np.array([start, start, 0.0]) for w in windows]
        everything = everything - np.array([start, start, 0.0])
        return Excerpt(start, sec_per_ql, meter, chosen, rel, everything)
    return None


# --------------------------------------------------------------------------- key


# --------------------------------------------------------------------------- synthesis


# --------------------------------------------------------------------------- one job


@dataclass(frozen=True)
class MusicJob:
    """Clips cut from one piece (with fall-back pieces of the same split, tried in order)."""

    candidates: tuple[str, ...]
    specs: tuple[MusicSpec, ...]


def render_clip(piece: Piece, spec: MusicSpec, renderer: Renderer, clip_seconds: float,
                out_dir: Path) -> dict[str, Any] | None:
    """Render one clip of ``piece`` with ``spec``'s settings; write its WAV and return its
    labels, or None when the piece has no suitable excerpt for these settings."""
    inst = BY_PROGRAM[spec.program]
    rng = random.Random(spec.seed)
    ex = choose_excerpt(piece, spec.tempo_bpm, spec.voices_u, MAX_VOICES.get(inst.family, 99),
                        clip_seconds, rng)
    if ex is None:
        return None
    played = np.concatenate(ex.notes)
    transpose = spec.shift + octave_for(played[:, 2] + spec.shift, inst)
    n_samples = int(round(clip_seconds * SAMPLE_RATE))
    notes: list[tuple[int, int, int, int, int]] = []
    for voice, part_notes in enumerate(ex.notes):
        ch = voice if voice < 9 else voice + 1   # channel 9 is the GM drum kit
        for on, off, midi in part_notes.tolist():
            start = int(round(on * ex.seconds_per_ql * SAMPLE_RATE / BLOCK)) * BLOCK
            end = min(int(round(off * ex.seconds_per_ql * SAMPLE_RATE / BLOCK)) * BLOCK, n_samples)
            if end <= start or start >= n_samples:
                continue
            vel = min(127, max(1, spec.velocity + rng.randint(-8, 8)))
            notes.append((ch, start, end, min(127, max(0, int(midi) + transpose)), vel))
    if not notes:
        return None
    wav = renderer.render(notes, spec.program, n_samples)
    peak = float(np.abs(wav).max())
    if peak < 1e-4:
        return None
    save_audio(out_dir / spec.audio, wav * (spec.gain / peak))
    tonic, mode = key_of(ex.all_notes)
    tonic = (tonic + transpose) % 12
    source = source_of(piece.path)
    return {
        "family": inst.family,
        "program": inst.program,
        "instrument": inst.gm_name,
        "tempo_bpm": spec.tempo_bpm,
        "tempo_class": tempo_class(spec.tempo_bpm),
        "key": key_name(tonic, mode),
        "tonic": key_name(tonic, mode).split()[0],
        "mode": mode,
        "composer": source.composer,
        "piece": piece.path,
        "meter": ex.meter,
        "excerpt_start_ql": round(ex.start_ql, 4),
        "voices": len(ex.notes),
        "transpose": transpose,
        "velocity": spec.velocity,
        "duration": round(n_samples / SAMPLE_RATE, 4),
        "notes": [[round(s / SAMPLE_RATE, 4), round(e / SAMPLE_RATE, 4), p, v]
                  for _, s, e, p, v in sorted(notes, key=lambda n: (n[1], n[3], n[0]))],
    }


def render_job(job: MusicJob, soundfont: Path, clip_seconds: float, out_dir: Path) -> list[dict[str, Any]]:
    """Render every clip of ``job``; each spec uses the first candidate piece that has a
    suitable excerpt. Returns labels in spec order (each with its spec's ``clip_id``)."""
    renderer = Renderer(soundfont)
    parsed: dict[str, Piece | None] = {}
    results = []
    try:
        for spec in job.specs:
            labels = None
            for path in job.candidates:
                if path not in parsed:
                    piece = load_piece(path)
                    # A tune whose encoding names a composer is not "traditional".
                    if piece is not None and source_of(path).composer == TRADITIONAL and piece.has_composer:
                        piece = None
                    parsed[path] = piece
                if parsed[path] is not None:
                    labels = render_clip(parsed[path], spec, renderer, clip_seconds, out_dir)
                    if labels is not None:
                        break
            if labels is None:
                raise RuntimeError(f"no candidate piece could render clip {spec.clip_id}: {job.candidates}")
            results.append({"clip_id": spec.clip_id, **labels})
    finally:
        renderer.close()
    return results
