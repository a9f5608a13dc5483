"""Model directories: build a model from a config section, save and load it with its tokenizer.

A model directory is what `save_model_dir` writes and every command that uses a model
reads: ``config.json`` + ``model.safetensors`` (the model's own `save_pretrained`), the
tokenizer files, ``train_config.yaml`` (the experiment that produced it) and a short model
card ``README.md``. It is written atomically.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from audiollm.files import atomic_dir
from audiollm.config import ExperimentConfig, save_config
from audiollm.errors import ConfigError, ModelDirError
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig
from audiollm.tokenizers.hf import load_tokenizer
from audiollm.tokenizers.text import TextTokenizer


def build_model(model_section: dict[str, Any], vocab_size: int) -> AudioLLM:
    """A fresh model from a config's ``model`` mapping; the vocabulary comes from the tokenizer."""
    section = copy.deepcopy(model_section)
    lm_config = section.setdefault("lm_config", {}) or {}
    if not isinstance(lm_config, dict):
        raise ConfigError(f"model.lm_config must be a mapping, got {lm_config!r}")
    section["lm_config"] = {**lm_config, "vocab_size": vocab_size}
    return AudioLLM(AudioLLMConfig.from_dict(section))


def save_model_dir(
    directory: str | os.PathLike,
    model: AudioLLM,
    tokenizer: TextTokenizer,
    *,
    card: dict[str, Any] | None = None,
    config: ExperimentConfig | None = None,
) -> Path:
    """Write model + tokenizer + card into ``directory`` (replacing it only once complete)."""
    return write_model_dir(directory, model, tokenizer, model_card(model, card or {}), config)


def write_model_dir(directory: str | os.PathLike, model: Any, tokenizer: Any, card_text: str,
                    config: ExperimentConfig | None = None) -> Path:
    """The one way any model kind writes its directory: the model's own ``save_pretrained``,
    the tokenizer, ``train_config.yaml`` and the card, in a temp dir renamed into place."""
    with atomic_dir(directory) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if config is not None:
            save_config(config, tmp / "train_config.yaml")
        (tmp / "README.md").write_text(card_text)
    return Path(directory)


def load_model_dir(directory: str | os.PathLike, map_location: str = "cpu") -> tuple[AudioLLM, TextTokenizer]:
    """Load a saved model directory for inference (eval mode). Errors name what is missing."""
    d = Path(directory)
    if not d.exists():
        raise ModelDirError(f"{d}: no such model directory")
    if not d.is_dir():
        raise ModelDirError(f"{d}: is a file, expected a model directory")
    tokenizer = load_tokenizer(d)
    model = AudioLLM.from_pretrained(d, map_location=map_location)
    if model.config.lm_config.vocab_size != tokenizer.vocab_size:
        raise ModelDirError(
            f"{d}: tokenizer has {tokenizer.vocab_size} tokens but the model's vocabulary is {model.config.lm_config.vocab_size}"
        )
    model.eval()
    return model, tokenizer


def card_training_lines(card: dict[str, Any], data_note: str = "") -> list[str]:
    """The model card's "Training" and "Validation metrics" sections, shared by every model kind."""
    lines = [
        "## Training",
        f"- run: `{card.get('run', 'unknown')}`, steps: {card.get('steps', 'unknown')}",
        f"- training manifest: `{card.get('train', 'unknown')}`{data_note}",
    ]
    metrics = card.get("valid_metrics") or card.get("metrics")
    if metrics:
        lines += ["", "## Validation metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items()) if isinstance(v, (int, float))]
    return lines


def model_card(model: AudioLLM, card: dict[str, Any]) -> str:
    """A short human-readable card: what the model is, what it saw, how it scored, its limits."""
    n_params = sum(p.numel() for p in model.parameters())
    lines = [
        "# audiollm model",
        "",
        "An audio-language model: log-mel frontend → audio encoder → projector → causal decoder.",
        f"Parameters: {n_params:,}.",
        "",
        *card_training_lines(card),
    ]
    if card.get("best"):
        lines += ["", f"Best checkpoint record: `{json.dumps(card['best'])}`"]
    lines += [
        "",
        "## Use",
        "",
        "```",
        "audiollm ask THIS_DIR clip.wav --question \"Which instrument family is playing?\"",
        "audiollm evaluate THIS_DIR --data test.jsonl",
        "```",
        "",
        "## Limits",
        "",
        "Trained from scratch on the data above only: it knows the labels, voices and vocabulary",
        "of that data and nothing else. Answers about audio unlike the training data are guesses.",
        "",
    ]
    return "\n".join(lines)
