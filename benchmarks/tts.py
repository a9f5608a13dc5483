"""TTS benchmark: a tts model speaks unseen test sentences, judged beside the voices that read them.

    python benchmarks/tts.py --model runs/tts_quickstart/final --data data/tts_quickstart/test.jsonl \
        --whisper models/whisper-tiny.en

Every test row (``audiollm data synth-tts``: a sentence the training text never had, read by
Piper or an espeak-ng voice) is spoken by the model in the row's voice. Systems, each on the
same sentences:
  model       the tts model (`AudioLanguageModel.speak`, seeds 0…)
  reference   the row's own recording, by engine (piper, espeak): what the model learned from
  codec       that recording through the model's codec (encode → decode): the model's ceiling

Figures per system (metrics: `audiollm.metrics`):
  wer, cer            Whisper tiny.en's greedy transcript vs the sentence (numerals spelled out;
                      corpus-level, jiwer)
  dnsmos_ovrl         DNSMOS P.835 overall MOS, no reference
  rtf                 model only: wall seconds of `speak` per second of audio produced
  implausible_share   model only: outputs whose length is off — runaway (at the frame budget) or
                      cut (under a third of the reference recording's length)
Prints one JSON object.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, machine, parser, run, setup  # noqa: E402

import audiollm  # noqa: E402
from audiollm.audio import load_audio  # noqa: E402
from audiollm.data.manifest import read_manifest  # noqa: E402
from audiollm.errors import AudioLLMError  # noqa: E402
from audiollm.inference.speak import MIN_CHARS_PER_SECOND, split_sentences  # noqa: E402
from audiollm.metrics import audio as judges  # noqa: E402
from audiollm.metrics.asr_judge import WhisperJudge, normalize_asr  # noqa: E402
from audiollm.metrics.text import wer_cer  # noqa: E402


def scores(judge: WhisperJudge | None, wavs: list[np.ndarray], rate: int, texts: list[str]) -> dict:
    out: dict = {"n": len(wavs)}
    if judge is not None:
        heard = judge.transcribe([w if w.size else np.zeros(160, np.float32) for w in wavs], rate)
        out.update(wer_cer([normalize_asr(h) for h in heard], [normalize_asr(t) for t in texts]))
        out["examples"] = [{"text": t, "heard": h} for t, h in list(zip(texts, heard))[:3]]
    out["dnsmos_ovrl"] = float(np.mean([judges.dnsmos(w if w.size else np.zeros(160, np.float32), rate)["ovrl"]
                                        for w in wavs]))
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, type=Path, help="a saved tts model directory")
    p.add_argument("--data", required=True, type=Path, help="tts test manifest (.jsonl)")
    p.add_argument("--whisper", type=Path, default=None, help="Whisper checkpoint for WER (else WER is skipped)")
    p.add_argument("--limit", type=int, default=200, help="test sentences to speak (default 200; 0 = all)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--top-k", type=int, default=50, help="top-k (default 50)")
    p.add_argument("--out", type=Path, default=None, help="also write the model's WAVs into this folder")
    args = p.parse_args()
    device = setup(args)
    rows = [r for r in read_manifest(args.data) if r.get("task") == "tts"]
    rows = rows[: args.limit] if args.limit else rows
    if args.quick:
        rows = rows[:4]
    if not rows:
        raise AudioLLMError(f"{args.data}: no tts rows")
    model = audiollm.load(args.model, device=str(device))
    codec = model.audio_answers.codec
    rate = codec.sample_rate
    judge = WhisperJudge(args.whisper) if args.whisper else None
    texts = [r["text"] for r in rows]
    log(f"speaking {len(rows)} sentences ...")
    spoken, seconds_spent, runaway, cut = [], 0.0, 0, 0
    for i, r in enumerate(rows):
        t0 = time.perf_counter()
        sound = model.speak(r["text"], voice=r.get("voice"), temperature=args.temperature, top_k=args.top_k, seed=i)
        seconds_spent += time.perf_counter() - t0
        spoken.append(sound.audio)
        frames = sum(c.shape[1] for c in sound.codes)
        budget = sum(model.audio_answers.frames(1.0 + len(s) / MIN_CHARS_PER_SECOND)
                     for s in split_sentences(r["text"]))
        runaway += frames >= budget
        cut += sound.seconds < float(r.get("seconds") or 0.0) / 3
        if args.out:
            sound.save(args.out / f"{r.get('id', i)}.wav")
    audio_seconds = sum(w.size for w in spoken) / rate
    log("judging ...")
    refs = [load_audio(r["audio"], rate).numpy() for r in rows]
    result = {"benchmark": "tts", "model": str(args.model), "data": str(args.data), "sentences": len(rows),
              "model_scores": {**scores(judge, spoken, rate, texts),
                               "rtf": round(seconds_spent / max(audio_seconds, 1e-9), 3),
                               "implausible_share": (runaway + cut) / len(rows), "runaway": runaway, "cut": cut,
                               "audio_seconds": round(audio_seconds, 1)}}
    engines = sorted({str(r.get("speaker", "?")).split(":")[0] for r in rows})
    for engine in engines:
        idx = [i for i, r in enumerate(rows) if str(r.get("speaker", "?")).split(":")[0] == engine]
        result[f"reference_{engine}"] = scores(judge, [refs[i] for i in idx], rate, [texts[i] for i in idx])
    result["codec_reconstruction"] = scores(judge, [codec.reconstruct(w, num_codebooks=model.audio_answers.config.num_codebooks)
                                                    for w in refs], rate, texts)
    result.update(machine(device))
    emit(result)


if __name__ == "__main__":
    run(main)
