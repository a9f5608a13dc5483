"""LJ Speech → ASR rows, or TTS rows with task=tts (one reader, 13,100 clips).

Layout: ``ROOT/metadata.csv`` + ``ROOT/wavs/<id>.wav`` (ROOT is ``LJSpeech-1.1/``, or the
folder that contains it). ``metadata.csv`` has no header; each line is
``id|raw text|normalized text``, pipe-separated, UTF-8, e.g.
``LJ001-0001|Printing, in the only sense ...|Printing, in the only sense ...``.
Quotes are part of the text (``"The Dial"``), and the file is not CSV-quoted: a default
CSV reader would treat a leading ``"`` as a quoted field and swallow the pipes after it,
so lines are split on ``|`` by hand. The normalized column spells out numbers and
abbreviations ("Mr." → "Mister", "1869" → "eighteen sixty-nine"); it is the ``answer``,
and the raw text is kept as ``raw_text``. Upstream: https://keithito.com/LJ-Speech-Dataset/
(Keith Ito & Linda Johnson 2017), public domain; 22.05 kHz mono.

``task=tts`` (option) makes text-to-speech rows instead: ``{"task": "tts", "id", "audio",
"text": the normalized transcript (quotes and punctuation kept), "voice": "LJSpeech (US female,
read audiobook)", "speaker": "ljspeech", "seconds", "split"}`` — the schema of the corpus
``audiollm data synth-tts`` writes, so the two can be trained on together. ``seconds`` comes
from each WAV's header; a clip whose header cannot be read is skipped with a warning.

Splits: LJ Speech ships none, so a stable hash of the clip id decides (CRC-32 of the id
mod 100): 0–1 → test, 2–3 → valid, 4–99 → train — about 2 % / 2 % / 96 %, the same on
every machine, and a clip never changes split when others are added or removed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import soundfile as sf

from audiollm.data.formats.base import register_format
from audiollm.data.formats.common import (
    as_choice,
    bucket,
    dataset_dir,
    read_text,
    report_skipped,
    require_rows,
)
from audiollm.errors import AudioLLMError

LAYOUT = "ROOT/metadata.csv (id|raw text|normalized text) + ROOT/wavs/<id>.wav"
ID_PATTERN = re.compile(r"^LJ[0-9]{3}-[0-9]{4}$")
TASKS = ("asr", "tts")
TTS_VOICE = "LJSpeech (US female, read audiobook)"
TTS_SPEAKER = "ljspeech"


def ljspeech_dir(root: Path) -> Path:
    for candidate in (root, root / "LJSpeech-1.1"):
        if (candidate / "metadata.csv").is_file():
            return candidate
    raise AudioLLMError(f"{root}: no metadata.csv found; expected the LJ Speech layout {LAYOUT}")


def split_of(clip_id: str) -> str:
    b = bucket(clip_id)
    return "test" if b < 2 else "valid" if b < 4 else "train"


def tts_row(clip_id: str, audio: Path, text: str) -> dict[str, Any] | None:
    """The ``tts`` row of one clip, or None when its WAV header cannot be read."""
    try:
        info = sf.info(str(audio))
    except (sf.LibsndfileError, RuntimeError):
        return None
    return {
        "task": "tts",
        "id": f"ljspeech-{clip_id}",
        "audio": str(audio),
        "text": text,
        "voice": TTS_VOICE,
        "speaker": TTS_SPEAKER,
        "seconds": round(info.frames / info.samplerate, 4),
        "split": split_of(clip_id),
    }


@register_format("ljspeech")
def ljspeech_rows(root: Path, *, task: str = "asr") -> list[dict[str, Any]]:
    """One ``asr`` row per clip: ``answer``/``text`` = the normalized transcript (the raw one
    when the normalized column is empty), ``raw_text`` = the raw transcript; with ``task=tts``
    one ``tts`` row per clip instead (see the module docstring)."""
    task = as_choice("ljspeech", "task", task, TASKS)
    base = ljspeech_dir(dataset_dir(root, "LJ Speech", LAYOUT))
    metadata = base / "metadata.csv"
    rows: list[dict[str, Any]] = []
    malformed: list[str] = []
    missing: list[str] = []
    unreadable: list[str] = []
    for lineno, line in enumerate(read_text(metadata).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) not in (2, 3) or not ID_PATTERN.match(fields[0].strip()):
            malformed.append(f"line {lineno}")
            continue
        clip_id = fields[0].strip()
        raw = fields[1].strip()
        normalized = fields[2].strip() if len(fields) == 3 else ""
        text = normalized or raw
        if not text:
            malformed.append(f"line {lineno}")
            continue
        audio = base / "wavs" / f"{clip_id}.wav"
        if not audio.is_file():
            missing.append(f"wavs/{clip_id}.wav")
            continue
        if task == "tts":
            row = tts_row(clip_id, audio, text)
            if row is None:
                unreadable.append(f"wavs/{clip_id}.wav")
            else:
                rows.append(row)
            continue
        rows.append({
            "id": f"ljspeech-{clip_id}",
            "task": "asr",
            "split": split_of(clip_id),
            "audio": str(audio),
            "answer": text,
            "text": text,
            "raw_text": raw,
            "speaker": "LJ",
        })
    report_skipped(metadata, "line(s) that are not 'LJnnn-nnnn|raw text|normalized text'", malformed)
    report_skipped(base, "clip(s) whose wav file is missing", missing)
    report_skipped(base, "clip(s) whose wav file could not be read", unreadable)
    return require_rows(rows, "LJ Speech", base, LAYOUT)
