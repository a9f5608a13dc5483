"""Build the embedded corpus: plan clips, render them in worker processes, write manifests.

``build_corpus(out, music_clips=1600, speech_clips=1600, seed=0)`` writes::

    out/audio/{train,valid,test}/m00012.wav   music clips (16 kHz mono 16-bit PCM)
    out/audio/{train,valid,test}/s00012.wav   speech clips
    out/{train,valid,test}.jsonl              manifest rows (audio paths relative to out/)
    out/stats.json                            counts, durations, sizes, seed, soundfont
    out/README.md                             what is in it, how it was made, licences

Determinism: every random choice comes from ``random.Random(f"{seed}:...")`` keyed by the
clip, never from shared state, and every worker job is self-contained (its own synth), so
the same seed gives byte-identical manifests and audio for any number of workers.

No leakage: a music piece (corpus path) and a sentence text each belong to exactly one split,
decided by a stable hash of the path/text (`split_of`) — independent of the seed, so every
build holds out the same pieces and sentences.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from audiollm.data.manifest import write_manifest
from audiollm.data.music_events import text_to_midi_row, transcription_row
from audiollm.data.synth import music, speech, templates
from audiollm.errors import AudioLLMError
from audiollm.music.render import find_soundfont
from audiollm.music.theory import BY_PROGRAM

SPLITS: tuple[str, ...] = ("train", "valid", "test")
CLIPS_PER_PIECE = 8        # excerpts cut from one parsed score (parsing is the slow part)
BACKUP_PIECES = 3          # extra pieces a job may fall back on when one has no usable excerpt
SPEECH_BATCH = 25          # speech clips per worker task
MAX_WORDS = 10             # longest sentence we ask for (keeps clips well under 4 s)
_QA_MUSIC_PER_CLIP = (1, 2)
_SPEECH_QA_PROB = 0.5


# --------------------------------------------------------------------------- splits


def split_of(key: str) -> str:
    """The split a piece path or sentence text belongs to: a stable hash → 80/10/10."""
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "train" if bucket < 8 else "valid" if bucket == 8 else "test"


def split_counts(n: int) -> dict[str, int]:
    """``n`` clips as exact 80/10/10 counts (valid and test rounded, train the rest)."""
    valid = test = int(round(n * 0.1))
    return {"train": n - valid - test, "valid": valid, "test": test}


# --------------------------------------------------------------------------- planning


def _take(pools: dict[str, list[str]], cursor: Counter[str], name: str) -> str:
    """The next piece of source ``name`` (cycling when its pool runs out)."""
    pool = pools[name]
    path = pool[cursor[name] % len(pool)]
    cursor[name] += 1
    return path


def plan_music(n: int, seed: int, pieces: dict[str, list[str]] | None = None) -> list[music.MusicJob]:
    """Music jobs: per split, pieces of that split (source drawn by `music.SOURCES` weight),
    up to `CLIPS_PER_PIECE` clips each, every clip with its own random render settings."""
    if n <= 0:
        return []
    pieces = music.list_pieces() if pieces is None else pieces
    plan_rng = random.Random(f"{seed}:music-plan")
    jobs: list[music.MusicJob] = []
    clip_index = 0
    for split, n_split in split_counts(n).items():
        if n_split == 0:
            continue
        pools = {}
        for source in music.SOURCES:
            pool = [p for p in pieces.get(source.name, []) if split_of(f"piece:{p}") == split]
            plan_rng.shuffle(pool)
            if pool:
                pools[source.name] = pool
        if "bach" not in pools:
            raise AudioLLMError(f"music21 corpus has no Bach chorales for the {split} split")
        cursor: Counter[str] = Counter()
        names = sorted(pools)
        weights = [music.SOURCE_BY_NAME[name].weight for name in names]
        n_jobs = math.ceil(n_split / CLIPS_PER_PIECE)
        sizes = [n_split // n_jobs + (1 if j < n_split % n_jobs else 0) for j in range(n_jobs)]
        for size in sizes:
            name = plan_rng.choices(names, weights)[0]
            candidates = [_take(pools, cursor, name) for _ in range(1 + BACKUP_PIECES)]
            candidates.append(_take(pools, cursor, "bach"))  # chorales always have usable excerpts
            specs = []
            for _ in range(size):
                clip_id = f"m{clip_index:05d}"
                settings = music.sample_settings(random.Random(f"{seed}:music:{clip_index}"))
                specs.append(music.MusicSpec(clip_id=clip_id, split=split,
                                             audio=f"audio/{split}/{clip_id}.wav", **settings))
                clip_index += 1
            jobs.append(music.MusicJob(tuple(dict.fromkeys(candidates)), tuple(specs)))
    return jobs


def plan_speech(n: int, seed: int) -> list[speech.SpeechSpec]:
    """Speech specs: per split, sentences whose text hashes to that split, random voices."""
    specs: list[speech.SpeechSpec] = []
    clip_index = 0
    for split, n_split in split_counts(n).items():
        for _ in range(n_split):
            rng = random.Random(f"{seed}:speech:{clip_index}")
            while True:  # ~10 draws for valid/test: sentences are cheap
                text, kind = templates.sentence(rng)
                if len(text.split()) <= MAX_WORDS and split_of(f"text:{text}") == split:
                    break
            clip_id = f"s{clip_index:05d}"
            specs.append(speech.SpeechSpec(clip_id=clip_id, split=split, audio=f"audio/{split}/{clip_id}.wav",
                                           text=text, kind=kind, **speech.sample_voice(rng)))
            clip_index += 1
    return specs


# --------------------------------------------------------------------------- rows


def _row(clip_id: str, task: str, split: str, audio: str, answer: str, labels: dict[str, Any],
         suffix: str, question: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"id": f"{clip_id}-{suffix}", "task": task, "split": split, "audio": audio}
    if question is not None:
        row["question"] = question
    row["answer"] = answer
    row["clip"] = clip_id
    row.update(labels)
    return row


def music_rows(labels: dict[str, Any], split: str, audio: str, seed: int) -> list[dict[str, Any]]:
    """A music clip → one tagging row, one caption row, 1-2 QA rows (distinct types), one
    text_to_midi row (caption → the clip's notes; no audio) and one transcription row (audio →
    the clip's notes)."""
    clip_id = labels["clip_id"]
    lab = {k: v for k, v in labels.items() if k != "clip_id"}
    rng = random.Random(f"{seed}:music-text:{clip_id}")
    text_labels = {**lab, "instrument_phrase": BY_PROGRAM[lab["program"]].phrase}
    rows = [
        _row(clip_id, "tagging", split, audio, lab["family"], lab, "tagging"),
        _row(clip_id, "caption", split, audio, templates.caption(text_labels, rng), lab, "caption"),
    ]
    n_qa = rng.randint(*_QA_MUSIC_PER_CLIP)
    for i, (kind, q, a) in enumerate(templates.qa_pairs(templates.MUSIC_QA, text_labels, rng, n_qa)):
        rows.append(_row(clip_id, "qa", split, audio, a, {**lab, "qa_type": kind}, f"qa{i}", question=q))
    rows.append(text_to_midi_row({**lab, "clip": clip_id, "split": split}, seed))
    rows.append(transcription_row({**lab, "clip": clip_id, "split": split, "audio": audio}, seed))
    return rows


def speech_rows(labels: dict[str, Any], split: str, audio: str, seed: int) -> list[dict[str, Any]]:
    """A speech clip → one ASR row and, half the time, one QA row about the voice or words."""
    clip_id = labels["clip_id"]
    lab = {k: v for k, v in labels.items() if k != "clip_id"}
    rng = random.Random(f"{seed}:speech-text:{clip_id}")
    rows = [_row(clip_id, "asr", split, audio, lab["text"], lab, "asr")]
    if rng.random() < _SPEECH_QA_PROB:
        kind, q, a = templates.qa_pairs(templates.SPEECH_QA, lab, rng, 1)[0]
        rows.append(_row(clip_id, "qa", split, audio, a, {**lab, "qa_type": kind}, "qa0", question=q))
    return rows


# --------------------------------------------------------------------------- workers


def _init_worker() -> None:
    import torch

    # Each worker is one process on one core; intra-op threads would only fight each other.
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")


def _work(task: tuple[str, int, Any, str, float, str]) -> tuple[str, int, list[dict[str, Any]]]:
    kind, index, payload, soundfont, clip_seconds, out_dir = task
    if kind == "music":
        return kind, index, music.render_job(payload, Path(soundfont), clip_seconds, Path(out_dir))
    return kind, index, speech.render_batch(payload, clip_seconds, Path(out_dir))


def _run(tasks: list[tuple], workers: int, progress: bool, total: int) -> dict[tuple[str, int], list[dict]]:
    """Run worker tasks (in-process for ``workers == 1``) with a progress bar over clips."""
    from tqdm.auto import tqdm

    results: dict[tuple[str, int], list[dict]] = {}
    with tqdm(total=total, desc="synth corpus", unit="clip", disable=not progress) as bar:
        if workers <= 1:
            for t in tasks:
                kind, index, out = _work(t)
                results[(kind, index)] = out
                bar.update(len(t[2].specs) if kind == "music" else len(t[2]))
        else:
            # spawn, not fork: the caller may hold torch/OpenMP threads, which fork can deadlock.
            with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                sizes = {(t[0], t[1]): (len(t[2].specs) if t[0] == "music" else len(t[2])) for t in tasks}
                for kind, index, out in pool.imap_unordered(_work, tasks):
                    results[(kind, index)] = out
                    bar.update(sizes[(kind, index)])
    return results


# --------------------------------------------------------------------------- output files


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _prepare_out_dir(out: Path) -> None:
    """Create ``out``; a previous corpus there is replaced, anything else is refused."""
    if out.exists() and not out.is_dir():
        raise AudioLLMError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "stats.json").is_file():
            raise AudioLLMError(f"{out} is not empty and holds no corpus (no stats.json); choose an empty folder")
        # A rebuild: drop the old clips so a smaller build leaves no stale files behind.
        shutil.rmtree(out / "audio", ignore_errors=True)
        for name in [f"{s}.jsonl" for s in SPLITS] + ["stats.json", "README.md"]:
            (out / name).unlink(missing_ok=True)
    for split in SPLITS:
        (out / "audio" / split).mkdir(parents=True, exist_ok=True)


