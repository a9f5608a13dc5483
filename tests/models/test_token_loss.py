"""The hidden-state cross-entropy (`models.token_loss`) equals the full-logits one, gradients included."""

import pytest
import torch
import torch.nn.functional as F

from audiollm.models import AudioLLM, AudioLLMConfig, token_loss
from audiollm.models.token_loss import linear_cross_entropy_sum


def reference(hidden, weight, targets):
    return F.cross_entropy(F.linear(hidden, weight).float().reshape(-1, weight.shape[0]), targets.reshape(-1),
                           ignore_index=-100, reduction="sum")


def problem(seed=0, B=3, T=11, D=16, V=50, ignore=0.5):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, D, generator=g)
    weight = torch.randn(V, D, generator=g) * 0.5
    targets = torch.randint(0, V, (B, T), generator=g)
    targets[torch.rand(B, T, generator=g) < ignore] = -100
    return hidden, weight, targets


def loss_and_grads(fn, hidden, weight, targets, scale=1.0):
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    loss = fn(h, w, targets)
    (loss * scale).backward()
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize("chunk_elements", [1 << 22, 64])  # one chunk; many (32-row) chunks
def test_loss_and_gradients_equal_the_full_logits_path(monkeypatch, chunk_elements):
    monkeypatch.setattr(token_loss, "CHUNK_ELEMENTS", chunk_elements)
    hidden, weight, targets = problem(B=4, T=40)
    assert int((targets != -100).sum()) > 32  # more than one chunk in the small setting
    ref = loss_and_grads(reference, hidden, weight, targets, scale=0.37)
    got = loss_and_grads(linear_cross_entropy_sum, hidden, weight, targets, scale=0.37)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert float(got[1][targets == -100].abs().max()) == 0.0  # no gradient where there is no target


def test_tied_weight_gets_both_gradients():
    """A tied head: the embedding lookup's and the head's gradients add up on one tensor."""
    hidden, weight, targets = problem()
    ids = torch.randint(0, weight.shape[0], (3, 11), generator=torch.Generator().manual_seed(1))

    def grads(loss_fn):
        w = weight.clone().requires_grad_()
        loss_fn(F.embedding(ids, w) + hidden, w, targets).backward()
        return w.grad

    torch.testing.assert_close(grads(linear_cross_entropy_sum), grads(reference), atol=1e-5, rtol=1e-5)


def test_frozen_head_and_no_grad_and_no_targets():
    hidden, weight, targets = problem()
    h = hidden.clone().requires_grad_()
    linear_cross_entropy_sum(h, weight, targets).backward()  # weight needs no gradient
    ref_h = hidden.clone().requires_grad_()
    reference(ref_h, weight, targets).backward()
    torch.testing.assert_close(h.grad, ref_h.grad, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy_sum(hidden, weight, targets), reference(hidden, weight, targets))
    none = torch.full_like(targets, -100)
    got = loss_and_grads(linear_cross_entropy_sum, hidden, weight, none)
    assert got[0].item() == 0.0 and float(got[1].abs().max()) == 0.0 and float(got[2].abs().max()) == 0.0


def test_bf16_autocast_matches_the_autocast_logits_path():
    hidden, weight, targets = problem(D=64, V=300)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = loss_and_grads(reference, hidden, weight, targets)
        got = loss_and_grads(linear_cross_entropy_sum, hidden, weight, targets)
    assert got[0].dtype == torch.float32 and got[1].dtype == got[2].dtype == torch.float32
    torch.testing.assert_close(got[0], ref[0], atol=1e-3, rtol=1e-3)
    for a, b in zip(got[1:], ref[1:]):
        torch.testing.assert_close(a, b, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("lm,lora", [("llama", False), ("hf_causal_lm", False), ("hf_causal_lm", True)])
def test_audiollm_training_loss_equals_the_full_logits_loss(lm, lora):
    """AudioLLM's training forward (no (B, T, V) logits) gives the loss and the parameter
    gradients of cross-entropy over the full logits, for our decoder and a transformers LM
    (fully trained, or frozen with LoRA adapters: the head then needs no gradient)."""
    from test_models import make_batch

    torch.manual_seed(0)
    cfg = AudioLLMConfig.tiny(lm=lm)
    if lm == "hf_causal_lm" and not lora:
        cfg.lm_config.freeze, cfg.lm_config.lora_r = False, 0
    model = AudioLLM(cfg)
    assert model.lm.output_weight is not None
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch(vocab=100)

    def run(return_logits):
        model.zero_grad(set_to_none=True)
        out = model(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=return_logits)
        if return_logits:  # the reference: CE over the full logits, position A_i + t - 1 predicting labels[i, t]
            terms = [F.cross_entropy(out.logits[i, int(out.audio_token_lengths[i]) + t - 1].float()[None],
                                     labels[i, t][None], reduction="sum")
                     for i in range(labels.shape[0]) for t in range(1, int(text_lengths[i])) if labels[i, t] != -100]
            loss = torch.stack(terms).sum() / len(terms)
        else:
            assert out.logits is None
            loss = out.loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    fused_loss, fused_grads = run(False)
    ref_loss, ref_grads = run(True)
    torch.testing.assert_close(fused_loss, ref_loss, atol=1e-5, rtol=1e-5)
    assert fused_grads.keys() == ref_grads.keys() and len(fused_grads) > 10
    assert any("lora" in name for name in ref_grads) == lora
    for name in ref_grads:
        torch.testing.assert_close(fused_grads[name], ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_a_head_that_is_not_a_plain_matrix_takes_the_full_logits_path():
    """A biased head put in place of the LM head: no hidden-state loss (it would drop the
    bias); the loss is CE over the head's own logits."""
    from test_models import make_batch

    torch.manual_seed(0)
    cfg = AudioLLMConfig.tiny()
    cfg.lm_config.tie_embeddings = False
    model = AudioLLM(cfg)
    head = torch.nn.Linear(model.lm.d_model, cfg.lm_config.vocab_size, bias=True)
    torch.nn.init.normal_(head.bias, std=3.0)
    model.lm.lm_head = head
    assert model.lm.output_weight is None
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch(vocab=100)
    out = model(audio, audio_lengths, input_ids, text_lengths, labels)
    full = model(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True)
    terms = [F.cross_entropy(full.logits[i, int(full.audio_token_lengths[i]) + t - 1][None], labels[i, t][None])
             for i in range(3) for t in range(1, int(text_lengths[i])) if labels[i, t] != -100]
    torch.testing.assert_close(out.loss, torch.stack(terms).mean(), atol=1e-5, rtol=1e-5)
    out.loss.backward()
    assert head.bias.grad is not None and float(head.bias.grad.abs().sum()) > 0
