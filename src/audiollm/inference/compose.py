"""Text → MIDI: sample event tokens for captions, with classifier-free guidance and the
MIDI grammar mask, and decode them into notes.

Guidance runs the conditional prompts and the unconditional (empty) prompt as one batch of
2·B rows sharing one KV cache; each step the next-token log-probabilities are combined as
``uncond + s · (cond − uncond)`` (s = 1: the conditional model alone, and no second branch),
the grammar mask (:mod:`audiollm.midi_grammar`) removes every token that would break the
event grammar, and one token is drawn and fed to both branches of its row.

The answer starts with a forced ``<|tie|>``: a piece begins with nothing already sounding,
exactly as training windows that start at a clip's beginning do. With a vocabulary that has
attribute tokens, the model first writes the piece's tempo bin and key (the grammar allows
nothing else there), then the ``<|tie|>``, then the events.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from audiollm.data.batching import prompt_ids
from audiollm.errors import AudioLLMError
from audiollm.decoding.sampling import check_sampling_args, sample_next_token
from audiollm.music.grammar import MidiGrammar, plan_choices
from audiollm.tokenizers.midi import TIE
from audiollm.music.notes import Note

UNCONDITIONAL = ""  # the prompt text condition dropout trains on


def _new_cache(lm, rows: int, max_len: int):
    """The LM's KV cache and how to keep a subset of its rows."""
    if hasattr(lm, "new_cache"):  # our Decoder: preallocated
        cache = lm.new_cache(rows, max_len)
        return cache, cache.select_rows
    import transformers  # a transformers LM (hf_lm): its dynamic cache

    cache = transformers.DynamicCache(config=lm.model.config)
    return cache, cache.batch_select_indices


@torch.no_grad()
def sample_events(
    model,
    tokenizer,
    questions: Sequence[str],
    *,
    seconds: float,
    guidance: float = 1.0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    max_new_tokens: int | None = None,
    use_cache: bool = True,
    constrained: bool = True,
    follow_caption: bool = True,
) -> list[list[str]]:
    """One event-token sequence (starting with ``<|tie|>``, or with the attribute tokens and
    then ``<|tie|>`` when the vocabulary has them) per question, for a window of ``seconds``.
    With attribute tokens and ``follow_caption`` the grammar lets the model write only a tempo
    and key its question asks for (:func:`audiollm.midi_grammar.plan_choices` of
    :func:`audiollm.music_prompt.parse_request`); what the question leaves open, the model picks.
    ``constrained=False`` drops the grammar mask (only for comparisons: its samples may need
    repairs when decoded)."""
    check_sampling_args(temperature, top_k, top_p)
    if not guidance >= 0:
        raise AudioLLMError(f"guidance must be >= 0 (1 = off), got {guidance}")
    vocab = tokenizer.midi
    if vocab is None:
        raise AudioLLMError("this model's tokenizer has no MIDI vocabulary: it was not trained to write MIDI")
    length = vocab.check_window(seconds)
    lm = model.lm
    device = next(model.parameters()).device
    b = len(questions)
    guided = guidance != 1.0
    # The answer's fixed opening: <|tie|> (with attribute tokens, the model writes them and the tie).
    opening = [] if vocab.attributes else tokenizer.encode_events([TIE])
    prompts = [prompt_ids(tokenizer, q) + opening for q in questions]
    if guided:
        prompts += [prompt_ids(tokenizer, UNCONDITIONAL) + opening] * b
    P = max(len(p) for p in prompts)
    limit = getattr(lm.config, "max_seq_len", None) or getattr(lm, "max_seq_len", None)  # ours / a transformers LM's
    wanted = 4 * length if max_new_tokens is None else max_new_tokens  # ~4 tokens a step is far past any real piece
    budget = min(wanted, limit - P) if limit else wanted
    if budget < 1:
        raise AudioLLMError(f"the prompt ({P} tokens) leaves no room in the decoder's context")
    ids = torch.zeros(len(prompts), P, dtype=torch.long, device=device)
    mask = torch.zeros(len(prompts), P, dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):  # left-padded: every row's last prompt token in the last column
        ids[i, P - len(p):] = torch.as_tensor(p, device=device)
        mask[i, P - len(p):] = True
    seq = lm.embed_tokens(ids)  # (2b or b, P, D)
    choices = None
    if vocab.attributes and follow_caption:
        from audiollm.music.prompt import parse_request

        choices = [plan_choices(vocab, parse_request(q)) for q in questions]
    grammar = (MidiGrammar(tokenizer, b, length, held=False, attributes=vocab.attributes, choices=choices)
               if constrained else None)
    out = decode_events(lm, seq, mask, grammar, budget=budget, eos_id=tokenizer.eos_id, guidance=guidance,
                        temperature=temperature, top_k=top_k, top_p=top_p, generator=generator, use_cache=use_cache)
    return [tokenizer.decode_events(opening + o) for o in out]


