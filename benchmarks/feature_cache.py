"""Training from a frozen-encoder feature cache vs recomputing the encoder every step.

A Whisper-tiny-shaped encoder (random weights: d=384, 4 layers, 80 mels, 30 s windows —
the architecture and input size of openai/whisper-tiny; no download) is frozen in an
AudioLLM with our llama LM (d=256, 4 layers). One training step = build a batch of 8
spoken-digit clips (FSDD, ../shared/data/fsdd) + forward + backward + AdamW, either
decoding audio and running Whisper, or reading the clips' states from a cache made once
by `build_feature_cache`. Both candidates start from the same weights; their first-step
losses are asserted equal (float32 cache). Prints steps/s of both, the speed-up
(target >= 5x), and the one-off cost of building the cache.

    python benchmarks/feature_cache.py            # ~2 min on 2 CPU cores
    python benchmarks/feature_cache.py --quick    # tiny 1 s-window Whisper, seconds
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, interleaved_median_seconds, log, machine, parser, setup  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from audiollm.data.batching import ExampleBuilder, collate, to_device  # noqa: E402
from audiollm.data.feature_cache import FeatureCache, build_feature_cache  # noqa: E402
from audiollm.models import AudioLLM, AudioLLMConfig  # noqa: E402
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint, whisper  # noqa: E402
from audiollm.tokenizers.text import TextTokenizer  # noqa: E402

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
DIGITS = "zero one two three four five six seven eight nine".split()


def whisper_tiny_shape(directory: Path) -> str:
    """A random-weight checkpoint with openai/whisper-tiny's encoder shape and 30 s input."""
    whisper(directory, d_model=384, layers=4, heads=6, ffn=1536, window_seconds=30)
    return str(directory)


def fsdd_rows(n: int) -> list[dict]:
    if not FSDD.is_dir():
        raise SystemExit(f"needs the spoken-digit recordings at {FSDD}")
    files = sorted(FSDD.glob("*.wav"))
    files = files[:: max(1, len(files) // n)][:n]  # spread over digits and speakers
    return [{"audio": str(f), "task": "asr", "answer": DIGITS[int(f.name.split("_")[0])]} for f in files]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8, help="clips per training step")
    p.add_argument("--clips", type=int, default=64, help="distinct clips the steps cycle through")
    args = p.parse_args()
    device = setup(args)
    tmp = Path(tempfile.mkdtemp(prefix="feature_cache_bench_"))
    if args.quick:
        args.clips, args.batch = 8, 4
        checkpoint = tiny_checkpoint("whisper")
        cfg = AudioLLMConfig.tiny(audio_encoder="whisper")
    else:
        checkpoint = whisper_tiny_shape(tmp / "whisper")
        cfg = AudioLLMConfig.from_dict({
            "audio_encoder": "whisper", "audio_encoder_config": {"model": checkpoint},
            "lm": "llama", "lm_config": {"d_model": 256, "n_layers": 4, "n_heads": 8, "n_kv_heads": 4,
                                         "ffn_hidden": 704, "max_seq_len": 2048},
        })
    cfg.audio_encoder_config.model = checkpoint
    rows = fsdd_rows(args.clips)
    tokenizer = TextTokenizer.train([r["answer"] for r in rows] * 4, vocab_size=300)
    cfg.lm_config.vocab_size = tokenizer.vocab_size

    log("building the cache ...")
    t0 = time.perf_counter()
    report = build_feature_cache(cfg, [r["audio"] for r in rows], tmp / "cache", storage="float32",
                                 batch_size=args.batch, device=str(device), progress=False)
    build_seconds = time.perf_counter() - t0
    cache = FeatureCache(tmp / "cache")

    torch.manual_seed(args.seed)
    base = AudioLLM(cfg).to(device).train()
    candidates = {}
    for name, features in (("recompute", None), ("cache", cache)):
        model = copy.deepcopy(base)
        opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
        build = ExampleBuilder(rows, tokenizer, seed=args.seed, features=features)
        candidates[name] = (model, opt, build)
    state = {name: 0 for name in candidates}
    first_loss: dict[str, float] = {}

    def step(name: str) -> None:
        model, opt, build = candidates[name]
        s = state[name]
        batch = collate([build((s * args.batch + i) % len(rows), s * args.batch + i) for i in range(args.batch)],
                        tokenizer.pad_id)
        out = model(**to_device(batch, device))
        loss = out.loss_sum / out.n_targets
        first_loss.setdefault(name, float(loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state[name] += 1

    step("recompute"), step("cache")
    assert abs(first_loss["recompute"] - first_loss["cache"]) <= 1e-4 * abs(first_loss["recompute"]), first_loss
    log("timing training steps, interleaved ...")
    t = interleaved_median_seconds({n: (lambda n=n: step(n)) for n in candidates}, device, args.repeats, warmup=0)
    emit({
        "benchmark": "feature_cache",
        "encoder": "whisper-tiny shape (d=384, 4 layers, 30 s windows), frozen" if not args.quick else "tiny whisper",
        "encoder_params": sum(q.numel() for q in base.audio_encoder.parameters()),
        "trainable_params": sum(q.numel() for q in base.parameters() if q.requires_grad),
        "batch": args.batch,
        "audio": "FSDD spoken digits",
        "first_step_loss": first_loss,
        "steps_per_s": {"recompute": round(1 / t["recompute"], 3), "cache": round(1 / t["cache"], 3)},
        "speedup": round(t["recompute"] / t["cache"], 2),
        "target_speedup": 5.0,
        "cache_build": {"clips": report.computed, "seconds": round(build_seconds, 2),
                        "bytes": sum(f.stat().st_size for f in (tmp / "cache").rglob("*.safetensors")),
                        "break_even_steps": round(build_seconds / max(t["recompute"] - t["cache"], 1e-9), 1)},
        "machine": machine(device),
    })


if __name__ == "__main__":
    main()
