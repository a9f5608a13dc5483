"""A persisted, updatable index of audio embeddings for text→audio and audio→audio search.

One file (any name; ``.npz`` content), written atomically (temp file + rename), so an
interrupted run never leaves a broken index and an existing one is replaced only by a
complete one. It holds two arrays:

    embeddings  float32 (N, embed_dim), L2-normalised, row i = files[i]
    meta        JSON (as uint8 bytes): {"format": "audiollm-embedding-index", "version": 1,
                "model_dir", "model_sha256", "embed_dim", "root",
                "files": [{"path": relative to root, "size", "mtime_ns"}, ...]}

Updating re-embeds only files that are new or changed (size or mtime), keeps the rest, and
drops files that disappeared. An index built with another model (weights hash) is refused,
naming both models; an unreadable index is an error and is left untouched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from audiollm.audio import load_audio
from audiollm.errors import AudioLLMError
from audiollm.files import atomic_write_bytes
from audiollm.inference.embedding import (
    embed_files,
    embed_texts,
    embed_waveforms,
    embeddings_to_numpy,
)
from audiollm.models.hub import load, load_model, resolve_device, resolve_dtype

FORMAT = "audiollm-embedding-index"
VERSION = 1
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


def model_fingerprint(model_dir: str | os.PathLike) -> str:
    """sha256 of the model's weights: the identity an index is tied to."""
    weights = Path(model_dir) / "model.safetensors"
    if not weights.is_file():
        raise AudioLLMError(f"{model_dir}: missing model.safetensors (not a saved model directory?)")
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_audio(root: str | os.PathLike) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise AudioLLMError(f"{root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise AudioLLMError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def load_index(path: str | os.PathLike) -> tuple[dict[str, Any], np.ndarray]:
    """(meta, embeddings); a missing or corrupted file is a one-line error."""
    p = Path(path)
    if not p.is_file():
        raise AudioLLMError(f"{p}: no such index")
    try:
        with np.load(p, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            emb = np.asarray(data["embeddings"], dtype=np.float32)
    except Exception as e:  # zipfile / numpy / JSON errors all mean "not a readable index"
        raise AudioLLMError(f"{p}: not a readable embedding index ({type(e).__name__}); rebuild it with `audiollm index`") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise AudioLLMError(f"{p}: not an audiollm embedding index")
    if meta.get("version") != VERSION:
        raise AudioLLMError(f"{p}: index version {meta.get('version')} is not supported (expected {VERSION})")
    if emb.ndim != 2 or emb.shape[0] != len(meta.get("files", [])) or emb.shape[1] != meta.get("embed_dim"):
        raise AudioLLMError(f"{p}: index is inconsistent ({emb.shape[0]} embeddings for {len(meta.get('files', []))} files)")
    return meta, emb


def save_index(path: str | os.PathLike, meta: dict[str, Any], embeddings: np.ndarray) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, embeddings=embeddings.astype(np.float32),
             meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8))
    return atomic_write_bytes(p, buf.getvalue())


def build_index(model_dir: str | os.PathLike, audio_dir: str | os.PathLike, out: str | os.PathLike, *,
                batch_size: int = 16, max_seconds: float = 30.0, progress: bool = True,
                device: str = "cpu", dtype: str | None = None) -> dict[str, int]:
    """Create or update ``out`` for every audio file under ``audio_dir`` with the MuLaN model
    saved in ``model_dir`` (loaded on ``device`` in ``dtype`` only when there is something to
    embed; both are checked first). Returns counts."""
    resolve_device(device), resolve_dtype(dtype)
    model_dir, root = Path(model_dir).resolve(), Path(audio_dir).resolve()
    sha = model_fingerprint(model_dir)
    old_meta, old_emb = ({}, None)
    if Path(out).exists():
        old_meta, old_emb = load_index(out)
        if old_meta["model_sha256"] != sha:
            raise AudioLLMError(
                f"{out} was built with model {old_meta['model_dir']} (weights {old_meta['model_sha256'][:12]}), "
                f"not {model_dir} (weights {sha[:12]}); choose another --out for a new index"
            )
        if Path(old_meta["root"]) != root:
            raise AudioLLMError(f"{out} indexes {old_meta['root']}, not {root}; choose another --out")
    files = list_audio(root)
    known = {f["path"]: (i, f) for i, f in enumerate(old_meta.get("files", []))}
    entries, rows, todo = [], [], []
    kept = changed = 0
    for p in files:
        st = p.stat()
        rel = str(p.relative_to(root))
        entry = {"path": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        old = known.get(rel)
        if old is not None and old[1]["size"] == entry["size"] and old[1]["mtime_ns"] == entry["mtime_ns"]:
            rows.append(old_emb[old[0]])
            kept += 1
        else:
            changed += old is not None
            rows.append(None)
            todo.append(len(entries))
        entries.append(entry)
    dim = None
    if todo:
        model = load_model(model_dir, device=device, dtype=dtype, model_type="mulan")
        new = embeddings_to_numpy(embed_files(model, [root / entries[i]["path"] for i in todo], batch_size=batch_size,
                                              max_seconds=max_seconds, progress=progress))
        for i, e in zip(todo, new):
            rows[i] = e
        dim = new.shape[1]
    dim = dim or int(old_meta["embed_dim"])
    meta = {"format": FORMAT, "version": VERSION, "model_dir": str(model_dir), "model_sha256": sha,
            "embed_dim": dim, "root": str(root), "files": entries}
    save_index(out, meta, np.stack(rows).astype(np.float32))
    removed = len(known) - kept - changed
    return {"files": len(entries), "embedded": len(todo), "kept": kept, "changed": changed, "removed": removed}


def search_index(index: str | os.PathLike, *, text: str | None = None, audio: str | os.PathLike | None = None,
                 k: int = 10, device: str = "cpu", dtype: str | None = None) -> list[tuple[str, float]]:
    """The ``k`` indexed files most similar to ``text`` or to the clip ``audio``: (path, cosine)."""
    resolve_device(device), resolve_dtype(dtype)
    if (text is None) == (audio is None):
        raise AudioLLMError("give a text query or --audio FILE (one of them)")
    if k < 1:
        raise AudioLLMError(f"-k must be >= 1, got {k}")
    meta, emb = load_index(index)
    model_dir = Path(meta["model_dir"])
    if not model_dir.is_dir():
        raise AudioLLMError(f"{index}: its model {model_dir} is gone; rebuild the index with `audiollm index`")
    if model_fingerprint(model_dir) != meta["model_sha256"]:
        raise AudioLLMError(f"{index}: model {model_dir} changed since the index was built; rebuild the index")
    model, tokenizer = load(model_dir, device=device, dtype=dtype, model_type="mulan")
    if text is not None:
        q = embed_texts(model, tokenizer, [text])
    else:
        q = embed_waveforms(model, [load_audio(audio)], names=[str(audio)])
    sims = emb @ q[0].numpy()
    order = np.argsort(-sims, kind="stable")[:k]
    root = Path(meta["root"])
    return [(str(root / meta["files"][i]["path"]), float(sims[i])) for i in order]