def _espeak_version() -> str:
    try:
        out = subprocess.run([speech.espeak_binary(), "--version"], capture_output=True, text=True, check=False)
    except AudioLLMError:
        return "not installed"
    return out.stdout.split("Data at")[0].strip() or "unknown"


def _stats(rows: dict[str, list[dict]], seed: int, clip_seconds: float, soundfont: Path | None,
           out: Path) -> dict[str, Any]:
    import music21

    clips = {s: {r["clip"]: r for r in rows[s]} for s in SPLITS}
    music_clips = {s: [r for r in clips[s].values() if r["clip"].startswith("m")] for s in SPLITS}
    speech_clips = {s: [r for r in clips[s].values() if r["clip"].startswith("s")] for s in SPLITS}

    def by(group: dict[str, list[dict]], key: str) -> dict[str, dict[str, int]]:
        return {s: dict(sorted(Counter(str(r[key]) for r in group[s]).items())) for s in SPLITS}

    audio_files = sorted((out / "audio").rglob("*.wav"))
    return {
        "seed": seed,
        "clip_seconds": clip_seconds,
        "sample_rate": 16000,
        "soundfont": soundfont.name if soundfont else None,
        "soundfont_path": str(soundfont) if soundfont else None,
        "music21_version": music21.__version__,
        "espeak": _espeak_version() if any(speech_clips.values()) else None,
        "counts": {
            "music_clips": sum(len(v) for v in music_clips.values()),
            "speech_clips": sum(len(v) for v in speech_clips.values()),
            "clips": {s: {"music": len(music_clips[s]), "speech": len(speech_clips[s])} for s in SPLITS},
            "rows": {s: dict(sorted(Counter(r["task"] for r in rows[s]).items())) for s in SPLITS},
        },
        "families": by(music_clips, "family"),
        "instruments": by(music_clips, "instrument"),
        "tempo_classes": by(music_clips, "tempo_class"),
        "modes": by(music_clips, "mode"),
        "polyphony": by(music_clips, "voices"),
        "composers": by(music_clips, "composer"),
        "pieces": {s: len({r["piece"] for r in music_clips[s]}) for s in SPLITS},
        "voices": by(speech_clips, "voice"),
        "genders": by(speech_clips, "gender"),
        "sentence_kinds": by(speech_clips, "kind"),
        "texts": {s: len({r["text"] for r in speech_clips[s]}) for s in SPLITS},
        "vocabulary_size": len(templates.VOCABULARY),
        "qa_types": by({s: [r for r in rows[s] if r["task"] == "qa"] for s in SPLITS}, "qa_type"),
        "duration_seconds": {s: {"music": round(sum(r["duration"] for r in music_clips[s]), 2),
                                 "speech": round(sum(r["duration"] for r in speech_clips[s]), 2)} for s in SPLITS},
        "sizes": {
            "audio_files": len(audio_files),
            "audio_bytes": sum(p.stat().st_size for p in audio_files),
            "manifest_bytes": {s: (out / f"{s}.jsonl").stat().st_size for s in SPLITS},
        },
    }


