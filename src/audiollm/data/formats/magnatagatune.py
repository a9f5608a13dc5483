"""MagnaTagATune → multi-label music tagging rows over the top-N tags.

Layout: ``ROOT/annotations_final.csv`` + the MP3 folders ``ROOT/0/`` … ``ROOT/f/`` (what
``mp3.zip.001-003`` extract to; also accepted under ``ROOT/mp3/`` or ``ROOT/audio/``).
``annotations_final.csv`` is TAB-separated with every field in double quotes: ``clip_id``,
188 tag columns of 0/1 (``"guitar"``, ``"no vocals"``, ...) and ``mp3_path``
(``f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3``).
Upstream: https://mirg.city.ac.uk/codeapps/the-magnatagatune-dataset (Law et al. 2009),
CC BY-NC-SA 3.0 (the audio is from Magnatune); 29 s clips, 16 kHz MP3.

Tags: the ``top`` (default 50) tags most often set to 1 in the CSV, ties broken by column
order — the usual top-50 benchmark vocabulary. The answer is those of a clip's tags that are
in the vocabulary, comma-joined in vocabulary order (most frequent first), also given as
the ``tags`` and ``labels`` lists (``labels`` is what the tagging scorer reads). Clips with
none of the top tags (a few thousand for the top 50) have nothing to learn or score and are
skipped, as are the few zero-byte MP3s of the release; one warning counts each kind.

Splits: by the MP3 folder, the 12 : 1 : 3 split used since Dieleman & Schrauwen (ICASSP 2014):
``0``–``b`` → train, ``c`` → valid, ``d``–``f`` → test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiollm.data.formats.base import register_format
from audiollm.data.formats.common import (
    dataset_dir,
    read_csv,
    report_skipped,
    require_rows,
    usable_audio,
)
from audiollm.errors import AudioLLMError

LAYOUT = "ROOT/annotations_final.csv (TAB-separated: clip_id, 188 tags, mp3_path) + ROOT/0/ ... ROOT/f/*.mp3"
QUESTION = "Which tags describe this music?"
FOLDERS = "0123456789abcdef"


def split_of(mp3_path: str) -> str | None:
    folder = mp3_path.split("/", 1)[0].lower()
    if len(folder) != 1 or folder not in FOLDERS:
        return None
    return "valid" if folder == "c" else "test" if folder in "def" else "train"


def top_tags(records: list[dict[str, str]], tag_columns: list[str], n: int) -> list[str]:
    """The ``n`` tags set most often, most frequent first (ties: CSV column order)."""
    counts = {t: sum((r.get(t) or "").strip() == "1" for r in records) for t in tag_columns}
    order = sorted(range(len(tag_columns)), key=lambda i: (-counts[tag_columns[i]], i))
    return [tag_columns[i] for i in order[:n] if counts[tag_columns[i]] > 0]


@register_format("magnatagatune")
def magnatagatune_rows(root: Path, *, top: str = "50") -> list[dict[str, Any]]:
    """One multi-label ``tagging`` row per clip that has at least one of the top tags, with
    ``clip_id``, ``tags``, ``labels`` and a fixed ``question``."""
    root = dataset_dir(root, "MagnaTagATune", LAYOUT)
    csv_path = root / "annotations_final.csv"
    if not csv_path.is_file():
        raise AudioLLMError(f"{root}: no annotations_final.csv found; expected the layout {LAYOUT}")
    try:
        n_top = int(top)
    except ValueError:
        n_top = 0
    if n_top < 1:
        raise AudioLLMError(f"magnatagatune option top={top!r}; expected a positive number of tags (e.g. 50)")
    for candidate in ("", "mp3", "audio"):
        if any((root / candidate / f).is_dir() for f in FOLDERS):
            audio_root = root / candidate
            break
    else:
        raise AudioLLMError(f"{root}: no MP3 folders 0/ ... f/ found (also looked in mp3/ and audio/); "
                            f"expected the layout {LAYOUT}")

    records = read_csv(csv_path, ("clip_id", "mp3_path"), delimiter="\t")
    tag_columns = [c for c in (records[0].keys() if records else []) if c not in ("clip_id", "mp3_path")]
    vocab = top_tags(records, tag_columns, n_top)

    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    untagged: list[str] = []
    missing: list[str] = []
    for rec in records:
        clip_id = (rec.get("clip_id") or "").strip()
        mp3 = (rec.get("mp3_path") or "").strip()
        split = split_of(mp3)
        if not clip_id or split is None:
            bad.append(clip_id or mp3 or "(empty row)")
            continue
        tags = [t for t in vocab if (rec.get(t) or "").strip() == "1"]
        if not tags:
            untagged.append(clip_id)
            continue
        audio = audio_root / mp3
        if not usable_audio(audio):
            missing.append(mp3)
            continue
        rows.append({
            "id": f"magnatagatune-{clip_id}",
            "task": "tagging",
            "split": split,
            "audio": str(audio.resolve()),
            "question": QUESTION,
            "answer": ", ".join(tags),
            "tags": tags,
            "labels": tags,
            "clip_id": clip_id,
        })
    report_skipped(csv_path, "row(s) without clip_id or with an mp3_path outside 0/ ... f/", bad)
    report_skipped(csv_path, f"clip(s) with none of the top-{n_top} tags", untagged)
    report_skipped(audio_root, "clip(s) whose MP3 is missing or empty", missing)
    return require_rows(rows, "MagnaTagATune", root, LAYOUT, hint=" with audio and a top tag")
