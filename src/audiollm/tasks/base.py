"""The Task interface and the task registry.

A task turns a manifest row into the (question, answer) pair the model trains on and the
targets of the model's auxiliary heads, names the pipeline of a loaded model that answers it
(``pipeline``), turns that pipeline's result into a prediction, and scores predictions with
:mod:`audiollm.metrics`. It never calls a model. One small class per task;
``@register_task("name")`` puts one instance in :data:`TASKS`, and ``row["task"]`` picks it.
A config's ``data.tasks.NAME`` section is the task's `options_class`.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from audiollm.errors import AudioLLMError, ConfigError, ManifestError

Row = Mapping[str, Any]


def row_label(row: Row, index: int | None = None) -> str:
    """How error messages name a row: its id, else its manifest line, else its position,
    else its audio path."""
    if row.get("id") not in (None, ""):
        return f"id={row['id']}"
    if row.get("_line") is not None:  # set by data.manifest.read_manifest
        return f"line {row['_line']}"
    if index is not None:
        return f"row {index}"
    return f"audio={row['audio']}" if row.get("audio") else "row"


@dataclass
class TaskOptions:
    """A task's section of a training config (``data.tasks.NAME``)."""

    weight: float | None = None  # share of training draws, relative to the other tasks' weights;
    #   None: when no task sets one, draws follow row counts (a task left unset gets 1.0 otherwise)

    def __post_init__(self) -> None:
        w = self.weight
        if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0):
            raise ConfigError(f"a task's weight must be a number ≥ 0, got {w!r}")


class Task(ABC):
    """Base class: subclasses set ``questions`` (and ``required_keys``) and implement ``score``."""

    name: str = ""
    #: Question paraphrases sampled at training time when a row has no ``question``.
    questions: tuple[str, ...] = ()
    #: Keys every manifest row of this task must have.
    required_keys: tuple[str, ...] = ("audio", "answer")
    #: True when the answer is the clip's content in temporal order (a transcript): such
    #: answers also supervise the audio encoder through the CTC head when the model has one
    #: (``model.heads: {ctc: …}``; `head_targets` says on which tokens), and evaluation decodes
    #: them jointly with it.
    aligned_answer: bool = False
    #: True when answers are MIDI event tokens rather than text: the tokenizer then needs a
    #: MIDI vocabulary (``TextTokenizer.with_midi``) and the answer is not BPE training text.
    answers_are_events: bool = False
    #: False for a text-only task (text_to_midi): its rows have no ``audio`` and the model sees
    #: zero audio tokens.
    takes_audio: bool = True
    #: True when the answer is audio: the codes of the row's ``audio`` (codec tokens, read from
    #: ``data.codes_cache``) that the model's codec heads write (`tasks.audio_answer`).
    answers_audio: bool = False
    #: Audio window (seconds) the task is trained and run on; long clips are cut into windows
    #: of this length. None: the whole clip (training crops it to ``data.max_audio_seconds``).
    window_seconds: float | None = None
    #: The pipeline of a loaded model that answers this task's rows in evaluation:
    #: ``ask`` (text answers; rows of every such task share batches), ``transcribe`` (audio →
    #: notes, window by window) or ``compose`` (a text → notes). See `prediction`.
    pipeline: str = "ask"
    #: The options class of this task's section in a training config.
    options_class: type[TaskOptions] = TaskOptions

    def validate(self, row: Row, index: int | None = None) -> None:
        """Raise ManifestError naming the row and the first missing or empty required key."""
        for key in self.required_keys:
            value = row.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise ManifestError(
                    f"{self.name} {row_label(row, index)} lacks required key {key!r} "
                    f"(needs: {', '.join(self.required_keys)})"
                )

    def question(self, row: Row, rng: random.Random) -> str:
        """The row's own question if it has one, else a paraphrase drawn with ``rng``."""
        q = row.get("question")
        if isinstance(q, str) and q.strip():
            return q.strip()
        return rng.choice(self.questions)

    def variant(self, row: Row, rng: random.Random, tokenizer: Any) -> Row:
        """A new training example made from ``row`` whose question and answer still agree
        (``data.variants``): tasks whose labels can be re-derived after a change override it.
        Default: the row itself."""
        return row

    def answer(self, row: Row) -> str:
        """The training target text: the row's ``answer``."""
        value = row.get("answer")
        if value is None or not str(value).strip():
            raise ManifestError(f"{self.name} {row_label(row)} has no 'answer'")
        return str(value).strip()

    def training_texts(self, row: Row) -> list[str]:
        """The row's texts the BPE tokenizer learns from (its answer; none for event answers)."""
        return [] if self.answers_are_events else [row["answer"]]

    def references(self, row: Row) -> list[str]:
        """All acceptable answers: the ``answers`` list if the row has one, plus ``answer``."""
        refs = [str(a).strip() for a in row.get("answers") or [] if str(a).strip()]
        if row.get("answer") is not None and str(row["answer"]).strip():
            main = str(row["answer"]).strip()
            if main not in refs:
                refs.insert(0, main)
        if not refs:
            raise ManifestError(f"{self.name} {row_label(row)} has no 'answer' or 'answers'")
        return refs

    def postprocess(self, text: str) -> str:
        """Decoded model text → prediction: surrounding whitespace removed."""
        return text.strip()

    def prepare_rows(self, rows: list[Row], source: str = "") -> list[Row]:
        """Rows of this task ready for use; a task whose targets live in other files drops
        the unusable ones here (with a warning naming each file). Default: all rows."""
        return list(rows)

    def target_ids(self, row: Row, tokenizer: Any, start: float, duration: float) -> list[int]:
        """Token ids of the answer for the audio ``[start, start + duration)`` seconds of the
        row's clip. Text answers describe the whole clip, so the window is ignored here."""
        return tokenizer.encode(self.answer(row))

    def head_targets(self, row: Row, answer_ids: Sequence[int], tokenizer: Any, start: float,
                     duration: float) -> dict[str, Any]:
        """Targets for the model's auxiliary heads (`audiollm.models.heads`), by head name, for
        the window ``[start, start + duration)`` whose answer is ``answer_ids`` (no eos). A
        transcript (``aligned_answer``) trains the CTC head on its answer; other tasks give none."""
        return {"ctc": list(answer_ids)} if self.aligned_answer else {}

    def prediction(self, result: Any) -> str:
        """The pipeline's result for one row (its decoded text, for ``ask``) → the prediction
        `score` reads."""
        return self.postprocess(result)

    @abstractmethod
    def score(self, predictions: Sequence[str], rows: Sequence[Row]) -> dict[str, float]:
        """Task metrics over paired predictions and rows; always includes ``n``."""

    def _check_pairs(self, predictions: Sequence[str], rows: Sequence[Row]) -> None:
        if len(predictions) != len(rows):
            raise AudioLLMError(
                f"{self.name}: {len(predictions)} predictions for {len(rows)} rows"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


TASKS: dict[str, Task] = {}


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: instantiate the task, set its ``name`` and add it to :data:`TASKS`."""

    def deco(cls: type[Task]) -> type[Task]:
        if name in TASKS:
            raise ValueError(f"task {name!r} registered twice")
        cls.name = name
        TASKS[name] = cls()
        return cls

    return deco


def get_task(name: str) -> Task:
    """The registered task called ``name``; AudioLLMError listing the valid names otherwise."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise AudioLLMError(
            f"unknown task {name!r}: valid tasks are {', '.join(sorted(TASKS))}"
        ) from None
