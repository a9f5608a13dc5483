"""The one autoregressive decoding loop, for our decoder and any transformers causal LM alike.

It continues LEFT-padded prefix embeddings (every row's last real token in the last column;
positions count real tokens only), one token per step, with a KV cache unless
``options.use_cache`` is False (then the whole prefix is recomputed each step: the reference
the cache is tested against). Each step the LM's next-token logits go through the logits
processors in order (`audiollm.decoding.processors`), then one token per sequence is picked
(`sampling.sample_next_token`); a sequence stops at ``eos_id`` and leaves the batch, its cache
rows too, so finished rows cost nothing.

A step may pick several tokens at once: when the LM's logits are (R, W, V) each sequence gets W
tokens per step (the K codebooks of a codec frame under the delay pattern,
`decoding.codec_pattern`), the step's token is a list of W ids, and a sequence stops when the
last of them is ``eos_id``.

The language model needs: ``embed_tokens(ids)`` ((R, 1) or (R, 1, W) ids), ``forward(inputs_embeds=, attention_mask=,
cache=, logits_to_keep=)`` → logits, ``new_cache(batch, max_len, dtype, device)`` → a cache
with ``select_rows(index)``, and ``max_seq_len`` (0 = no limit).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from audiollm.decoding.options import DecodingOptions
from audiollm.decoding.processors import LogitsProcessor
from audiollm.decoding.sampling import sample_next_token
from audiollm.errors import AudioLLMError, ConfigError


@torch.no_grad()
def generate(
    lm,
    prefix: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    options: DecodingOptions = DecodingOptions(),
    eos_id: int | None = None,
    processors: Sequence[LogitsProcessor] = (),
    generator: torch.Generator | None = None,
    return_logits: bool = False,
) -> list[list[int]] | tuple[list[list[int]], list[torch.Tensor]]:
    """Each sequence's new tokens (eos excluded) after ``prefix`` (R, P, D) embeddings with valid
    ``mask`` (R, P); R = sequences × the processors' branches (see `processors`).

    With ``return_logits`` also each sequence's (n_steps, V) float32 next-token logits as the LM
    gave them (its first branch's, before any processor). Sampling draws from ``generator``,
    else from a new generator seeded with ``options.seed``.
    """
    R, P, _ = prefix.shape
    device = prefix.device
    branches = 1
    for p in processors:
        branches *= p.branches
    if R % branches:
        raise ValueError(f"{R} prefix rows do not split into {branches} branches")
    n = R // branches
    mask = torch.ones(R, P, dtype=torch.bool, device=device) if mask is None else mask.bool()
    if not bool(mask[:, -1].all()):
        raise ValueError("generate expects LEFT-padded prefixes: mask[:, -1] must be all True")
    limit = int(getattr(lm, "max_seq_len", 0) or 0)
    if limit and P + options.max_new_tokens > limit:
        raise ConfigError(f"the prompt ({P} tokens) + max_new_tokens ({options.max_new_tokens}) exceeds the "
                          f"language model's context of {limit} positions")
    if generator is None and not options.greedy:
        generator = torch.Generator(device="cpu").manual_seed(options.seed)
    tokens: list[list[int]] = [[] for _ in range(n)]
    step_logits: list[list[torch.Tensor]] | None = [[] for _ in range(n)] if return_logits else None
    if options.max_new_tokens <= 0:
        return _finish(tokens, step_logits, 0)

    rows = list(range(n))  # the sequence each active row decodes
    cache = lm.new_cache(R, P + options.max_new_tokens, dtype=prefix.dtype, device=device) if options.use_cache else None
    seq = prefix  # uncached: every embedding so far
    logits = lm(inputs_embeds=prefix, attention_mask=mask, cache=cache, logits_to_keep=1)[:, -1]  # (R, [W,] V)
    vocab = logits.shape[-1]
    for step in range(options.max_new_tokens):
        scores = logits
        for p in processors:
            scores = p(rows, scores)
        if scores.shape[0] != len(rows):
            raise AudioLLMError(f"the logits processors left {scores.shape[0]} rows for {len(rows)} sequences")
        next_tok = sample_next_token(scores.float(), options.temperature, options.top_k, options.top_p, generator)
        for p in processors:
            p.advance(rows, next_tok)
        keep = []
        for j, (row, tok) in enumerate(zip(rows, next_tok.tolist())):
            if step_logits is not None:
                step_logits[row].append(logits[j].float())
            if eos_id is not None and (tok[-1] if isinstance(tok, list) else tok) == eos_id:
                continue
            tokens[row].append(tok)
            keep.append(j)
        if not keep or step == options.max_new_tokens - 1:
            break
        if len(keep) < len(rows):  # finished sequences leave the batch, in every branch
            idx = torch.tensor(keep, device=device)
            full = torch.cat([idx + b * len(rows) for b in range(branches)]) if branches > 1 else idx
            rows = [rows[j] for j in keep]
            next_tok, mask = next_tok[idx], mask[full]
            if cache is not None:
                cache.select_rows(full)
            else:
                seq = seq[full]
        # every branch continues alike
        feed = next_tok.repeat(branches, *[1] * (next_tok.dim() - 1)) if branches > 1 else next_tok
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        new = lm.embed_tokens(feed[:, None])  # (rows, 1, D) from (rows, 1) or (rows, 1, W) ids
        if cache is not None:
            logits = lm(inputs_embeds=new, attention_mask=mask, cache=cache)[:, -1]
        else:
            seq = torch.cat([seq, new.to(seq.dtype)], dim=1)
            logits = lm(inputs_embeds=seq, attention_mask=mask, logits_to_keep=1)[:, -1]
    return _finish(tokens, step_logits, vocab)


def _finish(tokens: list[list], step_logits: list[list[torch.Tensor]] | None, vocab: int):
    if step_logits is None:
        return tokens
    return tokens, [torch.stack(s) if s else torch.empty(0, vocab) for s in step_logits]
