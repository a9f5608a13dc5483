"""All training-time augmentation: waveforms of the generative model's rows (`AudioAugment`),
MuLaN's audio-caption pairs (`PairAugment`), and spectrogram masking (SpecAugment).

Each draws from a `random.Random` the data pipeline seeds per example, so augmentation is
reproducible and the same whatever the number of processes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from audiollm.audio import SAMPLE_RATE, resample
from audiollm.errors import ConfigError


@dataclass
class AudioAugment:
    """Training-time waveform augmentation that imitates other speakers, rooms and microphones.

    Speed perturbation shifts tempo and formants together (Kaldi-style); spectral tilt is a
    random first-order filter ``y[t] = x[t] - a·x[t-1]`` (another microphone's response);
    noise is white noise at a random SNR; gain is a random level.
    """

    speed_perturb: float = 0.1  # ± relative speed; 0 disables
    gain_db: float = 6.0  # ± gain in dB
    tilt: float = 0.0  # max |a| of the tilt filter (0 disables; 0.9 ≈ strong pre-emphasis)
    noise_snr_db: float = 0.0  # lowest SNR of added noise, in dB (0 disables; SNR drawn up to +30 dB)

    def __call__(self, wav: torch.Tensor, rng: random.Random, speed: bool = True) -> torch.Tensor:
        if self.speed_perturb > 0 and speed:
            # Speed change by resampling: a 10% faster clip is the clip resampled to 90% length.
            # Steps of 1/20 keep julius' filter sizes (and cost) small.
            factor = 1.0 + rng.uniform(-self.speed_perturb, self.speed_perturb)
            num, den = 20, max(1, round(20 * factor))
            if num != den:
                wav = resample(wav, den, num)
        if self.tilt > 0:
            a = rng.uniform(-self.tilt, self.tilt)
            wav = torch.cat([wav[:1], wav[1:] - a * wav[:-1]])
            wav = wav / max(1.0, float(wav.abs().max()))  # the filter may push peaks past full scale
        if self.noise_snr_db > 0 and rng.random() < 0.5:
            snr = rng.uniform(self.noise_snr_db, self.noise_snr_db + 30.0)
            power = float(wav.square().mean())
            gen = torch.Generator().manual_seed(rng.randrange(2**31))
            wav = wav + torch.randn(wav.shape, generator=gen) * (power / 10 ** (snr / 10)) ** 0.5
        gain = 10 ** (rng.uniform(-self.gain_db, self.gain_db) / 20)
        return (wav * gain).clamp_(-1.0, 1.0)


@dataclass
class PairAugment:
    """MuLaN's audio augmentation of one caption pair: a random crop, white noise, gain, and
    SpecAugment-style masks drawn here and applied inside the model (`apply_spec_masks`)."""

    crop_seconds: float = 0.0  # random window length (0 = whole clip, up to the builder's max)
    gain_db: float = 6.0  # ± random gain in dB
    noise_snr_db: float = 0.0  # lowest SNR of added white noise (0 disables; drawn up to +30 dB)
    freq_masks: int = 2  # frequency masks per clip
    freq_mask_width: int = 8  # max mel bins per frequency mask
    time_masks: int = 2  # time masks per clip
    time_mask_width: int = 30  # max frames per time mask (10 ms frames)

    def __post_init__(self) -> None:
        if self.crop_seconds < 0 or self.gain_db < 0 or self.noise_snr_db < 0:
            raise ConfigError("data.contrastive.augment: crop_seconds, gain_db and noise_snr_db must be >= 0")
        for name in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.contrastive.augment.{name} must be >= 0")

    def waveform(self, wav: torch.Tensor, rng: random.Random) -> torch.Tensor:
        crop = int(self.crop_seconds * SAMPLE_RATE)
        if crop and wav.shape[0] > crop:
            start = rng.randrange(wav.shape[0] - crop + 1)
            wav = wav[start : start + crop]
        if self.noise_snr_db > 0 and rng.random() < 0.5:
            snr = rng.uniform(self.noise_snr_db, self.noise_snr_db + 30.0)
            gen = torch.Generator().manual_seed(rng.randrange(2**31))
            wav = wav + torch.randn(wav.shape, generator=gen) * (float(wav.square().mean()) / 10 ** (snr / 10)) ** 0.5
        if self.gain_db > 0:
            wav = wav * 10 ** (rng.uniform(-self.gain_db, self.gain_db) / 20)
        return wav.clamp(-1.0, 1.0)

    def masks(self, n_mels: int, n_frames: int, rng: random.Random) -> tuple[list[list[int]], list[list[int]]]:
        """[start, width] frequency and time masks inside the clip's own bands and frames."""
        freq = []
        for _ in range(self.freq_masks):
            w = rng.randint(0, min(self.freq_mask_width, n_mels))
            freq.append([rng.randint(0, n_mels - w), w])
        time = []
        for _ in range(self.time_masks):
            w = rng.randint(0, min(self.time_mask_width, max(0, n_frames // 4)))  # never most of a clip
            time.append([rng.randint(0, max(0, n_frames - w)), w])
        return freq, time


def spec_augment(features: torch.Tensor, lengths: torch.Tensor, freq_masks: int, freq_mask_width: int,
                 time_masks: int, time_mask_width: int) -> torch.Tensor:
    """SpecAugment inside a model in training mode: mask random mel bands and time spans (within
    each clip's real frames) of (B, n_mels, F) features with 0, drawn from torch's generator."""
    B, n_mels, n_frames = features.shape
    device = features.device
    mel_idx = torch.arange(n_mels, device=device)[None, :]  # (1, n_mels)
    frame_idx = torch.arange(n_frames, device=device)[None, :]  # (1, F)
    drop_mel = torch.zeros(B, n_mels, dtype=torch.bool, device=device)
    drop_frame = torch.zeros(B, n_frames, dtype=torch.bool, device=device)
    for _ in range(freq_masks):
        width = torch.randint(0, freq_mask_width + 1, (B, 1), device=device)
        start = (torch.rand(B, 1, device=device) * (n_mels - width + 1)).long()
        drop_mel |= (mel_idx >= start) & (mel_idx < start + width)
    for _ in range(time_masks):
        width = torch.minimum(
            torch.randint(0, time_mask_width + 1, (B, 1), device=device), lengths[:, None]
        )
        start = (torch.rand(B, 1, device=device) * (lengths[:, None] - width + 1)).long()
        drop_frame |= (frame_idx >= start) & (frame_idx < start + width)
    drop = drop_mel[:, :, None] | drop_frame[:, None, :]  # (B, n_mels, F)
    return features.masked_fill(drop, 0.0)


def apply_spec_masks(features: torch.Tensor, freq_masks: torch.Tensor | None, time_masks: torch.Tensor | None) -> torch.Tensor:
    """Set mel bands / frames in [start, start + width) to 0 (the normalised log-mel's neutral
    value). Masks are (B, K, 2) integer [start, width]; width 0 masks nothing."""
    B, n_mels, n_frames = features.shape
    drop = torch.zeros_like(features, dtype=torch.bool)
    for masks, size, dim in ((freq_masks, n_mels, 1), (time_masks, n_frames, 2)):
        if masks is None or masks.numel() == 0:
            continue
        masks = masks.to(features.device)
        idx = torch.arange(size, device=features.device)[None, None, :]  # (1, 1, size)
        hit = ((idx >= masks[..., :1]) & (idx < masks[..., :1] + masks[..., 1:])).any(1)  # (B, size)
        drop |= hit[:, :, None] if dim == 1 else hit[:, None, :]
    return features.masked_fill(drop, 0.0)
