"""GTZAN music genres → single-label tagging rows (answer = the genre), or caption → audio rows.

Layout: ``ROOT/genres/<genre>/<genre>.000NN.wav`` — 10 genres × 100 clips of 30 s, 22.05 kHz
mono. Also accepted: ``genres_original/`` (the Kaggle re-upload, also under ``Data/``), a
ROOT that is the genres folder itself, and the original release's ``.au`` files
(libsndfile reads Sun/NeXT audio). Upstream: http://marsyas.info/downloads/datasets.html
(Tzanetakis & Cook 2002). Licence: none stated; the clips are copyrighted recordings
distributed for research use only.

Splits (every row carries ``split``), chosen with the ``scheme`` option:

* ``filtered`` (default): the fault-filtered, artist-disjoint split of Kereliuk, Sturm &
  Larsen ("Deep Learning and Music Adversaries", IEEE TMM 2015), built on Sturm's analysis
  of GTZAN's faults (repeated clips, mislabellings, distortions). 443 train / 197 valid /
  290 test clips; the 70 faulty clips are in no split and are left out. The file lists are
  those published with torchaudio's ``GTZAN`` loader (taken from
  https://github.com/jordipons/sklearn-audio-transfer-learning); they are stored below as
  track-number ranges per genre.
* ``folds``: all 1000 clips by track number — ``NN % 10 == 8`` → valid, ``== 9`` → test,
  the rest → train. Simple and complete, but GTZAN orders clips by artist, so artists are
  shared across splits and accuracy comes out optimistic; prefer ``filtered``.

``task=text_to_audio`` (option) makes genre → audio rows instead: ``{"task": "text_to_audio",
"id", "audio", "caption": a short caption naming the genre ("A jazz recording.", one of
`CAPTION_TEMPLATES` chosen by a stable hash of the clip, the same on every run), "genre",
"duration", "sample_rate", "split"}``.

Quirk: one clip of the Kaggle copy (``jazz.00054.wav``) is not a readable audio file;
unreadable files are skipped with one warning that counts them.
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
    report_skipped,
    require_rows,
)
from audiollm.errors import AudioLLMError

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
LAYOUT = "ROOT/genres/<genre>/<genre>.000NN.wav (or genres_original/, or .au files)"
QUESTION = "What is the genre of this music?"
NAME_PATTERN = re.compile(r"^(?P<genre>[a-z]+)\.(?P<num>[0-9]{5})\.(?:wav|au)$", re.IGNORECASE)
SCHEMES = ("filtered", "folds")
TASKS = ("tagging", "text_to_audio")
# How a caption names each genre, and the caption paraphrases (text_to_audio rows).
GENRE_NAMES = {"hiphop": "hip-hop"}
CAPTION_TEMPLATES = (
    "A {genre} recording.",
    "A {genre} track.",
    "A piece of {genre} music.",
    "{Genre} music.",
    "A recording of {genre} music.",
    "Music in the {genre} style.",
)

# Fault-filtered split (see the module docstring): track numbers per genre, "a-b" inclusive.
FILTERED_SPLIT: dict[str, dict[str, str]] = {
    "train": {
        "blues": "29-49 73-97",
        "classical": "30-33 43-48 50-67 80-99",
        "country": "19-26 28-29 65-99",
        "disco": "5 15-20 22-37 39-45 47 49 53-54 56-57 59 61 70 73-74 89",
        "hiphop": "2-25 28-29 31-38 41-42 55-61 77-80",
        "jazz": "0-1 11-24 41 47-72",
        "metal": "2-3 5 21 24 35 46-57 59-66 69 71-72 79-80 84 86 89-99",
        "pop": "2-9 11-12 16-20 23-29 31-36 38-42 44 46 49-50 80 97-99",
        "reggae": "0-2 4 6 9 11-12 14-32 42-45 49-51 54-60 63 69",
        "rock": "0-9 16-26 57-70 91-99",
    },
    "valid": {
        "blues": "0-11 50-60",
        "classical": "0-10 68-76",
        "country": "0-7 9-18 27 41-42 45 49",
        "disco": "0 2-4 6-14 46 48 52 67-68 72 75 90 95",
        "hiphop": "81-98",
        "jazz": "2-10 25-32",
        "metal": "0-1 6-11 16-20 36-37 68 76-77 81-82",
        "pop": "10 53 55 58-62 81 83-86",
        "reggae": "61-62 70 72 74 76-78 85 92-99",
        "rock": "38 49-56 71-85",
    },
    "test": {
        "blues": "12-28 61-72 98-99",
        "classical": "11-29 34-41 49 77-79",
        "country": "30-40 43-44 46-48 50-51 53-64",
        "disco": "1 21 58 62-66 69 76-88 91-94 96-97 99",
        "hiphop": "0 26-27 30 40 43-45 51-54 62-75 99",
        "jazz": "73-99",
        "metal": "12-15 22-23 25-33 38-39 67 70 73-75 78 83 85 87-88",
        "pop": "0-1 13-14 43 63-66 69-79 82 88-96",
        "reggae": "34-40 46-48 52-53 64-68 71 79 82-84 87-90",
        "rock": "10-15 27-37 39-48 86-90",
    },
}


def expand_ranges(spec: str) -> list[int]:
    """``"0-2 5"`` → ``[0, 1, 2, 5]``."""
    out: list[int] = []
    for part in spec.split():
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def filtered_split_table() -> dict[str, str]:
    """``"blues.00029"`` → ``"train"`` for the 930 clips of the fault-filtered split."""
    table: dict[str, str] = {}
    for split, genres in FILTERED_SPLIT.items():
        for genre, spec in genres.items():
            for num in expand_ranges(spec):
                table[f"{genre}.{num:05d}"] = split
    return table


def genres_dir(root: Path) -> Path:
    """The folder that holds the ten genre folders."""
    for candidate in (root / "genres", root / "genres_original", root / "Data" / "genres_original", root):
        if sum((candidate / g).is_dir() for g in GENRES) > 0:
            return candidate
    raise AudioLLMError(f"{root}: no GTZAN genre folders (blues/, classical/, ...) found; expected the layout {LAYOUT}")


def genre_caption(genre: str, clip: str) -> str:
    """A short caption naming ``genre``: one of `CAPTION_TEMPLATES`, chosen by a stable hash of
    ``clip`` (``"jazz.00054"``)."""
    name = GENRE_NAMES.get(genre, genre)
    template = CAPTION_TEMPLATES[bucket(f"caption:{clip}") % len(CAPTION_TEMPLATES)]
    return template.format(genre=name, Genre=name[0].upper() + name[1:])


def fold_split(num: int) -> str:
    return "valid" if num % 10 == 8 else "test" if num % 10 == 9 else "train"


@register_format("gtzan")
def gtzan_rows(root: Path, *, scheme: str = "filtered", task: str = "tagging") -> list[dict[str, Any]]:
    """One ``tagging`` row per clip: answer = the genre; labels ``genre``, ``duration``,
    ``sample_rate``; a fixed genre ``question``. With ``task=text_to_audio``, one
    ``text_to_audio`` row per clip instead: a genre ``caption`` → the clip. Sorted by genre
    and track number."""
    base = genres_dir(dataset_dir(root, "GTZAN", LAYOUT))
    scheme = as_choice("gtzan", "scheme", scheme, SCHEMES)
    task = as_choice("gtzan", "task", task, TASKS)
    table = filtered_split_table() if scheme == "filtered" else {}

    rows: list[dict[str, Any]] = []
    bad_names: list[str] = []
    unreadable: list[str] = []
    for genre in GENRES:
        folder = base / genre
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            m = NAME_PATTERN.match(path.name)
            if m is None or m["genre"].lower() != genre:
                if path.suffix.lower() in (".wav", ".au"):
                    bad_names.append(f"{genre}/{path.name}")
                continue
            clip = f"{genre}.{m['num']}"
            split = table.get(clip) if scheme == "filtered" else fold_split(int(m["num"]))
            if split is None:  # one of the 70 faulty clips the filtered split leaves out
                continue
            try:
                info = sf.info(str(path))
            except (sf.LibsndfileError, RuntimeError):
                unreadable.append(f"{genre}/{path.name}")
                continue
            if task == "text_to_audio":
                rows.append({
                    "task": "text_to_audio",
                    "id": f"gtzan-{clip}",
                    "audio": str(path.resolve()),
                    "caption": genre_caption(genre, clip),
                    "genre": genre,
                    "duration": round(info.frames / info.samplerate, 4),
                    "sample_rate": info.samplerate,
                    "split": split,
                })
                continue
            rows.append({
                "id": f"gtzan-{clip}",
                "task": "tagging",
                "split": split,
                "audio": str(path.resolve()),
                "question": QUESTION,
                "answer": genre,
                "genre": genre,
                "duration": round(info.frames / info.samplerate, 4),
                "sample_rate": info.samplerate,
            })
    report_skipped(base, "file(s) not named <genre>/<genre>.000NN.wav", bad_names)
    report_skipped(base, "file(s) that could not be read as audio", unreadable)
    return require_rows(rows, "GTZAN", base, LAYOUT)
