"""The reference codecs: Opus keeps real speech intelligible, sample-aligned and of the input's
length; mel + Griffin-Lim keeps the log-mel close and its phase search converges."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from helpers import FSDD

from audiollm.audio import load_audio
from audiollm.errors import ConfigError
from audiollm.metrics import audio as judges
from audiollm.metrics import reference_codecs as refcodecs

SR = 16000
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt-get install ffmpeg)")


def speech(n: int = 10) -> np.ndarray:
    """``n`` takes of the held-out speaker (one per digit), concatenated at 16 kHz (~4 s)."""
    return np.concatenate([load_audio(FSDD / "recordings" / f"{d % 10}_yweweler_{d // 10}.wav", SR).numpy()
                           for d in range(n)])


def chirp(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.02 * np.random.default_rng(0).standard_normal(t.size)
    return x.astype(np.float32)


def lag_of(ref: np.ndarray, est: np.ndarray, max_lag: int = 200) -> int:
    """The shift of ``est`` against ``ref`` at the cross-correlation peak (positive: est is late)."""
    lags = range(-max_lag, max_lag + 1)
    core = slice(max_lag, ref.size - max_lag)
    return list(lags)[int(np.argmax([np.dot(ref[core], np.roll(est, -k)[core]) for k in lags]))]


@needs_ffmpeg
@pytest.mark.shared_data
def test_opus_6kbps_keeps_real_speech_intelligible_aligned_and_of_the_same_length():
    x = speech()
    y = refcodecs.opus_roundtrip(x, SR, 6)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert abs(lag_of(x, y)) <= 3  # Ogg pre-skip removed: no 6.5 ms (312-sample-at-48k) offset
    assert judges.stoi(x, y, SR) > 0.7
    assert judges.log_mel_distance(x, y, SR) < 0.5 * judges.log_mel_distance(x, np.zeros_like(x) + 1e-3, SR)
    # More bits, closer waveform: 24 kbps beats 6 kbps on SI-SDR by a wide margin.
    assert judges.si_sdr(x, refcodecs.opus_roundtrip(x, SR, 24)) > judges.si_sdr(x, y) + 5


@needs_ffmpeg
@pytest.mark.parametrize("sr", [8000, 22050])
def test_opus_keeps_length_and_alignment_at_rates_opus_does_not_run_at(sr):
    x = chirp(1.3, sr)
    data = refcodecs.opus_encode(x, sr, 24)  # at 12 kbps on 8 kHz input, SILK does not follow a chirp (SI-SDR < 0)
    assert data[:4] == b"OggS"
    y = refcodecs.opus_decode(data, sr, length=x.size)
    assert y.shape == x.shape and abs(lag_of(x, y)) <= 2
    assert judges.si_sdr(x, y) > 10


def test_opus_errors_name_the_fix(monkeypatch):
    with pytest.raises(ConfigError, match="0.5-512"):
        refcodecs.opus_encode(chirp(0.1, SR), SR, 0.1)
    monkeypatch.setattr(refcodecs.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="apt-get install ffmpeg"):
        refcodecs.opus_roundtrip(chirp(0.1, SR), SR, 6)


def test_griffin_lim_converges_towards_the_target_magnitude():
    x = torch.from_numpy(chirp(1.0, SR))
    n_fft, hop = judges.mel_settings(SR)
    window = torch.hann_window(n_fft)
    target = torch.stft(x, n_fft, hop_length=hop, window=window, return_complex=True).abs()

    def spectral_error(n_iter: int) -> float:
        y = refcodecs.griffin_lim(target, n_fft, hop, x.numel(), n_iter=n_iter)
        got = torch.stft(y, n_fft, hop_length=hop, window=window, return_complex=True).abs()
        return float((got - target).norm() / target.norm())

    errors = [spectral_error(n) for n in (1, 8, 64)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.15
    assert spectral_error(1) == errors[0]  # seeded initial phases: deterministic


@pytest.mark.shared_data
def test_mel_griffin_lim_round_trip_keeps_the_log_mel_close_on_real_speech():
    x = speech(4)
    y = refcodecs.griffin_lim_roundtrip(x, SR)
    assert y.dtype == np.float32 and y.shape == x.shape and np.isfinite(y).all()
    noise = np.random.default_rng(0).standard_normal(x.size).astype(np.float32) * x.std()
    assert judges.log_mel_distance(x, y, SR) < 0.2 * judges.log_mel_distance(x, noise, SR)
    assert judges.stoi(x, y, SR) > 0.7
    # The pseudo-inverse really inverts the filterbank on its range.
    fb = judges.mel_basis(SR)  # (513, 80)
    mel = fb.T @ torch.rand(513, 5)
    assert torch.allclose(fb.T @ (refcodecs.mel_pseudo_inverse(SR) @ mel), mel, atol=1e-4)
