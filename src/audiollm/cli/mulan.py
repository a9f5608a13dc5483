"""The MuLaN subcommands of `audiollm`: embed, index, search, tag, score — thin handlers over
`audiollm.inference.api.EmbeddingModel` and `audiollm.inference.index`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from audiollm.cli.common import add_device_options, warnings_as_lines
from audiollm.errors import AudioLLMError


def _load(args: argparse.Namespace):
    from audiollm.inference.api import EmbeddingModel
    from audiollm.models.hub import load

    model, tokenizer = load(args.model_dir, device=args.device, dtype=args.dtype, model_type="mulan")
    return EmbeddingModel(model, tokenizer, args.model_dir)


def cmd_embed(args: argparse.Namespace) -> None:
    import numpy as np

    from audiollm.files import atomic_file

    if bool(args.files) == bool(args.text):
        raise AudioLLMError("give audio FILES or --text (one or more), not both and not neither")
    if args.out.suffix != ".npy":
        raise AudioLLMError(f"--out {args.out} must end in .npy")
    model = _load(args)
    with warnings_as_lines():
        emb = model.embed_text(args.text) if args.text else model.embed_audio(
            args.files, batch_size=args.batch_size, max_seconds=args.max_seconds, progress=not args.no_progress)
    with atomic_file(args.out) as tmp, open(tmp, "wb") as f:
        np.save(f, emb)
    print(f"{emb.shape[0]} embeddings of dimension {emb.shape[1]} written to {args.out}")


def cmd_index(args: argparse.Namespace) -> None:
    from audiollm.inference.index import build_index
    from audiollm.models.hub import read_model_config

    if read_model_config(args.model_dir)[0] != "mulan":
        raise AudioLLMError(f"{args.model_dir}: is not a MuLaN embedding model")
    stats = build_index(args.model_dir, args.audio_dir, args.out, batch_size=args.batch_size,
                        max_seconds=args.max_seconds, progress=not args.no_progress, device=args.device,
                        dtype=args.dtype)
    print(f"index {args.out}: {stats['files']} files ({stats['embedded']} embedded, {stats['kept']} kept, "
          f"{stats['changed']} changed, {stats['removed']} removed)")


def cmd_search(args: argparse.Namespace) -> None:
    from audiollm.inference.index import search_index

    with warnings_as_lines():
        hits = search_index(args.index, text=args.query, audio=args.audio, k=args.k, device=args.device,
                            dtype=args.dtype)
    if args.json:
        print(json.dumps([{"path": p, "score": round(s, 5)} for p, s in hits], ensure_ascii=False))
    else:
        for p, s in hits:
            print(f"{s:.4f}  {p}")


def cmd_tag(args: argparse.Namespace) -> None:
    from audiollm.inference.embedding import DEFAULT_PROMPTS

    ranked = _load(args).tag(args.audio, args.labels.split(","), templates=args.template or DEFAULT_PROMPTS,
                             max_seconds=args.max_seconds)
    if args.json:
        print(json.dumps({"audio": str(args.audio), "tags": [{"label": l, "prob": round(p, 5)} for l, p in ranked]}))
    else:
        for label, prob in ranked[: args.top or None]:
            print(f"{prob:.3f}  {label}")


def cmd_score(args: argparse.Namespace) -> None:
    model = _load(args)
    with warnings_as_lines():
        sims = model.score(args.audio, args.text, max_seconds=args.max_seconds)
    for text, s in zip(args.text, sims):
        print(f"{s:.4f}  {text}")


def add_commands(sub) -> None:
    """Add the MuLaN subcommands to the `audiollm` subparsers ``sub``."""
    em = sub.add_parser("embed", help="MuLaN: embed audio files or texts into one joint space (.npy)")
    em.add_argument("model_dir", type=Path, help="a saved MuLaN model directory")
    em.add_argument("files", nargs="*", type=Path, help="audio files (row i of the output = file i)")
    em.add_argument("--text", action="append", default=[], help="a text to embed instead (repeatable)")
    em.add_argument("--out", required=True, type=Path, help="embeddings to write (.npy, float32, L2-normalised)")
    em.add_argument("--batch-size", type=int, default=16, help="clips embedded together (default 16)")
    em.add_argument("--max-seconds", type=float, default=30.0,
                    help="longer clips are embedded as the mean of windows this long (default 30)")
    em.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_device_options(em)
    em.set_defaults(func=cmd_embed)

    ix = sub.add_parser("index", help="MuLaN: build or update a search index of every audio file in a folder")
    ix.add_argument("model_dir", type=Path, help="a saved MuLaN model directory")
    ix.add_argument("audio_dir", type=Path, help="folder searched recursively for .wav/.flac/.ogg/.mp3")
    ix.add_argument("--out", required=True, type=Path, help="index file; re-running embeds only new or changed files")
    ix.add_argument("--batch-size", type=int, default=16, help="clips embedded together (default 16)")
    ix.add_argument("--max-seconds", type=float, default=30.0, help="window length for long clips (default 30)")
    ix.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_device_options(ix)
    ix.set_defaults(func=cmd_index)

    se = sub.add_parser("search", help="MuLaN: find the indexed clips closest to a text (or to a clip with --audio)")
    se.add_argument("index", type=Path, help="an index written by `audiollm index`")
    se.add_argument("query", nargs="?", default=None, help='text query, e.g. "warm jazz trumpet"')
    se.add_argument("--audio", type=Path, default=None, help="search by this clip instead of a text")
    se.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    se.add_argument("--json", action="store_true", help="print JSON instead of 'score  path' lines")
    add_device_options(se)
    se.set_defaults(func=cmd_search)

    tg = sub.add_parser("tag", help="MuLaN: zero-shot tagging of a clip with labels you name")
    tg.add_argument("model_dir", type=Path, help="a saved MuLaN model directory")
    tg.add_argument("audio", type=Path, help="audio file")
    tg.add_argument("--labels", required=True, help="comma-separated candidate labels, e.g. piano,organ,guitar")
    tg.add_argument("--template", action="append", default=None,
                    help="prompt per label, containing {label}; repeat it to average several prompts "
                         "(default: 'A slow {label} piece.', 'A medium-tempo {label} piece.', 'A fast {label} piece.')")
    tg.add_argument("--top", type=int, default=0, help="print only the N most likely labels (0 = all)")
    tg.add_argument("--max-seconds", type=float, default=600.0, help="refuse audio longer than this (default 600)")
    tg.add_argument("--json", action="store_true", help="print JSON")
    add_device_options(tg)
    tg.set_defaults(func=cmd_tag)

    sc = sub.add_parser("score", help="MuLaN: cosine similarity between a clip and one or more texts")
    sc.add_argument("model_dir", type=Path, help="a saved MuLaN model directory")
    sc.add_argument("--audio", required=True, type=Path, help="audio file")
    sc.add_argument("--text", required=True, action="append", help="text to score against (repeatable)")
    sc.add_argument("--max-seconds", type=float, default=600.0, help="refuse audio longer than this (default 600)")
    add_device_options(sc)
    sc.set_defaults(func=cmd_score)
