"""Manifest rows → (audio, caption) pair batches for contrastive training.

A pair is a caption row: its audio and its ``answer`` text. Like `batching.ExampleBuilder`,
everything random about a pair (crop position, gain, noise, spectrogram masks, patch-dropout
seed) comes from a generator seeded by (seed, draw position), so a resumed run and any number
of processes see exactly the same global batch.

Augmentations that really change the input (each is tested to do so):
  random crop      a ``crop_seconds`` window at a random position of a longer clip
  gain             ± ``gain_db`` — visible to the model only with frontend.level "absolute"
                   (the "peak" level divides gain out, which is why MuLaN configs use "absolute")
  noise            white noise at a random SNR (≥ ``noise_snr_db``) on half the clips
  frequency masks  ``freq_masks`` bands of up to ``freq_mask_width`` mel bins set to 0
  time masks       ``time_masks`` spans of up to ``time_mask_width`` frames set to 0
The masks are drawn here and applied by the model to its log-mel (`apply_spec_masks`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..audio import SAMPLE_RATE, load_audio, pad_batch
from ..errors import ConfigError


@dataclass
class PairAugment:
    crop_seconds: float = 0.0  # random window length (0 = whole clip, up to the builder's max)
    gain_db: float = 6.0  # ± random gain in dB
    noise_snr_db: float = 0.0  # lowest SNR of added white noise (0 disables; drawn up to +30 dB)
    freq_masks: int = 2  # frequency masks per clip
    freq_mask_width: int = 8  # max mel bins per frequency mask
    time_masks: int = 2  # time masks per clip
    time_mask_width: int = 30  # max frames per time mask (10 ms frames)

    def __post_init__(self) -> None:
        if self.crop_seconds < 0 or self.gain_db < 0 or self.noise_snr_db < 0:
            raise ConfigError("data.mulan_augment: crop_seconds, gain_db and noise_snr_db must be >= 0")
        for name in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.mulan_augment.{name} must be >= 0")

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


class PairBuilder:
    """Caption row ``index`` at draw position ``draw`` → one (audio, token ids) pair."""

    def __init__(self, rows: list[dict], tokenizer, *, max_text_tokens: int, n_mels: int, hop_length: int,
                 seed: int = 0, max_audio_seconds: float = 10.0, augment: PairAugment | None = None):
        self.rows, self.tokenizer, self.seed = rows, tokenizer, seed
        self.max_text_tokens, self.n_mels, self.hop_length = max_text_tokens, n_mels, hop_length
        self.max_samples = int(max_audio_seconds * SAMPLE_RATE)
        self.augment = augment

    def __call__(self, index: int, draw: int) -> dict:
        from ..mulan import encode_text

        row = self.rows[index]
        rng = random.Random(f"{self.seed}:pair:{draw}")
        wav = load_audio(row["audio"])
        if wav.shape[0] > self.max_samples:  # training window: random; evaluation: the start
            start = rng.randrange(wav.shape[0] - self.max_samples + 1) if self.augment else 0
            wav = wav[start : start + self.max_samples]
        freq, time = [], []
        if self.augment is not None:
            wav = self.augment.waveform(wav, rng)
            freq, time = self.augment.masks(self.n_mels, wav.shape[0] // self.hop_length + 1, rng)
        ids = encode_text(self.tokenizer, row["answer"], self.max_text_tokens)
        return {"audio": wav, "seconds": wav.shape[0] / SAMPLE_RATE, "input_ids": ids, "freq_masks": freq,
                "time_masks": time, "seed": rng.randrange(2**31)}


def collate_pairs(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    from ..mulan import pad_ids

    audio, audio_lengths = pad_batch([e["audio"] for e in examples])
    input_ids, text_lengths = pad_ids([e["input_ids"] for e in examples], pad_id)
    batch = {"audio": audio, "audio_lengths": audio_lengths, "input_ids": input_ids, "text_lengths": text_lengths,
             "seeds": torch.tensor([e["seed"] for e in examples], dtype=torch.long)}
    for key in ("freq_masks", "time_masks"):
        k = max(len(e[key]) for e in examples)
        if k:
            m = torch.zeros(len(examples), k, 2, dtype=torch.long)  # width 0 = no mask
            for i, e in enumerate(examples):
                if e[key]:
                    m[i, : len(e[key])] = torch.tensor(e[key])
            batch[key] = m
    return batch
