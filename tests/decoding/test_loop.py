"""Decoding: cached == uncached, greedy == argmax, per-sequence stopping, sampling filters, and
a new logits processor working in the loop unchanged."""

from __future__ import annotations

import pytest
import torch
from helpers import decode_ids, gen

from audiollm.decoding.options import DecodingOptions
from audiollm.decoding.processors import LogProbabilities, Processor
from audiollm.decoding.sampling import sample_next_token, top_k_filter, top_p_filter
from audiollm.errors import ConfigError
from audiollm.models import (
    AudioLLM,
    AudioLLMConfig,
    Decoder,
    DecoderConfig,
    decoder_to_hf_llama,
)

PROMPTS = [[5, 9, 11, 3], [7], [12, 13]]


def make_model(seed: int = 0, tie: bool = False) -> AudioLLM:
    torch.manual_seed(seed)
    cfg = AudioLLMConfig.tiny()
    cfg.lm_config.tie_embeddings = tie
    model = AudioLLM(cfg).eval()
    # Random tiny models with small init repeat one token forever; a larger LM head makes the
    # greedy paths non-trivial (tokens change from step to step), which is what we want to test.
    with torch.no_grad():
        if model.lm.lm_head is not None:
            model.lm.lm_head.weight.mul_(40.0)
    return model


def make_audio(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6400, 2000, 4800])
    audio = torch.randn(3, 6400, generator=g) * 0.1
    for i, n in enumerate(lengths.tolist()):
        audio[i, n:] = 0
    return audio, lengths


def test_cached_equals_uncached_tokens_and_logits():
    model = make_model()
    audio, lengths = make_audio()
    cached, cached_logits = gen(model, audio, lengths, PROMPTS, max_new_tokens=12, return_logits=True)
    plain, plain_logits = gen(model, audio, lengths, PROMPTS, max_new_tokens=12, use_cache=False,
                                         return_logits=True)
    assert cached == plain
    assert all(len(t) == 12 for t in cached)
    assert all(len(set(t)) > 1 for t in cached)  # a non-trivial test: not one repeated token
    for a, b in zip(cached_logits, plain_logits):
        assert a.shape == (12, 128)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_batched_generation_equals_one_row_at_a_time():
    model = make_model()
    audio, lengths = make_audio()
    batched = gen(model, audio, lengths, PROMPTS, max_new_tokens=10)
    for i in range(3):
        n = int(lengths[i])
        alone = gen(model, audio[i : i + 1, :n], lengths[i : i + 1], PROMPTS[i : i + 1], max_new_tokens=10)
        assert alone[0] == batched[i]


def test_greedy_is_argmax_of_forward_logits():
    model = make_model()
    audio, lengths = make_audio()
    tokens = gen(model, audio, lengths, PROMPTS, max_new_tokens=3)
    for i, prompt in enumerate(PROMPTS):
        n = int(lengths[i])
        seq = list(prompt)
        for step in range(3):
            ids = torch.tensor([seq])
            out = model(audio[i : i + 1, :n], lengths[i : i + 1], ids, torch.tensor([len(seq)]))
            assert out.logits[0, -1].argmax().item() == tokens[i][step]
            seq.append(tokens[i][step])


@pytest.mark.parametrize("use_cache", [True, False])
def test_per_sequence_stopping_at_eos(use_cache):
    model = make_model()
    audio, lengths = make_audio()
    free = gen(model, audio, lengths, PROMPTS, max_new_tokens=12, use_cache=use_cache)
    eos = free[0][3]  # a token row 0 produces at step 3; other rows may or may not produce it
    stopped = gen(model, audio, lengths, PROMPTS, max_new_tokens=12, eos_id=eos, use_cache=use_cache)
    for row_free, row_stopped in zip(free, stopped):
        expect = row_free[: row_free.index(eos)] if eos in row_free else row_free
        assert row_stopped == expect
    assert len(stopped[0]) <= 3


