"""Atomic writes: a file or directory is written under a temporary name beside its
destination and renamed into place only when complete, so a crash or Ctrl-C never leaves a
half-written model, checkpoint, manifest or result, and an old one is replaced only by a
finished one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp dir; on success it atomically becomes ``final`` (replacing any old one)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    commit_dir(tmp, final)


def commit_dir(tmp: Path, final: Path) -> None:
    """Move finished ``tmp`` to ``final``; an existing ``final`` is swapped out, then removed."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)



@contextlib.contextmanager
def atomic_file(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; once the block has written it, it replaces
    ``final`` in one rename (readable by everyone: 0644, like any file we write). On an error
    the temporary file is removed and ``final`` is left as it was."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically (see :func:`atomic_file`)."""
    with atomic_file(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def atomic_write_text(final: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``final`` atomically (see :func:`atomic_file`)."""
    return atomic_write_bytes(final, text.encode("utf-8"))
