"""Speech clips: template sentences spoken by espeak-ng in several English voices.

espeak-ng is a formant synthesiser: fast (~15 ms a sentence, including process start),
deterministic (same text + settings → same bytes) and installable from Debian, which is all
the embedded corpus needs. Its output (22.05 kHz) is trimmed of leading/trailing silence,
resampled to 16 kHz and peak-normalised. Labels: the exact text spoken, the voice, its
accent and gender (from the espeak variant: ``+f1``..``+f4`` are female voices, the others
male), the speaking rate (words per minute) and pitch (0-99).
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from audiollm.audio import SAMPLE_RATE, resample, save_audio
from audiollm.errors import AudioLLMError

# espeak-ng base voice → accent label.
ACCENTS: dict[str, str] = {
    "en-us": "American",
    "en-gb": "British",
    "en-gb-scotland": "Scottish",
    "en-029": "Caribbean",
    "en-gb-x-rp": "Received Pronunciation",
    "en-gb-x-gbclan": "Lancastrian",
    "en-us-nyc": "New York",
}
# espeak-ng voice variants (the "+name" suffix) → gender. "" is the base (male) voice.
VARIANTS: dict[str, str] = {
    "": "male", "m1": "male", "m3": "male", "m7": "male",
    "f1": "female", "f2": "female", "f3": "female", "f4": "female",
}
RATE_RANGE = (120, 200)      # words per minute
PITCH_RANGE = (30, 70)       # espeak pitch, 0-99
MAX_RATE = 320               # a sentence too long at its rate is retried faster, up to this
_TRIM_MARGIN = 0.05          # seconds of silence kept before and after the speech


@dataclass(frozen=True)
class SpeechSpec:
    """Everything chosen for one speech clip."""

    clip_id: str
    split: str
    audio: str          # path relative to the corpus folder
    text: str
    kind: str           # "number" | "time" | "everyday"
    voice: str          # espeak-ng voice, e.g. "en-gb-scotland+f3"
    rate: int
    pitch: int
    gain: float


def sample_voice(rng: random.Random) -> dict[str, Any]:
    """Random voice settings: accent, gender (half female), variant, rate, pitch, gain."""
    base = rng.choice(sorted(ACCENTS))
    gender = rng.choice(("female", "male"))
    variant = rng.choice([v for v, g in VARIANTS.items() if g == gender])
    return {
        "voice": base + (f"+{variant}" if variant else ""),
        "rate": rng.randint(*RATE_RANGE),
        "pitch": rng.randint(*PITCH_RANGE),
        "gain": round(rng.uniform(0.3, 0.9), 3),
    }


def voice_labels(voice: str) -> dict[str, str]:
    """{"accent": ..., "gender": ...} of an espeak voice string like "en-029+f2"."""
    base, _, variant = voice.partition("+")
    return {"accent": ACCENTS[base], "gender": VARIANTS[variant]}


def espeak_binary() -> str:
    """Path of espeak-ng (or espeak); a clear error when neither is installed."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        raise AudioLLMError("espeak-ng not found on PATH: install it (apt-get install espeak-ng) "
                            "or build the corpus with speech_clips=0")
    return exe


def _resample(wav: np.ndarray, sr: int) -> np.ndarray:
    with torch.no_grad():
        return resample(torch.from_numpy(wav), sr, SAMPLE_RATE).numpy()


def speak(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    """``text`` spoken by espeak-ng as 16 kHz mono float32, silence trimmed."""
    cmd = [espeak_binary(), "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioLLMError(f"espeak-ng failed for voice {voice!r}: {err[-1] if err else 'no audio produced'}")
    data, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if data.ndim > 1:
        data = data.mean(axis=1)
    wav = _resample(np.ascontiguousarray(data), sr)
    loud = np.flatnonzero(np.abs(wav) > 0.02 * float(np.abs(wav).max()))
    if len(loud) == 0:
        raise AudioLLMError(f"espeak-ng produced silence for {text!r} with voice {voice!r}")
    margin = int(_TRIM_MARGIN * SAMPLE_RATE)
    return wav[max(0, loud[0] - margin): loud[-1] + margin + 1]


def render_speech(spec: SpeechSpec, max_seconds: float, out_dir: Path) -> dict[str, Any] | None:
    """Speak ``spec.text``; if it runs over ``max_seconds`` speak it faster (the rate label
    follows). Writes the WAV and returns the labels, or None if it cannot fit."""
    rate = spec.rate
    while True:
        wav = speak(spec.text, spec.voice, rate, spec.pitch)
        if len(wav) <= max_seconds * SAMPLE_RATE:
            break
        rate += 30
        if rate > MAX_RATE:
            return None
    save_audio(out_dir / spec.audio, wav * (spec.gain / float(np.abs(wav).max())))
    return {
        "clip_id": spec.clip_id,
        "text": spec.text,
        "kind": spec.kind,
        "voice": spec.voice,
        **voice_labels(spec.voice),
        "rate": rate,
        "pitch": spec.pitch,
        "duration": round(len(wav) / SAMPLE_RATE, 4),
    }


def render_batch(specs: list[SpeechSpec], max_seconds: float, out_dir: Path) -> list[dict[str, Any]]:
    """Render several clips (one worker task); a clip that cannot fit is dropped."""
    out = []
    for spec in specs:
        labels = render_speech(spec, max_seconds, out_dir)
        if labels is not None:
            out.append(labels)
    return out
