"""Notes → audio and files: render a note list through FluidSynth with a General MIDI
soundfont (the embedded corpus's renderer), and write a piece's WAV and MIDI atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, save_audio
from .errors import AudioLLMError
from .tokenizers.midi import Note, write_midi

PEAK = 0.9  # rendered pieces are normalised to this peak (the soundfont's level varies by program)


def render_notes(notes: Sequence[Note], seconds: float, soundfont: str | os.PathLike | None = None) -> np.ndarray:
    """16 kHz mono float32 audio of ``notes`` for exactly ``seconds``: one MIDI channel per
    program (skipping channel 9, GM's drum kit), note times on FluidSynth's 64-sample block."""
    from .data.synth.music import BLOCK, Renderer, find_soundfont

    programs = sorted({n.program for n in notes})
    channels = [c for c in range(16) if c != 9]
    if len(programs) > len(channels):
        raise AudioLLMError(f"{len(programs)} programs in one piece; FluidSynth has {len(channels)} melodic channels")
    channel_of = dict(zip(programs, channels))
    n_samples = int(round(seconds * SAMPLE_RATE))
    events = []
    for n in notes:
        start = int(round(n.start * SAMPLE_RATE / BLOCK)) * BLOCK
        end = min(int(round(n.end * SAMPLE_RATE / BLOCK)) * BLOCK, n_samples)
        if end > start and start < n_samples:
            events.append((channel_of[n.program], start, end, int(n.pitch), max(1, min(127, int(n.velocity)))))
    renderer = Renderer(find_soundfont(soundfont))
    try:
        wav = renderer.render(events, {c: p for p, c in channel_of.items()}, n_samples)
    finally:
        renderer.close()
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    return wav * (PEAK / peak) if peak > 1e-6 else wav


def write_piece(notes: Sequence[Note], wav_path: str | os.PathLike, seconds: float,
                soundfont: str | os.PathLike | None = None, rendered: np.ndarray | None = None) -> tuple[Path, Path]:
    """Write ``wav_path`` (``rendered``, else rendered here) and the same name with ``.mid``,
    each via a temporary file renamed into place, so an interrupted run never leaves a
    half-written file."""
    wav_path = Path(wav_path)
    mid_path = wav_path.with_suffix(".mid")
    wav = render_notes(notes, seconds, soundfont) if rendered is None else rendered
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{mid_path.name}.", suffix=".tmp", dir=mid_path.parent)
    os.close(fd)
    try:
        write_midi(notes, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, mid_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    save_audio(wav_path, wav)
    return wav_path, mid_path