def generate_midi(model, tokenizer, texts: Sequence[str], *, seconds: float, **sampling) -> list[list[Note]]:
    """Notes (seconds from the piece start) for each text; keyword arguments go to
    :func:`sample_events`. Notes still sounding when a sequence ends close at ``seconds``."""
    was_training = model.training
    model.eval()
    try:
        events = sample_events(model, tokenizer, list(texts), seconds=seconds, **sampling)
    finally:
        model.train(was_training)
    return [tokenizer.midi.decode_windows([e], seconds, total_seconds=seconds)[0] for e in events]


def check_generation(tokenizer, text: str, seconds: float, window_seconds: float) -> float:
    """Validate a text-to-MIDI request before any work; returns ``seconds`` on the time grid.

    AudioLLMError for a tokenizer without MIDI vocabulary, an empty text, an instrument the
    vocabulary lacks (listing the ones it has), or a length outside (0, ``window_seconds``]:
    a model trained on 4 s windows has never seen a piece longer than that, so longer
    requests are refused rather than continued window by window.
    """
    from audiollm.music.prompt import check_request

    vocab = getattr(tokenizer, "midi", None)
    if vocab is None:
        raise AudioLLMError("the model's tokenizer has no MIDI vocabulary: it was not trained on text_to_midi")
    if not text.strip():
        raise AudioLLMError("--text is empty: describe the music (e.g. \"a cello in D minor at 72 bpm\")")
    check_request(text, vocab.programs)
    if not seconds > 0:
        raise AudioLLMError(f"--seconds must be > 0, got {seconds:g}")
    if seconds > window_seconds + 1e-9:
        raise AudioLLMError(f"--seconds {seconds:g} is beyond the {window_seconds:g} s window text_to_midi is trained "
                            f"on; ask for at most {window_seconds:g} s")
    return max(1, round(seconds / vocab.time_step)) * vocab.time_step


@torch.no_grad()
def decode_events(
    lm,
    seq: torch.Tensor,
    mask: torch.Tensor,
    grammar: MidiGrammar | None,
    *,
    budget: int,
    eos_id: int,
    guidance: float = 1.0,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """Continue LEFT-padded prefixes ``seq`` (R, P, D) with valid ``mask`` (R, P), one token
    at a time under ``grammar``'s mask (None: unconstrained), each row until end of sequence or
    ``budget`` tokens; returns each row's new ids (eos excluded). With ``guidance != 1`` the
    last half of the rows are the unconditional branch of the first half (R = 2b) and b
    sequences come back."""
    guided = guidance != 1.0
    b = seq.shape[0] // 2 if guided else seq.shape[0]
    device = seq.device
    out: list[list[int]] = [[] for _ in range(b)]
    rows = list(range(b))  # original sequence of each active row
    cache, select = _new_cache(lm, seq.shape[0], seq.shape[1] + budget) if use_cache else (None, None)
    logits = lm(inputs_embeds=seq, attention_mask=mask, cache=cache, logits_to_keep=1)[:, -1].float()
    for step in range(budget):
        n = len(rows)
        if not bool(torch.isfinite(logits).all()):
            raise AudioLLMError("the model produced non-finite logits while decoding MIDI events (diverged weights?)")
        # Floored log-probabilities: the guidance extrapolation below must never compute
        # -inf - (-inf) (NaN) or s·(finite - (-inf)) (+inf) for a token one branch rules out.
        logp = torch.log_softmax(logits, dim=-1).clamp(min=-1e4)  # (n or 2n, V)
        if guided:
            cond, uncond = logp[:n], logp[n:]
            logp = uncond + guidance * (cond - uncond)  # (n, V)
        if grammar is not None:
            logp = logp.masked_fill(~grammar.mask(rows, device), float("-inf"))
        nxt = sample_next_token(logp, temperature, top_k, top_p, generator)  # (n,)
        toks = nxt.tolist()
        if grammar is not None:
            grammar.advance(rows, toks)
        keep = [j for j, t in enumerate(toks) if t != eos_id]
        for j in keep:
            out[rows[j]].append(toks[j])
        if not keep or step == budget - 1:
            break
        if len(keep) < n:  # finished rows leave the batch (and their cache rows, both branches)
            idx = torch.tensor(keep, device=device)
            full = torch.cat([idx, idx + n]) if guided else idx
            rows = [rows[j] for j in keep]
            nxt, mask = nxt[idx], mask[full]
            if cache is not None:
                select(full)
            else:
                seq = seq[full]
        feed = torch.cat([nxt, nxt]) if guided else nxt  # both branches continue with the same token
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        new = lm.embed_tokens(feed[:, None])  # (rows, 1, D)
        if cache is not None:
            logits = lm(inputs_embeds=new, attention_mask=mask, cache=cache)[:, -1].float()
        else:
            seq = torch.cat([seq, new.to(seq.dtype)], dim=1)
            logits = lm(inputs_embeds=seq, attention_mask=mask, logits_to_keep=1)[:, -1].float()
    return out
