"""Codecs in use: audio → a codes file → audio, for any codec (ours or a transformers one).

    import audiollm

    codec = audiollm.load("runs/codec_quickstart/final")          # or audiollm.load_codec("facebook/encodec_32khz")
    codes = codec.encode("speech.wav", num_codebooks=2)           # Codes: (K, F) ints + what made them
    codes.save("speech.codes.safetensors")
    wav = codec.decode(audiollm.read_codes("speech.codes.safetensors"))   # (T,) float32 at codec.sample_rate

A dataset becomes a codes cache with `build_codes_cache` (``audiollm codec cache``): the
feature cache's layout (`data.feature_cache`, one file per clip, fresh clips skipped on a rerun,
written atomically) with the codec's identity as its signature, so codes of one codec are never
read as another's.

A codes file is safetensors: one int tensor ``codes`` (K, F) and metadata with the codec's
identity (`models.codecs`), the frame count and the source's duration. Decoding refuses codes
from another codec (naming both), and a file that is not a codes file, in one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from audiollm.audio import as_samples, audio_info, load_audio, resample, save_audio
from audiollm.data.feature_cache import CacheReport, FeatureCache
from audiollm.errors import AudioLLMError
from audiollm.files import atomic_file
from audiollm.models.codecs import Codec, bitrate, check_num_codebooks, load_codec

FORMAT = "audiollm-codes-v1"


class CodesError(AudioLLMError):
    """A codes file that cannot be read, or codes made by another codec."""


@dataclass
class Codes:
    codes: np.ndarray  # (K, F) int64: K codebooks, F frames
    codec: dict[str, Any]  # the identity of the codec that made them (models.codecs)
    seconds: float  # duration of the encoded audio

    @property
    def bitrate(self) -> float:
        """Bits per second of these codes (frame rate · K · log2(codebook size))."""
        return float(self.codec["frame_rate"]) * self.codes.shape[0] * float(np.log2(self.codec["codebook_size"]))

    def save(self, path: str | os.PathLike) -> Path:
        """Write a codes file (safetensors), atomically."""
        p = Path(path)
        meta = {"format": FORMAT, "codec": json.dumps(self.codec, sort_keys=True), "seconds": repr(self.seconds)}
        tensor = torch.from_numpy(np.ascontiguousarray(self.codes)).to(torch.int32)
        with atomic_file(p) as tmp:
            save_file({"codes": tensor}, str(tmp), metadata=meta)
        return p


def read_codes(path: str | os.PathLike) -> Codes:
    """A codes file written by `Codes.save` (``audiollm codec encode``); CodesError otherwise."""
    p = Path(path)
    if not p.is_file():
        raise CodesError(f"{p}: no such codes file")
    try:
        tensors = load_file(str(p))
        with open(p, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            meta = json.loads(f.read(header_len)).get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise CodesError(f"{p}: not a codes file ({str(e)[:100]})") from None
    if meta.get("format") != FORMAT or set(tensors) != {"codes"}:
        raise CodesError(f"{p}: not a codes file written by `audiollm codec encode`")
    codes = tensors["codes"]
    if codes.dim() != 2 or codes.is_floating_point() or (codes.numel() and int(codes.min()) < 0):
        raise CodesError(f"{p}: codes must be non-negative integers of shape (codebooks, frames), got {tuple(codes.shape)}")
    try:
        codec, seconds = json.loads(meta["codec"]), float(meta["seconds"])
    except (KeyError, ValueError, json.JSONDecodeError):
        raise CodesError(f"{p}: its metadata does not name the codec that made it") from None
    return Codes(codes.long().numpy(), codec, seconds)


class CodecModel:
    """A loaded codec: encode audio to `Codes`, decode them, or both (a reconstruction)."""

    def __init__(self, codec: Codec, directory: str | os.PathLike | None = None):
        self.codec = codec
        self.directory = directory

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def num_codebooks(self) -> int:
        return self.codec.num_codebooks

    def bitrate(self, num_codebooks: int | None = None) -> float:
        return bitrate(self.codec, num_codebooks)

    @property
    def device(self) -> torch.device:
        return next(iter(self.codec.parameters())).device

    def waveform(self, audio, sample_rate: int | None = None) -> torch.Tensor:
        """A path (read at the codec's rate, downmixed) or samples at ``sample_rate`` (default:
        the codec's) → (T,) float32 at the codec's rate."""
        if isinstance(audio, (str, os.PathLike)):
            return load_audio(audio, self.sample_rate)
        rate = self.sample_rate if sample_rate is None else sample_rate
        wav = as_samples(audio)
        return resample(wav, rate, self.sample_rate) if rate != self.sample_rate else wav

    @torch.no_grad()
    def encode(self, audio, *, num_codebooks: int | None = None, sample_rate: int | None = None) -> Codes:
        k = check_num_codebooks(self.codec, num_codebooks)
        wav = self.waveform(audio, sample_rate)
        codes, frames = self.codec.encode(wav[None].to(self.device), None, k)
        return Codes(codes[0, :, : int(frames[0])].cpu().numpy(), self.codec.identity(), wav.numel() / self.sample_rate)

    @torch.no_grad()
    def decode(self, codes: Codes | np.ndarray | torch.Tensor) -> np.ndarray:
        """(T,) float32 at the codec's rate; `Codes` are checked against this codec first."""
        if isinstance(codes, Codes):
            check_same_codec(codes.codec, self.codec.identity())
            seconds, codes = codes.seconds, codes.codes
        else:
            seconds = None
        tensor = torch.as_tensor(np.asarray(codes)).long()
        if tensor.dim() != 2:
            raise CodesError(f"codes must have shape (codebooks, frames), got {tuple(tensor.shape)}")
        wav, lengths = self.codec.decode(tensor[None].to(self.device), None)
        n = int(lengths[0]) if seconds is None else min(int(lengths[0]), int(round(seconds * self.sample_rate)))
        return wav[0, :n].float().cpu().numpy()

    def reconstruct(self, audio, *, num_codebooks: int | None = None, sample_rate: int | None = None) -> np.ndarray:
        """Encode then decode: what the codec keeps of ``audio``."""
        return self.decode(self.encode(audio, num_codebooks=num_codebooks, sample_rate=sample_rate))

    def save_audio(self, path: str | os.PathLike, wav: np.ndarray) -> Path:
        return save_audio(path, wav, self.sample_rate)


def check_same_codec(made_by: dict[str, Any], this: dict[str, Any]) -> None:
    """CodesError unless the codes' codec is this one (same kind and weights fingerprint)."""
    if made_by.get("kind") != this.get("kind") or made_by.get("fingerprint") != this.get("fingerprint"):
        raise CodesError(f"these codes were made by codec {_name(made_by)}, not by {_name(this)}: decode them with "
                         "the codec that made them")


def _name(identity: dict[str, Any]) -> str:
    return f"{identity.get('kind')} {identity.get('name') or ''} (fingerprint {identity.get('fingerprint')})".replace("  ", " ")


def open_codec(source: str | os.PathLike, device: str = "cpu") -> CodecModel:
    """`CodecModel` over `models.codecs.load_codec` (a codec model directory, or a transformers
    EnCodec / DAC / Mimi checkpoint directory or hub id)."""
    return CodecModel(load_codec(source, device=device), source)


def codes_signature(codec: Codec, num_codebooks: int) -> dict[str, Any]:
    """What a codes cache is made of: the codec's identity and the codebooks kept."""
    return {"codec": codec.identity(), "num_codebooks": num_codebooks}


def build_codes_cache(codec: CodecModel, audio_paths, out_dir: str | os.PathLike, *, num_codebooks: int | None = None,
                      progress: bool = True) -> CacheReport:
    """Encode every listed clip not yet cached (or changed since) into ``out_dir``: per clip its
    codes (K, F) as int32. Another codec's (or another K's) cache is refused, naming both."""
    k = check_num_codebooks(codec.codec, num_codebooks)
    cache = FeatureCache.create(out_dir, codes_signature(codec.codec, k), "int32", True)
    report = CacheReport()
    todo = []
    for path in dict.fromkeys(str(Path(p)) for p in audio_paths):
        report.clips += 1
        if not Path(path).is_file():
            report.missing += 1
            report.first_missing = report.first_missing or path
        elif cache.is_fresh(path):
            report.already_cached += 1
        else:
            todo.append(path)
    for path in tqdm(todo, desc="codes", unit="clip", disable=not progress):
        codes = codec.encode(path, num_codebooks=k)
        cache.save(path, torch.from_numpy(codes.codes), codes.seconds)
        report.computed += 1
        report.audio_seconds += audio_info(path).duration
    return report
