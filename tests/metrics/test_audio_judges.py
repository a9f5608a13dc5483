"""Audio judges against values that are known: a copy, noise at a set SNR, a shifted set of
embeddings; and on real FSDD speech, where DNSMOS must tell a voice from white noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import FSDD

from audiollm.audio import load_audio
from audiollm.errors import AudioError, ConfigError
from audiollm.metrics import audio as judges

pytest.importorskip("torchmetrics")
SR = 16000


def speech(n: int = 10) -> np.ndarray:
    """``n`` takes of the held-out speaker (one per digit), concatenated at 16 kHz (~4 s)."""
    return np.concatenate([load_audio(FSDD / "recordings" / f"{d % 10}_yweweler_{d // 10}.wav", SR).numpy()
                           for d in range(n)])


def noise_at_snr(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(x.size)
    return (n * np.sqrt(np.mean(x**2) / np.mean(n**2) / 10 ** (snr_db / 10))).astype(np.float32)


def harmonic(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A speech-like stand-in: harmonics of a wavering pitch under a syllable-rate envelope."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(h * phase) / h for h in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) ** 2
    return (0.2 * x + 1e-3 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def test_si_sdr_of_a_copy_is_huge_and_of_noise_at_10_db_is_about_10():
    x = harmonic()
    assert judges.si_sdr(x, x) > 100
    assert judges.si_sdr(x, 0.3 * x) > 100  # scale-invariant
    assert judges.si_sdr(torch.from_numpy(x), x + noise_at_snr(x, 10.0)) == pytest.approx(10.0, abs=0.3)
    assert judges.si_sdr(x, x + noise_at_snr(x, 0.0)) == pytest.approx(0.0, abs=0.3)
    assert judges.si_sdr(x, np.roll(x, 40)) < 5  # not aligned: SI-SDR says so


def test_log_mel_distance_is_zero_for_a_copy_trims_lengths_and_grows_with_noise():
    x = harmonic()
    assert judges.log_mel_distance(x, x, SR) == 0.0
    assert judges.log_mel_distance(x, np.pad(x, (0, 500)), SR) == 0.0  # trimmed to the shorter
    d20 = judges.log_mel_distance(x, x + noise_at_snr(x, 20.0), SR)
    d0 = judges.log_mel_distance(x, x + noise_at_snr(x, 0.0), SR)
    assert 0 < d20 < d0
    # The settings scale with the rate: 64 ms windows, 16 ms hops at 24 kHz too.
    assert judges.mel_settings(16000) == (1024, 256) and judges.mel_settings(24000) == (1536, 384)
    assert judges.log_mel(x, SR).shape == (80, x.size // 256 + 1)


def test_bad_waveforms_are_one_line_errors():
    with pytest.raises(AudioError, match="1-D"):
        judges.si_sdr(np.zeros((2, 100)), np.zeros((2, 100)))
    with pytest.raises(AudioError, match="NaN"):
        judges.log_mel_distance(np.full(1000, np.nan), np.zeros(1000), SR)
    with pytest.raises(AudioError, match="0.4 s"):
        judges.stoi(harmonic(0.2), harmonic(0.2), SR)  # pystoi would return 1e-5 with a warning


def test_a_missing_judge_library_names_the_extra():
    with pytest.raises(ConfigError, match=r"audiollm\[judges\]"):
        judges.optional_import("no_such_judge_library", "a test metric")


def test_frechet_distance_is_zero_for_a_set_with_itself_and_the_mean_shift_squared_when_shifted():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8))
    assert judges.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.full(8, 0.5)
    assert judges.frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-4)
    b = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8))
    dists = [judges.frechet_distance(a, b + s) for s in (0.0, 1.0, 3.0)]
    assert dists[0] < dists[1] < dists[2]
    # Fewer clips than dimensions: the covariances are singular, the guard keeps it finite.
    assert np.isfinite(judges.frechet_distance(a[:5] @ np.ones((8, 8)), b[:5]))
    with pytest.raises(AudioError, match="same D"):
        judges.frechet_distance(a, b[:, :4])


@pytest.mark.shared_data
def test_stoi_and_pesq_of_real_speech_drop_with_noise():
    x = speech()
    assert judges.stoi(x, x, SR) == pytest.approx(1.0, abs=1e-6)
    noisy = [judges.stoi(x, x + noise_at_snr(x, snr), SR) for snr in (10.0, -5.0)]
    assert 0.3 < noisy[1] < noisy[0] < 0.99
    assert judges.pesq_wb(x, x, SR) > 4.5
    assert judges.pesq_wb(x, x + noise_at_snr(x, 10.0), SR) < 2.5
    # FSDD's native 8 kHz gives the same PESQ as the 16 kHz copy (resampled inside).
    x8 = load_audio(FSDD / "recordings" / "3_yweweler_0.wav", 8000).numpy()
    assert judges.pesq_wb(x8, x8, 8000) > 4.5


@pytest.mark.shared_data
def test_dnsmos_rates_real_speech_above_white_noise():
    x = speech()
    clean = judges.dnsmos(x, SR)
    assert set(clean) == {"ovrl", "sig", "bak", "p808"} and all(1.0 <= v <= 5.0 for v in clean.values())
    white = judges.dnsmos(np.random.default_rng(0).standard_normal(x.size).astype(np.float32) * 0.1, SR)
    assert clean["ovrl"] > white["ovrl"] + 1.0 and clean["bak"] > white["bak"]
