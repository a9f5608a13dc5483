"""`audiollm train`, `features` (a frozen encoder's feature cache) and `convert` (checkpoints)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from audiollm.cli.common import add_device_options
from audiollm.errors import AudioLLMError

# Checkpoint formats `audiollm convert` reads: name → (module, function); imported on use.
CONVERTERS = {"ct2-whisper": ("audiollm.models.pretrained.ct2_whisper", "convert_ct2_whisper")}


def cmd_train(args: argparse.Namespace) -> None:
    from audiollm.training.config import load_config
    from audiollm.training.dry_run import dry_run
    from audiollm.training.loop import train

    cfg = load_config(args.config, args.overrides)
    if args.dry_run:
        print(format_dry_run(dry_run(cfg)))
        return
    print(f"final model: {train(cfg, resume=args.resume, progress=not args.no_progress)}")


def format_dry_run(info: dict) -> str:
    """The dry-run report as a person reads it (counts, memory, tokens, the first batch)."""
    p, m, t = info["parameters"], info["memory_gib"], info["tokens_per_example"]
    lines = [
        f"model type: {info['model_type']}; parameters: {p['total']:,} total, {p['trainable']:,} trainable "
        f"({100 * p['trainable'] / max(p['total'], 1):.2f}%)",
        f"memory estimate: {m['total_estimate']:.3f} GiB = weights {m['weights']:.3f} + gradients/AdamW "
        f"{m['gradients_and_optimizer']:.3f} + activations {m['activations_per_micro_batch']:.3f} "
        f"(micro-batch of {info['micro_batch']})",
        f"tokens per example: mean {t['mean']} (audio {t['audio_mean']} + text {t['text_mean']}), max {t['max']}",
        f"tokenizer: {info['tokenizer']['kind']}, {info['tokenizer']['vocab_size']:,} tokens"
        if info["tokenizer"]["kind"] != "none" else "tokenizer: none (a codec: its tokens are frames of codes)",
        "first batch:",
    ]
    for i, e in enumerate(info["first_batch"]):
        text = " | ".join(f"{k}: {e[k]!r}" for k in ("prompt", "answer", "text") if k in e)
        lines.append(f"  [{i}] {e['seconds']} s → {e['audio_tokens']} audio tokens | {text}")
    lines.append("dry run: nothing was trained or written")
    return "\n".join(lines)


def cmd_features(args: argparse.Namespace) -> None:
    from audiollm.data.feature_cache import build_feature_cache
    from audiollm.data.manifest import read_manifest

    config = model_config(args.source, args.overrides)
    paths = [row["audio"] for m in args.manifests for row in read_manifest(m, require_answer=False) if row.get("audio")]
    report = build_feature_cache(config, paths, args.out, batch_size=args.batch_size, storage=args.storage_dtype,
                                 device=args.device, dtype=args.dtype, progress=not args.no_progress)
    line = (f"{report.clips} clips: {report.computed} encoded ({report.audio_seconds:.1f} s of audio), "
            f"{report.already_cached} already cached")
    if report.missing:
        line += f", {report.missing} missing (first: {report.first_missing})"
    print(f"{line} → {args.out}")
    print(f"train from it with: data.feature_cache={args.out} data.augment=false")


def model_config(source: Path, overrides: list[str]):
    """The AudioLLMConfig of a training config (YAML, with overrides) or a saved model directory."""
    from audiollm.models.hub import read_model_config
    from audiollm.training.config import load_config

    if source.is_dir():
        if overrides:
            raise AudioLLMError("overrides apply to a YAML config, not to a saved model directory")
        model_type, config, _ = read_model_config(source)
    else:
        cfg = load_config(source, overrides)
        model_type, config = cfg.model_type, cfg.model
    if model_type != "audiollm":
        raise AudioLLMError(f"{source}: model type {model_type!r}; feature caches are for audiollm models")
    return config


def cmd_convert(args: argparse.Namespace) -> None:
    module, function = CONVERTERS[args.format]
    out = getattr(importlib.import_module(module), function)(args.source, args.out)
    print(f"wrote {out} (load it with audio_encoder_config.model={out})")


def add_commands(sub) -> None:
    """Add ``train``, ``features`` and ``convert`` to the top-level subparsers ``sub``."""
    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", type=Path, help="experiment YAML (see configs/)")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides, e.g. train.lr=3e-4 output_dir=runs/x train.init_from=runs/stage1/final")
    t.add_argument("--resume", metavar="DIR", help="continue from a run folder (latest checkpoint) or a checkpoint folder")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.add_argument("--dry-run", action="store_true",
                   help="print parameter counts, a memory estimate, tokens per example and the first batch "
                        "decoded, then exit without training")
    t.set_defaults(func=cmd_train)

    fe = sub.add_parser("features", help="precompute a frozen pretrained encoder's features for training (cache)",
                        description="Run the frozen pretrained audio encoder of a training config (or saved model "
                                    "directory) once over every clip of the manifests and store its states in --out. "
                                    "Train from it with data.feature_cache=DIR data.augment=false. Clips already "
                                    "cached are skipped; missing audio files are counted and reported.")
    fe.add_argument("source", type=Path, help="training config (.yaml) or saved model directory")
    fe.add_argument("manifests", type=Path, nargs="+", help="manifests (.jsonl) whose clips to encode")
    fe.add_argument("--out", required=True, type=Path, help="cache directory (created, or extended)")
    fe.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, repeatable (e.g. model.audio_encoder_config.layer=6)")
    fe.add_argument("--batch-size", type=int, default=8, help="clips encoded together (default 8)")
    fe.add_argument("--storage-dtype", default="float16", choices=("float16", "bfloat16", "float32"),
                    help="what the cache stores: float16 (default; half the disk of float32), bfloat16, float32")
    add_device_options(fe)
    fe.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    fe.set_defaults(func=cmd_features)

    cv = sub.add_parser("convert", help="turn a pretrained checkpoint of another format into a transformers one",
                        description="Convert a pretrained checkpoint into a transformers checkpoint directory that "
                                    "model configs can name (e.g. audio_encoder: whisper, audio_encoder_config.model=OUT). "
                                    "ct2-whisper: a CTranslate2 / faster-whisper Whisper (model.bin, config.json, "
                                    "tokenizer.json), float32/float16/bfloat16; weights are copied exactly.")
    cv.add_argument("format", choices=sorted(CONVERTERS), help="source format: ct2-whisper (CTranslate2 Whisper)")
    cv.add_argument("source", type=Path, help="the source checkpoint: a CTranslate2 model directory or its model.bin")
    cv.add_argument("--out", type=Path, required=True,
                    help="new checkpoint directory (must not exist; written to a temporary folder, then renamed)")
    cv.set_defaults(func=cmd_convert)
