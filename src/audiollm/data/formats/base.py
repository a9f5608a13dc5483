"""The dataset-format registry: `register_format`, `build_manifest`, `describe_formats`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audiollm.errors import AudioLLMError

FormatFn = Callable[..., list[dict[str, Any]]]
FORMATS: dict[str, FormatFn] = {}


def register_format(name: str) -> Callable[[FormatFn], FormatFn]:
    """Class-free registry decorator: ``@register_format("fsdd")`` adds the function to `FORMATS`."""

    def add(fn: FormatFn) -> FormatFn:
        if name in FORMATS:
            raise ValueError(f"dataset format {name!r} is registered twice")
        FORMATS[name] = fn
        return fn

    return add


def build_manifest(format_name: str, root: str | os.PathLike, **options: Any) -> list[dict[str, Any]]:
    """Rows for the dataset at ``root`` in layout ``format_name``.

    Unknown formats and unknown options raise `AudioLLMError` listing the valid ones, so a
    CLI typo gets a one-line answer instead of a TypeError.
    """
    if format_name not in FORMATS:
        raise AudioLLMError(f"unknown dataset format {format_name!r}; valid formats: {', '.join(sorted(FORMATS))}")
    fn = FORMATS[format_name]
    params = inspect.signature(fn).parameters
    accepted = [n for n, p in params.items() if p.kind == inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise AudioLLMError(f"format {format_name!r} has no option(s) {', '.join(unknown)}; "
                            f"valid options: {', '.join(accepted) or 'none'}")
    rows = fn(Path(root), **options)
    for row in rows:  # evaluation picks the dataset's published protocol from this field
        row.setdefault("dataset", format_name)
    return rows


def describe_formats() -> list[tuple[str, str, list[str]]]:
    """(name, first docstring line, option names) for every registered format, sorted —
    what ``audiollm data manifest --help`` lists."""
    out = []
    for name in sorted(FORMATS):
        fn = FORMATS[name]
        module = inspect.getmodule(fn)
        summary = ((module.__doc__ if module else None) or fn.__doc__ or "").strip().splitlines()
        options = [n for n, p in inspect.signature(fn).parameters.items() if p.kind == inspect.Parameter.KEYWORD_ONLY]
        out.append((name, summary[0] if summary else "", options))
    return out
