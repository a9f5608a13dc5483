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
import warnings
from collections.abc import Sequence

import torch

from audiollm.audio import SAMPLE_RATE, load_audio, pad_batch
from audiollm.data.augment import PairAugment
from audiollm.errors import AudioLLMError


class TextTruncatedWarning(UserWarning):
    """A text was longer than the text tower's context and was cut."""


def encode_text(tokenizer, text: str, max_len: int) -> list[int]:
    """Token ids of one text for the text tower; refuses empty text, truncates long text."""
    if not isinstance(text, str) or not text.strip():
        raise AudioLLMError("empty text: give at least one word")
    ids = tokenizer.encode(text)
    if len(ids) > max_len:
        warnings.warn(TextTruncatedWarning(
            f"text truncated from {len(ids)} to {max_len} tokens (the text tower's context): {text[:40]!r}…"))
        cut = getattr(tokenizer, "truncate", None)
        ids = cut(ids, max_len) if cut else ids[:max_len]
    return ids


def pad_ids(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists → a (B, T) tensor padded with ``pad_id`` and their (B,) lengths."""
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
    out = torch.full((len(ids), max(1, int(lengths.max()))), pad_id, dtype=torch.long)
    for i, x in enumerate(ids):
        out[i, : len(x)] = torch.tensor(list(x), dtype=torch.long)
    return out, lengths


class PairBuilder:
    """Caption row ``index`` at draw position ``draw`` → one (audio, token ids) pair."""

    def __init__(self, rows: list[dict], tokenizer, *, max_text_tokens: int, n_mels: int, hop_length: int,
                 seed: int = 0, max_audio_seconds: float = 10.0, augment: PairAugment | None = None):
        self.rows, self.tokenizer, self.seed = rows, tokenizer, seed
        self.max_text_tokens, self.n_mels, self.hop_length = max_text_tokens, n_mels, hop_length
        self.max_samples = int(max_audio_seconds * SAMPLE_RATE)
        self.augment = augment

    def __call__(self, index: int, draw: int) -> dict:
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
