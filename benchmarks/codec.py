"""Codec benchmark: a codec at each of its bitrates beside Opus and mel + Griffin-Lim, on real speech and music.

    python benchmarks/codec.py --codec runs/codec/final --num-codebooks 2 4 8 --whisper models/whisper-tiny.en

Inputs, all resampled to the codec's rate (every system gets the same samples):
  speech  --clips N recordings of FSDD's held-out speaker "yweweler" (8 kHz, spread over the ten
          digits; --fsdd, default ../shared/data/fsdd)
  music   the real recordings in --music (default ../shared/data/music, OGG), cut into 10 s
          excerpts (--music-seconds; at most --excerpts per recording, 0 = all; a recording shorter than
          one excerpt is used whole)

Systems: the codec at each --num-codebooks K (default: all it has), Opus through ffmpeg/libopus
at 6 kbps (speech and music) and 12 kbps (music), 80-bin log-mel + Griffin-Lim (64 iterations;
an unquantised baseline, so its bitrate is null; ``raw_bps`` is its float32 mel frames), and the
original itself where a figure applies to it (DNSMOS, WER). Each clip is coded on its own.

Figures per system and domain (metrics: `audiollm.metrics.audio`):
  bitrate_bps       codec: frame_rate · K · log2(codebook_size); Opus: the nominal rate, and
                    measured_bps = the Ogg stream's size (container included) over its duration
  mel_distance      mean L1 between log10-mel spectrograms, per clip, averaged (lower is better)
  si_sdr_db         scale-invariant SDR, per clip, averaged (needs sample alignment)
  stoi, pesq_wb     speech only, on "utterances": consecutive clips concatenated to ≥ 4 s (short
                    FSDD clips are below what STOI/PESQ can score alone), averaged
  dnsmos_ovrl       speech only, DNSMOS P.835 overall MOS on the same utterances (no reference)
  wer               speech only, with --whisper: Whisper's greedy transcript of the output vs the
                    digit word (numerals spelled out); ``wer_original`` is Whisper on the inputs
  rtf               encode + decode wall seconds per second of audio, median of --repeats passes
                    (< 1: faster than real time; Opus includes starting two ffmpeg processes a clip)
STOI/PESQ/DNSMOS model speech, so music gets mel distance, SI-SDR and RTF only.
``codec_vs_opus_6kbps``: each K's speech PESQ/STOI/DNSMOS minus Opus 6 kbps's, its mel distance
over Opus's, and its bitrate over 6 kbps. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, log, machine, parser, run, setup  # noqa: E402

from audiollm.audio import load_audio  # noqa: E402
from audiollm.data.formats.fsdd import DEFAULT_TEST_SPEAKER, fsdd_rows  # noqa: E402
from audiollm.errors import AudioLLMError  # noqa: E402
from audiollm.metrics import audio as judges  # noqa: E402
from audiollm.metrics.asr_judge import WhisperJudge, wer  # noqa: E402
from audiollm.metrics.reference_codecs import (  # noqa: E402
    GL_ITERATIONS,
    griffin_lim_roundtrip,
    mel_settings,
    opus_decode,
    opus_encode,
)
from audiollm.models.codecs import Codec, bitrate, load_codec  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MUSIC_EXTENSIONS = (".ogg", ".flac", ".wav", ".mp3")
UTTERANCE_SECONDS = 4.0
SPEECH_OPUS_KBPS, MUSIC_OPUS_KBPS = (6,), (6, 12)

Coder = Callable[[np.ndarray], np.ndarray]  # one clip at the codec's rate -> its reconstruction


def speech_clips(root: Path, n: int, sr: int) -> tuple[list[np.ndarray], list[str]]:
    """``n`` recordings of the held-out speaker, evenly spread over the digits, at ``sr``."""
    rows = fsdd_rows(root, split="test")
    rows = [rows[i] for i in np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int)]
    return [load_audio(r["audio"], sr).numpy() for r in rows], [r["answer"] for r in rows]


def music_excerpts(folder: Path, sr: int, seconds: float, per_recording: int) -> list[np.ndarray]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MUSIC_EXTENSIONS)
    if not files:
        raise AudioLLMError(f"{folder}: no music recordings ({', '.join(MUSIC_EXTENSIONS)})")
    out, size = [], int(seconds * sr)
    for p in files:
        wav = load_audio(p, sr, duration=None if per_recording <= 0 else seconds * per_recording).numpy()
        starts = range(0, max(1, len(wav) - size + 1), size) if len(wav) >= size else [0]
        out += [wav[s:s + size] for s in list(starts)[:per_recording or None]]
    return out


def codec_coder(codec: Codec, k: int, device: torch.device) -> Coder:
    @torch.no_grad()
    def code(x: np.ndarray) -> np.ndarray:
        wav = torch.from_numpy(x)[None].to(device)
        codes, frames = codec.encode(wav, torch.tensor([x.size], device=device), num_codebooks=k)
        out, lengths = codec.decode(codes, frames)
        y = out[0, : int(lengths[0])].float().cpu().numpy()
        return np.pad(y[: x.size], (0, max(0, x.size - y.size)))
    return code


def opus_coder(sr: int, kbps: float, sizes: list[int]) -> Coder:
    def code(x: np.ndarray) -> np.ndarray:
        data = opus_encode(x, sr, kbps)
        sizes.append(len(data))
        return opus_decode(data, sr, length=x.size)
    return code


def reconstruct(coder: Coder, clips: list[np.ndarray], repeats: int) -> tuple[list[np.ndarray], float]:
    """Every clip through ``coder`` (one warm-up clip first), ``repeats`` times; the outputs and
    the median wall seconds of a pass (a shared machine's hiccups hit single passes)."""
    coder(clips[0])
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        outs = [coder(x) for x in clips]
        times.append(time.perf_counter() - t0)
    return outs, statistics.median(times)


def utterances(clips: list[np.ndarray], sr: int) -> list[list[int]]:
    """Indices of consecutive clips grouped until each group holds ≥ UTTERANCE_SECONDS of audio."""
    groups, cur, total = [], [], 0
    for i, x in enumerate(clips):
        cur.append(i)
        total += x.size
        if total >= UTTERANCE_SECONDS * sr:
            groups.append(cur)
            cur, total = [], 0
    if cur and groups:
        groups[-1].extend(cur)  # a short tail joins the last utterance
    elif cur:
        groups.append(cur)
    return groups


def mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return round(statistics.fmean(finite), 4) if finite else None


def speech_scores(refs: list[np.ndarray], outs: list[np.ndarray] | None, sr: int) -> dict:
    """STOI / PESQ / DNSMOS on the concatenated utterances (``outs`` None: the original, DNSMOS only)."""
    stoi, pesq, mos = [], [], []
    for g in utterances(refs, sr):
        ref = np.concatenate([refs[i] for i in g])
        est = ref if outs is None else np.concatenate([outs[i] for i in g])
        mos.append(judges.dnsmos(est, sr)["ovrl"])
        if outs is not None:
            stoi.append(judges.stoi(ref, est, sr))
            try:
                pesq.append(judges.pesq_wb(ref, est, sr))
            except AudioLLMError:
                pesq.append(None)  # PESQ found no utterance (e.g. silent output)
    out = {"dnsmos_ovrl": mean(mos)}
    if outs is not None:
        out = {"stoi": mean(stoi), "pesq_wb": mean(pesq), **out}
    return out


def score(refs: list[np.ndarray], outs: list[np.ndarray], sr: int, seconds: float, speech: bool) -> dict:
    audio_seconds = sum(x.size for x in refs) / sr
    out = {"mel_distance": mean([judges.log_mel_distance(r, o, sr) for r, o in zip(refs, outs)]),
           "si_sdr_db": mean([judges.si_sdr(r, o) for r, o in zip(refs, outs)])}
    if speech:
        out.update(speech_scores(refs, outs, sr))
    out["rtf"] = round(seconds / audio_seconds, 4)
    return out


def run_domain(name: str, clips: list[np.ndarray], sr: int, codec: Codec, ks: list[int], device: torch.device,
               opus_kbps: tuple[int, ...], args: argparse.Namespace, judge: WhisperJudge | None,
               words: list[str] | None) -> dict:
    speech = words is not None
    result: dict = {"clips": len(clips), "audio_seconds": round(sum(x.size for x in clips) / sr, 2)}
    original: dict = {"bitrate_bps": sr * 16, "note": "16-bit PCM at the codec's rate"}
    if speech:
        original.update(speech_scores(clips, None, sr))
    if judge is not None:
        original["wer"] = round(wer(words, judge.transcribe(clips, sr)), 4)
    result["original"] = original
    systems: dict[str, tuple[Coder, dict]] = {}
    for k in ks:
        systems[f"codec_k{k}"] = codec_coder(codec, k, device), {"bitrate_bps": round(bitrate(codec, k), 1)}
    opus_sizes: dict[str, list[int]] = {}
    for kbps in opus_kbps:
        sizes = opus_sizes.setdefault(f"opus_{kbps}kbps", [])
        systems[f"opus_{kbps}kbps"] = opus_coder(sr, kbps, sizes), {"bitrate_bps": kbps * 1000}
    n_fft, hop = mel_settings(sr)
    systems["mel_griffin_lim"] = (lambda x: griffin_lim_roundtrip(x, sr, n_iter=args.gl_iterations)), {
        "bitrate_bps": None, "raw_bps": round(judges.MEL_BINS * sr / hop * 32), "iterations": args.gl_iterations,
        "note": "unquantised float32 mel"}
    for label, (coder, info) in systems.items():
        outs, seconds = reconstruct(coder, clips, args.repeats)
        row = {**info, **score(clips, outs, sr, seconds, speech)}
        if label in opus_sizes:
            timed = opus_sizes[label][-len(clips):]  # one pass's streams (the warm-up's came first)
            row["measured_bps"] = round(8 * sum(timed) / result["audio_seconds"])
        if judge is not None:
            row["wer"] = round(wer(words, judge.transcribe(outs, sr)), 4)
        result[label] = row
        log(f"{name} {label}: {row}")
    return result


def versus_opus(speech: dict, ks: list[int]) -> dict:
    base = speech.get("opus_6kbps", {})
    out = {}
    for k in ks:
        row, cmp = speech[f"codec_k{k}"], {"bitrate_ratio": round(speech[f"codec_k{k}"]["bitrate_bps"] / 6000, 3)}
        for key in ("pesq_wb", "stoi", "dnsmos_ovrl", "wer"):
            if row.get(key) is not None and base.get(key) is not None:
                cmp[f"{key}_delta"] = round(row[key] - base[key], 4)
        if row.get("mel_distance") and base.get("mel_distance"):
            cmp["mel_distance_ratio"] = round(row["mel_distance"] / base["mel_distance"], 4)
        out[f"codec_k{k}"] = cmp
    return out


def main(argv: list[str] | None = None, codec: Codec | None = None) -> dict:
    """Run the benchmark, print its JSON and return it. ``codec``: a Codec object to use instead
    of loading ``--codec`` (tests pass a stand-in)."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--codec", help="codec to load: an audiollm codec directory or a transformers EnCodec/DAC/Mimi "
                                   "checkpoint (audiollm.models.codecs.load_codec)")
    p.add_argument("--num-codebooks", type=int, nargs="+", default=None,
                   help="codebook counts K to measure (default: all the codec has)")
    p.add_argument("--fsdd", type=Path, default=SHARED / "fsdd", help="FSDD root (default ../shared/data/fsdd)")
    p.add_argument("--music", type=Path, default=SHARED / "music", help="folder of music recordings")
    p.add_argument("--clips", type=int, default=50, help="FSDD clips of the held-out speaker (default 50)")
    p.add_argument("--music-seconds", type=float, default=10.0, help="length of a music excerpt (default 10 s)")
    p.add_argument("--excerpts", type=int, default=3, help="at most this many excerpts per recording (default 3; 0 = all)")
    p.add_argument("--whisper", type=Path, default=Path("models/whisper-tiny.en"),
                   help="Whisper checkpoint for WER (default models/whisper-tiny.en; skipped when absent)")
    p.add_argument("--gl-iterations", type=int, default=GL_ITERATIONS,
                   help=f"Griffin-Lim iterations (default {GL_ITERATIONS}; --quick uses 8)")
    p.add_argument("--no-speech", action="store_true", help="skip the FSDD speech part")
    p.add_argument("--no-music", action="store_true", help="skip the music part")
    args = p.parse_args(argv)
    device = setup(args)
    if codec is None:
        if not args.codec:
            p.error("--codec is required")
        codec = load_codec(args.codec, device=device)
    sr = int(codec.sample_rate)
    ks = args.num_codebooks or [codec.num_codebooks]
    for k in ks:
        if not 1 <= k <= codec.num_codebooks:
            raise AudioLLMError(f"--num-codebooks {k}: this codec has 1 to {codec.num_codebooks}")
    if args.quick:
        args.clips, args.excerpts, args.music_seconds = min(args.clips, 3), 1, min(args.music_seconds, 3.0)
        args.gl_iterations = min(args.gl_iterations, 8)
    result: dict = {"benchmark": "codec", "codec": args.codec or type(codec).__name__, "sample_rate": sr,
                    "frame_rate": codec.frame_rate, "num_codebooks": ks, "codebook_size": codec.codebook_size,
                    "machine": machine(device)}
    judge = None
    if args.whisper.is_dir():
        judge = WhisperJudge(args.whisper, device=device)
        result["whisper"] = str(args.whisper)
    else:
        result["whisper"] = {"skipped": f"{args.whisper}: no such Whisper checkpoint (WER not measured)"}
    if not args.no_speech:
        clips, words = speech_clips(args.fsdd, args.clips, sr)
        log(f"speech: {len(clips)} FSDD clips of {DEFAULT_TEST_SPEAKER} at {sr} Hz")
        result["speech"] = run_domain("speech", clips, sr, codec, ks, device, SPEECH_OPUS_KBPS, args, judge, words)
        result["codec_vs_opus_6kbps"] = versus_opus(result["speech"], ks)
    if not args.no_music:
        clips = music_excerpts(args.music, sr, args.music_seconds, args.excerpts)
        log(f"music: {len(clips)} excerpts at {sr} Hz")
        result["music"] = run_domain("music", clips, sr, codec, ks, device, MUSIC_OPUS_KBPS, args, None, None)
    emit(result)
    return result


if __name__ == "__main__":
    run(main)
