"""Frozen-encoder feature cache: run a pretrained audio encoder once, train from disk.

A frozen encoder (Whisper, HuBERT, MERT, …) computes the same states for a clip at every
step; recomputing them dominates a training step (Whisper encodes a full 30 s window even
for a 2 s clip). ``audiollm features CONFIG MANIFEST… --out DIR`` stores, per clip, exactly
what the encoder's `from_states` needs — the chosen hidden layer, or every hidden state when
the model learns a layer weighting — and ``data.feature_cache: DIR`` makes training read them
instead of audio. The model is unchanged: `AudioLLM.encode_frames` takes cached states
(B, F', K, D) in place of waveforms, and a saved model still runs on raw audio.

Layout::

    DIR/features.json                 signature of the encoder setting + storage dtype
    DIR/clips/ab/abcdef….safetensors  one clip: "states" (F', K, D); metadata: source path,
                                      its size and mtime (a changed file is reported stale),
                                      its duration in seconds

Each clip file is written atomically, so an interrupted run leaves only whole files and a
rerun computes just the missing clips. Waveform augmentation cannot apply to cached states
(training with a cache requires ``data.augment: false``); long clips are cropped in frames,
for encoders whose frames follow time uniformly (``frames_follow_time``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors import safe_open
from safetensors.torch import save
from tqdm.auto import tqdm

from audiollm.audio import SAMPLE_RATE, audio_info, load_audio, pad_batch
from audiollm.errors import AudioLLMError, ConfigError
from audiollm.models.hub import DTYPES, resolve_device, resolve_dtype
from audiollm.models.registry import get_entry

INDEX_NAME = "features.json"
FORMAT_VERSION = 1
STORAGE = {**DTYPES, "int32": torch.int32}  # storage dtypes: floats for encoder states, int32 for codec codes


def cache_signature(model_config) -> dict[str, Any]:
    """What makes two caches interchangeable: the encoder kind, its checkpoint, and which
    hidden states it keeps (an `AudioLLMConfig`). A cache is only used when this matches."""
    enc = model_config.audio_encoder_config
    fields = dataclasses.asdict(enc)
    # The encoder config records a local checkpoint by its absolute path (hf_common.local_or_hub).
    sig = {"audio_encoder": model_config.audio_encoder, "model": str(fields.get("model", "")),
           "layer_weighting": bool(fields.get("layer_weighting", False))}
    if not sig["layer_weighting"]:
        sig["layer"] = int(fields.get("layer", -1))
    return sig


def check_cacheable(model_config) -> None:
    """A cache only makes sense for a frozen pretrained encoder: ours trains with the model."""
    module_cls = get_entry("audio_encoder", model_config.audio_encoder).module_cls
    if not callable(getattr(module_cls, "cacheable_states", None)):
        raise ConfigError(f"feature cache: audio encoder {model_config.audio_encoder!r} is trained with the model; "
                          f"only frozen pretrained encoders (whisper, hubert, wav2vec2, mert, ast, clap) can be cached")
    if not getattr(model_config.audio_encoder_config, "freeze", False):
        raise ConfigError("feature cache: audio_encoder_config.freeze is false; a tuned encoder's features change "
                          "every step, so they cannot be cached")


def _key(audio_path: str | os.PathLike) -> str:
    return hashlib.sha1(str(Path(audio_path).resolve()).encode()).hexdigest()


def _stamp(path: Path) -> tuple[str, str]:
    st = path.stat()
    return str(st.st_size), str(st.st_mtime_ns)


@dataclass
class CachedClip:
    states: torch.Tensor  # (F', K, D) float32 encoder states, or (K, F) int64 codec codes
    seconds: float  # duration of the clip the states came from


class FeatureCache:
    """A cache directory: its signature, and clip lookup by audio path."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        index = self.directory / INDEX_NAME
        if not index.is_file():
            raise AudioLLMError(f"{self.directory}: not a feature cache (no {INDEX_NAME}); "
                                f"make one with `audiollm features CONFIG MANIFEST --out {self.directory}`")
        try:
            meta = json.loads(index.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise AudioLLMError(f"{index}: unreadable ({e})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise AudioLLMError(f"{index}: feature cache format {meta.get('format_version')!r}, "
                                f"this version reads {FORMAT_VERSION}; rebuild it")
        self.signature: dict[str, Any] = meta["signature"]
        self.dtype: str = meta["dtype"]
        self.frames_follow_time: bool = bool(meta["frames_follow_time"])

    @classmethod
    def create(cls, directory: str | os.PathLike, signature: dict, dtype: str, frames_follow_time: bool) -> "FeatureCache":
        """Open ``directory`` for writing with this signature (new, or an existing cache with the same one)."""
        d = Path(directory)
        if (d / INDEX_NAME).is_file():
            cache = cls(d)
            if cache.signature != signature or cache.dtype != dtype:
                raise AudioLLMError(f"{d}: already holds features of {cache.signature} ({cache.dtype}), not "
                                    f"{signature} ({dtype}); use another --out directory")
            return cache
        if d.exists() and (not d.is_dir() or any(d.iterdir())):
            raise AudioLLMError(f"{d}: exists and is not a feature cache; use a new or empty --out directory")
        d.mkdir(parents=True, exist_ok=True)
        _atomic_write(d / INDEX_NAME, json.dumps({"format_version": FORMAT_VERSION, "signature": signature,
                                                 "dtype": dtype, "frames_follow_time": frames_follow_time},
                                                indent=2).encode())
        return cls(d)

    def check_matches(self, model_config) -> None:
        """ConfigError naming the differing settings when the model's encoder is not the cached one."""
        want = cache_signature(model_config)
        if want != self.signature:
            diff = ", ".join(f"{k}: cache {self.signature.get(k)!r} vs config {want.get(k)!r}"
                             for k in sorted(set(want) | set(self.signature)) if want.get(k) != self.signature.get(k))
            raise ConfigError(f"data.feature_cache {self.directory} was made for another encoder setting ({diff}); "
                              f"rebuild it with `audiollm features`")

    def path_of(self, audio_path: str | os.PathLike) -> Path:
        k = _key(audio_path)
        return self.directory / "clips" / k[:2] / f"{k}.safetensors"

    def is_fresh(self, audio_path: str | os.PathLike) -> bool:
        """True when the clip is cached and its audio file has not changed since."""
        p = self.path_of(audio_path)
        if not p.is_file():
            return False
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        return (meta.get("size"), meta.get("mtime_ns")) == _stamp(Path(audio_path))

    def load(self, audio_path: str | os.PathLike) -> CachedClip:
        """The cached states of one clip; a clear error when absent or stale."""
        p = self.path_of(audio_path)
        if not p.is_file():
            raise AudioLLMError(f"{audio_path}: not in feature cache {self.directory}; run `audiollm features` "
                                f"on the manifest that lists it")
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            states = f.get_tensor("states")
        src = Path(audio_path)
        if src.exists() and (meta.get("size"), meta.get("mtime_ns")) != _stamp(src):
            raise AudioLLMError(f"{audio_path}: changed since it was cached in {self.directory}; "
                                f"rerun `audiollm features` to refresh it")
        return CachedClip(states.float() if states.is_floating_point() else states.long(), float(meta["seconds"]))

    def save(self, audio_path: str | os.PathLike, states: torch.Tensor, seconds: float) -> None:
        size, mtime = _stamp(Path(audio_path))
        meta = {"source": str(Path(audio_path).resolve()), "size": size, "mtime_ns": mtime, "seconds": repr(seconds)}
        data = save({"states": states.to(STORAGE[self.dtype]).contiguous()}, metadata=meta)
        p = self.path_of(audio_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(p, data)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class CacheReport:
    clips: int = 0  # distinct audio files listed
    computed: int = 0  # encoded in this run
    already_cached: int = 0  # fresh in the cache already
    missing: int = 0  # listed but not on disk (reported, not fatal)
    audio_seconds: float = 0.0  # audio encoded in this run
    first_missing: str = ""


@torch.inference_mode()
def build_feature_cache(
    model_config,
    audio_paths: Iterable[str],
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 8,
    storage: str = "float16",
    device: str = "cpu",
    dtype: str | None = None,
    progress: bool = True,
) -> CacheReport:
    """Encode every listed clip not yet cached with the model's (frozen) encoder on ``device``
    (computing in ``dtype``, default float32), storing the states as ``storage``."""
    check_cacheable(model_config)
    if storage not in DTYPES:
        raise ConfigError(f"storage dtype {storage!r}; allowed: {', '.join(DTYPES)}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    device, dtype = resolve_device(device), resolve_dtype(dtype)  # refused before anything loads
    module_cls = get_entry("audio_encoder", model_config.audio_encoder).module_cls
    encoder = module_cls(model_config.audio_encoder_config).to(device).eval()
    if dtype is not None:
        encoder = encoder.to(dtype)
    cache = FeatureCache.create(out_dir, cache_signature(model_config), storage, bool(module_cls.frames_follow_time))

    report = CacheReport()
    todo: list[tuple[float, str]] = []
    for path in dict.fromkeys(str(Path(p)) for p in audio_paths):  # distinct, in manifest order
        report.clips += 1
        if not Path(path).is_file():
            report.missing += 1
            report.first_missing = report.first_missing or path
        elif cache.is_fresh(path):
            report.already_cached += 1
        else:
            todo.append((audio_info(path).duration, path))
    todo.sort()  # similar durations share a batch: less padding
    with tqdm(total=len(todo), desc="features", unit="clip", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            paths = [p for _, p in todo[start : start + batch_size]]
            wavs = [load_audio(p, SAMPLE_RATE) for p in paths]
            audio, lengths = pad_batch(wavs)
            dev = next(encoder.parameters()).device
            states, frames = encoder.cacheable_states(audio.to(dev), lengths.to(dev))  # (B, F', K, D)
            for i, p in enumerate(paths):
                cache.save(p, states[i, : int(frames[i])].cpu(), wavs[i].shape[0] / SAMPLE_RATE)
                report.audio_seconds += wavs[i].shape[0] / SAMPLE_RATE
            report.computed += len(paths)
            bar.update(len(paths))
    return report


def frame_window(n_frames: int, total_samples: int, start: int, crop: int) -> tuple[int, int]:
    """Frames [a, b) of a clip's cached states that cover samples [start, start + crop)."""
    a = (start * n_frames) // total_samples
    b = -(-((start + crop) * n_frames) // total_samples)
    return a, max(a + 1, min(b, n_frames))
