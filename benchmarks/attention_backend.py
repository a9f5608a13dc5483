"""Which SDPA kernel trains faster on CPU: flash vs math, by number of keys.

`audiollm.models.lm.attention` runs training-time attention on CPU on SDPA's math backend
(matmul-softmax-matmul) when there are at most `CPU_MATH_ATTENTION_MAX_KEYS` keys, and leaves
PyTorch's own choice (the flash kernel) otherwise. This script measures that rule:

1. kernel sweep: forward + backward of one attention call, flash vs math, for padded
   bidirectional attention (the audio encoder) and causal attention (the LM), at several
   lengths, in bf16 and float32; outputs and gradients are asserted equal within tolerance;
2. a training step (forward + backward) of a quick-start-sized decoder at a quick-start
   sequence length under bf16 autocast, with the rule vs with flash everywhere.

    python benchmarks/attention_backend.py            # ~1 min on 2 CPU cores
    python benchmarks/attention_backend.py --quick    # smoke run
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, interleaved_median_seconds, log, machine, parser, run, setup  # noqa: E402

import audiollm.models.lm as lm  # noqa: E402
from audiollm.errors import AudioLLMError  # noqa: E402
from audiollm.models import Decoder, DecoderConfig  # noqa: E402

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH}


def kernel_sweep(lengths: list[int], dtype: torch.dtype, device: torch.device, repeats: int) -> list[dict]:
    """Forward + backward seconds of one attention call per backend; ~3.4k query rows a call."""
    rows = []
    for kind in ("padded", "causal"):
        for T in lengths:
            B, H, D = max(1, 3392 // T), 4, 48
            q, k, v = (torch.randn(B, H, T, D, dtype=dtype, device=device, requires_grad=True) for _ in range(3))
            grad = torch.randn(B, H, T, D, dtype=dtype, device=device)
            keep = torch.arange(T, device=device)[None, :] < torch.randint(T // 3, T + 1, (B,), device=device)[:, None]
            mask = (keep[:, None, :, None] & keep[:, None, None, :]) | torch.eye(T, dtype=torch.bool, device=device)
            kwargs = {"attn_mask": mask} if kind == "padded" else {"is_causal": True}
            outs = {}

            def step(name: str):
                q.grad = k.grad = v.grad = None
                with sdpa_kernel(BACKENDS[name]):
                    y = F.scaled_dot_product_attention(q, k, v, **kwargs)
                y.backward(grad)
                outs[name] = (y.detach().float(), q.grad.float(), k.grad.float(), v.grad.float())

            for name in BACKENDS:
                step(name)
            tol = 3e-2 if dtype == torch.bfloat16 else 1e-4
            for a, b in zip(outs["flash"], outs["math"]):
                scale = float(b.abs().max()) + 1e-6
                assert float((a - b).abs().max()) <= tol * scale, f"flash and math disagree ({kind}, T={T})"
            t = interleaved_median_seconds({n: (lambda n=n: step(n)) for n in BACKENDS}, device, repeats)
            rows.append({"attention": kind, "keys": T, "batch": B, "flash_ms": round(t["flash"] * 1e3, 2),
                         "math_ms": round(t["math"] * 1e3, 2), "flash_over_math": round(t["flash"] / t["math"], 2)})
    return rows


def decoder_step(device: torch.device, quick: bool, repeats: int) -> dict:
    """A bf16-autocast training step of a quick-start-sized decoder: the rule vs flash only."""
    if quick:
        config = DecoderConfig(vocab_size=128, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=128,
                               max_seq_len=128)
        B, T = 4, 48
    else:  # the quick-start LM; its sequences are ~80-110 tokens (audio + prompt + answer)
        config = DecoderConfig(vocab_size=1000, d_model=256, n_layers=4, n_heads=4, n_kv_heads=2, ffn_hidden=704,
                               max_seq_len=512, tie_embeddings=True)
        B, T = 32, 100
    model = Decoder(config).to(device).train()
    ids = torch.randint(0, config.vocab_size, (B, T), device=device)
    default_max = lm.CPU_MATH_ATTENTION_MAX_KEYS
    losses = {}

    def step(name: str):
        lm.CPU_MATH_ATTENTION_MAX_KEYS = default_max if name == "rule" else 0
        try:
            model.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(ids)
            loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten())
            loss.backward()
            losses[name] = loss.item()
        finally:
            lm.CPU_MATH_ATTENTION_MAX_KEYS = default_max

    t = interleaved_median_seconds({"rule": lambda: step("rule"), "flash_only": lambda: step("flash_only")},
                                   device, repeats)
    assert abs(losses["rule"] - losses["flash_only"]) < 1e-2 * abs(losses["flash_only"]), "losses differ"
    return {"batch": B, "tokens": T, "d_model": config.d_model, "n_layers": config.n_layers,
            "rule_ms": round(t["rule"] * 1e3, 1), "flash_only_ms": round(t["flash_only"] * 1e3, 1),
            "speedup": round(t["flash_only"] / t["rule"], 2), "losses_equal": True}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args()
    device = setup(args)
    if device.type != "cpu":
        raise AudioLLMError(f"--device {device}: the rule measured here applies on CPU only")
    lengths = [32, 96] if args.quick else [64, 96, 128, 160, 192, 256, 512]
    sweeps = {}
    for dtype in (torch.bfloat16, torch.float32):
        log(f"kernel sweep, {dtype} ...")
        sweeps[str(dtype).replace("torch.", "")] = kernel_sweep(lengths, dtype, device, args.repeats)
    log("decoder training step ...")
    emit({
        "benchmark": "attention_backend",
        "rule_max_keys": lm.CPU_MATH_ATTENTION_MAX_KEYS,
        "kernels": sweeps,
        "decoder_train_step": decoder_step(device, args.quick, args.repeats),
        "quick": args.quick,
        **machine(device),
    })


if __name__ == "__main__":
    run(main)
