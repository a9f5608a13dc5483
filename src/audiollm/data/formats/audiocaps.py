"""AudioCaps → sound captioning rows.

Layout: ``ROOT/train.csv``, ``ROOT/val.csv``, ``ROOT/test.csv`` (also under ``ROOT/dataset/``,
as in the upstream repository), header ``audiocap_id,youtube_id,start_time,caption``. One
line per caption: a train clip usually has one, a val/test clip five lines that share
``youtube_id`` and ``start_time``. Captions are CSV-quoted when they hold a comma.
Upstream: https://github.com/cdjkim/audiocaps (Kim et al. 2019), MIT licence for the
captions. The audio is not distributed (10 s of a YouTube video from ``start_time``), so it
is read from a local folder: the ``audio_dir`` option (relative to ROOT), default
``ROOT/audio/`` if it exists, else ROOT; searched recursively (so ``train/ val/ test/``
subfolders work).

Audio file names, for a clip (any of .wav .flac .mp3 .ogg .opus), each assumed to hold the
10 s clip already cut:

* ``<audiocap_id>`` — any of the clip's caption ids (the ``audiocaps-download`` package:
  ``train/91139.wav``),
* ``<youtube_id>`` or ``Y<youtube_id>``,
* ``<youtube_id>_<start>`` and ``Y<youtube_id>_<start>.000_<start+10>.000`` (AudioSet style).

Clips whose audio is missing — many videos are gone — are counted in one warning.

Splits: the file: train.csv → train, val.csv → valid, test.csv → test. Captions of one
clip are grouped into one row: ``answer`` is the first (file order), ``answers`` all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiollm.data.formats.base import register_format
from audiollm.data.formats.common import (
    audio_folder,
    audio_index,
    dataset_dir,
    find_audio,
    read_csv,
    report_skipped,
    require_rows,
)
from audiollm.errors import AudioLLMError

LAYOUT = ("ROOT/{train,val,test}.csv (audiocap_id,youtube_id,start_time,caption) + audio files named "
          "<audiocap_id>.wav or <youtube_id>.wav under audio_dir")
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
SPLIT_OF = {"train.csv": "train", "val.csv": "valid", "test.csv": "test"}


def clip_stems(youtube_id: str, start: float, caption_ids: list[str]) -> list[str]:
    """The documented file-name stems a clip may have on disk."""
    s = str(int(start)) if float(start).is_integer() else f"{start:g}"
    return [*caption_ids, youtube_id, f"Y{youtube_id}", f"{youtube_id}_{s}",
            f"Y{youtube_id}_{start:.3f}_{start + 10:.3f}"]


@register_format("audiocaps")
def audiocaps_rows(root: Path, *, audio_dir: str = "") -> list[dict[str, Any]]:
    """One ``caption`` row per clip with ``answers`` (all its captions), ``youtube_id``,
    ``start_time`` and ``audiocap_ids``."""
    root = dataset_dir(root, "AudioCaps", LAYOUT)
    csv_dir = next((d for d in (root, root / "dataset") if any((d / f).is_file() for f in SPLIT_OF)), None)
    if csv_dir is None:
        raise AudioLLMError(f"{root}: no train.csv, val.csv or test.csv found; expected the layout {LAYOUT}")
    folder = audio_folder(root, audio_dir, "audiocaps")
    index = audio_index(folder)

    rows: list[dict[str, Any]] = []
    for file_name, split in SPLIT_OF.items():
        csv_path = csv_dir / file_name
        if not csv_path.is_file():
            continue
        clips: dict[tuple[str, float], dict[str, list[str]]] = {}
        bad: list[str] = []
        for lineno, rec in enumerate(read_csv(csv_path, COLUMNS), 2):
            ytid = (rec["youtube_id"] or "").strip()
            caption = " ".join((rec["caption"] or "").split())
            try:
                start = float(rec["start_time"])
            except (TypeError, ValueError):
                start = None
            if not ytid or not caption or start is None:
                bad.append(f"line {lineno}")
                continue
            clip = clips.setdefault((ytid, start), {"ids": [], "captions": []})
            clip["ids"].append((rec["audiocap_id"] or "").strip())
            clip["captions"].append(caption)
        missing: list[str] = []
        for (ytid, start), clip in clips.items():
            audio = find_audio(index, clip_stems(ytid, start, [i for i in clip["ids"] if i]))
            if audio is None:
                missing.append(f"{ytid}@{start:g}")
                continue
            captions = list(dict.fromkeys(clip["captions"]))
            rows.append({
                "id": f"audiocaps-{ytid}-{start:g}",
                "task": "caption",
                "split": split,
                "audio": str(audio),
                "answer": captions[0],
                "answers": captions,
                "youtube_id": ytid,
                "start_time": start,
                "audiocap_ids": clip["ids"],
            })
        report_skipped(csv_path, "line(s) without youtube_id, start_time or caption", bad)
        report_skipped(folder, f"{split} clip(s) with no audio file (looked for <audiocap_id>.wav, <youtube_id>.wav, ...)",
                       missing)
    return require_rows(rows, "AudioCaps", folder, LAYOUT, hint=" with audio")
