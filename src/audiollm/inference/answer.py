"""Answer questions about waveforms: the one place that turns (audio, question) into text."""

from __future__ import annotations

import torch

from audiollm.audio import pad_batch
from audiollm.decoding.options import DecodingOptions
from audiollm.models.audiollm import AudioLLM
from audiollm.tokenizers.text import TextTokenizer


@torch.no_grad()
def generate_answers(
    model: AudioLLM,
    tokenizer: TextTokenizer,
    wavs: list[torch.Tensor],
    questions: list[str],
    options: DecodingOptions = DecodingOptions(),
    *,
    generator: torch.Generator | None = None,
    ctc_rows: list[bool] | None = None,
) -> list[str]:
    """Batched generation: one decoded answer per (waveform, question) pair.

    ``options.ctc_weight`` > 0 decodes the rows marked in ``ctc_rows`` (all when None) jointly
    with the model's CTC head, if it has one (see :mod:`audiollm.decoding.ctc_prefix`): for
    transcripts.
    """
    device = next(model.parameters()).device
    audio, lengths = pad_batch(wavs)
    tokens = model.generate(audio.to(device), lengths.to(device), [tokenizer.prompt_ids(q) for q in questions],
                            options, eos_id=tokenizer.eos_id, generator=generator, ctc_rows=ctc_rows)
    return [tokenizer.decode(t) for t in tokens]


def answer(model: AudioLLM, tokenizer: TextTokenizer, wav: torch.Tensor, question: str,
           options: DecodingOptions = DecodingOptions()) -> str:
    """One answer about one waveform (16 kHz mono)."""
    return generate_answers(model, tokenizer, [wav], [question], options)[0]


def candidate_logprobs(
    model: AudioLLM,
    tokenizer: TextTokenizer,
    wavs: list[torch.Tensor],
    questions: list[str],
    candidates: list[list[tuple[str, str]]],
) -> list[list[float]]:
    """Teacher-forced log-likelihood of candidate answers, one list per clip.

    ``candidates[i]`` holds (answer prefix, candidate) text pairs for clip i; each score is
    ``log P(candidate | audio_i, question_i, answer prefix)``. The candidate's tokens are the
    tokens that ``encode(prefix + candidate)`` adds beyond its longest common start with
    ``encode(prefix)``, so a candidate is tokenised as it would be inside a whole answer.
    """
    device = next(model.parameters()).device
    audio, lengths = pad_batch(wavs)
    contexts, cands = [], []
    for q, pairs in zip(questions, candidates):
        prompt = tokenizer.prompt_ids(q)
        ctx_i, cand_i = [], []
        for prefix, cand in pairs:
            full = tokenizer.encode(prefix + cand)
            pre = tokenizer.encode(prefix) if prefix else []
            k = 0
            while k < min(len(pre), len(full)) and pre[k] == full[k]:
                k += 1
            k = min(k, len(full) - 1)  # at least one scored token
            ctx_i.append(prompt + full[:k])
            cand_i.append(full[k:])
        contexts.append(ctx_i)
        cands.append(cand_i)
    return model.candidate_logprobs(audio.to(device), lengths.to(device), contexts, cands)
