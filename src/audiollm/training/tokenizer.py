"""The run's tokenizer: a pretrained LM's own, or byte-level BPE trained on every text the
model will see (answers, questions, paraphrases), with MIDI event tokens appended when a task
answers in events.
"""

from __future__ import annotations

from audiollm.errors import ConfigError
from audiollm.models.registry import get_entry
from audiollm.tasks import get_task
from audiollm.tokenizers.hf import HFTokenizer
from audiollm.tokenizers.text import TextTokenizer
from audiollm.training.config import ExperimentConfig


def pretrained_tokenizer_source(cfg: ExperimentConfig) -> str:
    """``tokenizer.pretrained`` if set, else the LM checkpoint's own tokenizer for an LM that
    brings one (``tokenizer_source``), else "" (train our BPE on the corpus)."""
    if cfg.tokenizer.pretrained:
        return cfg.tokenizer.pretrained
    lm = getattr(cfg.model, "lm", None)
    if lm is None:  # not a model with a language model (MuLaN: its text tower brings its own)
        return ""
    source = getattr(get_entry("lm", lm).module_cls, "tokenizer_source", None)
    return source(cfg.model.lm_config) if source else ""


def make_tokenizer(rows: list[dict], cfg: ExperimentConfig):
    """The run's tokenizer: a pretrained one (see `pretrained_tokenizer_source`) or BPE trained here."""
    source = pretrained_tokenizer_source(cfg)
    if not source:
        return train_tokenizer(rows, cfg)
    event_tasks = sorted({r["task"] for r in rows if get_task(r["task"]).answers_are_events})
    if event_tasks:
        raise ConfigError(f"task {event_tasks[0]!r} answers in MIDI events, which need audiollm's own BPE "
                          f"tokenizer; it cannot be used with the pretrained tokenizer {source}")
    return HFTokenizer.from_pretrained(source)


def train_tokenizer(rows: list[dict], cfg: ExperimentConfig) -> TextTokenizer:
    """BPE on every text answer and question the model will see, including all paraphrases;
    MIDI event tokens are appended when a task answers in events."""
    tasks = [get_task(name) for name in sorted({r["task"] for r in rows})]
    event_tasks = {t.name for t in tasks if t.answers_are_events}
    texts = [text for r in rows for text in get_task(r["task"]).training_texts(r)]
    texts += [r["question"] for r in rows if r.get("question")]
    for task in tasks:
        texts.extend(task.questions)
    tokenizer = TextTokenizer.train(texts, vocab_size=cfg.tokenizer.vocab_size, min_frequency=cfg.tokenizer.min_frequency)
    return tokenizer.with_midi(cfg.tokenizer.midi.vocab()) if event_tasks else tokenizer

