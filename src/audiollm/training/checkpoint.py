"""Atomic directories and resumable training checkpoints.

A directory is written under a temporary name beside its destination and renamed into
place only when complete, so a crash or Ctrl-C never leaves a half-written model or
checkpoint, and an existing one is replaced only by a finished one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from audiollm.errors import AudioLLMError

CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)$")
STATE_FILE = "trainer_state.json"


def checkpoint_dir(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:07d}"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Completed checkpoints of a run, oldest first (temp dirs are ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and CHECKPOINT_PATTERN.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(CHECKPOINT_PATTERN.match(p.name).group(1)))


def resolve_resume(path: str | os.PathLike) -> Path:
    """``--resume`` accepts a run dir (latest checkpoint wins) or one checkpoint dir."""
    p = Path(path)
    if (p / STATE_FILE).is_file():
        return p
    found = list_checkpoints(p)
    if not found:
        raise AudioLLMError(f"{p}: no checkpoint to resume from (expected {STATE_FILE} or checkpoints/step-*/)")
    return found[-1]


def prune_checkpoints(run_dir: str | os.PathLike, keep: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def read_state(ckpt: Path) -> dict:
    try:
        return json.loads((ckpt / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AudioLLMError(f"{ckpt / STATE_FILE}: unreadable trainer state ({e})") from None


def write_state(directory: Path, state: dict) -> None:
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