def test_forced_eos_via_biased_lm_head_ends_the_loop():
    model = make_model()
    eos = 3
    head = torch.nn.Linear(model.lm.d_model, 128, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm.lm_head.weight)
        head.bias.zero_()
        head.bias[eos] = 1e4
    model.lm.lm_head = head
    calls = []
    model.lm.register_forward_hook(lambda *_: calls.append(1))
    audio, lengths = make_audio()
    assert gen(model, audio, lengths, PROMPTS, max_new_tokens=20, eos_id=eos) == [[], [], []]
    assert len(calls) == 1  # the prefill produced eos everywhere: no further decode steps



def test_decoder_generate_left_padded_batch_matches_single_rows():
    torch.manual_seed(0)
    dec = Decoder(DecoderConfig.tiny()).eval()
    with torch.no_grad():
        dec.embed.weight.mul_(20.0)
    prompts = [[4, 8, 15, 16, 23], [42, 7]]
    P = max(map(len, prompts))
    ids = torch.zeros(2, P, dtype=torch.long)
    mask = torch.zeros(2, P, dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, P - len(p):] = torch.tensor(p)
        mask[i, P - len(p):] = True
    batched = decode_ids(dec, ids, mask, max_new_tokens=8)
    uncached = decode_ids(dec, ids, mask, max_new_tokens=8, use_cache=False)
    assert batched == uncached
    for i, p in enumerate(prompts):
        assert decode_ids(dec, torch.tensor([p]), None, max_new_tokens=8) == [batched[i]]
    with pytest.raises(ValueError, match="LEFT-padded"):
        decode_ids(dec, ids, mask.flip(1), max_new_tokens=2)
    with pytest.raises(ConfigError, match="context of 512 positions"):
        decode_ids(dec, ids, mask, max_new_tokens=10_000)


def test_temperature_sampling_is_reproducible_with_a_seeded_generator():
    model = make_model()
    audio, lengths = make_audio()
    kwargs = dict(max_new_tokens=8, temperature=1.5, top_k=20, top_p=0.95)
    a = gen(model, audio, lengths, PROMPTS, generator=torch.Generator().manual_seed(7), **kwargs)
    b = gen(model, audio, lengths, PROMPTS, generator=torch.Generator().manual_seed(7), **kwargs)
    c = gen(model, audio, lengths, PROMPTS, generator=torch.Generator().manual_seed(8), **kwargs)
    assert a == b and a != c
    # top_k=1 sampling is greedy whatever the temperature.
    greedy = gen(model, audio, lengths, PROMPTS, max_new_tokens=8)
    assert gen(model, audio, lengths, PROMPTS, max_new_tokens=8, temperature=2.0, top_k=1,
                          generator=torch.Generator().manual_seed(0)) == greedy


# ---------------------------------------------------------------------------------------------
# sample_next_token and the filters
# ---------------------------------------------------------------------------------------------


def test_greedy_sampling_is_argmax():
    logits = torch.randn(5, 50)
    assert torch.equal(sample_next_token(logits), logits.argmax(-1))


def test_top_k_filter():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    out = top_k_filter(logits, 2)
    assert torch.isinf(out).tolist() == [[True, False, True, False, True]]
    assert torch.equal(top_k_filter(logits, 0), logits) and torch.equal(top_k_filter(logits, 9), logits)


def test_top_p_filter_keeps_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = lambda p: (~torch.isinf(top_p_filter(logits, p))).tolist()[0]  # noqa: E731
    assert kept(0.5) == [True, False, False, False]  # 0.5 alone reaches 0.5
    assert kept(0.6) == [True, True, False, False]
    assert kept(0.8) == [True, True, False, False]  # 0.5 + 0.3 = 0.8 reaches 0.8
    assert kept(0.81) == [True, True, True, False]
    assert kept(1e-6) == [True, False, False, False]  # always at least one token
    assert kept(1.0) == [True, True, True, True]
    # Order-independent: shuffled columns keep the same tokens.
    perm = torch.tensor([2, 0, 3, 1])
    assert (~torch.isinf(top_p_filter(logits[:, perm], 0.6))).tolist()[0] == [False, True, False, True]


