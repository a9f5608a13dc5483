"""Manifests: JSON Lines, one example per line (the unifying format of the project).

A row is ``{"audio": path, "task": name, "answer": text, "question"?: text, ...labels}``; a row of
a text-only task (``Task.takes_audio`` False, e.g. text_to_midi) has no ``audio``.
Relative audio (and ``midi``) paths resolve against the manifest's folder, so a corpus folder can be moved
as a whole. Reading reports the line number of anything malformed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

from audiollm.errors import ManifestError

REQUIRED_KEYS = ("task",)
PATH_KEYS = ("audio", "midi")  # file paths, resolved against the manifest's folder


def _needs_answer(row: dict) -> bool:
    """Text tasks need an ``answer``; a registered task whose target comes from other keys
    (transcription: ``notes`` or ``midi``) says so by leaving it out of ``required_keys``."""
    from audiollm.tasks import TASKS

    task = TASKS.get(row.get("task")) if isinstance(row.get("task"), str) else None
    return task is None or "answer" in task.required_keys


def _needs_audio(row: dict) -> bool:
    """Every row has audio except those of a registered text-only task (text_to_midi)."""
    from audiollm.tasks import TASKS

    task = TASKS.get(row.get("task")) if isinstance(row.get("task"), str) else None
    return task is None or task.takes_audio


def read_manifest(path: str | os.PathLike, *, require_answer: bool = True) -> list[dict]:
    """Parse a manifest; audio paths come back absolute. Errors name file and line."""
    p = Path(path)
    if not p.exists():
        raise ManifestError(f"{p}: no such manifest")
    if p.is_dir():
        raise ManifestError(f"{p}: is a directory, expected a .jsonl manifest")
    base = p.resolve().parent
    rows: list[dict] = []
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{p}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ManifestError(f"{p}:{lineno}: expected a JSON object, got {type(row).__name__}")
            needed = (("audio",) if _needs_audio(row) else ()) + REQUIRED_KEYS
            needed += ("answer",) if require_answer and _needs_answer(row) else ()
            missing = [k for k in needed if k not in row]
            if missing:
                raise ManifestError(f"{p}:{lineno}: missing key(s) {', '.join(missing)}")
            for key in PATH_KEYS:
                if row.get(key) not in (None, ""):
                    value = Path(str(row[key]))
                    row[key] = str(value if value.is_absolute() else base / value)
            row.setdefault("_line", lineno)
            rows.append(row)
    if not rows:
        raise ManifestError(f"{p}: manifest has no examples")
    return rows


def write_manifest(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write rows as JSON Lines atomically (temp file + rename). Private keys (``_*``) are dropped."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                clean = {k: v for k, v in row.items() if not k.startswith("_")}
                f.write(json.dumps(clean, ensure_ascii=False) + "\n")
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p
