"""``train.init_from: MODEL_DIR`` — start a run from a saved model's weights.

Multi-stage recipes (MU-LLaMA's pretrain → finetune, M2UGen's three stages) train a model,
then train it again on other data or with other parts frozen. A run with ``init_from`` builds
its model from its own config, then copies in the saved model's weights — all of them, or
only the top-level parts named in ``train.init_parts`` (``audio_encoder``, ``projector``,
``lm``, ``heads``, …) — with a fresh optimizer and schedule (``--resume`` is the other thing:
it continues one run, optimizer and step included). The saved model's tokenizer is reused,
so token ids mean what they meant in stage 1.

Parts the saved model lacks (a head added in stage 2) keep their fresh initialisation; a
saved model of another type, a named part it does not have, or a tensor of another shape is a
one-line `ConfigError` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from audiollm.errors import ConfigError, ModelDirError
from audiollm.models.hub import read_model_config, read_weights
from audiollm.models.registry import MODELS


def init_tokenizer(directory: str, model_type: str) -> Any:
    """The tokenizer of the model a run starts from (checked to be of the run's model type)."""
    kind, config = _saved(directory, model_type)
    return MODELS[kind].module_cls.load_tokenizer(config, Path(directory))


def init_weights(model: torch.nn.Module, directory: str, parts: list[str], model_type: str) -> list[str]:
    """Copy the saved model's weights (of ``parts``; all when empty) into ``model``; returns
    the parts copied."""
    _saved(directory, model_type)
    try:
        state = read_weights(directory)
    except ModelDirError as e:
        raise ConfigError(f"train.init_from: {e}") from None
    upgrade = getattr(type(model), "upgrade_saved_state", None)
    own = model.state_dict()
    if upgrade is not None:
        state = upgrade(state, set(own))
    available = sorted({key.split(".")[0] for key in state})
    for part in parts:
        if part not in available:
            raise ConfigError(f"train.init_parts: {directory} has no part {part!r}; it has {', '.join(available)}")
    chosen = {k: v for k, v in state.items() if not parts or k.split(".")[0] in parts}
    for key, value in chosen.items():
        if key not in own:
            raise ConfigError(f"train.init_from={directory}: {key} has no place in this run's model (part "
                              f"{key.split('.')[0]!r} differs); name the parts to take with train.init_parts")
        if own[key].shape != value.shape:
            raise ConfigError(f"train.init_from={directory}: {key} is {tuple(value.shape)} there but "
                              f"{tuple(own[key].shape)} in this run's model (part {key.split('.')[0]!r} differs)")
    model.load_state_dict(chosen, strict=False)
    return sorted({k.split(".")[0] for k in chosen})


def _saved(directory: str, model_type: str) -> tuple[str, Any]:
    try:
        kind, config, _ = read_model_config(directory)
    except ModelDirError as e:
        raise ConfigError(f"train.init_from: {e}") from None
    if kind != model_type:
        raise ConfigError(f"train.init_from={directory} has model type {kind!r}; this run trains model type {model_type!r}")
    return kind, config
