"""`audiollm` — one console script, thin argument parsing over library calls.

Every user-fixable problem surfaces as one line, ``audiollm: error: …``, and a non-zero
exit (2, or 130 after Ctrl-C). Heavy imports happen inside the handlers so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audiollm import __version__
from audiollm.cli.mulan import add_mulan_commands
from audiollm.errors import AudioLLMError

DEFAULT_QUESTION = "Describe this audio."


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


def cmd_data_manifest(args: argparse.Namespace) -> None:
    import warnings

    from audiollm.data.formats import build_manifest
    from audiollm.data.manifest import write_manifest

    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            raise AudioLLMError(f"--option {item!r} must look like key=value")
        options[key.replace("-", "_")] = value
    # Readers report skipped entries (missing audio, malformed lines) as warnings: show
    # each as one line, also when the build then fails for want of rows.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rows = build_manifest(args.format, args.root, **options)
        finally:
            for w in caught:
                print(f"audiollm: warning: {w.message}", file=sys.stderr)
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


def cmd_train(args: argparse.Namespace) -> None:
    from audiollm.config import load_config
    from audiollm.training.loop import train

    cfg = load_config(args.config, args.overrides)
    if args.dry_run:
        from audiollm.training.dry_run import dry_run

        print(format_dry_run(dry_run(cfg)))
        return
    final = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"final model: {final}")


def cmd_features(args: argparse.Namespace) -> None:
    from audiollm.data.feature_cache import build_feature_cache
    from audiollm.data.manifest import read_manifest

    model_config = _model_config(args.source, args.overrides)
    paths = [row["audio"] for m in args.manifests for row in read_manifest(m, require_answer=False) if row.get("audio")]
    report = build_feature_cache(model_config, paths, args.out, batch_size=args.batch_size, dtype=args.dtype,
                                 device=args.device, progress=not args.no_progress)
    line = (f"{report.clips} clips: {report.computed} encoded ({report.audio_seconds:.1f} s of audio), "
            f"{report.already_cached} already cached")
    if report.missing:
        line += f", {report.missing} missing (first: {report.first_missing})"
    print(f"{line} → {args.out}")
    print(f"train from it with: data.feature_cache={args.out} data.augment=false")


# Checkpoint formats `audiollm convert` reads: name → (module, function); imported on use.
CONVERTERS = {"ct2-whisper": ("audiollm.models.pretrained.ct2_whisper", "convert_ct2_whisper")}


def cmd_convert(args: argparse.Namespace) -> None:
    import importlib

    module, function = CONVERTERS[args.format]
    out = getattr(importlib.import_module(module), function)(args.source, args.out)
    print(f"wrote {out} (load it with audio_encoder_config.model={out})")


def _model_config(source: Path, overrides: list[str]):
    """The AudioLLMConfig of a training config (YAML, with overrides) or a saved model directory."""
    from audiollm.models.audiollm import CONFIG_NAME, AudioLLMConfig

    if source.is_dir():
        if overrides:
            raise AudioLLMError("overrides apply to a YAML config, not to a saved model directory")
        config_file = source / CONFIG_NAME
        if not config_file.is_file():
            raise AudioLLMError(f"{source}: not a model directory (no {CONFIG_NAME})")
        try:
            return AudioLLMConfig.from_dict(json.loads(config_file.read_text()))
        except json.JSONDecodeError as e:
            raise AudioLLMError(f"{config_file}: not valid JSON ({e})") from None
    from audiollm.config import load_config

    cfg = load_config(source, overrides)
    if cfg.model.get("kind", "audiollm") != "audiollm":
        raise AudioLLMError(f"{source}: model.kind={cfg.model['kind']!r}; feature caches are for audiollm models")
    return AudioLLMConfig.from_dict({k: v for k, v in cfg.model.items() if k != "kind"})


def format_dry_run(info: dict) -> str:
    """The dry-run report as a person reads it (counts, memory, tokens, the first batch)."""
    p, m, t = info["parameters"], info["memory_gib"], info["tokens_per_example"]
    lines = [
        f"parameters: {p['total']:,} total, {p['trainable']:,} trainable ({100 * p['trainable'] / max(p['total'], 1):.2f}%)",
        f"memory estimate: {m['total_estimate']:.3f} GiB = weights {m['weights']:.3f} + gradients/AdamW "
        f"{m['gradients_and_optimizer']:.3f} + activations {m['activations_per_micro_batch']:.3f} "
        f"(micro-batch of {info['micro_batch']})",
        f"tokens per example: mean {t['mean']} (audio {t['audio_mean']} + text {t['text_mean']}), max {t['max']}",
        f"tokenizer: {info['tokenizer']['kind']}, {info['tokenizer']['vocab_size']:,} tokens",
        "first batch:",
    ]
    lines[0] = f"model kind: {info.get('model_kind', 'audiollm')}; " + lines[0]
    for i, e in enumerate(info["first_batch"]):
        text = " | ".join(f"{k}: {e[k]!r}" for k in ("prompt", "answer", "text") if k in e)
        lines.append(f"  [{i}] {e['seconds']} s → {e['audio_tokens']} audio tokens | {text}")
    lines.append("dry run: nothing was trained or written")
    return "\n".join(lines)


def cmd_ask(args: argparse.Namespace) -> None:
    from audiollm.audio import load_audio
    from audiollm.decoding.options import DecodingOptions
    from audiollm.inference.answer import answer
    from audiollm.models.hub import load_model_dir

    model, tokenizer = load_model_dir(args.model_dir)
    wav = load_audio(args.audio, offset=args.offset, duration=args.duration, max_seconds=args.max_seconds)
    question = args.question or DEFAULT_QUESTION
    options = DecodingOptions(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p, seed=args.seed, ctc_weight=args.ctc_weight)
    text = answer(model, tokenizer, wav, question, options)
    if args.json:
        print(json.dumps({"audio": str(args.audio), "question": question, "answer": text}, ensure_ascii=False))
    else:
        print(text)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from audiollm.evaluation.evaluate import evaluate, format_table, write_json
    from audiollm.models.hub import load_model_dir
    from audiollm.training.loop import load_rows

    model, tokenizer = load_model_dir(args.model_dir)
    rows = load_rows(args.data, args.split)
    if args.tasks:
        wanted = set(args.tasks.split(","))
        rows = [r for r in rows if r["task"] in wanted]
    if getattr(tokenizer, "midi", None) is None:
        # A corpus holds text_to_midi rows next to the text tasks: a text-only model skips them.
        from audiollm.tasks import get_task

        events = sorted({r["task"] for r in rows if get_task(r["task"]).answers_are_events})
        if events:
            n = len(rows)
            rows = [r for r in rows if r["task"] not in events]
            print(f"note: skipped {n - len(rows)} row(s) of {', '.join(events)}: the model has no MIDI vocabulary",
                  file=sys.stderr)
    if args.limit:
        rows = rows[: args.limit]
    if not rows:
        raise AudioLLMError(f"{args.data}: no rows left to evaluate")
    options = {"bertscore_model": str(args.bertscore_model) if args.bertscore_model else None,
               "bertscore_layer": args.bertscore_layer, "tag_scores": args.tag_scores, "seed": args.baseline_seed}
    result = evaluate(model, tokenizer, rows, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                      max_audio_seconds=args.max_seconds, progress=not args.no_progress, ctc_weight=args.ctc_weight,
                      protocol=args.protocol, protocol_options=options)
    print(format_table(result.results))
    for note in result.notes:
        print(f"note: {note}")
    if args.json:
        write_json(args.json, result.results, result.predictions, rows, questions=result.questions,
                   notes=result.notes)
        print(f"metrics and predictions written to {args.json}")


def cmd_transcribe(args: argparse.Namespace) -> None:
    from audiollm.audio import SAMPLE_RATE, load_audio
    from audiollm.models.hub import load_model_dir
    from audiollm.music.midi_file import write_midi
    from audiollm.inference.transcribe import plot_piano_roll, transcribe

    if args.out.suffix.lower() not in (".mid", ".midi"):
        raise AudioLLMError(f"--out {args.out} must end in .mid or .midi")
    model, tokenizer = load_model_dir(args.model_dir)
    wav = load_audio(args.audio, max_seconds=args.max_seconds)
    (notes,) = transcribe(model, tokenizer, [wav], window_seconds=args.window, batch_size=args.batch_size,
                          max_new_tokens=args.max_new_tokens, onsets=args.onsets, offsets=args.offsets,
                          progress=not args.no_progress)
    write_midi(notes, args.out)
    print(f"{len(notes)} notes written to {args.out}")
    if args.plot:
        plot_piano_roll(notes, args.plot, duration=wav.shape[0] / SAMPLE_RATE)
        print(f"piano roll saved to {args.plot}")


def cmd_generate(args: argparse.Namespace) -> None:
    import torch

    from audiollm.decoding.options import DecodingOptions
    from audiollm.inference.compose import check_generation, generate_midi
    from audiollm.models.hub import load_model_dir
    from audiollm.music.render import render_notes, write_piece
    from audiollm.tasks import get_task

    if args.out.suffix.lower() != ".wav":
        raise AudioLLMError(f"--out {args.out} must end in .wav (the MIDI file is written beside it as .mid)")
    if args.num_samples < 1:
        raise AudioLLMError(f"--num-samples must be at least 1, got {args.num_samples}")
    keep = args.num_samples if args.keep is None else args.keep
    if not 1 <= keep <= args.num_samples:
        raise AudioLLMError(f"--keep must be between 1 and --num-samples ({args.num_samples}), got {keep}")
    if args.keep is not None and args.rerank is None:
        raise AudioLLMError("--keep needs --rerank MULAN_DIR (the model that scores the samples)")
    model, tokenizer = load_model_dir(args.model_dir)
    scorer = None
    if args.rerank is not None:
        from audiollm.inference.embedding import load_mulan_dir

        scorer = load_mulan_dir(args.rerank)
    try:
        seconds = check_generation(tokenizer, args.text, args.seconds, get_task("text_to_midi").window_seconds)
    except AudioLLMError as e:
        raise AudioLLMError(f"{args.model_dir}: {e}") from None
    options = DecodingOptions(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p, seed=args.seed, guidance=args.guidance)
    pieces = generate_midi(model, tokenizer, [args.text] * args.num_samples, seconds=seconds, options=options)
    tempo_notes = [""] * len(pieces)
    if args.tempo_fit:
        from audiollm.music.prompt import parse_request
        from audiollm.music.tempo_fit import MAX_STRETCH, fit_tempo

        request = parse_request(args.text)
        fits = [fit_tempo(notes, request, seconds) for notes in pieces]
        pieces = [f.notes for f in fits]
        tempo_notes = [f", tempo {f.before:.1f} → {f.after:.1f} bpm (times × {f.factor:.3f})" if f.factor != 1.0
                       else "" if f.fits else f", tempo kept as sampled (no rescaling within ×{1 / MAX_STRETCH:g}-"
                       f"×{MAX_STRETCH:g} gives the requested tempo)" for f in fits]
    audio = [render_notes(notes, seconds, args.soundfont) for notes in pieces]
    if scorer is None:
        chosen = [(i, None) for i in range(len(pieces))]
    else:  # MusicLM's reranking: keep the samples whose audio MuLaN finds closest to the text
        from audiollm.inference.embedding import rerank

        chosen = rerank(*scorer, args.text, [torch.from_numpy(a).float() for a in audio], keep=keep)
    for rank, (i, similarity) in enumerate(chosen):
        out = args.out if len(chosen) == 1 else args.out.with_name(f"{args.out.stem}_{rank}{args.out.suffix}")
        wav, mid = write_piece(pieces[i], out, seconds, soundfont=args.soundfont, rendered=audio[i])
        scored = "" if similarity is None else f", sample {i} of {len(pieces)}, MuLaN similarity {similarity:.4f}"
        print(f"{len(pieces[i])} notes, {seconds:g} s{scored}{tempo_notes[i]}: {wav} and {mid}")


def cmd_data_derive(args: argparse.Namespace) -> None:
    """``data text-to-midi`` / ``data transcription``: one row of ``args.derive_task`` per music clip."""
    import os

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


def _ctc_weight(text: str) -> float:
    """argparse type of --ctc-weight: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from audiollm.config import CTC_DECODE_WEIGHT as DEFAULT_CTC_WEIGHT

    p = argparse.ArgumentParser(prog="audiollm", description="Audio-language models: train, ask, evaluate, transcribe, generate; MuLaN embed, index, search, tag, score.")
    p.add_argument("--version", action="version", version=f"audiollm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

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
    fe.add_argument("--dtype", default="float16", help="storage dtype: float16 (default), bfloat16, float32")
    fe.add_argument("--device", default="cpu", help="torch device for the encoder (default cpu)")
    fe.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    fe.set_defaults(func=cmd_features)

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

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", type=Path, help="experiment YAML (see configs/)")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides, e.g. train.lr=3e-4 output_dir=runs/x")
    t.add_argument("--resume", metavar="DIR", help="continue from a run folder (latest checkpoint) or a checkpoint folder")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.add_argument("--dry-run", action="store_true",
                   help="print parameter counts, a memory estimate, tokens per example and the first batch "
                        "decoded, then exit without training")
    t.set_defaults(func=cmd_train)

    a = sub.add_parser("ask", help="answer a question about one audio file")
    a.add_argument("model_dir", type=Path, help="a saved model directory (e.g. runs/quickstart/final)")
    a.add_argument("audio", type=Path, help="audio file (WAV/FLAC/OGG/MP3; any rate, any channels)")
    a.add_argument("--question", "-q", default=None, help=f"the question (default: {DEFAULT_QUESTION!r})")
    a.add_argument("--json", action="store_true", help="print a JSON object instead of plain text")
    a.add_argument("--offset", type=float, default=0.0, help="start of the window to listen to, in seconds")
    a.add_argument("--duration", type=float, default=None, help="length of the window in seconds (default: to the end)")
    a.add_argument("--max-seconds", type=float, default=30.0, help="refuse audio longer than this (default 30)")
    a.add_argument("--max-new-tokens", type=int, default=64, help="answer length budget in tokens (default 64)")
    a.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    a.add_argument("--top-k", type=int, default=0, help="sample from the k most likely tokens (0 = off)")
    a.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1.0 = off)")
    a.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    a.add_argument("--ctc-weight", type=_ctc_weight, default=0.0,
                   help="when the answer is a transcript of the audio (a speech question): decode jointly with the "
                        f"model's CTC head with this weight, e.g. {DEFAULT_CTC_WEIGHT} (default 0 = the LM alone; "
                        "no effect on a model without a CTC head)")
    a.set_defaults(func=cmd_ask)

    e = sub.add_parser("evaluate", help="score a model on a manifest: per-task metrics table (+ JSON)")
    e.add_argument("model_dir", type=Path, help="a saved model directory")
    e.add_argument("--data", required=True, type=Path, help="manifest to evaluate on (.jsonl)")
    e.add_argument("--json", type=Path, default=None, help="also write metrics + per-example predictions here")
    e.add_argument("--split", default="", help="keep only rows of this split")
    e.add_argument("--tasks", default="", help="comma-separated tasks to keep (default: all)")
    e.add_argument("--limit", type=int, default=0, help="evaluate only the first N rows (0 = all)")
    e.add_argument("--batch-size", type=int, default=32, help="clips per generation batch (default 32)")
    e.add_argument("--max-new-tokens", type=int, default=64, help="answer length budget in tokens (default 64)")
    e.add_argument("--max-seconds", type=float, default=30.0, help="refuse manifests with clips longer than this (default 30)")
    e.add_argument("--ctc-weight", type=_ctc_weight, default=DEFAULT_CTC_WEIGHT,
                   help="transcript rows (asr) of a model with a CTC head are decoded jointly with it, with this "
                        f"weight in [0, 1] (default {DEFAULT_CTC_WEIGHT}; 0 = the LM alone)")
    e.add_argument("--protocol", default="auto",
                   help="published scoring to add to the default metrics: auto (by each row's dataset; default), "
                        "default (none), or comma-separated mullama, librispeech, mtt, clotho (all rows of their task)")
    e.add_argument("--bertscore-model", type=Path, default=None,
                   help="mullama: local transformers encoder folder for BERTScore recall (the paper: roberta-large); "
                        "without it BERTScore is skipped")
    e.add_argument("--bertscore-layer", type=int, default=None,
                   help="mullama: hidden layer for BERTScore (default: the last; roberta-large in the paper: 17)")
    e.add_argument("--tag-scores", choices=("auto", "likelihood", "presence"), default="auto",
                   help="mtt: per-tag scores for ROC/PR-AUC: model log-likelihood of each tag, or 0/1 presence in "
                        "the generated list (default auto: likelihood when the model can)")
    e.add_argument("--baseline-seed", type=int, default=0,
                   help="mullama: seed of the shuffled-reference baseline pairing (default 0)")
    e.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    e.set_defaults(func=cmd_evaluate)

    tr = sub.add_parser("transcribe", help="transcribe the notes of an audio file into a MIDI file")
    tr.add_argument("model_dir", type=Path, help="a saved model directory trained on the transcription task")
    tr.add_argument("audio", type=Path, help="audio file of any length (cut into windows and stitched)")
    tr.add_argument("--out", required=True, type=Path, help="MIDI file to write (.mid)")
    tr.add_argument("--plot", type=Path, default=None, help="also save a piano-roll image here (.png; needs matplotlib)")
    tr.add_argument("--window", type=float, default=5.0, help="window length in seconds, as in training (default 5)")
    tr.add_argument("--batch-size", type=int, default=8, help="windows decoded together (default 8)")
    tr.add_argument("--max-new-tokens", type=int, default=1024,
                    help="event-token budget per window, capped by the decoder's context (default 1024)")
    tr.add_argument("--max-seconds", type=float, default=3600.0, help="refuse audio longer than this (default 3600)")
    tr.add_argument("--onsets", choices=("auto", "ctc", "ctc+frames", "lm"), default="auto",
                    help="where note onsets come from: ctc = the model's CTC head places each note's start and "
                         "pitch and the decoder writes held notes, velocities and note-offs around them; "
                         "ctc+frames = those plus the starts the note-activity head hears and the CTC head missed; "
                         "lm = the decoder alone; auto (default) = ctc+frames with both heads, ctc with the CTC "
                         "head (model.ctc_weight > 0), else lm")
    tr.add_argument("--offsets", choices=("auto", "frames", "lm"), default="auto",
                    help="where note ends come from: frames = the model's note-activity head (a note lasts while "
                         "its pitch stays active); lm = the decoder's note-offs; auto (default) = frames when the "
                         "model was trained with model.frame_weight > 0")
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    tr.set_defaults(func=cmd_transcribe)

    g = sub.add_parser("generate", help="text → music: sample MIDI from a text_to_midi model and render it to WAV",
                       description="Sample pieces for a text (instrument, tempo, key, style; see README 'Text-to-music "
                                   "through MIDI') with classifier-free guidance and grammar-constrained decoding, "
                                   "write each as MIDI and render it through a General MIDI soundfont with FluidSynth.")
    g.add_argument("model_dir", type=Path, help="a saved model directory trained on the text_to_midi task")
    g.add_argument("--text", required=True, help='what to play, e.g. "a cello in D minor at 72 bpm"')
    g.add_argument("--out", required=True, type=Path, help="WAV to write (.wav); the MIDI goes beside it (.mid)")
    g.add_argument("--num-samples", type=int, default=1, help="pieces to sample: OUT_0.wav, OUT_1.wav, … (default 1)")
    g.add_argument("--seconds", type=float, default=4.0,
                   help="piece length, at most the 4 s window the task is trained on (default 4)")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 = greedy (default 1)")
    g.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (1.0 = off; default 0.95)")
    g.add_argument("--top-k", type=int, default=0, help="sample from the k most likely tokens (0 = off)")
    g.add_argument("--guidance", type=float, default=3.0,
                   help="classifier-free guidance scale: 1 = off, > 1 follows the text more closely (default 3)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    g.add_argument("--max-new-tokens", type=int, default=1024, help="event-token budget per piece (default 1024)")
    g.add_argument("--soundfont", type=Path, default=None,
                   help="General MIDI .sf2 (default: Debian's FluidR3_GM, else pretty_midi's TimGM6mb)")
    g.add_argument("--tempo-fit", action=argparse.BooleanOptionalAction, default=True,
                   help="play each sampled piece at the tempo --text asks for (NNN bpm or slow / medium-tempo / "
                        "fast): all note times scaled by one factor (0.5-2), notes past --seconds cut; "
                        "--no-tempo-fit keeps the model's own timing (default: on)")
    g.add_argument("--rerank", type=Path, default=None, metavar="MULAN_DIR",
                   help="a saved MuLaN model: score every sample's audio against --text and write the best "
                        "first (OUT_0 is the best), keeping --keep of them")
    g.add_argument("--keep", type=int, default=None,
                   help="with --rerank: how many of the --num-samples to write (default all, best first)")
    g.set_defaults(func=cmd_generate)

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

    add_mulan_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        (parser if args.command is None else parser._subparsers._group_actions[0].choices[args.command]).print_help()
        return 2
    try:
        args.func(args)
    except AudioLLMError as e:
        print(f"audiollm: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("audiollm: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
