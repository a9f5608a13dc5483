"""MusicCaps → music captioning rows (and, optionally, aspect-tagging rows).

Layout: ``ROOT/musiccaps-public.csv`` with columns ``ytid, start_s, end_s,
audioset_positive_labels, aspect_list, caption, author_id, is_balanced_subset,
is_audioset_eval``. ``aspect_list`` is a Python list literal (``"['low quality', 'sad']"``,
with double quotes around aspects that contain an apostrophe: ``"children's song"``);
``audioset_positive_labels`` is a comma-joined list of AudioSet ids; the booleans are
``True``/``False``; captions are CSV-quoted only when they hold a comma.
Upstream: https://www.kaggle.com/datasets/googleai/musiccaps (Agostinelli et al. 2023),
CC BY-SA 4.0 for the text. The audio is not distributed — it is 10 s of a YouTube video —
so it is read from a local folder: the ``audio_dir`` option (relative to ROOT), default
``ROOT/audio/`` if it exists, else ROOT; searched recursively.

Audio file names, for a clip ``ytid`` from ``start`` to ``end`` seconds (any of .wav .flac
.mp3 .ogg .opus), each assumed to hold the 10 s clip already cut:

* ``<ytid>`` (the common yt-dlp download scripts),
* ``[<ytid>]-[<start>-<end>]`` (e.g. ``[-0Gj8-vB1q4]-[30-40].wav``),
* ``<ytid>_<start>-<end>`` and ``<ytid>_<start>_<end>``,
* ``Y<ytid>_<start>.000_<end>.000`` (AudioSet style).

Clips whose audio is missing — many videos are gone — are counted in one warning.

Splits: ``is_audioset_eval`` True → test (the usual MusicCaps test set); of the rest, a
stable hash of the ytid (CRC-32 mod 100 < 5) → valid, else train.

Rows: ``caption`` with the caption as answer, plus ``aspects`` and ``audioset_labels``
lists; with ``tagging=true`` also one ``tagging`` row per clip whose answer is the
comma-joined aspect list (``labels``/``tags`` hold it as a list, since an aspect may itself
contain a comma).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from audiollm.data.formats.base import register_format
from audiollm.data.formats.common import (
    as_bool,
    audio_folder,
    audio_index,
    bucket,
    dataset_dir,
    find_audio,
    read_csv,
    report_skipped,
    require_rows,
)
from audiollm.errors import AudioLLMError

LAYOUT = "ROOT/musiccaps-public.csv + audio files named <ytid>.wav (or [<ytid>]-[<start>-<end>].wav) under audio_dir"
COLUMNS = ("ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id",
           "is_balanced_subset", "is_audioset_eval")
TAGGING_QUESTION = "Which musical aspects describe this clip?"


def seconds_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def clip_stems(ytid: str, start: float, end: float) -> list[str]:
    """The documented file-name stems a clip may have on disk."""
    s, e = seconds_text(start), seconds_text(end)
    return [ytid, f"[{ytid}]-[{s}-{e}]", f"{ytid}_{s}-{e}", f"{ytid}_{s}_{e}", f"Y{ytid}_{start:.3f}_{end:.3f}"]


def parse_aspects(text: str) -> list[str] | None:
    """``"['a', "b's"]"`` → ``["a", "b's"]``; None when it is not a list of strings."""
    try:
        value = ast.literal_eval(text.strip()) if text.strip() else []
    except (ValueError, SyntaxError):
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
        return None
    return list(dict.fromkeys(" ".join(x.split()) for x in value if x.strip()))


@register_format("musiccaps")
def musiccaps_rows(root: Path, *, audio_dir: str = "", tagging: str = "false") -> list[dict[str, Any]]:
    """``caption`` rows (and ``tagging`` rows with ``tagging=true``) for every clip whose
    audio is found, with ``ytid``, ``start_s``, ``end_s``, ``aspects``, ``audioset_labels``,
    ``author_id``, ``is_balanced_subset`` and ``is_audioset_eval``."""
    root = dataset_dir(root, "MusicCaps", LAYOUT)
    with_tags = as_bool("musiccaps", "tagging", tagging)
    csv_path = root / "musiccaps-public.csv"
    if not csv_path.is_file():
        raise AudioLLMError(f"{root}: no musiccaps-public.csv found; expected the layout {LAYOUT}")
    folder = audio_folder(root, audio_dir, "musiccaps")
    index = audio_index(folder)

    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    missing: list[str] = []
    bad_aspects: list[str] = []
    for lineno, rec in enumerate(read_csv(csv_path, COLUMNS), 2):
        ytid = (rec["ytid"] or "").strip()
        caption = " ".join((rec["caption"] or "").split())
        try:
            start, end = float(rec["start_s"]), float(rec["end_s"])
        except (TypeError, ValueError):
            start = end = None
        if not ytid or not caption or start is None:
            bad.append(f"line {lineno}")
            continue
        audio = find_audio(index, clip_stems(ytid, start, end))
        if audio is None:
            missing.append(ytid)
            continue
        aspects = parse_aspects(rec["aspect_list"] or "")
        if aspects is None:
            bad_aspects.append(ytid)
            aspects = []
        is_eval = (rec["is_audioset_eval"] or "").strip().lower() == "true"
        split = "test" if is_eval else "valid" if bucket(ytid) < 5 else "train"
        head = {"split": split, "audio": str(audio)}
        labels = {
            "ytid": ytid,
            "start_s": start,
            "end_s": end,
            "aspects": aspects,
            "audioset_labels": [x.strip() for x in (rec["audioset_positive_labels"] or "").split(",") if x.strip()],
            "author_id": (rec["author_id"] or "").strip(),
            "is_balanced_subset": (rec["is_balanced_subset"] or "").strip().lower() == "true",
            "is_audioset_eval": is_eval,
        }
        rows.append({"id": f"musiccaps-{ytid}", "task": "caption", **head, "answer": caption, **labels})
        if with_tags and aspects:
            rows.append({"id": f"musiccaps-{ytid}-aspects", "task": "tagging", **head, "question": TAGGING_QUESTION,
                         "answer": ", ".join(aspects), "labels": aspects, "tags": aspects, **labels})
    report_skipped(csv_path, "row(s) without ytid, caption or start/end seconds", bad)
    report_skipped(csv_path, "clip(s) without aspects (aspect_list is not a list literal)", bad_aspects,
                   verb="kept")
    report_skipped(folder, "clip(s) with no audio file (looked for <ytid>.wav, [<ytid>]-[<start>-<end>].wav, ...)",
                   missing)
    return require_rows(rows, "MusicCaps", folder, LAYOUT, hint=" with audio")
