"""What every `audiollm` subcommand shares: device/dtype flags, warnings as one line each,
``KEY=VALUE`` options, and argparse types."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator

from audiollm.errors import AudioLLMError


def add_device_options(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype`` for a command that runs a model."""
    p.add_argument("--device", default="cpu", help="where the model runs: cpu (default), cuda, cuda:N, or auto")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="the model's weights and compute (default: as saved, float32)")


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Print each warning raised inside as one ``audiollm: warning: …`` line on stderr — also
    when the block then fails."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                print(f"audiollm: warning: {w.message}", file=sys.stderr)


def key_values(items: list[str], flag: str) -> dict[str, str]:
    """``["a=1", "b-c=x"]`` → ``{"a": "1", "b_c": "x"}``; a one-line error for anything else."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AudioLLMError(f"{flag} {item!r} must look like key=value")
        out[key.replace("-", "_")] = value
    return out


def unit_interval(text: str) -> float:
    """argparse type of a weight in [0, 1] (--ctc-weight)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value
