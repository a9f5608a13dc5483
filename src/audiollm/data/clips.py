"""Fixed-length audio crops for training a codec: any manifest's clips, no text.

A codec learns from sound alone, so every row with audio serves (tagging, asr, caption, … rows
of one recording are one clip: duplicates are dropped). Each draw is a random window of
``seconds`` from one clip (shorter clips are used whole and padded, their real length kept so
losses skip the padding), with a random gain when augmenting. Like `data.batching`, every
random choice is a pure function of (seed, draw position), so a resumed run sees the same crops.
"""

from __future__ import annotations

import random

import torch

from audiollm.audio import audio_info, load_audio, pad_batch
from audiollm.errors import ConfigError


def clip_rows(rows: list[dict], path: str) -> list[dict]:
    """One row per distinct audio file of ``rows`` (rows without audio are left out)."""
    seen, clips = set(), []
    for row in rows:
        audio = row.get("audio")
        if audio and audio not in seen:
            seen.add(audio)
            clips.append(row)
    if not clips:
        raise ConfigError(f"{path}: no rows with audio to train a codec on")
    return clips


class ClipBuilder:
    """``build(row_index, draw)`` → {"audio": (T,) float32, "length": T} at ``sample_rate``."""

    def __init__(self, rows: list[dict], *, sample_rate: int, seconds: float, seed: int = 0, gain_db: float = 0.0):
        self.rows, self.sample_rate, self.seconds, self.seed, self.gain_db = rows, sample_rate, seconds, seed, gain_db

    def __call__(self, index: int, draw: int) -> dict:
        rng = random.Random(f"{self.seed}:{draw}")
        path = self.rows[index]["audio"]
        total = audio_info(path).duration
        offset = rng.uniform(0.0, total - self.seconds) if total > self.seconds else 0.0
        wav = load_audio(path, self.sample_rate, offset=offset, duration=min(self.seconds, total), allow_silence=True)
        wav = wav[: int(round(self.seconds * self.sample_rate))]
        peak = float(wav.abs().max())
        if peak > 0.99:  # keep crops in range so the codec never learns to clip
            wav = wav * (0.99 / peak)
        if self.gain_db:
            wav = wav * 10 ** (-rng.uniform(0.0, self.gain_db) / 20)
        return {"audio": wav, "length": wav.shape[0]}


def collate_clips(examples: list[dict]) -> dict[str, torch.Tensor]:
    audio, lengths = pad_batch([e["audio"] for e in examples])
    return {"audio": audio, "audio_lengths": lengths}
