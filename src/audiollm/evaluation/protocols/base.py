"""The protocol interface and registry: `Protocol`, `register_protocol`, selection by dataset,
`run_protocols`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audiollm.errors import AudioLLMError

Row = Mapping[str, Any]

#: The dataset names (``audiollm data manifest --format``) recognised in ids and ``dataset``.
KNOWN_DATASETS = ("audiocaps", "clotho", "fsdd", "gtzan", "librispeech", "ljspeech", "maestro",
                  "magnatagatune", "musiccaps", "musicqa")


@dataclass
class ProtocolContext:
    """What a protocol may need beyond rows and predictions."""

    model: Any = None  # the loaded model (inference.api.AudioLanguageModel), for protocols that score with it
    questions: Sequence[str] = ()  # the question asked for each row (same order as rows)
    bertscore_model: str | None = None  # encoder folder for BERTScore (None: skipped, with a note)
    bertscore_layer: int | None = None  # its hidden layer (None: the last)
    tag_scores: str = "auto"  # mtt: "likelihood", "presence" or "auto"
    seed: int = 0  # seed of the shuffled-reference baseline
    batch_size: int = 16
    progress: bool = False


@dataclass
class ProtocolResult:
    """Metric groups (key → metric → value) and notes for the reader."""

    results: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Protocol(ABC):
    """One benchmark's scoring. Subclasses set ``task`` and ``datasets`` and implement ``score``."""

    name: str = ""
    #: The task whose rows the protocol scores.
    task: str = ""
    #: Datasets whose rows select this protocol under ``auto``.
    datasets: tuple[str, ...] = ()

    @abstractmethod
    def score(self, rows: Sequence[Row], predictions: Sequence[str], questions: Sequence[str],
              ctx: ProtocolContext) -> ProtocolResult:
        """Score this protocol's rows (never empty) with their predictions and questions."""


PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(name: str) -> Callable[[type[Protocol]], type[Protocol]]:
    """Class decorator: one instance of the protocol in :data:`PROTOCOLS` under ``name``."""

    def deco(cls: type[Protocol]) -> type[Protocol]:
        if name in PROTOCOLS:
            raise ValueError(f"protocol {name!r} registered twice")
        cls.name = name
        PROTOCOLS[name] = cls()
        return cls

    return deco


def dataset_of(row: Row) -> str | None:
    """The dataset a row comes from: its ``dataset`` field, else a known dataset name that
    prefixes its ``id`` (``"musicqa-eval-3-0"`` → ``"musicqa"``), else None."""
    ds = row.get("dataset")
    if isinstance(ds, str) and ds.strip():
        return ds.strip().lower()
    rid = str(row.get("id") or "")
    prefix = rid.split("-", 1)[0].lower()
    return prefix if prefix in KNOWN_DATASETS and "-" in rid else None


def parse_protocols(spec: str) -> list[str] | None:
    """``"auto"`` → None; ``"default"`` → []; ``"mullama,clotho"`` → the names (checked)."""
    names = [s.strip().lower() for s in str(spec).split(",") if s.strip()]
    if names in ([], ["auto"]):
        return None
    if names == ["default"]:
        return []
    unknown = [n for n in names if n not in PROTOCOLS]
    if unknown or "auto" in names or "default" in names:
        bad = ", ".join(unknown) or spec
        raise AudioLLMError(f"unknown protocol {bad!r}: choose auto, default, or one or more of "
                            f"{', '.join(sorted(PROTOCOLS))} (comma-separated)")
    return list(dict.fromkeys(names))


def select(rows: Sequence[Row], spec: str = "auto") -> dict[str, list[int]]:
    """Protocol name → indices of the rows it scores, for the selection ``spec`` (see the
    module docstring). A named protocol with no rows of its task is an error."""
    names = parse_protocols(spec)
    chosen: dict[str, list[int]] = {}
    if names is None:
        for name, proto in PROTOCOLS.items():
            idx = [i for i, r in enumerate(rows) if r.get("task") == proto.task and dataset_of(r) in proto.datasets]
            if idx:
                chosen[name] = idx
        return chosen
    for name in names:
        proto = PROTOCOLS[name]
        idx = [i for i, r in enumerate(rows) if r.get("task") == proto.task]
        if not idx:
            raise AudioLLMError(f"protocol {name} scores {proto.task!r} rows, and the data has none")
        chosen[name] = idx
    return chosen


def run_protocols(rows: Sequence[Row], predictions: Sequence[str], spec: str = "auto",
                  ctx: ProtocolContext | None = None) -> ProtocolResult:
    """Every selected protocol over its rows; results merged in protocol-name order."""
    if len(rows) != len(predictions):
        raise AudioLLMError(f"{len(predictions)} predictions for {len(rows)} rows")
    ctx = ctx or ProtocolContext()
    questions = list(ctx.questions) or [str(r.get("question") or "") for r in rows]
    merged = ProtocolResult()
    for name, idx in sorted(select(rows, spec).items()):
        res = PROTOCOLS[name].score([rows[i] for i in idx], [predictions[i] for i in idx],
                                    [questions[i] for i in idx], ctx)
        merged.results.update(res.results)
        merged.notes.extend(f"{name}: {n}" for n in res.notes)
    return merged
