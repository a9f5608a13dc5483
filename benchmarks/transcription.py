"""Transcription benchmark: our model against basic-pitch on the same test audio.

    python benchmarks/transcription.py runs/transcription/final --manifest data/corpus/test.jsonl --family piano

Reads the manifest's transcription rows (optionally one instrument family: ``--family piano``
is the embedded corpus's piano test split), transcribes every clip with the model directory
(windowed greedy decoding with the KV cache, as ``audiollm transcribe``; ``--onsets``) and, when it is
installed, with basic-pitch (Spotify's polyphonic transcriber, its ICASSP 2022 model run by
ONNX Runtime, default thresholds). Both note lists are scored with the same mir_eval code as
``audiollm evaluate`` (onsets within 50 ms; per clip, averaged). Prints one JSON object:

  ours / basic_pitch   note P/R/F1, onset+offset F1, onset+offset+velocity F1, seconds of
                       audio transcribed per wall second (this machine's threads, batch 1 clip
                       at a time for both, so the speeds compare like for like)
  f1_ratio             ours note F1 / basic-pitch note F1 (> 1 means we beat it)
  speed_ratio          ours audio-seconds/s over basic-pitch's

basic-pitch is not a dependency (its wheel pulls TensorFlow); ``bash scripts/setup_basic_pitch.sh``
installs it with ``--no-deps`` plus what its ONNX path needs. Without it the JSON says
``"basic_pitch": {"skipped": ...}``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, machine, parser, run, setup  # noqa: E402

import audiollm  # noqa: E402
from audiollm.audio import audio_info, load_audio  # noqa: E402
from audiollm.data.manifest import read_manifest  # noqa: E402
from audiollm.errors import AudioLLMError  # noqa: E402
from audiollm.inference.transcribe import OFFSET_SOURCES, ONSET_SOURCES  # noqa: E402
from audiollm.metrics.notes import transcription_scores  # noqa: E402
from audiollm.music.notes import Note  # noqa: E402
from audiollm.music.quiet_import import quiet_import  # noqa: E402
from audiollm.tasks import get_task  # noqa: E402


def select_rows(manifest: Path, family: str | None, limit: int | None) -> list[dict]:
    rows = [r for r in read_manifest(manifest, require_answer=False) if r.get("task") == "transcription"]
    if family:
        rows = [r for r in rows if r.get("family") == family]
    if limit:
        rows = rows[:limit]
    if not rows:
        raise AudioLLMError(f"{manifest}: no transcription rows" + (f" of family {family!r}" if family else ""))
    return rows


def scores(refs: list[list[Note]], ests: list[list[Note]], audio_seconds: float, wall: float) -> dict:
    out = {k: round(v, 4) for k, v in transcription_scores(refs, ests).items()}
    out["audio_seconds_per_s"] = round(audio_seconds / wall, 2)
    out["seconds"] = round(wall, 2)
    return out


def run_ours(model_dir: Path, paths: list[str], max_new_tokens: int, onsets: str, offsets: str,
             device: str) -> tuple[list[list[Note]], float]:
    model = audiollm.load(model_dir, device=device)
    window = get_task("transcription").window_seconds
    wavs = [load_audio(p) for p in paths]

    def one(wav):
        return model.transcribe(wav, window_seconds=window, batch_size=1, max_new_tokens=max_new_tokens,
                                onsets=onsets, offsets=offsets).notes

    one(wavs[0])  # warm-up
    t0 = time.perf_counter()
    notes = [one(w) for w in wavs]
    return notes, time.perf_counter() - t0


def run_basic_pitch(paths: list[str]) -> tuple[list[list[Note]], float]:
    logging.disable(logging.WARNING)  # basic-pitch warns at import about each backend it lacks
    quiet_import("basic_pitch.inference")  # it imports pretty_midi, so pyfluidsynth: its print under $CI
    from basic_pitch import ICASSP_2022_MODEL_PATH, ONNX_PRESENT
    from basic_pitch.inference import Model, predict

    if not ONNX_PRESENT or not str(ICASSP_2022_MODEL_PATH).endswith(".onnx"):
        raise ImportError("basic-pitch found no ONNX runtime for its model")
    bp = Model(ICASSP_2022_MODEL_PATH)
    with contextlib.redirect_stdout(sys.stderr):  # predict() prints a line per file; stdout is our JSON
        predict(paths[0], bp)  # warm-up
        t0 = time.perf_counter()
        notes = []
        for p in paths:
            _, _, events = predict(p, bp)  # (start s, end s, pitch, amplitude 0-1, bends)
            notes.append([Note(int(pitch), float(s), float(e), max(1, min(127, round(amp * 127))), 0)
                          for s, e, pitch, amp, _ in events if e > s])
        return notes, time.perf_counter() - t0


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path, help="a model directory trained on the transcription task")
    p.add_argument("--manifest", type=Path, default=Path("data/corpus/test.jsonl"),
                   help="manifest with transcription rows (default data/corpus/test.jsonl)")
    p.add_argument("--family", default="piano", help="keep one instrument family ('' = all; default piano)")
    p.add_argument("--limit", type=int, default=None, help="first N clips only")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="answer budget per window (default 1024)")
    p.add_argument("--onsets", choices=ONSET_SOURCES, default="auto",
                   help="where note onsets come from: ctc = the model's CTC head anchors them, ctc+frames = "
                        "plus those only the note-activity head hears, lm = the decoder alone, auto = the "
                        "heads the model has (default)")
    p.add_argument("--offsets", choices=OFFSET_SOURCES, default="auto",
                   help="where note ends come from: frames = the model's note-activity head, lm = the decoder's "
                        "note-offs, auto = frames when the model has the head (default)")
    p.add_argument("--no-basic-pitch", action="store_true", help="skip the basic-pitch side")
    args = p.parse_args()
    device = setup(args)
    rows = select_rows(args.manifest, args.family or None, 4 if args.quick and not args.limit else args.limit)
    task = get_task("transcription")
    refs = [task.notes(r) for r in rows]
    paths = [r["audio"] for r in rows]
    audio_seconds = sum(audio_info(p).frames / audio_info(p).samplerate for p in paths)
    log(f"{len(rows)} clips, {audio_seconds:.1f} s of audio")

    result: dict = {"benchmark": "transcription", "manifest": str(args.manifest), "family": args.family or "all",
                    "onsets": args.onsets, "offsets": args.offsets, "clips": len(rows), "audio_seconds": round(audio_seconds, 1), "machine": machine(device)}
    with torch.inference_mode():
        ours, wall = run_ours(args.model_dir, paths, args.max_new_tokens, args.onsets, args.offsets, str(device))
    result["ours"] = scores(refs, ours, audio_seconds, wall)
    log(f"ours: {result['ours']}")
    if args.no_basic_pitch:
        result["basic_pitch"] = {"skipped": "--no-basic-pitch"}
    else:
        try:
            bp, bp_wall = run_basic_pitch(paths)
        except ImportError as e:
            result["basic_pitch"] = {"skipped": f"basic-pitch not importable ({e}); bash scripts/setup_basic_pitch.sh"}
        else:
            result["basic_pitch"] = scores(refs, bp, audio_seconds, bp_wall)
            log(f"basic-pitch: {result['basic_pitch']}")
            if result["basic_pitch"]["note_f1"] > 0:
                result["f1_ratio"] = round(result["ours"]["note_f1"] / result["basic_pitch"]["note_f1"], 3)
            result["speed_ratio"] = round(result["ours"]["audio_seconds_per_s"]
                                          / result["basic_pitch"]["audio_seconds_per_s"], 3)
    emit(result)


if __name__ == "__main__":
    run(main)
