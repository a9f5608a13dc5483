"""A note: pitch, start and end in seconds, velocity and General MIDI program."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    """One note in absolute seconds; ``program`` is the General MIDI program (0-based)."""

    pitch: int
    start: float
    end: float
    velocity: int = 80
    program: int = 0

    def sort_key(self) -> tuple[float, int, int, float]:
        return (self.start, self.program, self.pitch, self.end)

