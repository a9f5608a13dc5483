"""Answer questions about waveforms: the one place that turns (audio, question) into text."""

from __future__ import annotations

import torch

from .audio import pad_batch
from .data.batching import prompt_ids
from .models.audiollm import AudioLLM
from .tokenizers.text import TextTokenizer


@torch.no_grad()
def generate_answers(
    model: AudioLLM,
    tokenizer: TextTokenizer,
    wavs: list[torch.Tensor],
    questions: list[str],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Batched generation: one decoded answer per (waveform, question) pair."""
    device = next(model.parameters()).device
    audio, lengths = pad_batch(wavs)
    tokens = model.generate(
        audio.to(device), lengths.to(device),
        prompt_ids=[prompt_ids(tokenizer, q) for q in questions],
        max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_id,
        temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
    )
    return [tokenizer.decode(t) for t in tokens]


def answer(model: AudioLLM, tokenizer: TextTokenizer, wav: torch.Tensor, question: str, **sampling) -> str:
    """One answer about one waveform (16 kHz mono)."""
    return generate_answers(model, tokenizer, [wav], [question], **sampling)[0]
