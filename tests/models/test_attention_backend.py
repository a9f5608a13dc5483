"""`lm.attention`: the CPU math-backend rule picks the backend only, never changes the result."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

import audiollm.models.lm as lm
from audiollm.models import Decoder, DecoderConfig


@pytest.fixture
def math_calls(monkeypatch):
    """Counts how often `attention` asks for the math backend."""
    calls = []
    real = lm.sdpa_kernel

    @contextlib.contextmanager
    def recording(backend):
        calls.append(backend)
        with real(backend):
            yield

    monkeypatch.setattr(lm, "sdpa_kernel", recording)
    return calls


def _qkv(T: int, grad: bool = True, dtype=torch.float32):
    g = torch.Generator().manual_seed(T)
    return [torch.randn(3, 4, T, 16, generator=g, dtype=dtype).requires_grad_(grad) for _ in range(3)]


@pytest.mark.parametrize("kind", ["padded", "causal"])
def test_same_output_and_gradients_as_default_sdpa(kind, math_calls):
    T = 40
    keep = torch.arange(T)[None, :] < torch.tensor([40, 25, 9])[:, None]
    mask = (keep[:, None, :, None] & keep[:, None, None, :]) | torch.eye(T, dtype=torch.bool)
    kwargs = {"attn_mask": mask} if kind == "padded" else {"is_causal": True}
    results = []
    for fn in (lm.attention, F.scaled_dot_product_attention):
        q, k, v = _qkv(T)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = fn(q, k, v, **kwargs)
        y.float().square().sum().backward()
        results.append([y.float(), q.grad, k.grad, v.grad])
    assert len(math_calls) == 1  # the rule applied to lm.attention's call only
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref, atol=3e-2, rtol=3e-2)


def test_rule_applies_only_to_short_low_precision_cpu_training(math_calls):
    short, long = lm.CPU_MATH_ATTENTION_MAX_KEYS, lm.CPU_MATH_ATTENTION_MAX_KEYS + 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lm.attention(*_qkv(short), is_causal=True)
        assert len(math_calls) == 1
        lm.attention(*_qkv(long), is_causal=True)  # long: flash is faster
        lm.attention(*_qkv(short, grad=False), is_causal=True)  # no gradients: decoding
        with torch.no_grad():
            lm.attention(*_qkv(short), is_causal=True)
    lm.attention(*_qkv(short), is_causal=True)  # float32
    assert len(math_calls) == 1
    lm.attention(*_qkv(short, dtype=torch.bfloat16), is_causal=True)  # bf16 tensors, no autocast
    assert len(math_calls) == 2


def test_decoder_training_step_uses_the_rule_and_matches_flash(math_calls, monkeypatch):
    config = DecoderConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=64,
                           max_seq_len=64)
    torch.manual_seed(0)
    model = Decoder(config).train()
    ids = torch.randint(0, 64, (2, 24))
    grads = []
    for max_keys in (lm.CPU_MATH_ATTENTION_MAX_KEYS, 0):
        monkeypatch.setattr(lm, "CPU_MATH_ATTENTION_MAX_KEYS", max_keys)
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(ids)
        F.cross_entropy(logits.float().flatten(0, 1), ids.flatten()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert len(math_calls) == config.n_layers  # every layer of the first step, none of the second
    torch.testing.assert_close(grads[0], grads[1], atol=2e-2, rtol=5e-2)
