"""Tasks whose answer is audio (codec tokens): text → speech, a caption → music, and more of a recording.

    {"task": "tts", "text": "The dog barked all night.", "audio": "audio/tts_000123.wav",
     "voice": "natural US male (Piper)", ...}
    {"task": "text_to_audio", "caption": "A jazz recording.", "audio": "clips/jazz.00012.wav", ...}
    {"task": "continuation", "audio": "clips/jazz.00012.wav"}

The question is built from the row (the sentence to say, with its voice when the row names one;
the caption), and the answer is the codes of the row's audio, read from the codes cache
(``data.codes_cache``, made by ``audiollm codec cache``). No audio goes in: the model sees
zero audio tokens. ``data.tasks.NAME.cond_dropout`` trains on the empty prompt with that
probability, the unconditional branch of classifier-free guidance.

Predictions are what a judge hears in the generated audio (Whisper tiny.en's transcript for
speech, `metrics.asr_judge`); `score` compares them with the text the model was asked to say.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from audiollm.errors import ConfigError, ManifestError
from audiollm.metrics.text import wer_cer
from audiollm.tasks.base import Row, Task, TaskOptions, register_task, row_label


@dataclass
class AudioAnswerOptions(TaskOptions):
    """An audio-answer task's section of a training config (``data.tasks.tts`` …)."""

    cond_dropout: float = 0.0  # probability of training on the empty prompt (classifier-free guidance)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ConfigError(f"a task's cond_dropout must be in [0, 1), got {self.cond_dropout}")


class AudioAnswerTask(Task):
    """Base class: the question comes from the row, the answer is the codes of ``row["audio"]``."""

    takes_audio = False
    answers_audio = True
    pipeline = "speak"
    options_class = AudioAnswerOptions
    text_key = ""  # the row's field the question is made from

    def validate(self, row: Row, index: int | None = None) -> None:
        super().validate(row, index)
        if not str(row.get(self.text_key, "")).strip(" \t\n.,;:!?'\"-"):
            raise ManifestError(f"{self.name} {row_label(row, index)}: {self.text_key!r} has no words")

    def answer(self, row: Row) -> str:
        return str(row[self.text_key]).strip()

    def references(self, row: Row) -> list[str]:
        return [self.answer(row)]

    def training_texts(self, row: Row) -> list[str]:
        return [self.question(row, random.Random(0))]


@register_task("tts")
class TextToSpeechTask(AudioAnswerTask):
    """Say the row's ``text``, in its ``voice`` when the row names one."""

    required_keys = ("audio", "text")
    text_key = "text"

    def question(self, row: Row, rng: random.Random) -> str:
        return speech_prompt(str(row["text"]), row.get("voice"))

    def score(self, predictions: Sequence[str], rows: Sequence[Row]) -> dict[str, float]:
        """``wer`` and ``cer`` of what the judge heard against the text asked for."""
        self._check_pairs(predictions, rows)
        if not rows:
            return {"n": 0}
        return {"n": len(rows), **wer_cer(predictions, [self.answer(r) for r in rows])}


@register_task("text_to_audio")
class TextToAudioTask(AudioAnswerTask):
    """Play what the row's ``caption`` describes: a crop of its audio of ``window_seconds``."""

    required_keys = ("audio", "caption")
    text_key = "caption"
    window_seconds = 4.0

    def question(self, row: Row, rng: random.Random) -> str:
        return str(row["caption"]).strip()

    def score(self, predictions: Sequence[str], rows: Sequence[Row]) -> dict[str, float]:
        """Share of outputs whose judged label (a tagger's instrument family, a genre classifier's
        genre) is the row's own ``family`` (or, for GTZAN rows, ``genre``)."""
        self._check_pairs(predictions, rows)
        if not rows:
            return {"n": 0}
        def label(r: Row) -> str:
            return str(r.get("family") or r.get("genre") or "").strip().lower()
        hits = [str(p).strip().lower() == label(r) for p, r in zip(predictions, rows)]
        return {"n": len(rows), "label_accuracy": sum(hits) / len(rows)}


@register_task("continuation")
class ContinuationTask(AudioAnswerTask):
    """More of the row's audio: trained on windows of its codes after a fixed question; at
    inference an audio prompt's codes come first and the model continues them."""

    required_keys = ("audio",)
    window_seconds = 4.0
    questions = ("Continue this recording.",)

    def validate(self, row: Row, index: int | None = None) -> None:
        Task.validate(self, row, index)

    def question(self, row: Row, rng: random.Random) -> str:
        return self.questions[0]

    def answer(self, row: Row) -> str:
        return str(row["audio"])

    def score(self, predictions: Sequence[str], rows: Sequence[Row]) -> dict[str, float]:
        """Share of continuations whose judged label matches the row's (as text_to_audio)."""
        return TextToAudioTask.score(self, predictions, rows)


def speech_prompt(text: str, voice: str | None = None) -> str:
    """The question a TTS model is trained and asked with."""
    text = " ".join(str(text).split())
    return f"Say in a {voice} voice: {text}" if voice else f"Say: {text}"
