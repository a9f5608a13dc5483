"""KV-cache decoding vs recomputing the whole prefix every step (same weights, greedy).

Our `Decoder` (d=256, 4 layers, GQA 8/4 heads, vocab 4096) continues a 16-token prompt by
512 tokens twice: with the preallocated KV cache, and with use_cache=False (the full
prefix re-run each step). Outputs are asserted identical; prints tokens/s for both and
the speed-up (target >= 5x).

    python benchmarks/decode_kv_cache.py            # ~1-2 min on 2 CPU cores
    python benchmarks/decode_kv_cache.py --quick    # smoke run
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, interleaved_median_seconds, log, machine, parser, setup  # noqa: E402

from audiollm.decoding.loop import generate as decode  # noqa: E402
from audiollm.decoding.options import DecodingOptions  # noqa: E402
from audiollm.models import Decoder, DecoderConfig  # noqa: E402


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--new-tokens", type=int, default=512, help="tokens generated per run")
    p.add_argument("--prompt-len", type=int, default=16, help="prompt tokens")
    p.add_argument("--batch", type=int, default=1, help="sequences decoded together")
    args = p.parse_args()
    device = setup(args)
    if args.quick:
        config = DecoderConfig(vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=128,
                               max_seq_len=256)
        args.new_tokens = min(args.new_tokens, 48)
    else:
        config = DecoderConfig(vocab_size=4096, d_model=256, n_layers=4, n_heads=8, n_kv_heads=4, ffn_hidden=704,
                               max_seq_len=args.prompt_len + args.new_tokens)
    model = Decoder(config).to(device).eval()
    prompt = torch.randint(0, config.vocab_size, (args.batch, args.prompt_len), device=device)

    def run(use_cache: bool) -> list[list[int]]:
        return decode(model, model.embed_tokens(prompt), options=DecodingOptions(max_new_tokens=args.new_tokens, use_cache=use_cache))

    cached_tokens, plain_tokens = run(True), run(False)
    assert cached_tokens == plain_tokens, "cached and uncached greedy decoding disagree"
    n_new = args.batch * args.new_tokens
    log("timing cached and uncached decode, interleaved ...")
    t = interleaved_median_seconds({"cached": lambda: run(True), "plain": lambda: run(False)}, device,
                                   args.repeats, warmup=0)
    t_cached, t_plain = t["cached"], t["plain"]
    emit(
        {
            "benchmark": "decode_kv_cache",
            "config": {"d_model": config.d_model, "n_layers": config.n_layers, "n_heads": config.n_heads,
                       "n_kv_heads": config.n_kv_heads, "vocab_size": config.vocab_size,
                       "params": sum(p.numel() for p in model.parameters())},
            "batch": args.batch,
            "prompt_tokens": args.prompt_len,
            "new_tokens": args.new_tokens,
            "outputs_identical": True,
            "kv_cache_tokens_per_s": round(n_new / t_cached, 1),
            "recompute_tokens_per_s": round(n_new / t_plain, 1),
            "kv_cache_seconds": round(t_cached, 3),
            "recompute_seconds": round(t_plain, 3),
            "speedup": round(t_plain / t_cached, 2),
            "target_speedup": 5.0,
            "quick": args.quick,
            **machine(device),
        }
    )


if __name__ == "__main__":
    main()
