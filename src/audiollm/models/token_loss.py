"""Next-token cross-entropy straight from hidden states: the LM head applied only where there
is a target, a chunk of rows at a time, with the gradient formed in the same pass.

The usual path, ``F.cross_entropy(lm_head(hidden).float(), targets)``, materialises float32
logits for every position, (B, T, V), although most positions of an audio-language batch
(the audio tokens, the prompt) have no target at all, then keeps them for the backward pass
and builds a second (B·T, V) tensor there. With a 150k-token vocabulary (Qwen) that is 0.6 MB
a position. Here:

1. only the rows whose target is not ``ignore_index`` reach the head (an audio clip's 100
   positions cost nothing);
2. those rows go through in chunks of about ``CHUNK_ELEMENTS`` logits, so the logits never
   exist all at once;
3. when a gradient is needed, each chunk's gradient is made while its logits are still at
   hand, ``softmax(z) − onehot(y)``, and turned into the hidden-state and head-weight gradients
   at once (two GEMMs, the ones autograd would run); backward only scales them by the incoming
   gradient. No softmax backward pass, no (N, V) zero-filled gradient.

The loss equals ``F.cross_entropy(..., reduction="sum")`` and the gradients equal autograd's
(to float rounding); tests/test_token_loss.py checks both, under bf16 autocast too. The
logits are computed in the dtype autocast picks (as ``F.linear`` would be) and reduced in
float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 22  # logits per chunk (16 MB in float32); ≥ 32 rows whatever the vocabulary


def _chunk_rows(vocab_size: int) -> int:
    return max(32, CHUNK_ELEMENTS // max(1, vocab_size))


def _chunk_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk's summed cross-entropy and its softmax (n, V), float32, made in the logits' buffer."""
    logits = F.linear(hidden, weight).float()  # (n, V)
    picked = logits.gather(1, targets[:, None])  # (n, 1): read before the buffer is overwritten
    peak = logits.amax(dim=-1, keepdim=True)  # (n, 1)
    probs = logits.sub_(peak).exp_()  # (n, V) exp(z − max), in place
    total = probs.sum(dim=-1, keepdim=True)  # (n, 1)
    loss = (peak + total.log() - picked).sum()  # Σ logsumexp(z) − z_y
    return loss, probs.div_(total)


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed CE of ``hidden @ weight.T`` against ``targets`` (all valid), gradients made in forward."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.weight_dtype = weight.dtype
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        rows = _chunk_rows(weight.shape[0])
        for start in range(0, hidden.shape[0], rows):
            h, y = hidden[start : start + rows], targets[start : start + rows]  # (n, D), (n,)
            loss, grad = _chunk_loss(h, weight, y)
            total += loss
            # d(sum CE)/d logits = softmax − onehot, in place over the softmax.
            grad[torch.arange(y.shape[0], device=y.device), y] -= 1.0
            if need_h:
                grad_h[start : start + rows] = (grad.to(weight.dtype) @ weight).to(hidden.dtype)  # (n, D)
            if need_w:
                grad_w += grad.t().to(h.dtype) @ h  # (V, D), accumulated in float32
        ctx.save_for_backward(grad_h, grad_w)
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        return gh, gw, None


def linear_cross_entropy_sum(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Summed next-token cross-entropy of ``hidden @ weight.T`` over rows whose target is not ``ignore_index``.

    hidden (..., D) final hidden states (after the LM's last norm); weight (V, D) the LM head
    (or the tied embedding matrix); targets (...) token ids, ``ignore_index`` where there is none.
    Returns a float32 scalar equal to ``F.cross_entropy(F.linear(hidden, weight).float(),
    targets, ignore_index=ignore_index, reduction="sum")``.
    """
    hidden = hidden.reshape(-1, hidden.shape[-1])  # (B·T, D)
    targets = targets.reshape(-1)
    keep = (targets != ignore_index).nonzero().squeeze(1)  # (N,)
    hidden, targets = hidden.index_select(0, keep), targets.index_select(0, keep)  # (N, D), (N,)
    if not (torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)):
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        rows = _chunk_rows(weight.shape[0])
        for start in range(0, hidden.shape[0], rows):
            total += _chunk_loss(hidden[start : start + rows], weight, targets[start : start + rows])[0]
        return total
    return _LinearCrossEntropy.apply(hidden, weight, targets)
