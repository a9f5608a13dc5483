"""`audiollm codec encode|decode|cache`: audio ⇄ codes files, datasets → codes caches, thin handlers over
`audiollm.inference.codec` (any codec: ours, or a transformers EnCodec / DAC / Mimi)."""

from __future__ import annotations

import argparse
from pathlib import Path

from audiollm.cli.common import warnings_as_lines
from audiollm.errors import AudioLLMError


def _open(args: argparse.Namespace):
    from audiollm.inference.codec import open_codec

    with warnings_as_lines():
        return open_codec(args.model, device=args.device)


def cmd_encode(args: argparse.Namespace) -> None:
    if not args.out.name.endswith(".safetensors"):
        raise AudioLLMError(f"--out {args.out} must end in .safetensors")
    codec = _open(args)
    codes = codec.encode(args.audio, num_codebooks=args.num_codebooks)
    codes.save(args.out)
    k, frames = codes.codes.shape
    print(f"{args.audio}: {codes.seconds:.2f} s → {frames} frames × {k} codebooks at {codec.frame_rate:g} Hz "
          f"= {codes.bitrate / 1000:.3g} kbps → {args.out}")


def cmd_decode(args: argparse.Namespace) -> None:
    from audiollm.inference.codec import read_codes

    if args.out.suffix.lower() != ".wav":
        raise AudioLLMError(f"--out {args.out} must end in .wav")
    codes = read_codes(args.codes)  # a bad file fails before the codec loads
    codec = _open(args)
    wav = codec.decode(codes)
    codec.save_audio(args.out, wav)
    print(f"{args.codes}: {codes.codes.shape[1]} frames × {codes.codes.shape[0]} codebooks "
          f"({codes.bitrate / 1000:.3g} kbps) → {len(wav) / codec.sample_rate:.2f} s at {codec.sample_rate} Hz → {args.out}")


def cmd_cache(args: argparse.Namespace) -> None:
    from audiollm.data.manifest import read_manifest
    from audiollm.inference.codec import build_codes_cache

    paths = [row["audio"] for m in args.manifests for row in read_manifest(m, require_answer=False) if row.get("audio")]
    codec = _open(args)
    report = build_codes_cache(codec, paths, args.out, num_codebooks=args.num_codebooks, progress=not args.no_progress)
    line = (f"{report.clips} clips: {report.computed} encoded ({report.audio_seconds:.1f} s of audio), "
            f"{report.already_cached} already cached")
    if report.missing:
        line += f", {report.missing} missing (first: {report.first_missing})"
    print(f"{line} → {args.out}")


def add_commands(sub) -> None:
    """Add `audiollm codec` (encode, decode) to the `audiollm` subparsers ``sub``."""
    codec = sub.add_parser("codec", help="neural audio codecs: encode audio to codes files and decode them")
    actions = codec.add_subparsers(dest="codec_command", metavar="ACTION")

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True,
                       help="a codec: an audiollm codec model directory, or a transformers EnCodec/DAC/Mimi "
                            "checkpoint (directory or hub id)")
        p.add_argument("--device", default="cpu", help="where the codec runs: cpu (default), cuda, cuda:N, or auto")

    enc = actions.add_parser("encode", help="audio file → codes file (.safetensors); prints the bitrate")
    enc.add_argument("audio", type=Path, help="an audio file (any rate and channels: resampled and downmixed)")
    model_options(enc)
    enc.add_argument("--out", required=True, type=Path, help="codes file to write (.safetensors)")
    enc.add_argument("--num-codebooks", type=int, default=None,
                     help="keep the first K codebooks (a lower bitrate; default: all)")
    enc.set_defaults(func=cmd_encode)

    dec = actions.add_parser("decode", help="codes file → WAV, with the codec that made the codes")
    dec.add_argument("codes", type=Path, help="a codes file from `audiollm codec encode`")
    model_options(dec)
    dec.add_argument("--out", required=True, type=Path, help="WAV file to write")
    dec.set_defaults(func=cmd_decode)

    cache = actions.add_parser("cache", help="every clip of manifests → a codes cache (reruns encode only new or "
                                             "changed clips)")
    cache.add_argument("manifests", nargs="+", type=Path, help="JSONL manifests whose audio to encode")
    model_options(cache)
    cache.add_argument("--out", required=True, type=Path, help="cache directory (one codes file per clip)")
    cache.add_argument("--num-codebooks", type=int, default=None, help="keep the first K codebooks (default: all)")
    cache.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    cache.set_defaults(func=cmd_cache)
