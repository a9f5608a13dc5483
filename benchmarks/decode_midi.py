"""Decoding one 1,000-token transcription window: KV cache vs recomputing the prefix.

An `AudioLLM` of the quick-start size (conv-transformer encoder d=192, our `Decoder` d=256,
4 layers, GQA 4/2 heads; vocabulary 1,000 BPE + 517 MIDI event tokens, as a transcription
model's tokenizer has) hears a 5 s window (62 audio tokens) and a prompt, then greedily
decodes 1,000 tokens (no eos stopping: a dense piano window is about that long) twice —
with the preallocated KV cache and with use_cache=False. Outputs are asserted identical;
prints tokens/s of both and the speed-up.

    python benchmarks/decode_midi.py              # ~2-4 min on 2 CPU cores (--repeats 1: ~1.5 min)
    python benchmarks/decode_midi.py --quick      # smoke run
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, interleaved_median_seconds, log, machine, parser, setup  # noqa: E402

from audiollm.config import from_dict, to_dict  # noqa: E402
from audiollm.decoding.options import DecodingOptions  # noqa: E402
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig  # noqa: E402
from audiollm.tokenizers.midi import MidiVocab  # noqa: E402

SAMPLE_RATE = 16000


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--new-tokens", type=int, default=1000, help="event tokens decoded per window")
    p.add_argument("--window", type=float, default=5.0, help="audio window in seconds (transcription's)")
    args = p.parse_args()
    device = setup(args)
    vocab = 1000 + len(MidiVocab().tokens)
    if args.quick:
        config = to_dict(AudioLLMConfig.tiny())
        args.new_tokens = min(args.new_tokens, 48)
        args.window = min(args.window, 1.0)
    else:
        config = {
            "frontend": {"n_mels": 64},
            "audio_encoder_config": {"conv_channels": 192, "d_model": 192, "n_layers": 4, "n_heads": 4, "ffn_hidden": 512},
            "projector_config": {"stack": 2, "hidden": 512},
            "lm_config": {"d_model": 256, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "ffn_hidden": 704},
        }
    config["lm_config"] = {**config["lm_config"], "vocab_size": vocab, "max_seq_len": args.new_tokens + 256}
    model = AudioLLM(from_dict(AudioLLMConfig, config)).to(device).eval()
    samples = int(args.window * SAMPLE_RATE)
    audio = (torch.randn(1, samples) * 0.1).to(device)
    lengths = torch.tensor([samples], device=device)
    prompt = [torch.randint(0, 1000, (8,)).tolist()]

    def run(use_cache: bool) -> list[list[int]]:
        return model.generate(audio, lengths, prompt, DecodingOptions(max_new_tokens=args.new_tokens, use_cache=use_cache))

    cached_tokens, plain_tokens = run(True), run(False)
    assert cached_tokens == plain_tokens, "cached and uncached greedy decoding disagree"
    assert len(cached_tokens[0]) == args.new_tokens
    n_audio = int(model.encode_audio(audio, lengths)[1][0])
    log("timing cached and uncached decode, interleaved ...")
    t = interleaved_median_seconds({"cached": lambda: run(True), "plain": lambda: run(False)}, device,
                                   args.repeats, warmup=0)
    emit(
        {
            "benchmark": "decode_midi",
            "config": {"lm_d_model": model.config.lm_config.d_model, "lm_layers": model.config.lm_config.n_layers,
                       "vocab_size": vocab, "params": model.num_parameters()},
            "window_seconds": args.window,
            "audio_tokens": n_audio,
            "prompt_tokens": len(prompt[0]),
            "new_tokens": args.new_tokens,
            "outputs_identical": True,
            "kv_cache_tokens_per_s": round(args.new_tokens / t["cached"], 1),
            "recompute_tokens_per_s": round(args.new_tokens / t["plain"], 1),
            "kv_cache_seconds": round(t["cached"], 3),
            "recompute_seconds": round(t["plain"], 3),
            "speedup": round(t["plain"] / t["cached"], 2),
            "quick": args.quick,
            **machine(device),
        }
    )


if __name__ == "__main__":
    main()