def test_sampling_respects_filters_and_generator():
    logits = torch.tensor([[0.0, 3.0, 2.9, -5.0, 1.0]]).repeat(2000, 1)
    g = torch.Generator().manual_seed(0)
    draws = sample_next_token(logits, temperature=1.0, top_k=2, generator=g)
    assert set(draws.tolist()) == {1, 2}
    draws = sample_next_token(logits, temperature=1.0, top_p=0.3, generator=g)
    assert set(draws.tolist()) == {1}
    a = sample_next_token(logits[:50], temperature=0.7, generator=torch.Generator().manual_seed(3))
    b = sample_next_token(logits[:50], temperature=0.7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"temperature": -1.0}, "temperature"), ({"top_k": -2}, "top_k"), ({"top_p": 0.0}, "top_p"),
     ({"top_p": 1.5}, "top_p")],
)
def test_bad_sampling_args_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DecodingOptions(**kwargs)


def test_decoder_generate_matches_hf_llama_generate_on_left_padded_batch():
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = DecoderConfig.tiny()
    cfg.tie_embeddings = False
    dec = Decoder(cfg).eval()
    with torch.no_grad():
        dec.lm_head.weight.mul_(40.0)
    hf = decoder_to_hf_llama(dec)
    ids = torch.tensor([[0, 0, 0, 4, 8, 15], [16, 23, 42, 7, 9, 1], [0, 0, 0, 0, 0, 3]])
    mask = (torch.arange(6)[None] >= torch.tensor([[3], [0], [5]])).long()
    ours = decode_ids(dec, ids, mask, max_new_tokens=10)
    theirs = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False,
                         pad_token_id=0, eos_token_id=None)[:, 6:].tolist()
    assert ours == theirs
    assert all(len(set(row)) > 1 for row in ours)


class CodebookPattern(Processor):
    """A constraint the loop has never seen, written as a new processor: a delay-pattern-like
    interleaving of two codebooks — even steps draw from the first half of the vocabulary,
    odd steps from the second — with its own per-sequence step counter."""

    def __init__(self, vocab: int, n: int):
        self.vocab, self.steps, self.seen = vocab, [0] * n, [[] for _ in range(n)]

    def __call__(self, rows, scores):
        half = self.vocab // 2
        allowed = torch.zeros_like(scores, dtype=torch.bool)
        for j, row in enumerate(rows):
            lo = 0 if self.steps[row] % 2 == 0 else half
            allowed[j, lo : lo + half] = True
        return scores.masked_fill(~allowed, float("-inf"))

    def advance(self, rows, tokens):
        for row, tok in zip(rows, tokens.tolist()):
            self.steps[row] += 1
            self.seen[row].append(tok)


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_new_processor_plugs_into_the_loop_unchanged(use_cache):
    """The loop applies any processor it is given: the constraint holds at every step, the
    processor is told exactly the tokens picked, and the cached and uncached loops agree."""
    torch.manual_seed(0)
    lm = Decoder(DecoderConfig.tiny()).eval()
    vocab = lm.config.vocab_size
    ids = torch.tensor([[5, 9, 11, 3], [0, 7, 8, 2]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
    pattern = CodebookPattern(vocab, 2)
    out = decode_ids(lm, ids, mask, processors=[LogProbabilities(), pattern], max_new_tokens=12, use_cache=use_cache,
                     temperature=1.0, seed=3)
    for row in out:
        assert len(row) == 12
        assert all((tok < vocab // 2) == (i % 2 == 0) for i, tok in enumerate(row)), row
    assert pattern.seen == out
    again = decode_ids(lm, ids, mask, processors=[LogProbabilities(), CodebookPattern(vocab, 2)], max_new_tokens=12,
                       use_cache=not use_cache, temperature=1.0, seed=3)
    assert again == out
