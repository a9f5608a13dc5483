"""Notes → audio: FluidSynth with a General MIDI soundfont renders a note list (the embedded
corpus's renderer, also what `compose` plays its MIDI through), and a piece's WAV and MIDI
are written atomically.

Determinism: a FluidSynth voice keeps a little state after it is killed, so each `Renderer`
is a fresh synth, and note events are quantised to FluidSynth's 64-sample ``BLOCK`` so they
land exactly where the labels say. The soundfont is loaded once per process: an "anchor"
synth keeps it in FluidSynth's sample cache, so each fresh synth loads it in ~30 ms.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audiollm.audio import SAMPLE_RATE, save_audio
from audiollm.errors import AudioLLMError
from audiollm.files import atomic_file
from audiollm.music.midi_file import write_midi
from audiollm.music.notes import Note
from audiollm.music.quiet_import import quiet_import

PEAK = 0.9  # rendered pieces are normalised to this peak (the soundfont's level varies by program)


def render_notes(notes: Sequence[Note], seconds: float, soundfont: str | os.PathLike | None = None) -> np.ndarray:
    """16 kHz mono float32 audio of ``notes`` for exactly ``seconds``: one MIDI channel per
    program (skipping channel 9, GM's drum kit), note times on FluidSynth's 64-sample block."""
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
    with atomic_file(mid_path) as tmp:
        write_midi(notes, tmp)
    save_audio(wav_path, wav)
    return wav_path, mid_path


BLOCK = 64   # FluidSynth's internal block: events take effect on these boundaries


_ANCHORS: dict[str, Any] = {}


def find_soundfont(path: str | Path | None = None) -> Path:
    """The soundfont to use: ``path`` if given, else Debian's FluidR3_GM, else the
    TimGM6mb.sf2 that ships inside pretty_midi."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise AudioLLMError(f"soundfont {p} does not exist")
        return p
    debian = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
    if debian.is_file():
        return debian
    try:
        pretty_midi = quiet_import("pretty_midi")
    except ImportError:
        pretty_midi = None
    if pretty_midi is not None:
        bundled = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
        if bundled.is_file():
            return bundled
    raise AudioLLMError("no General MIDI soundfont found: install fluid-soundfont-gm "
                        "(/usr/share/sounds/sf2/FluidR3_GM.sf2) or pretty_midi")


def _fluidsynth():
    try:
        fluidsynth = quiet_import("fluidsynth")
    except (ImportError, OSError) as e:
        raise AudioLLMError(f"cannot load FluidSynth ({e}); install libfluidsynth and pyfluidsynth") from None
    return fluidsynth


class Renderer:
    """A fresh FluidSynth instance for one job: call `render` per clip, then `close`."""

    def __init__(self, soundfont: Path):
        fs = _fluidsynth()
        key = str(soundfont)
        if key not in _ANCHORS:
            # Kept alive for the whole process so the samples stay in FluidSynth's cache.
            anchor = fs.Synth(samplerate=float(SAMPLE_RATE), channels=16)
            if anchor.sfload(key) < 0:
                raise AudioLLMError(f"FluidSynth could not load soundfont {soundfont}")
            _ANCHORS[key] = anchor
        self.synth = fs.Synth(gain=0.5, samplerate=float(SAMPLE_RATE), channels=16,
                              **{"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.polyphony": 128})
        self.sfid = self.synth.sfload(key)
        self._write = fs._fl.fluid_synth_write_float
        self._write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self._rendered = 0

    def _pull(self, n: int) -> np.ndarray:
        """Render ``n`` samples as mono float32 (float output: no dither, no clipping)."""
        left = np.zeros(n, np.float32)
        right = np.zeros(n, np.float32)
        if n:
            self._write(self.synth.synth, n, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)
        self._rendered += n
        return 0.5 * (left + right)

    def render(self, notes: list[tuple[int, int, int, int, int]], program: int | dict[int, int],
               n_samples: int) -> np.ndarray:
        """Play ``notes`` = (channel, start_sample, end_sample, pitch, velocity), all on
        ``program`` (or on ``program[channel]``), for exactly ``n_samples``; sample positions
        must be multiples of BLOCK."""
        self._pull((-self._rendered) % BLOCK)   # start the clip on a block boundary
        channels = sorted({n[0] for n in notes})
        for ch in channels:
            self.synth.program_select(ch, self.sfid, 0, program[ch] if isinstance(program, dict) else program)
        events = []
        for ch, start, end, pitch, vel in notes:
            events.append((start, 1, ch, pitch, vel))
            if end < n_samples:
                events.append((end, 0, ch, pitch, 0))
        events.sort()                              # note-offs (0) before note-ons at one time
        chunks, pos = [], 0
        for t, kind, ch, pitch, vel in events:
            if t > pos:
                chunks.append(self._pull(t - pos))
                pos = t
            if kind:
                self.synth.noteon(ch, pitch, vel)
            else:
                self.synth.noteoff(ch, pitch)
        chunks.append(self._pull(n_samples - pos))
        for ch in channels:
            self.synth.all_sounds_off(ch)          # cut tails so nothing leaks into the next clip
        return np.concatenate(chunks)

    def close(self) -> None:
        self.synth.delete()

