"""`audiollm ask`, `evaluate`, `transcribe`, `generate` and `speak`: thin handlers over the Python API
(`audiollm.inference.api`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audiollm.cli.common import add_device_options, unit_interval
from audiollm.decoding.options import CTC_DECODE_WEIGHT
from audiollm.errors import AudioLLMError
from audiollm.inference import DEFAULT_QUESTION
from audiollm.tasks.audio_answer import ContinuationTask

CONTINUE_QUESTION = ContinuationTask.questions[0]


def _load(args: argparse.Namespace, model_type: str = "audiollm"):
    from audiollm.inference.api import load
    from audiollm.models.hub import read_model_config

    kind, _, _ = read_model_config(args.model_dir)
    if kind != model_type:
        raise AudioLLMError(f"{args.model_dir}: has model type {kind!r}; `audiollm {args.command}` needs model type {model_type!r}")
    return load(args.model_dir, device=args.device, dtype=args.dtype)


def cmd_ask(args: argparse.Namespace) -> None:
    from audiollm.audio import load_audio
    from audiollm.decoding.options import DecodingOptions

    model = _load(args)
    wav = load_audio(args.audio, offset=args.offset, duration=args.duration, max_seconds=args.max_seconds)
    question = args.question or DEFAULT_QUESTION
    options = DecodingOptions(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p, seed=args.seed, ctc_weight=args.ctc_weight)
    answer = model.ask(wav, question, options=options, transcript=args.ctc_weight > 0)
    if args.json:
        print(json.dumps({"audio": str(args.audio), "question": question, "answer": answer}, ensure_ascii=False))
    else:
        print(answer)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from audiollm.evaluation.evaluate import (
        evaluate,
        format_table,
        rows_to_evaluate,
        write_json,
    )

    model = _load(args)
    rows, note = rows_to_evaluate(args.data, model, split=args.split, tasks=args.tasks, limit=args.limit)
    if note:
        print(f"note: {note}", file=sys.stderr)
    options = {"bertscore_model": str(args.bertscore_model) if args.bertscore_model else None,
               "bertscore_layer": args.bertscore_layer, "tag_scores": args.tag_scores, "seed": args.baseline_seed}
    result = evaluate(model, rows, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                      max_audio_seconds=args.max_seconds, progress=not args.no_progress, ctc_weight=args.ctc_weight,
                      protocol=args.protocol, protocol_options=options, judge=_judge(args.whisper))
    print(format_table(result.results))
    for line in result.notes:
        print(f"note: {line}")
    if args.json:
        write_json(args.json, result.results, result.predictions, rows, questions=result.questions, notes=result.notes)
        print(f"metrics and predictions written to {args.json}")


def _judge(whisper: Path | None):
    if whisper is None:
        return None
    from audiollm.metrics.asr_judge import WhisperJudge

    return WhisperJudge(whisper)


def cmd_transcribe(args: argparse.Namespace) -> None:
    if args.out.suffix.lower() not in (".mid", ".midi"):
        raise AudioLLMError(f"--out {args.out} must end in .mid or .midi")
    model = _load(args)
    result = model.transcribe(args.audio, window_seconds=args.window, onsets=args.onsets, offsets=args.offsets,
                              batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                              max_seconds=args.max_seconds, progress=not args.no_progress)
    result.write_midi(args.out)
    print(f"{len(result.notes)} notes written to {args.out}")
    if args.plot:
        print(f"piano roll saved to {result.plot(args.plot)}")


def cmd_generate(args: argparse.Namespace) -> None:
    from audiollm.decoding.options import DecodingOptions
    from audiollm.inference.api import load

    _check_generate_args(args)
    model = _load(args)
    if args.text is None and not (model.writes_audio and args.prompt_audio):
        raise AudioLLMError("give --text (what to play), or --prompt-audio to continue a recording")
    reranker = None if args.rerank is None else load(args.rerank, device=args.device, dtype=args.dtype)
    if model.writes_audio:  # codec tokens → audio directly
        return _generate_audio(args, model, reranker)
    options = DecodingOptions(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                              top_k=args.top_k or 0, top_p=args.top_p, seed=args.seed, guidance=args.guidance)
    pieces = model.compose(args.text, seconds=args.seconds, num_samples=args.num_samples, options=options,
                           tempo_fit=args.tempo_fit, soundfont=args.soundfont, rerank=reranker, keep=args.keep)
    for rank, piece in enumerate(pieces):
        out = args.out if len(pieces) == 1 else args.out.with_name(f"{args.out.stem}_{rank}{args.out.suffix}")
        wav, mid = piece.save(out, soundfont=args.soundfont)
        scored = "" if piece.similarity is None else \
            f", sample {piece.sample} of {args.num_samples}, MuLaN similarity {piece.similarity:.4f}"
        tempo = f", {piece.tempo_note()}" if piece.tempo_note() else ""
        print(f"{len(piece.notes)} notes, {piece.seconds:g} s{scored}{tempo}: {wav} and {mid}")


def _check_generate_args(args: argparse.Namespace) -> None:
    if args.out.suffix.lower() != ".wav":
        raise AudioLLMError(f"--out {args.out} must end in .wav (a MIDI model's .mid is written beside it)")
    if args.num_samples < 1:
        raise AudioLLMError(f"--num-samples must be at least 1, got {args.num_samples}")
    if args.keep is not None and not 1 <= args.keep <= args.num_samples:
        raise AudioLLMError(f"--keep must be between 1 and --num-samples ({args.num_samples}), got {args.keep}")
    if args.keep is not None and args.rerank is None:
        raise AudioLLMError("--keep needs --rerank MULAN_DIR (the model that scores the samples)")


def _generate_audio(args: argparse.Namespace, model, reranker) -> None:
    from audiollm.decoding.options import DecodingOptions

    options = DecodingOptions(temperature=args.temperature, top_k=250 if args.top_k is None else args.top_k,
                              top_p=args.top_p, seed=args.seed, guidance=args.guidance)
    sounds = model.generate_audio(args.text or CONTINUE_QUESTION, seconds=args.seconds, num_samples=args.num_samples,
                                  options=options, rerank=reranker, keep=args.keep, prompt_audio=args.prompt_audio,
                                  window_seconds=args.window, stride_seconds=args.stride)
    for rank, sound in enumerate(sounds):
        out = args.out if len(sounds) == 1 else args.out.with_name(f"{args.out.stem}_{rank}{args.out.suffix}")
        scored = "" if sound.similarity is None else f", MuLaN similarity {sound.similarity:.4f}"
        print(f"{sound.seconds:.2f} s{scored}: {sound.save(out)}")


def cmd_speak(args: argparse.Namespace) -> None:
    from audiollm.decoding.options import DecodingOptions

    if args.out.suffix.lower() != ".wav":
        raise AudioLLMError(f"--out {args.out} must end in .wav")
    text = args.text
    if args.text_file is not None:
        if text is not None:
            raise AudioLLMError("give the words with --text or --text-file, not both")
        try:
            text = args.text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise AudioLLMError(f"{args.text_file}: cannot read: {e}") from None
    if text is None:
        raise AudioLLMError("give the words to say with --text \"…\" or --text-file FILE")
    model = _load(args)
    options = DecodingOptions(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                              guidance=args.guidance)
    sound = model.speak(text, voice=args.voice, options=options)
    print(f"{sound.seconds:.2f} s of speech ({len(sound.codes)} sentence(s)): {sound.save(args.out)}")


def add_commands(sub) -> None:
    """Add ``ask``, ``evaluate``, ``transcribe`` and ``generate`` to the subparsers ``sub``."""
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
    a.add_argument("--ctc-weight", type=unit_interval, default=0.0,
                   help="when the answer is a transcript of the audio (a speech question): decode jointly with the "
                        f"model's CTC head with this weight, e.g. {CTC_DECODE_WEIGHT} (default 0 = the LM alone; "
                        "no effect on a model without a CTC head)")
    add_device_options(a)
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
    e.add_argument("--ctc-weight", type=unit_interval, default=CTC_DECODE_WEIGHT,
                   help="transcript rows (asr) of a model with a CTC head are decoded jointly with it, with this "
                        f"weight in [0, 1] (default {CTC_DECODE_WEIGHT}; 0 = the LM alone)")
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
    e.add_argument("--whisper", type=Path, default=None,
                   help="tts rows: a local Whisper checkpoint that transcribes the model's speech for WER/CER "
                        "(e.g. models/whisper-tiny.en, which `make fsdd` installs)")
    e.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_device_options(e)
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
                         "head (model.heads.ctc), else lm")
    tr.add_argument("--offsets", choices=("auto", "frames", "lm"), default="auto",
                    help="where note ends come from: frames = the model's note-activity head (a note lasts while "
                         "its pitch stays active); lm = the decoder's note-offs; auto (default) = frames when the "
                         "model has a note-activity head (model.heads.note_activity)")
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_device_options(tr)
    tr.set_defaults(func=cmd_transcribe)

    g = sub.add_parser("generate", help="text → music: MIDI rendered to WAV (text_to_midi), or audio (text_to_audio)",
                       description="Sample pieces for a text (instrument, tempo, key, style; see docs/music.md) "
                                   "with classifier-free guidance. A text_to_midi model writes each as MIDI (grammar-"
                                   "constrained) and renders it through a General MIDI soundfont with FluidSynth; a "
                                   "text_to_audio model writes codec tokens, decoded by its codec to WAV.")
    g.add_argument("model_dir", type=Path, help="a saved model directory trained on text_to_midi or text_to_audio")
    g.add_argument("--text", default=None,
                   help='what to play, e.g. "a cello in D minor at 72 bpm" (an audio model continuing --prompt-audio '
                        'may leave it out)')
    g.add_argument("--out", required=True, type=Path, help="WAV to write (.wav); the MIDI goes beside it (.mid)")
    g.add_argument("--num-samples", type=int, default=1, help="pieces to sample: OUT_0.wav, OUT_1.wav, … (default 1)")
    g.add_argument("--seconds", type=float, default=4.0,
                   help="piece length: for MIDI at most the 4 s window the task is trained on; audio models extend "
                        "past their window (see --window, --stride) (default 4)")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 = greedy (default 1)")
    g.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (1.0 = off; default 0.95)")
    g.add_argument("--top-k", type=int, default=None,
                   help="sample from the k most likely tokens (0 = off; default: off for MIDI, 250 for audio)")
    g.add_argument("--guidance", type=float, default=3.0,
                   help="classifier-free guidance scale: 1 = off, > 1 follows the text more closely (default 3)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    g.add_argument("--max-new-tokens", type=int, default=1024, help="event-token budget per piece (default 1024)")
    g.add_argument("--prompt-audio", type=Path, default=None,
                   help="audio models: a recording to continue (any rate or channel count; kept at the start of "
                        "each output); --seconds is then the new audio")
    g.add_argument("--window", type=float, default=4.0,
                   help="audio models: the window the model was trained on; longer --seconds are made window by "
                        "window (default 4)")
    g.add_argument("--stride", type=float, default=2.0,
                   help="audio models: new seconds per extension window, each continuing the rest of the window "
                        "(default 2)")
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
    add_device_options(g)
    g.set_defaults(func=cmd_generate)

    sp = sub.add_parser("speak", help="text → speech: a tts model writes codec tokens, its codec decodes them to WAV",
                        description="Say a text with a model trained on the tts task. The text is spoken sentence "
                                    "by sentence (text longer than the model's context is split at sentence ends); "
                                    "each sentence's length is bounded by its number of characters.")
    sp.add_argument("model_dir", type=Path, help="a saved model directory trained on the tts task")
    sp.add_argument("--text", default=None, help='the words to say, e.g. "The dog barked all night."')
    sp.add_argument("--text-file", type=Path, default=None, help="read the words from this UTF-8 text file instead")
    sp.add_argument("--out", required=True, type=Path, help="WAV to write (.wav), at the codec's sample rate")
    sp.add_argument("--voice", default=None,
                    help="voice description as in the training rows, e.g. \"natural US male (Piper)\" (default: none)")
    sp.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0 = greedy (default 0.8)")
    sp.add_argument("--top-k", type=int, default=50, help="sample from the k most likely codes (0 = off; default 50)")
    sp.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1.0 = off; default)")
    sp.add_argument("--guidance", type=float, default=1.0,
                    help="classifier-free guidance scale for a model trained with cond_dropout (1 = off; default)")
    sp.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    add_device_options(sp)
    sp.set_defaults(func=cmd_speak)
