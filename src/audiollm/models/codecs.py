"""Neural audio codecs behind one interface, and `load_codec` for every kind of source.

A codec turns a waveform into K parallel streams of discrete codes at a frame rate and back::

    codes, frames = codec.encode(wav, lengths)        # wav (B, T) at codec.sample_rate
                                                      # -> codes (B, K, F) int64, frames (B,)
    wav, lengths = codec.decode(codes, frames)        # -> (B, T') float32, lengths (B,)

Every codec exposes ``sample_rate``, ``frame_rate`` (frames per second), ``num_codebooks`` (K,
the most it has), ``codebook_size`` and ``bitrate(k)`` (bits per second using the first ``k``
codebooks: frame_rate · k · log2(codebook_size)). ``encode(..., num_codebooks=k)`` keeps the
first ``k`` residual levels, so one model serves several bitrates. ``identity()`` is what a codes
file records so that codes are never decoded by another codec than the one that made them:
{"kind", "name", "sample_rate", "frame_rate", "num_codebooks", "codebook_size", "fingerprint"}
(``fingerprint``: a short hash of the weights; two codecs match when kind and fingerprint do).

Implementations, chosen by what ``source`` is:
* a model directory of model type "codec": ours, trained here (`models.codec.AudioCodec`);
* a transformers checkpoint (local directory or hub id) of EnCodec, DAC or Mimi
  (`models.pretrained.hf_codec`), registered in `CODECS` under its transformers model type.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import torch

from audiollm.errors import ModelDirError
from audiollm.models.hub import load_model, resolve_device
from audiollm.models.pretrained.hf_common import hub_errors_only, import_transformers

# transformers model type ("encodec", "dac", "mimi") → a loader: (path or hub id, device) -> Codec
CODECS: dict[str, Callable[[str, torch.device], "Codec"]] = {}


@runtime_checkable
class Codec(Protocol):
    sample_rate: int
    frame_rate: float
    num_codebooks: int
    codebook_size: int

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor | None = None, num_codebooks: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def decode(self, codes: torch.Tensor, frame_lengths: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def identity(self) -> dict[str, Any]: ...


def register_codec(model_type: str) -> Callable[[Callable], Callable]:
    """Decorator on a loader ``(source, device) -> Codec`` for transformers ``model_type``."""

    def decorator(loader: Callable) -> Callable:
        CODECS[model_type] = loader
        return loader

    return decorator


def bitrate(codec: Codec, num_codebooks: int | None = None) -> float:
    """Bits per second of ``codec`` using its first ``num_codebooks`` codebooks (all if None)."""
    k = codec.num_codebooks if num_codebooks is None else num_codebooks
    return codec.frame_rate * k * math.log2(codec.codebook_size)


def check_num_codebooks(codec: Codec, num_codebooks: int | None) -> int:
    """``num_codebooks`` (None = all) checked against what ``codec`` has."""
    if num_codebooks is None:
        return codec.num_codebooks
    if not isinstance(num_codebooks, int) or isinstance(num_codebooks, bool) or not 1 <= num_codebooks <= codec.num_codebooks:
        raise ModelDirError(f"num_codebooks={num_codebooks!r}: this codec has 1 to {codec.num_codebooks}")
    return num_codebooks


def frames_for(codec: Codec, num_samples: torch.Tensor) -> torch.Tensor:
    """Frames that cover ``num_samples`` samples (ceil), as the codec's encoder emits them."""
    hop = getattr(codec, "hop_length", None) or round(codec.sample_rate / codec.frame_rate)
    return -(-num_samples.long() // hop)


def load_codec(source: str | os.PathLike, *, device: str | torch.device = "cpu") -> Codec:
    """The codec at ``source``: an audiollm codec model directory, or a transformers EnCodec /
    DAC / Mimi checkpoint (directory or hub id). ModelDirError names what it found otherwise."""
    dev = resolve_device(device)
    path = Path(source)
    config = path / "config.json"
    model_type = None
    if config.is_file():
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except (OSError, json.JSONDecodeError, AttributeError) as e:
            raise ModelDirError(f"{config}: cannot read: {e}") from None
        if model_type == "codec":
            codec = load_model(path, device=dev, model_type="codec")
            codec.source = str(path)
            return codec
    elif path.exists():
        raise ModelDirError(f"{path}: not a codec directory (no config.json)")
    if model_type is None and not path.exists():
        text = str(source)
        if text.startswith((".", "/", "~")) or text.count("/") != 1:  # a path, not a hub id "org/name"
            raise ModelDirError(f"{source}: no such codec directory")
        model_type = _hub_model_type(text)
    if model_type not in CODECS:
        known = ", ".join(["codec (audiollm)", *sorted(CODECS)])
        raise ModelDirError(f"{source}: model type {model_type!r} is not a codec; codecs: {known}")
    return CODECS[model_type](str(source), dev)


def _hub_model_type(source: str) -> str | None:
    transformers = import_transformers(f"codec {source}")
    with hub_errors_only():
        try:
            return transformers.AutoConfig.from_pretrained(source).model_type
        except (OSError, ValueError) as e:
            raise ModelDirError(f"{source}: no such codec directory, and not a reachable hub id "
                                  f"({' '.join(str(e).split())[:120]})") from None
