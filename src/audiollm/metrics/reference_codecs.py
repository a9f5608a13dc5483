"""Reference codecs: the baselines a neural codec's figures are read against.

* **Opus** (RFC 6716) through Debian's ``ffmpeg`` and its ``libopus`` encoder, at a nominal
  bitrate (``opus_roundtrip(wav, sr, 6)`` = 6 kbps, VBR, ``-application audio``). It is the
  codec people actually ship for speech and music at low rates, so "beats Opus at 6 kbps" is
  the claim a codec figure should be able to make or not. The stream goes through pipes in an
  Ogg container, whose pre-skip and end trimming ffmpeg applies when decoding, so the output
  has the input's length and is sample-aligned with it (within the 1–2 samples of ffmpeg's
  resampling to and from Opus's 48 kHz): SI-SDR against the input is meaningful.
* **80-bin log-mel + Griffin-Lim**: the clip's log-mel spectrogram (the features our own metric
  uses) inverted to a linear magnitude by the filterbank's pseudo-inverse, then phase from fast
  Griffin-Lim (Perraudin et al. 2013, momentum 0.99). Its "bitrate" is not a bitrate: the mel
  frames are float32 and unquantised. It is a free, untrained baseline for what a mel
  spectrogram alone keeps; a codec (or vocoder) that cannot beat it is not using its bits.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import numpy as np
import torch

from audiollm.errors import AudioError, ConfigError
from audiollm.metrics.audio import MEL_BINS, as_mono, log_mel, mel_basis, mel_settings

FFMPEG_HINT = "apt-get install ffmpeg"
GL_ITERATIONS = 64
GL_MOMENTUM = 0.99


def ffmpeg_binary() -> str:
    """Path of ``ffmpeg``, or a one-line ConfigError saying how to install it."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise ConfigError(f"the Opus reference codec needs ffmpeg with libopus: {FFMPEG_HINT}")
    return path


def _ffmpeg(args: list[str], data: bytes, what: str) -> bytes:
    proc = subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-nostdin", *args],
                          input=data, capture_output=True)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        detail = msg[-1][:200] if msg else f"exit code {proc.returncode}"
        if "libopus" in detail or "Unknown encoder" in detail:
            raise ConfigError(f"ffmpeg has no libopus encoder ({detail}): {FFMPEG_HINT} (Debian's build has it)")
        raise AudioError(f"ffmpeg could not {what}: {detail}")
    return proc.stdout


def opus_encode(wav, sr: int, kbps: float, application: str = "audio") -> bytes:
    """An Ogg Opus stream of the mono waveform ``wav`` at ``sr`` (ffmpeg resamples to 48 kHz) at
    a nominal ``kbps`` (libopus VBR; ``application``: audio, voip or lowdelay)."""
    if not 0.5 <= kbps <= 512:
        raise ConfigError(f"Opus bitrate {kbps} kbps is outside libopus's 0.5-512 kbps")
    x = as_mono(wav).numpy().astype(np.float32)
    return _ffmpeg(["-f", "f32le", "-ar", str(int(sr)), "-ac", "1", "-i", "pipe:0", "-c:a", "libopus",
                    "-b:a", f"{kbps * 1000:.0f}", "-application", application, "-f", "ogg", "pipe:1"],
                   x.tobytes(), "encode Opus")


def opus_decode(data: bytes, sr: int, length: int | None = None) -> np.ndarray:
    """Decode an Ogg Opus stream to mono float32 at ``sr``; with ``length``, zero-padded or
    trimmed to exactly that many samples."""
    out = np.frombuffer(_ffmpeg(["-i", "pipe:0", "-f", "f32le", "-ar", str(int(sr)), "-ac", "1", "pipe:1"],
                                data, "decode Opus"), dtype=np.float32).copy()
    if length is not None:
        out = np.pad(out[:length], (0, max(0, length - out.size)))
    return out


def opus_roundtrip(wav, sr: int, kbps: float, application: str = "audio") -> np.ndarray:
    """``wav`` (1-D, at ``sr``) through Opus at ``kbps`` and back: float32 at ``sr``, the input's
    length, aligned with it (Ogg pre-skip removed by ffmpeg's decoder)."""
    n = as_mono(wav).numel()
    return opus_decode(opus_encode(wav, sr, kbps, application), sr, length=n)


@functools.lru_cache(maxsize=16)
def mel_pseudo_inverse(sr: int, n_mels: int = MEL_BINS) -> torch.Tensor:
    """(n_freqs, n_mels) least-squares inverse of the metric's mel filterbank at ``sr`` (cached:
    the pseudo-inverse costs more than a whole round trip of a short clip; do not modify)."""
    return torch.linalg.pinv(mel_basis(sr, n_mels).T.double()).float()


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop: int, length: int, n_iter: int = GL_ITERATIONS,
                momentum: float = GL_MOMENTUM, seed: int = 0) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013): a waveform of ``length`` samples whose STFT
    magnitude approaches ``magnitude`` (n_fft // 2 + 1, F); phases start random (seeded)."""
    window = torch.hann_window(n_fft, dtype=magnitude.dtype)
    g = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * torch.pi * torch.rand(magnitude.shape, generator=g, dtype=magnitude.dtype))
    previous = torch.zeros_like(angles)

    def istft(phase: torch.Tensor) -> torch.Tensor:
        return torch.istft(magnitude * phase, n_fft, hop_length=hop, window=window, center=True, length=length)

    for _ in range(n_iter):
        rebuilt = torch.stft(istft(angles), n_fft, hop_length=hop, window=window, center=True, return_complex=True)
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / angles.abs().clamp(min=1e-16)
        previous = rebuilt
    return istft(angles)


def griffin_lim_roundtrip(wav, sr: int, n_mels: int = MEL_BINS, n_iter: int = GL_ITERATIONS) -> np.ndarray:
    """``wav`` → its log-mel spectrogram (``n_mels`` bins, n_fft 1024 / hop 256 at 16 kHz, scaled at
    other rates) → a linear magnitude by the filterbank's pseudo-inverse (clamped ≥ 0) → fast
    Griffin-Lim (``n_iter`` iterations, momentum 0.99) → float32 samples of the input's length.
    An unquantised baseline: the mel frames are float32, so it has no meaningful bitrate."""
    x = as_mono(wav)
    n_fft, hop = mel_settings(sr)
    mel = log_mel(x, sr, n_mels)  # (n_mels, F): all that is "sent"
    magnitude = torch.clamp(mel_pseudo_inverse(sr, n_mels) @ torch.pow(10.0, mel), min=0.0)  # (n_freqs, F)
    return griffin_lim(magnitude, n_fft, hop, x.numel(), n_iter=n_iter).numpy().astype(np.float32)
