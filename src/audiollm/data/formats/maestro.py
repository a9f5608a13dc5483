"""MAESTRO → piano transcription rows (audio + aligned MIDI).

Layout: ``ROOT/maestro-v3.0.0.csv`` with columns ``canonical_composer, canonical_title,
split, year, midi_filename, audio_filename, duration`` — paths relative to ROOT, e.g.
``2018/MIDI-Unprocessed_Chamber3_MID--AUDIO_10_R3_2018_wav--1.midi`` and the matching
``.wav`` — or the same table as ``maestro-v3.0.0.json``, stored column-oriented
(``{"canonical_composer": {"0": ..., "1": ...}, ...}``). Any ``maestro-v*.csv``/``.json``
is accepted (v2 has the same columns); the CSV wins when both exist. Titles hold commas and
quotes (CSV quoting handles them); composers may be joined with " / ".
Upstream: https://magenta.tensorflow.org/datasets/maestro (Hawthorne et al. 2019),
CC BY-NC-SA 4.0; 44.1–48 kHz stereo WAV, minutes-long performances.

Splits: the table's own ``split`` column (train / validation / test → train / valid / test),
which keeps every composition in one split.

Rows have task ``"transcription"`` and a ``midi`` path (the target is rendered from the
MIDI by that task); ``answer`` holds the same MIDI path so that the row passes the generic
manifest check. The MIDI-only download has no WAVs: rows whose audio (or MIDI) is missing
are skipped with one warning that counts them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audiollm.data.formats.base import register_format
from audiollm.data.formats.common import (
    dataset_dir,
    read_csv,
    read_text,
    report_skipped,
    require_rows,
)
from audiollm.errors import AudioLLMError

LAYOUT = "ROOT/maestro-v3.0.0.csv (or .json) + ROOT/<year>/<name>.midi + ROOT/<year>/<name>.wav"
COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration")
SPLIT_OF = {"train": "train", "validation": "valid", "test": "test"}


def metadata_file(root: Path) -> Path:
    for pattern in ("maestro-v*.csv", "maestro-v*.json"):
        found = sorted(root.glob(pattern), reverse=True)  # newest version first
        if found:
            return found[0]
    raise AudioLLMError(f"{root}: no maestro-v*.csv or maestro-v*.json found; expected the layout {LAYOUT}")


def read_json_table(path: Path) -> list[dict[str, Any]]:
    """The column-oriented JSON (column → {row index → value}) as a list of row dicts."""
    try:
        table = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise AudioLLMError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(table, dict) or not all(isinstance(table.get(c), dict) for c in COLUMNS):
        missing = [c for c in COLUMNS if not isinstance(table, dict) or not isinstance(table.get(c), dict)]
        raise AudioLLMError(f"{path}: expected a column-oriented table with {', '.join(COLUMNS)}; "
                            f"missing or not a column: {', '.join(missing)}")
    keys = sorted(table[COLUMNS[0]], key=lambda k: int(k) if str(k).isdigit() else str(k))
    return [{c: table[c].get(k) for c in COLUMNS} for k in keys]


@register_format("maestro")
def maestro_rows(root: Path) -> list[dict[str, Any]]:
    """One ``transcription`` row per performance with ``midi``, ``composer``, ``title``,
    ``year`` and ``duration`` (seconds, from the table)."""
    root = dataset_dir(root, "MAESTRO", LAYOUT)
    meta = metadata_file(root)
    records = read_json_table(meta) if meta.suffix == ".json" else read_csv(meta, COLUMNS)

    rows: list[dict[str, Any]] = []
    missing_audio: list[str] = []
    missing_midi: list[str] = []
    bad: list[str] = []
    for i, rec in enumerate(records):
        split = SPLIT_OF.get(str(rec.get("split") or "").strip())
        audio_name = str(rec.get("audio_filename") or "").strip()
        midi_name = str(rec.get("midi_filename") or "").strip()
        try:
            duration = float(rec["duration"])
            year = int(rec["year"])
        except (TypeError, ValueError):
            duration = year = None
        if split is None or not audio_name or not midi_name or duration is None:
            bad.append(f"row {i + 1}")
            continue
        audio, midi = root / audio_name, root / midi_name
        if not audio.is_file():
            missing_audio.append(audio_name)
            continue
        if not midi.is_file():
            missing_midi.append(midi_name)
            continue
        rows.append({
            "id": f"maestro-{Path(audio_name).stem}",
            "task": "transcription",
            "split": split,
            "audio": str(audio),
            "midi": str(midi),
            "answer": str(midi),
            "composer": str(rec["canonical_composer"]).strip(),
            "title": str(rec["canonical_title"]).strip(),
            "year": year,
            "duration": duration,
        })
    report_skipped(meta, "row(s) with an unknown split, no file names or no duration", bad)
    report_skipped(root, "performance(s) whose .wav is missing (the MIDI-only download has none)", missing_audio)
    report_skipped(root, "performance(s) whose .midi is missing", missing_midi)
    return require_rows(rows, "MAESTRO", root, LAYOUT, hint=" with audio and MIDI")
