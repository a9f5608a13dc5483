"""Audio I/O: the one place that reads or writes audio files.

Everything inside the library works on 16 kHz mono float32 tensors of shape ``(T,)``.
`load_audio` turns any readable file (WAV/FLAC/OGG/MP3 through libsndfile) into that form:
it downmixes, resamples, and refuses — with a one-line `AudioError` naming the file — input
that cannot be used: missing, a directory, empty, corrupt, unsupported, 0 samples, silent,
NaN/inf samples, or longer than the caller's limit.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiollm.errors import AudioError

SAMPLE_RATE = 16_000
# Anything quieter than this peak is treated as silence (about -100 dBFS).
SILENCE_PEAK = 1e-5


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited (windowed-sinc) resampling along the last axis."""
    if orig_sr == new_sr:
        return wav
    return _resampler(int(orig_sr), int(new_sr), wav.device)(wav)


@functools.lru_cache(maxsize=64)
def _resampler(orig_sr: int, new_sr: int, device: torch.device) -> torch.nn.Module:
    """One resampling module per rate pair and device: building the sinc kernels costs
    ~10× applying them to a 1 s clip, and training draws the same few speed ratios (and
    the same file rates) over and over."""
    import julius  # pure-torch resampler; imported lazily because it is only needed here

    return julius.ResampleFrac(orig_sr, new_sr).to(device)


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Header information, with the same checks and errors as `load_audio`."""
    p = _check_path(path)
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(f"{p}: cannot read audio ({_short(e)})") from None
    _check_complete(p, info)
    return info


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    max_seconds: float | None = None,
    allow_silence: bool = False,
) -> torch.Tensor:
    """Read ``path`` as a mono float32 tensor at ``sample_rate``.

    ``offset``/``duration`` (seconds) select a window without reading the rest of the file.
    ``max_seconds`` refuses longer input (after windowing) instead of silently truncating it.
    """
    p = Path(path)
    info = audio_info(p)
    start = int(round(offset * info.samplerate))
    frames = -1 if duration is None else int(round(duration * info.samplerate))
    try:
        data, sr = sf.read(str(p), start=start, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(f"{p}: cannot read audio ({_short(e)})") from None
    if offset and start >= info.frames:
        raise AudioError(f"{p}: offset {offset:.2f} s is past the end ({info.duration:.2f} s)")
    if data.shape[0] == 0:
        raise AudioError(f"{p}: audio has 0 samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{p}: audio contains NaN or infinite samples")
    seconds = data.shape[0] / sr
    if max_seconds is not None and seconds > max_seconds + 1e-6:
        raise AudioError(
            f"{p}: audio is {seconds:.1f} s long; the limit is {max_seconds:.1f} s "
            "(choose a window with --offset/--duration)"
        )
    wav = torch.from_numpy(data.mean(axis=1))  # downmix (T, C) → (T,)
    if not allow_silence and float(wav.abs().max()) < SILENCE_PEAK:
        raise AudioError(f"{p}: audio is silent (peak below {SILENCE_PEAK:g})")
    return resample(wav, sr, sample_rate).contiguous()


def save_audio(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write 16-bit PCM WAV atomically (temp file in the same folder, then rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arr = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    arr = np.clip(arr.astype(np.float32), -1.0, 1.0)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        sf.write(tmp, arr, sample_rate, subtype="PCM_16", format="WAV")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; audio is meant to be shared like any file
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def as_waveform(audio, sample_rate: int = SAMPLE_RATE, *, name: str = "audio", **load_options) -> torch.Tensor:
    """What the Python API accepts as audio → a 16 kHz mono float32 tensor (T,).

    A path (str / PathLike) is read with :func:`load_audio` (``load_options``: offset,
    duration, max_seconds). An array or tensor is samples at ``sample_rate`` (see `as_samples`)."""
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio, **load_options)
    wav = as_samples(audio, name=name)
    max_seconds = load_options.get("max_seconds")
    if max_seconds is not None and wav.numel() / sample_rate > max_seconds + 1e-6:
        raise AudioError(f"{name}: audio is {wav.numel() / sample_rate:.1f} s long; the limit is {max_seconds:.1f} s")
    return resample(wav, sample_rate, SAMPLE_RATE).contiguous() if sample_rate != SAMPLE_RATE else wav


def as_samples(audio, *, name: str = "audio") -> torch.Tensor:
    """Samples as a numpy array or torch tensor → mono float32 (T,) on the CPU, at their own rate:
    1-D, or 2-D with the channels along the shorter axis (downmixed); non-empty and finite."""
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio))
    if not isinstance(audio, torch.Tensor):
        raise AudioError(f"{name}: expected a file path, a numpy array or a torch tensor, got {type(audio).__name__}")
    wav = audio.detach().float().cpu()
    if wav.dim() == 2:
        wav = wav.mean(dim=0 if wav.shape[0] <= wav.shape[1] else 1)
    if wav.dim() != 1:
        raise AudioError(f"{name}: expected 1-D samples or 2-D (channels, samples), got shape {tuple(audio.shape)}")
    if wav.numel() == 0:
        raise AudioError(f"{name}: audio has 0 samples")
    if not bool(torch.isfinite(wav).all()):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    return wav


def pad_batch(wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D waveforms into ``(B, S)`` plus their lengths ``(B,)``; tensors with more
    dimensions (cached encoder states (F', K, D)) are padded along the first, likewise."""
    lengths = torch.tensor([w.shape[0] for w in wavs], dtype=torch.long)
    out = torch.zeros(len(wavs), int(lengths.max()), *wavs[0].shape[1:], dtype=torch.float32)
    for i, w in enumerate(wavs):
        out[i, : w.shape[0]] = w
    return out, lengths


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, expected an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: file is empty (0 bytes)")
    return p


# libsndfile's header log line for a WAV data chunk longer than what the file holds,
# e.g. "data : 4768 (should be 2956)": the file was cut short (an interrupted copy).
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# A writer streaming to a pipe does not know the length yet and puts the largest size there.
_STREAMED_SIZES = (0xFFFFFFFF, 0x7FFFFFFF)


def _check_complete(p: Path, info: sf._SoundFileInfo) -> None:
    """Refuse a WAV whose audio stops before its header says it ends: reading it would
    silently give a shorter clip."""
    m = _SHORT_DATA.search(info.extra_info or "")
    if m is None:
        return
    declared, present = int(m.group(1)), int(m.group(2))
    if present < declared and declared not in _STREAMED_SIZES:
        raise AudioError(f"{p}: truncated audio file (the header promises {declared} bytes of audio, "
                         f"the file holds {present})")


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:160]
