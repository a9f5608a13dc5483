"""Waveform → normalised log-mel spectrogram, in pure torch (no torchaudio).

STFT with a periodic Hann window (center=True, zero padding), power spectrum, a
**Slaney**-style mel filterbank (Slaney mel scale — linear below 1 kHz, logarithmic above —
with Slaney area normalisation; the librosa/Whisper default), log10 of the mel energies
clamped at 1e-10, then a per-example normalisation (``level``; Whisper's is
``(max(x, x.max() - 8) + 4) / 4``) where the max is taken over that example's real frames only.

Variable length: samples past ``lengths`` are zeroed before the STFT, so the frames of a
clip are the same whether it is alone or zero/garbage-padded in a batch, and the per-clip
max ignores padded frames. Padded output frames are set to 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from audiollm.errors import ConfigError

LEVELS = ("peak", "absolute")


@dataclass
class LogMelConfig:
    sample_rate: int = 16000  # input sample rate in Hz (the library-wide audio convention)
    n_fft: int = 400  # FFT size and window length in samples (25 ms at 16 kHz)
    hop_length: int = 160  # samples between frames (10 ms → 100 frames per second)
    n_mels: int = 64  # mel bands
    f_min: float = 0.0  # lowest filter edge in Hz
    f_max: float = 8000.0  # highest filter edge in Hz (≤ sample_rate / 2)
    level: str = "peak"  # "peak": log-mel relative to the clip's loudest bin (gain-invariant);
    #   "absolute": Whisper's, keeps the level
    top_db: float = 80.0  # dynamic range kept below the clip's peak; quieter bins are clamped to it

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"frontend.{name} must be a positive integer, got {value!r}")
        if self.level not in LEVELS:
            raise ConfigError(f"frontend.level={self.level!r}; allowed: {', '.join(LEVELS)}")
        if not self.top_db > 0:
            raise ConfigError(f"frontend.top_db must be > 0, got {self.top_db}")
        if not 0.0 <= self.f_min < self.f_max:
            raise ConfigError(f"frontend.f_min ({self.f_min}) must be >= 0 and < frontend.f_max ({self.f_max})")
        if self.f_max > self.sample_rate / 2:
            raise ConfigError(
                f"frontend.f_max ({self.f_max}) must be <= sample_rate / 2 ({self.sample_rate / 2})"
            )

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @classmethod
    def tiny(cls) -> "LogMelConfig":
        return cls(n_mels=16)


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney mel scale: linear (3 mels / 200 Hz) below 1 kHz, logarithmic above."""
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return torch.where(hz >= min_log_hz, min_log_mel + torch.log(hz / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return torch.where(mel >= min_log_mel, min_log_hz * torch.exp(logstep * (mel - min_log_mel)), mel * f_sp)


def _mel_edges(n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """(n_mels + 2,) filter edges/centres in Hz, equally spaced on the Slaney mel scale."""
    lo, hi = (_hz_to_mel(torch.tensor(f, dtype=torch.float64)).item() for f in (f_min, f_max))
    return _mel_to_hz(torch.linspace(lo, hi, n_mels + 2, dtype=torch.float64))


def _triangles(freqs: torch.Tensor, hz_pts: torch.Tensor) -> torch.Tensor:
    """Slaney-normalised triangular filters evaluated at ``freqs`` (..., n_freqs) → (..., n_freqs, n_mels)."""
    widths = hz_pts.diff()  # (n_mels + 1,)
    ramps = hz_pts - freqs[..., None]  # (..., n_freqs, n_mels + 2)
    rising = -ramps[..., :-2] / widths[:-1]  # (..., n_freqs, n_mels)
    falling = ramps[..., 2:] / widths[1:]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return weights * (2.0 / (hz_pts[2:] - hz_pts[:-2]))  # Slaney: equal area per filter


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) Slaney-normalised triangular filters on the Slaney mel scale."""
    fft_freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    return _triangles(fft_freqs, _mel_edges(n_mels, f_min, f_max)).float().contiguous()


class LogMel(nn.Module):
    """(B, S) waveforms + lengths → (B, n_mels, F) normalised log-mel + frame lengths (B,)."""

    def __init__(self, config: LogMelConfig):
        super().__init__()
        self.config = config
        c = config
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        self.register_buffer(
            "mel_fb", mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.f_min, c.f_max), persistent=False
        )

    def _apply(self, fn, recurse=True):
        # model.to(torch.bfloat16) must not round the window/filterbank: move them, keep float32.
        super()._apply(fn, recurse)
        c, device = self.config, self.window.device
        self.window = torch.hann_window(c.n_fft, device=device)
        self.mel_fb = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.f_min, c.f_max).to(device)
        return self

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames produced for ``lengths`` samples (center=True STFT: 1 + len // hop)."""
        return lengths // self.config.hop_length + 1

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        B, S = audio.shape
        lengths = lengths.to(audio.device).long()
        # Features stay float32 even under bf16 autocast: log of tiny energies needs the range.
        with torch.autocast(device_type=audio.device.type, enabled=False):
            valid = torch.arange(S, device=audio.device)[None, :] < lengths[:, None]  # (B, S)
            x = audio.float() * valid
            spec = torch.stft(
                x,
                n_fft=c.n_fft,
                hop_length=c.hop_length,
                win_length=c.n_fft,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )  # (B, n_fft // 2 + 1, F)
            power = spec.real.square() + spec.imag.square()
            mel = torch.matmul(self.mel_fb.T, power)  # (B, n_mels, F)
            logmel = torch.log10(mel.clamp(min=1e-10))

            frame_lengths = self.frame_lengths(lengths)
            frame_valid = torch.arange(logmel.shape[-1], device=audio.device)[None, :] < frame_lengths[:, None]
            frame_valid = frame_valid[:, None, :]  # (B, 1, F)
            peak = logmel.masked_fill(~frame_valid, float("-inf")).amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
            # top_db (80) of dynamic range below the clip's peak. Whisper's "+4" pins the scale to
            # an absolute level, so a recording 15 dB quieter than the training data looks like
            # another sound; "peak" puts every clip's loudest bin at 1 instead.
            floor = torch.maximum(logmel, peak - c.top_db / 10.0)
            if c.level == "peak":
                logmel = (floor - peak) / 4.0 + 1.0  # loudest bin → 1, 80 dB below it → -1
            else:
                logmel = (floor + 4.0) / 4.0  # Whisper
            logmel = logmel.masked_fill(~frame_valid, 0.0)
        return logmel, frame_lengths
