"""Small helpers shared by the dataset readers.

Every reader meets the same problems: a root that is not the dataset, a CSV whose header is
not the one it should be, audio files that were never downloaded, boolean options that
arrive from the CLI as strings. The answers live here once, so that each format module
reads as the description of its layout.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from audiollm.errors import AudioLLMError

#: Audio containers soundfile (libsndfile >= 1.1) reads; what the readers look for on disk.
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".au")


def dataset_dir(root: str | os.PathLike, name: str, layout: str) -> Path:
    """``root`` as an absolute folder; a one-line error naming the expected layout otherwise."""
    path = Path(root).expanduser()
    if not path.exists():
        raise AudioLLMError(f"{path}: no such folder (expected the {name} layout {layout})")
    if not path.is_dir():
        raise AudioLLMError(f"{path}: is a file, expected a folder in the {name} layout {layout}")
    return path.resolve()


def first_dir(root: Path, candidates: Iterable[str]) -> Path | None:
    """The first ``root / candidate`` that is a folder, or None."""
    for rel in candidates:
        p = root / rel
        if p.is_dir():
            return p
    return None


def first_file(root: Path, candidates: Iterable[str]) -> Path | None:
    """The first ``root / candidate`` that is a file, or None."""
    for rel in candidates:
        p = root / rel
        if p.is_file():
            return p
    return None


def read_text(path: Path) -> str:
    """A text file as UTF-8 (a BOM is dropped); files that are not valid UTF-8 — some
    dataset CSVs were saved as Latin-1 — are read as Latin-1 instead of failing."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_csv(path: Path, required: Sequence[str], *, delimiter: str = ",") -> list[dict[str, str]]:
    """Rows of a CSV with a header line, as dicts. Quoted fields may hold the delimiter,
    quotes (doubled) and newlines. A header that lacks a ``required`` column is a one-line
    error that shows the expected header."""
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            sep = "TAB" if delimiter == "\t" else repr(delimiter)
            raise AudioLLMError(f"{path}: missing column(s) {', '.join(missing)}; expected a {sep}-separated "
                                f"header with {', '.join(required)}")
        # Surplus fields (DictReader files them under the key None) are dropped; missing
        # trailing fields come back as None, which the readers treat as empty.
        return [{k: v for k, v in r.items() if k is not None} for r in reader]
    except csv.Error as e:
        raise AudioLLMError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None


def audio_index(folder: Path) -> dict[str, Path]:
    """File stem → path for every audio file under ``folder`` (recursively; the first path
    in sorted order wins when two folders hold the same stem)."""
    index: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext.lower() in AUDIO_EXTENSIONS and stem not in index:
                index[stem] = Path(dirpath, name)
    return index


def usable_audio(path: Path) -> bool:
    """The file exists and is not empty (some datasets ship zero-byte clips)."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def report_skipped(where: Path | str, what: str, examples: Sequence[str], *, verb: str = "skipped") -> None:
    """One warning: how many entries were skipped (or otherwise treated), why, and up to
    three of them."""
    if examples:
        n = len(examples)
        shown = ", ".join(str(e) for e in examples[:3]) + (", ..." if n > 3 else "")
        warnings.warn(f"{where}: {verb} {n} {what}: {shown}", stacklevel=3)


def require_rows(rows: list[dict[str, Any]], name: str, root: Path, layout: str, hint: str = "") -> list[dict[str, Any]]:
    """``rows`` unless empty; empty is a one-line error (a manifest with no rows is useless)."""
    if not rows:
        raise AudioLLMError(f"{root}: no {name} examples found{hint}; expected the layout {layout}")
    return rows


def as_bool(fmt: str, key: str, value: Any) -> bool:
    """An option value as a boolean: bools pass; "1/true/yes/on" and "0/false/no/off" (any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise AudioLLMError(f"{fmt} option {key}={value!r}; expected true or false")


def as_choice(fmt: str, key: str, value: Any, choices: Sequence[str]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise AudioLLMError(f"{fmt} option {key}={value!r}; valid: {', '.join(choices)}")
    return text


def as_list(value: Any) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` → ``["a", "b"]`` (empty items dropped)."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(x).strip() for x in items if str(x).strip()]


def bucket(key: str) -> int:
    """A stable pseudo-random number in [0, 100) for ``key`` (CRC-32, the same on every
    machine and Python version), used for documented hash splits that do not move when
    other files are added or removed."""
    return zlib.crc32(key.encode("utf-8")) % 100


def find_audio(index: dict[str, Path], stems: Iterable[str]) -> Path | None:
    """The first of ``stems`` present (and non-empty) in an `audio_index`, or None."""
    for stem in stems:
        path = index.get(stem)
        if path is not None and usable_audio(path):
            return path
    return None


def audio_folder(root: Path, option: str, fmt: str, defaults: Sequence[str] = ("audio",)) -> Path:
    """The folder named by an ``audio_dir`` option (relative to ``root``), else the first of
    ``defaults`` under ``root`` that exists, else ``root`` itself."""
    if option:
        folder = Path(option).expanduser()
        folder = folder if folder.is_absolute() else root / folder
        if not folder.is_dir():
            raise AudioLLMError(f"{fmt} option audio_dir={option!r}: {folder} is not a folder")
        return folder.resolve()
    return (first_dir(root, defaults) or root).resolve()
