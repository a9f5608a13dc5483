"""Ask: (audio, question) pairs → text answers, one batch at a time; and teacher-forced scores
of candidate answers.

Audio comes as 16 kHz waveforms (S,) or as a frozen encoder's cached states
(`audiollm.data.feature_cache.CachedClip`, what training validates with); a batch is one or
the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from audiollm.audio import SAMPLE_RATE, pad_batch
from audiollm.data.feature_cache import CachedClip
from audiollm.decoding.options import DecodingOptions
from audiollm.errors import AudioLLMError
from audiollm.inference import DEFAULT_QUESTION  # noqa: F401  (the default of ask)


def audio_batch(clips: Sequence[torch.Tensor | CachedClip], device) -> dict[str, torch.Tensor | None]:
    """The model's audio arguments for a batch of waveforms or of cached states."""
    if all(isinstance(c, CachedClip) for c in clips):
        states, frames = pad_batch([c.states for c in clips])
        samples = torch.tensor([round(c.seconds * SAMPLE_RATE) for c in clips])
        return {"audio": None, "audio_lengths": samples.to(device), "encoder_states": states.to(device),
                "encoder_lengths": frames.to(device)}
    if any(isinstance(c, CachedClip) for c in clips):
        raise AudioLLMError("a batch mixes waveforms and cached encoder states")
    audio, lengths = pad_batch(list(clips))
    return {"audio": audio.to(device), "audio_lengths": lengths.to(device)}


@torch.no_grad()
def generate_answers(
    model,
    tokenizer,
    clips: Sequence[torch.Tensor | CachedClip],
    questions: Sequence[str],
    options: DecodingOptions = DecodingOptions(),
    *,
    generator: torch.Generator | None = None,
    ctc_rows: Sequence[bool] | None = None,
) -> list[str]:
    """One decoded answer per (clip, question) pair, as one batch.

    ``options.ctc_weight`` > 0 decodes the rows marked in ``ctc_rows`` (all when None) jointly
    with the model's CTC head, if it has one (see :mod:`audiollm.decoding.ctc_prefix`): for
    transcripts.
    """
    if len(clips) != len(questions):
        raise AudioLLMError(f"{len(questions)} questions for {len(clips)} clips")
    device = next(model.parameters()).device
    tokens = model.generate(prompt_ids=[tokenizer.prompt_ids(q) for q in questions], options=options,
                            eos_id=tokenizer.eos_id, generator=generator, ctc_rows=ctc_rows,
                            **audio_batch(clips, device))
    return [tokenizer.decode(t) for t in tokens]


@torch.no_grad()
def candidate_logprobs(
    model,
    tokenizer,
    wavs: Sequence[torch.Tensor],
    questions: Sequence[str],
    candidates: Sequence[Sequence[tuple[str, str]]],
) -> list[list[float]]:
    """Teacher-forced log-likelihood of candidate answers, one list per clip.

    ``candidates[i]`` holds (answer prefix, candidate) text pairs for clip i; each score is
    ``log P(candidate | audio_i, question_i, answer prefix)``. The candidate's tokens are the
    tokens that ``encode(prefix + candidate)`` adds beyond its longest common start with
    ``encode(prefix)``, so a candidate is tokenised as it would be inside a whole answer.
    """
    device = next(model.parameters()).device
    audio, lengths = pad_batch(list(wavs))
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
