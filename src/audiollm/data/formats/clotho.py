"""Clotho v2 → captioning rows with five reference captions each.

Layout: ``ROOT/clotho_captions_{development,validation,evaluation}.csv`` (header
``file_name,caption_1,...,caption_5``; captions are quoted when they hold commas, with
doubled quotes inside) — also found under ``ROOT/clotho_csv_files/`` — and the audio of each
split in ``ROOT/<split>/`` (what the ``clotho_audio_<split>.7z`` archives extract to), or
``ROOT/clotho_audio_<split>/`` (also the misspelt ``clotho_audio_evalution/``, after the
upstream archive's name), ``ROOT/audio/<split>/`` or ``ROOT/clotho_audio_files/<split>/``
(the aac-datasets layout, whose ROOT may be the folder holding ``CLOTHO_v2.1/``).
File names contain spaces, commas and non-ASCII letters, so they are taken verbatim from
the CSV. Upstream: https://zenodo.org/records/4783391 (Drossos et al. 2020, v2.1); the
audio and metadata come from Freesound, each clip under its own Creative Commons licence
(listed in the metadata CSVs); the captions under the Tampere University licence stated on
the Zenodo record.

Splits: development → train, validation → valid, evaluation → test (Clotho v1 has no
validation split; its rows are simply absent). ``answer`` is ``caption_1``, ``answers`` all
five: the caption task scores against every reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiollm.data.formats.base import register_format
from audiollm.data.formats.common import (
    dataset_dir,
    first_dir,
    first_file,
    read_csv,
    report_skipped,
    require_rows,
)
from audiollm.errors import AudioLLMError

LAYOUT = ("ROOT/clotho_captions_{development,validation,evaluation}.csv + ROOT/{development,validation,evaluation}/"
          "<file_name>.wav")
SPLIT_OF = {"development": "train", "validation": "valid", "evaluation": "test"}
CAPTION_COLUMNS = tuple(f"caption_{i}" for i in range(1, 6))


def audio_dir(root: Path, subset: str) -> Path | None:
    names = [subset, f"clotho_audio_{subset}", f"audio/{subset}", f"clotho_audio_files/{subset}"]
    if subset == "evaluation":
        names += ["evalution", "clotho_audio_evalution"]
    return first_dir(root, names)


@register_format("clotho")
def clotho_rows(root: Path) -> list[dict[str, Any]]:
    """One ``caption`` row per clip, with ``answers`` (all non-empty captions, in CSV order),
    ``file_name`` and ``subset``."""
    root = dataset_dir(root, "Clotho", LAYOUT)
    if (root / "CLOTHO_v2.1").is_dir() and not list(root.glob("clotho_captions_*.csv")):
        root = root / "CLOTHO_v2.1"
    rows: list[dict[str, Any]] = []
    csv_found = False
    for subset, split in SPLIT_OF.items():
        name = f"clotho_captions_{subset}.csv"
        csv_path = first_file(root, (name, f"clotho_csv_files/{name}"))
        if csv_path is None:
            continue
        csv_found = True
        folder = audio_dir(root, subset)
        missing: list[str] = []
        no_caption: list[str] = []
        for rec in read_csv(csv_path, ("file_name",) + CAPTION_COLUMNS):
            file_name = (rec["file_name"] or "").strip()
            captions = [(rec.get(c) or "").strip() for c in CAPTION_COLUMNS]
            captions = [" ".join(c.split()) for c in captions if c]
            if not file_name or not captions:
                no_caption.append(file_name or "(empty file_name)")
                continue
            audio = folder / file_name if folder is not None else None
            if audio is None or not audio.is_file():
                missing.append(file_name)
                continue
            rows.append({
                "id": f"clotho-{subset}-{Path(file_name).stem}",
                "task": "caption",
                "split": split,
                "subset": subset,
                "audio": str(audio),
                "answer": captions[0],
                "answers": captions,
                "file_name": file_name,
            })
        report_skipped(csv_path, "row(s) without a file name or caption", no_caption)
        where = folder if folder is not None else f"{root} (no {subset}/ audio folder)"
        report_skipped(where, f"{subset} clip(s) whose audio file is missing", missing)
    if not csv_found:
        raise AudioLLMError(f"{root}: no clotho_captions_<split>.csv found; expected the layout {LAYOUT}")
    return require_rows(rows, "Clotho", root, LAYOUT, hint=" with audio")
