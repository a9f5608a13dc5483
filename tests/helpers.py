"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import torch

from audiollm.decoding.loop import generate as decode
from audiollm.decoding.options import DecodingOptions


def gen(model, audio, lengths, prompts, *, eos_id=None, generator=None, return_logits=False, ctc_rows=None,
        **options):
    """`AudioLLM.generate` with the decoding options as keyword arguments."""
    return model.generate(audio, lengths, prompts, DecodingOptions(**options), eos_id=eos_id, generator=generator,
                          return_logits=return_logits, ctc_rows=ctc_rows)


def decode_ids(lm, ids: torch.Tensor, mask: torch.Tensor | None = None, *, eos_id=None, processors=(),
               generator=None, return_logits=False, **options):
    """The decoding loop on a bare language model, from left-padded token ids."""
    return decode(lm, lm.embed_tokens(ids), mask, options=DecodingOptions(**options), eos_id=eos_id,
                  processors=processors, generator=generator, return_logits=return_logits)


def sample(model, tokenizer, questions, *, seconds, generator=None, constrained=True, follow_caption=True,
           temperature=1.0, max_new_tokens=1024, **options):
    """`compose.sample_events` with the decoding options as keyword arguments (sampled at
    temperature 1 by default, as `audiollm generate` does)."""
    from audiollm.inference.compose import sample_events

    opts = DecodingOptions(temperature=temperature, max_new_tokens=max_new_tokens, **options)
    return sample_events(model, tokenizer, questions, seconds=seconds, options=opts, generator=generator,
                         constrained=constrained, follow_caption=follow_caption)
