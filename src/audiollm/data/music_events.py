"""Rows derived from music clips: ``text_to_midi`` (a caption in, the clip's notes out; no
audio), ``transcription`` (the clip's audio in, its notes out) and ``text_to_audio`` (a caption
in, the codes of the clip's audio out).

The embedded corpus writes both per music clip (``music_rows``); :func:`derive_rows` makes the
same rows from an existing manifest's music rows (``audiollm data text-to-midi`` /
``audiollm data transcription``), so a corpus built before a task existed need not be
re-rendered. A text_to_midi caption is drawn once per clip from a generator keyed by
(seed, clip), so a build is deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from audiollm.errors import AudioLLMError
from audiollm.music.prompt import caption

# Labels a row keeps: what captions, adherence scoring and per-family reports read, plus provenance.
KEEP = ("clip", "split", "family", "program", "instrument", "tempo_bpm", "tempo_class", "key", "tonic", "mode",
        "composer", "piece", "meter", "voices", "transpose", "velocity", "duration", "notes")


def _base_row(labels: Mapping[str, Any], task: str, suffix: str) -> dict[str, Any]:
    row: dict[str, Any] = {"id": f"{labels['clip']}-{suffix}", "task": task}
    if labels.get("split"):
        row["split"] = labels["split"]
    return row


def _keep(row: dict[str, Any], labels: Mapping[str, Any]) -> dict[str, Any]:
    row.update({k: labels[k] for k in KEEP if k in labels and k not in row})
    return row


def text_to_midi_row(labels: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """One text_to_midi row from a music clip's labels (which include ``clip`` and ``notes``)."""
    row = _base_row(labels, "text_to_midi", "t2m")
    row["question"] = caption(labels, random.Random(f"{seed}:t2m:{labels['clip']}"))
    return _keep(row, labels)


def transcription_row(labels: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """One transcription row: the clip's ``audio`` and its exact notes (``[start, end, pitch,
    velocity]`` with the clip's ``program``). ``seed`` is unused (the row is fully determined
    by the labels); it keeps one signature for every row maker."""
    row = _base_row(labels, "transcription", "transcription")
    row["audio"] = labels["audio"]
    return _keep(row, labels)


def text_to_audio_row(labels: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """One text_to_audio row: a caption drawn from the clip's labels (as text_to_midi's) and the
    clip's ``audio``, whose codec codes are the answer."""
    row = _base_row(labels, "text_to_audio", "t2a")
    row["caption"] = caption(labels, random.Random(f"{seed}:t2m:{labels['clip']}"))
    row["audio"] = labels["audio"]
    return _keep(row, labels)


ROW_MAKERS: dict[str, Callable[..., dict[str, Any]]] = {"text_to_midi": text_to_midi_row,
                                                         "transcription": transcription_row,
                                                         "text_to_audio": text_to_audio_row}


def derive_rows(rows: Iterable[Mapping[str, Any]], task: str = "text_to_midi", seed: int = 0) -> list[dict[str, Any]]:
    """One ``task`` row per music clip found in ``rows`` (rows with ``notes`` and ``program``,
    grouped by ``clip``; the first row of a clip is used), in manifest order. A transcription
    row (and a text_to_audio row) needs the clip's audio, so music rows without ``audio`` are
    passed over for it."""
    if task not in ROW_MAKERS:
        raise AudioLLMError(f"no derived rows for task {task!r}; choose from {', '.join(ROW_MAKERS)}")
    out, seen = [], set()
    for row in rows:
        if row.get("task") in ROW_MAKERS or row.get("notes") is None or row.get("program") is None:
            continue
        if task in ("transcription", "text_to_audio") and not row.get("audio"):
            continue
        clip = row.get("clip") or row.get("id")
        if clip in seen:
            continue
        seen.add(clip)
        out.append(ROW_MAKERS[task]({**row, "clip": clip}, seed))
    if not out:
        raise AudioLLMError(f"no music rows with 'notes' and 'program' labels to derive {task} rows from")
    return out
