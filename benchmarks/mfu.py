"""Model FLOPs utilisation (MFU) of our decoder's training step on this machine.

Peak: the measured throughput of a 2048x2048 `torch.matmul` (float32, and bfloat16).
Achieved: a full training step (forward + backward + AdamW) of our `Decoder`
(d=256, 4 layers, vocab 4096; batch 8 x 256 tokens) in float32 and under bf16 autocast,
counted as model FLOPs per token = 6·N + 12·n_layers·d_model·T (PaLM appendix B: N = the
parameters that multiply activations, i.e. every Linear plus the LM head; the second term
is attention's QK^T and AV, counted without the causal half-skip). MFU = achieved / peak of
the same dtype. Also reports whether bf16 autocast speeds the step up here.

    python benchmarks/mfu.py            # ~1 min on 2 CPU cores
    python benchmarks/mfu.py --quick    # smoke run
"""

from __future__ import annotations

import contextlib
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, interleaved_median_seconds, log, machine, parser, setup  # noqa: E402

from audiollm.models import Decoder, DecoderConfig  # noqa: E402
from audiollm.models.token_loss import linear_cross_entropy_sum  # noqa: E402


def matmul_bench(n: int, dtype: torch.dtype, device: torch.device):
    """A callable doing ``inner`` n x n x n matmuls, and the FLOPs it performs (2·n³ each)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    inner = 4 if n >= 1024 else 32

    def run():
        for _ in range(inner):
            torch.matmul(a, b)

    return run, 2 * n**3 * inner


def matmul_params(model: Decoder) -> int:
    """Parameters that multiply activations: every Linear, plus the (possibly tied) LM head."""
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    if model.lm_head is None:
        n += model.embed.weight.numel()  # the tied head is a matmul with the embedding matrix
    return n


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n peak matmul")
    p.add_argument("--batch", type=int, default=8, help="training batch size")
    p.add_argument("--seq", type=int, default=256, help="training sequence length")
    args = p.parse_args()
    device = setup(args)
    if args.quick:
        config = DecoderConfig(vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=128,
                               max_seq_len=256)
        args.matmul_size, args.batch, args.seq = 256, 2, 32
    else:
        config = DecoderConfig(vocab_size=4096, d_model=256, n_layers=4, n_heads=8, n_kv_heads=4, ffn_hidden=704,
                               max_seq_len=1024)

    model = Decoder(config).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, config.vocab_size, (args.batch, args.seq), device=device)
    y = F.pad(x[:, 1:], (0, 1), value=-100)  # next-token targets; the last position has none
    n_targets = int((y != -100).sum())

    def step(autocast: bool):
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with ctx:  # the training loss AudioLLM uses: the LM head on the hidden states, chunked
            loss = linear_cross_entropy_sum(model.hidden_states(input_ids=x), model.output_weight, y) / n_targets
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    mm32, mm32_flops = matmul_bench(args.matmul_size, torch.float32, device)
    mm16, mm16_flops = matmul_bench(args.matmul_size, torch.bfloat16, device)
    # Peaks and steps alternate round by round, so a busy shared machine slows both alike.
    log("timing matmul peaks and training steps (fp32, bf16 autocast), interleaved ...")
    t = interleaved_median_seconds(
        {"peak_float32": mm32, "float32": lambda: step(False), "peak_bfloat16": mm16, "bfloat16": lambda: step(True)},
        device,
        args.repeats + 2,
        warmup=1,
    )
    peak = {"float32": mm32_flops / t["peak_float32"], "bfloat16": mm16_flops / t["peak_bfloat16"]}
    n_matmul = matmul_params(model)
    tokens = args.batch * args.seq
    flops_per_token = 6 * n_matmul + 12 * config.n_layers * config.d_model * args.seq
    result = {"benchmark": "mfu"}
    result["config"] = {"d_model": config.d_model, "n_layers": config.n_layers, "vocab_size": config.vocab_size,
                        "batch": args.batch, "seq_len": args.seq, "matmul_params": n_matmul,
                        "flops_per_token": flops_per_token}
    for dtype in ("float32", "bfloat16"):
        achieved = flops_per_token * tokens / t[dtype]
        result[dtype] = {
            "matmul_peak_gflops": round(peak[dtype] / 1e9, 1),
            "train_tokens_per_s": round(tokens / t[dtype], 1),
            "achieved_gflops": round(achieved / 1e9, 2),
            "mfu": round(achieved / peak[dtype], 4),
        }
    result["float32"]["note"] = "train step in float32"
    result["bfloat16"]["note"] = "train step under torch.autocast(bfloat16); MFU vs the bf16 matmul peak"
    result["bf16_autocast_step_speedup"] = round(t["float32"] / t["bfloat16"], 2)
    result["matmul_size"] = args.matmul_size
    result["quick"] = args.quick
    result.update(machine(device))
    emit(result)


if __name__ == "__main__":
    main()
