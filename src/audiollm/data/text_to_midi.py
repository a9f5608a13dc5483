"""text_to_midi rows from music clips: the clip's labels and notes, a caption, and no audio.

The embedded corpus writes one per music clip (``music_rows``); :func:`derive_rows` makes
the same rows from an existing manifest's music rows (``audiollm data text-to-midi``), so a
corpus built before this task existed need not be re-rendered. The caption is drawn once per
clip from a generator keyed by (seed, clip), so a build is deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import AudioLLMError
from ..music_prompt import caption

# Labels a row keeps: what captions and adherence scoring read, plus provenance.
KEEP = ("clip", "split", "family", "program", "instrument", "tempo_bpm", "tempo_class", "key", "tonic", "mode",
        "composer", "piece", "meter", "voices", "transpose", "velocity", "duration", "notes")


def text_to_midi_row(labels: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """One text_to_midi row from a music clip's labels (which include ``clip`` and ``notes``)."""
    clip = str(labels["clip"])
    row: dict[str, Any] = {"id": f"{clip}-t2m", "task": "text_to_midi"}
    if labels.get("split"):
        row["split"] = labels["split"]
    row["question"] = caption(labels, random.Random(f"{seed}:t2m:{clip}"))
    row.update({k: labels[k] for k in KEEP if k in labels and k not in row})
    return row


def derive_rows(rows: Iterable[Mapping[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """One text_to_midi row per music clip found in ``rows`` (rows with ``notes`` and
    ``program``, grouped by ``clip``; the first row of a clip is used), in manifest order."""
    out, seen = [], set()
    for row in rows:
        if row.get("task") == "text_to_midi" or row.get("notes") is None or row.get("program") is None:
            continue
        clip = row.get("clip") or row.get("id")
        if clip in seen:
            continue
        seen.add(clip)
        out.append(text_to_midi_row({**row, "clip": clip}, seed))
    if not out:
        raise AudioLLMError("no music rows with 'notes' and 'program' labels to derive text_to_midi rows from")
    return out