_SOUNDFONT_LICENCES = {
    "FluidR3_GM.sf2": "FluidR3_GM by Frank Wen, MIT licence (Debian package fluid-soundfont-gm)",
    "TimGM6mb.sf2": "TimGM6mb by Tim Brechbill, GNU GPL v2 (shipped inside pretty_midi)",
}


def _readme(stats: dict[str, Any]) -> str:
    c = stats["counts"]
    sf = stats["soundfont"]
    lines = [
        "# audiollm embedded corpus",
        "",
        f"Built by `audiollm data synth` (`audiollm.data.synth.build_corpus`) with seed {stats['seed']}: "
        f"{c['music_clips']} music clips and {c['speech_clips']} speech clips, 16 kHz mono 16-bit WAV. "
        "The same seed rebuilds the same files.",
        "",
        "| split | music clips | speech clips | rows |",
        "|---|---|---|---|",
    ]
    for s in SPLITS:
        rows = ", ".join(f"{k} {v}" for k, v in c["rows"][s].items()) or "-"
        lines.append(f"| {s} | {c['clips'][s]['music']} | {c['clips'][s]['speech']} | {rows} |")
    lines += [
        "",
        "## Files",
        "",
        "- `train.jsonl`, `valid.jsonl`, `test.jsonl`: one JSON object per line with `id`, `task` "
        "(`tagging`, `caption`, `qa`, `asr`, `text_to_midi`, `transcription`), `split`, `audio` (relative to "
        "this folder), `answer`, `question` (QA and text_to_midi rows) and the clip's labels. Several rows share "
        "one clip (`clip`). `text_to_midi` rows have no audio and no answer: a caption and the clip's notes. "
        "`transcription` rows have the clip's audio and its notes (`[start, end, pitch, velocity]` with "
        "`program`) instead of an answer.",
        "- `audio/<split>/m*.wav` music, `audio/<split>/s*.wav` speech.",
        "- `stats.json`: counts per split, task, family, voice; durations; sizes.",
        "",
        "## How it was made",
        "",
        f"**Music** ({stats['clip_seconds']:g} s clips): excerpts of scores from music21's bundled corpus "
        "(Bach chorales, Palestrina masses, Monteverdi madrigals, Haydn and Mozart movements, "
        "traditional tunes from Ryan's Mammoth Collection), rendered note by note with FluidSynth "
        f"through {sf or 'no soundfont'} at 16 kHz, reverb and chorus off. Each clip plays 1..all parts "
        "of its excerpt on one General MIDI program (so the instrument family is a single label), at a "
        "chosen tempo (50-190 beats per minute of the notated beat), transposition (±5 semitones plus "
        "octaves into the instrument's range) and velocity, then is peak-normalised to a random level. "
        "Labels come from the score and the render settings: family, program, instrument, tempo, key "
        "(Krumhansl-Schmuckler analysis with music21's Aarden-Essen profiles, shifted by the "
        "transposition), voices, composer, piece, and the note list (`notes`: onset s, offset s, MIDI "
        "pitch, velocity).",
        "",
        "**Speech**: sentences from a fixed vocabulary of "
        f"{stats['vocabulary_size']} words (numbers and clock times spelled out, short everyday "
        "sentences) spoken by espeak-ng with several English accents, male and female variants, rates "
        "of 120-200 words per minute and pitches 30-70; trimmed, resampled to 16 kHz, peak-normalised. "
        "`answer` of an ASR row is exactly the text spoken (lowercase, no punctuation).",
        "",
        "**Splits** (80/10/10): a piece (music21 corpus path) and a sentence text each belong to one split "
        "only, chosen by a stable hash of the path or text, so no excerpt of a test piece and no test "
        "sentence is ever seen in training.",
        "",
        "## Licences",
        "",
        "- Scores: the music is in the public domain; the encodings ship with music21 (BSD-3-Clause) and "
        "are distributed under the terms music21 documents for each corpus collection.",
        f"- Soundfont: {_SOUNDFONT_LICENCES.get(sf or '', sf or 'none')}.",
        f"- Speech: synthesised with espeak-ng ({stats['espeak'] or 'not used'}), GPL-3.0-or-later, "
        "including its voice data.",
        "- Sentences, captions and questions: generated by audiollm's templates (Apache-2.0).",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- entry point


def build_corpus(out_dir: str | os.PathLike, *, music_clips: int, speech_clips: int, seed: int,
                 clip_seconds: float = 4.0, workers: int = 2, progress: bool = True,
                 soundfont: str | os.PathLike | None = None) -> dict[str, Any]:
    """Render the embedded music + speech corpus into ``out_dir`` and return its stats.

    ``soundfont`` defaults to Debian's FluidR3_GM, else pretty_midi's TimGM6mb. The returned
    dict is ``stats.json`` plus ``build_seconds`` and ``out_dir`` (kept out of the file so
    that rebuilding with the same seed gives identical files).
    """
    t0 = time.perf_counter()
    if music_clips < 0 or speech_clips < 0 or music_clips + speech_clips == 0:
        raise AudioLLMError(f"music_clips={music_clips}, speech_clips={speech_clips}: need >= 0 each and some clips")
    if not 1.0 <= clip_seconds <= 30.0:
        raise AudioLLMError(f"clip_seconds={clip_seconds} is outside 1..30")
    if workers < 1:
        raise AudioLLMError(f"workers={workers} must be at least 1")
    out = Path(out_dir)
    sf_path = find_soundfont(soundfont) if music_clips else None
    if speech_clips:
        speech.espeak_binary()          # fail before rendering anything
    _prepare_out_dir(out)

    jobs = plan_music(music_clips, seed)
    specs = plan_speech(speech_clips, seed)
    batches = [specs[i:i + SPEECH_BATCH] for i in range(0, len(specs), SPEECH_BATCH)]
    # Music first: its jobs are the longest, so starting them early balances the workers.
    tasks = [("music", i, job, str(sf_path), clip_seconds, str(out)) for i, job in enumerate(jobs)]
    tasks += [("speech", i, batch, "", clip_seconds, str(out)) for i, batch in enumerate(batches)]
    results = _run(tasks, workers, progress, music_clips + speech_clips)

    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    split_of_clip = {spec.clip_id: spec for job in jobs for spec in job.specs}
    split_of_clip.update({spec.clip_id: spec for spec in specs})
    for i in range(len(jobs)):
        for labels in results[("music", i)]:
            spec = split_of_clip[labels["clip_id"]]
            rows[spec.split] += music_rows(labels, spec.split, spec.audio, seed)
    for i in range(len(batches)):
        for labels in results[("speech", i)]:
            spec = split_of_clip[labels["clip_id"]]
            rows[spec.split] += speech_rows(labels, spec.split, spec.audio, seed)
    for s in SPLITS:
        write_manifest(out / f"{s}.jsonl", rows[s])

    stats = _stats(rows, seed, clip_seconds, sf_path, out)
    _write_text(out / "stats.json", json.dumps(stats, indent=2) + "\n")
    _write_text(out / "README.md", _readme(stats))
    return {**stats, "build_seconds": round(time.perf_counter() - t0, 2), "out_dir": str(out)}
