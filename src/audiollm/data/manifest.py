"""Manifests: JSON Lines, one example per line (the unifying format of the project).

A row is ``{"audio": path, "task": name, "answer": text, "question"?: text, ...labels}``; a row of
a text-only task (``Task.takes_audio`` False, e.g. text_to_midi) has no ``audio``.
Relative audio (and ``midi``) paths resolve against the manifest's folder, so a corpus folder can be moved
as a whole. Reading reports the line number of anything malformed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from audiollm.errors import ConfigError, ManifestError
from audiollm.files import atomic_write_text
from audiollm.tasks import TASKS, get_task

REQUIRED_KEYS = ("task",)
PATH_KEYS = ("audio", "midi")  # file paths, resolved against the manifest's folder


def _needs_answer(row: dict) -> bool:
    """Text tasks need an ``answer``; a registered task whose target comes from other keys
    (transcription: ``notes`` or ``midi``) says so by leaving it out of ``required_keys``."""
    task = TASKS.get(row.get("task")) if isinstance(row.get("task"), str) else None
    return task is None or "answer" in task.required_keys


def _needs_audio(row: dict) -> bool:
    """Every row has audio except those of a registered text-only task (text_to_midi)."""
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
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{p}: not a text file; a manifest is JSON lines (.jsonl)") from None
    for lineno, line in enumerate(text.split("\n"), 1):
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
    lines = [json.dumps({k: v for k, v in row.items() if not k.startswith("_")}, ensure_ascii=False) + "\n"
             for row in rows]
    return atomic_write_text(path, "".join(lines))


def load_rows(path: str | Sequence[str], split: str = "", tasks: Sequence[str] = ()) -> list[dict]:
    """A manifest's usable rows, optionally only those of ``split`` and of ``tasks``; a list of
    manifests gives their rows one after the other."""
    if not isinstance(path, str):
        if not path:
            raise ConfigError("an empty list of manifests")
        return [row for p in path for row in load_rows(p, split, tasks)]
    rows = read_manifest(path)
    if split:
        rows = [r for r in rows if r.get("split") == split]
        if not rows:
            raise ConfigError(f"{path}: no rows with split={split!r}")
    if tasks:
        wanted = set(tasks)
        unknown = sorted(wanted - set(TASKS))
        if unknown:
            raise ConfigError(f"unknown task {unknown[0]!r}; registered tasks: {', '.join(sorted(TASKS))}")
        rows = [r for r in rows if r.get("task") in wanted]
        if not rows:
            raise ConfigError(f"{path}: no rows of task(s) {', '.join(sorted(wanted))}")
    unknown = sorted({r["task"] for r in rows} - set(TASKS))
    if unknown:
        raise ConfigError(f"{path}: unknown task {unknown[0]!r}; registered tasks: {', '.join(sorted(TASKS))}")
    # Each task may drop rows it cannot use (e.g. transcription rows with a corrupt MIDI file).
    kept = {id(r) for name in sorted({r["task"] for r in rows})
            for r in get_task(name).prepare_rows([r for r in rows if r["task"] == name], path)}
    rows = [r for r in rows if id(r) in kept]
    if not rows:
        raise ConfigError(f"{path}: no usable rows left")
    return rows
