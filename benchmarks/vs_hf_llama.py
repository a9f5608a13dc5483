"""Our `Decoder` vs `transformers.LlamaForCausalLM` with identical weights and config.

1. Greedy generation, batch 1 and batch 8 (left-padded prompts of different lengths), the
   same number of new tokens (no eos stopping on either side); outputs asserted identical.
2. Training step (forward + backward + AdamW step) on the same random batch, each model
   with its own training loss (ours: `token_loss.linear_cross_entropy_sum` on the hidden
   states, as AudioLLM trains; HF: ``labels=``); the first step's losses are asserted equal.
Prints tokens/s for both and ours/HF ratios (targets >= 1.0). Runs are interleaved
(ours, HF, ours, HF, ...) so machine load hits both alike.

    python benchmarks/vs_hf_llama.py            # ~1-2 min on 2 CPU cores
    python benchmarks/vs_hf_llama.py --quick    # smoke run
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, interleaved_median_seconds, log, machine, parser, setup  # noqa: E402

from audiollm.decoding.loop import generate as decode  # noqa: E402
from audiollm.decoding.options import DecodingOptions  # noqa: E402
from audiollm.models import Decoder, DecoderConfig, decoder_to_hf_llama  # noqa: E402
from audiollm.models.token_loss import linear_cross_entropy_sum  # noqa: E402


def left_padded_prompts(batch: int, max_len: int, vocab: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = [max_len] + [int(x) for x in torch.randint(max_len // 4, max_len + 1, (batch - 1,))]
    ids = torch.zeros(batch, max_len, dtype=torch.long)
    mask = torch.zeros(batch, max_len, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, max_len - n :] = torch.randint(1, vocab, (n,))
        mask[i, max_len - n :] = 1
    return ids.to(device), mask.to(device)


def bench_generate(ours: Decoder, hf, batch: int, prompt_len: int, new_tokens: int, repeats: int, device) -> dict:
    ids, mask = left_padded_prompts(batch, prompt_len, ours.config.vocab_size, device)

    def run_ours():
        return decode(ours, ours.embed_tokens(ids), mask, options=DecodingOptions(max_new_tokens=new_tokens))

    def run_hf():
        return hf.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, pad_token_id=0, eos_token_id=None,
        )

    a = run_ours()
    b = run_hf()[:, prompt_len:].tolist()
    assert a == b, f"batch {batch}: our greedy tokens differ from HF's"
    assert all(len(row) == new_tokens for row in a)
    t = interleaved_median_seconds({"ours": run_ours, "hf": run_hf}, device, repeats, warmup=0)
    n = batch * new_tokens
    return {
        "batch": batch,
        "new_tokens": new_tokens,
        "outputs_identical": True,
        "ours_tokens_per_s": round(n / t["ours"], 1),
        "hf_tokens_per_s": round(n / t["hf"], 1),
        "ratio": round(t["hf"] / t["ours"], 2),
    }


def bench_train(ours: Decoder, hf, batch: int, seq_len: int, repeats: int, device) -> dict:
    ours.train()
    hf.train()
    x = torch.randint(0, ours.config.vocab_size, (batch, seq_len), device=device)
    # Next-token targets, shifted rather than the logits (no copy of the (B, T, V) tensor), as our
    # AudioLLM's loss and HF's ForCausalLMLoss both do; the last position has none.
    y = F.pad(x[:, 1:], (0, 1), value=-100)  # (B, T)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4)

    n_targets = int((y != -100).sum())

    def step_ours():
        # Our training loss: the head runs on the final hidden states of target positions only, in
        # chunks, gradient formed in the same pass (models/token_loss.py); same value as HF's.
        loss = linear_cross_entropy_sum(ours.hidden_states(input_ids=x), ours.output_weight, y) / n_targets
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)
        return loss.detach()

    def step_hf():
        loss = hf(input_ids=x, labels=x).loss
        loss.backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)
        return loss.detach()

    l_ours, l_hf = step_ours(), step_hf()  # also the warm-up
    assert abs(l_ours.item() - l_hf.item()) < 1e-4, (l_ours.item(), l_hf.item())
    t = interleaved_median_seconds({"ours": step_ours, "hf": step_hf}, device, repeats, warmup=0)
    n = batch * seq_len
    ours.eval()
    hf.eval()
    return {
        "batch": batch,
        "seq_len": seq_len,
        "first_step_loss": round(l_ours.item(), 5),
        "losses_equal": True,
        "ours_tokens_per_s": round(n / t["ours"], 1),
        "hf_tokens_per_s": round(n / t["hf"], 1),
        "ratio": round(t["hf"] / t["ours"], 2),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--new-tokens", type=int, default=128, help="generated tokens per sequence")
    p.add_argument("--prompt-len", type=int, default=32, help="longest prompt (others are shorter, left-padded)")
    p.add_argument("--train-batch", type=int, default=8, help="training batch size")
    p.add_argument("--train-seq", type=int, default=256, help="training sequence length")
    args = p.parse_args()
    device = setup(args)
    import transformers

    if args.quick:
        config = DecoderConfig(vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=128,
                               max_seq_len=256)
        args.new_tokens, args.prompt_len, args.train_batch, args.train_seq = 16, 8, 2, 32
    else:
        config = DecoderConfig(vocab_size=4096, d_model=256, n_layers=4, n_heads=8, n_kv_heads=4, ffn_hidden=704,
                               max_seq_len=1024)
    ours = Decoder(config).to(device).eval()
    with torch.no_grad():
        # A random small-init model repeats one token; scaling the embeddings makes greedy paths
        # varied, so "identical outputs" is a real check. Speed does not depend on the tokens.
        ours.embed.weight.mul_(25.0)
    hf = decoder_to_hf_llama(ours).to(device)
    hf.generation_config.eos_token_id = None

    results = {}
    for batch in (1, 8):
        log(f"generate batch {batch} ...")
        results[f"generate_batch{batch}"] = bench_generate(ours, hf, batch, args.prompt_len, args.new_tokens,
                                                           args.repeats, device)
    log("train step ...")
    ours = Decoder(config).to(device)  # fresh, unscaled weights: a normal training start
    hf = decoder_to_hf_llama(ours).to(device)
    results["train_step"] = bench_train(ours, hf, args.train_batch, args.train_seq, 3 * args.repeats, device)
    emit(
        {
            "benchmark": "vs_hf_llama",
            "config": {"d_model": config.d_model, "n_layers": config.n_layers, "n_heads": config.n_heads,
                       "n_kv_heads": config.n_kv_heads, "vocab_size": config.vocab_size,
                       "params": sum(p.numel() for p in ours.parameters())},
            "transformers": transformers.__version__,
            "hf_attn_implementation": hf.config._attn_implementation,
            **results,
            "target_ratio": 1.0,
            "quick": args.quick,
            **machine(device),
        }
    )


if __name__ == "__main__":
    main()
