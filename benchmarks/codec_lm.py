"""Codec-token decoding speed: our one loop with the delay pattern, with and without the KV cache,
and against transformers' MusicGen decoder `generate` at the same size.

An AudioLLM with codec heads (K = 4 codebooks of 1,024 codes, MusicGen's layout; LM d = 256,
4 layers, 8 heads, no grouped-query sharing) writes 10 s of audio at 50 frames/s (500 frames,
504 delay-pattern steps) after a 16-token text prompt, sampling top-k 250 at temperature 1:

* with the KV cache vs recomputing the whole prefix each step (`use_cache=False`) — the same
  seed gives identical codes, asserted; target ≥ 10×;
* vs `MusicgenForCausalLM.generate` (random weights; hidden 256, 4 layers, 8 heads, ffn 1,024,
  4 × 1,024 codebooks, its own delay pattern and KV cache, top-k 250) for 500 frames, at batch
  1 and 4: frames/s of each, target ours ≥ 1.5×. Our feed-forward width (704, SwiGLU's three
  matrices) gives the same parameter count as its 1,024 (two matrices), printed beside.

    python benchmarks/codec_lm.py            # ~2 min on 2 CPU cores
    python benchmarks/codec_lm.py --quick    # smoke run
"""

from __future__ import annotations

import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, interleaved_median_seconds, log, machine, parser, setup  # noqa: E402

from audiollm.decoding.options import DecodingOptions  # noqa: E402
from audiollm.models import AudioLLM, AudioLLMConfig  # noqa: E402
from audiollm.models.codec_answer import AudioAnswerConfig  # noqa: E402
from audiollm.models.lm import DecoderConfig  # noqa: E402


def our_model(K: int, C: int, d: int, layers: int, heads: int, ffn: int, context: int, vocab: int) -> AudioLLM:
    cfg = AudioLLMConfig.tiny()
    lm = DecoderConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, n_kv_heads=heads, ffn_hidden=ffn,
                       max_seq_len=context)
    answer = AudioAnswerConfig(codec="benchmark", num_codebooks=K, codebook_size=C, frame_rate=50.0,
                               sample_rate=16000, fingerprint="-", pattern="delay")
    return AudioLLM(dataclasses.replace(cfg, lm_config=lm, audio_answer=answer)).eval()


def musicgen_decoder(K: int, C: int, d: int, layers: int, heads: int, ffn: int, context: int):
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

    cfg = MusicgenDecoderConfig(vocab_size=C, num_codebooks=K, hidden_size=d, num_hidden_layers=layers,
                                num_attention_heads=heads, ffn_dim=ffn, max_position_embeddings=context,
                                pad_token_id=C, bos_token_id=C, decoder_start_token_id=C, eos_token_id=None)
    return MusicgenForCausalLM(cfg).eval()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="audio to generate per sequence (default 10)")
    p.add_argument("--frame-rate", type=float, default=50.0, help="codec frames per second (default 50)")
    args = p.parse_args()
    device = setup(args)
    if args.quick:
        K, C, d, layers, heads, ffn, mg_ffn, args.seconds = 2, 64, 32, 2, 4, 48, 64, 1.0
    else:
        K, C, d, layers, heads, ffn, mg_ffn = 4, 1024, 256, 4, 8, 704, 1024
    frames = int(round(args.seconds * args.frame_rate))
    prompt_len = 16
    ours = our_model(K, C, d, layers, heads, ffn, prompt_len + frames + K + 8, vocab=512).to(device)
    prompt = [list(range(6, 6 + prompt_len))]
    opts = DecodingOptions(temperature=1.0, top_k=250)

    def run(batch: int, use_cache: bool = True) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(args.seed)
        return ours.generate_codes(prompt * batch, max_frames=[frames] * batch, min_frames=frames,
                                   options=opts.replace(use_cache=use_cache), generator=gen)

    cached, plain = run(1), run(1, use_cache=False)
    identical = all(torch.equal(a, b) for a, b in zip(cached, plain))
    assert identical, "cached and recomputed codec decoding disagree"
    assert cached[0].shape == (K, frames)
    log("timing cached vs recomputed decoding, interleaved ...")
    t = interleaved_median_seconds({"cached": lambda: run(1), "plain": lambda: run(1, use_cache=False)}, device,
                                   args.repeats, warmup=0)

    mg = musicgen_decoder(K, C, d, layers, heads, mg_ffn, frames + K + 8).to(device)

    def run_mg(batch: int):
        torch.manual_seed(args.seed)
        start = torch.full((batch * K, 1), C, device=device)
        with torch.no_grad():
            return mg.generate(input_ids=start, max_new_tokens=frames + K - 1, do_sample=True, top_k=250,
                               guidance_scale=None, num_return_sequences=1)

    assert run_mg(1).shape[-1] >= frames - 1
    versus = {}
    for batch in (1, 4):
        log(f"timing ours vs MusicGen's decoder at batch {batch}, interleaved ...")
        tb = interleaved_median_seconds({"ours": lambda: run(batch), "musicgen": lambda: run_mg(batch)}, device,
                                        args.repeats, warmup=1)
        versus[f"batch_{batch}"] = {"ours_frames_per_s": round(batch * frames / tb["ours"], 1),
                                    "musicgen_frames_per_s": round(batch * frames / tb["musicgen"], 1),
                                    "speedup": round(tb["musicgen"] / tb["ours"], 2)}
    lm_params = sum(p.numel() for p in ours.lm.blocks.parameters())
    mg_params = sum(p.numel() for n, p in mg.model.decoder.layers.named_parameters() if "encoder_attn" not in n)
    emit({
        "benchmark": "codec_lm",
        "config": {"num_codebooks": K, "codebook_size": C, "d_model": d, "n_layers": layers, "n_heads": heads,
                   "ffn_ours_swiglu": ffn, "ffn_musicgen": mg_ffn, "block_params_ours": lm_params,
                   "block_params_musicgen": mg_params, "pattern": "delay", "top_k": 250},
        "seconds": args.seconds,
        "frames": frames,
        "prompt_tokens": prompt_len,
        "outputs_identical": identical,
        "kv_cache_frames_per_s": round(frames / t["cached"], 1),
        "recompute_frames_per_s": round(frames / t["plain"], 1),
        "kv_cache_speedup": round(t["plain"] / t["cached"], 2),
        "target_kv_cache_speedup": 10.0,
        "vs_musicgen_decoder": versus,
        "target_vs_musicgen": 1.5,
        "quick": args.quick,
        **machine(device),
    })


if __name__ == "__main__":
    main()
