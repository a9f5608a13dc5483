"""Loading pretrained transformers checkpoints, and what a model directory keeps of them.

A pretrained component (an HF audio encoder or causal LM) names its checkpoint in its
config (``model: <local directory or hub id>``). Its weights are loaded from there every
time the component is built; a saved audiollm model directory stores only the tensors
that training changed (``trainable_state_keys``), plus the pointer, so a frozen 7B LM does
not make a 7B model directory.

transformers (and peft, for LoRA) are optional dependencies imported here lazily.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch.nn as nn

from audiollm.errors import ConfigError


def import_transformers(where: str):
    """``transformers``, or a one-line ConfigError telling how to install it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(f"{where} needs transformers: pip install 'audiollm[hf]'") from None
    # transformers' own "Loading weights" bars would break our one-line errors and our tqdm output.
    transformers.utils.logging.disable_progress_bar()
    return transformers


def local_or_hub(path: str) -> str:
    """A checkpoint pointer as it should be recorded: an existing local directory becomes its
    absolute path (so a saved model directory finds it from any working directory); anything
    else (a hub id, or a path not there yet) is kept as written."""
    if isinstance(path, str) and path and Path(path).expanduser().exists():
        return str(Path(path).expanduser().resolve())
    return path


def load_pretrained(loader: Any, path: str, *, where: str, trust_remote_code: bool = False, **kwargs) -> Any:
    """``loader.from_pretrained(path)`` with user errors as one line naming ``where.model``.

    A local checkpoint whose config.json carries ``auto_map`` brings its own Python code
    (MERT does): it is only run with ``trust_remote_code=True``, which the config must say.
    """
    if not path:
        raise ConfigError(f"{where}.model is required: a local checkpoint directory or a hub id")
    local = Path(path).expanduser()
    if local.exists():
        config_file = local / "config.json"
        if not config_file.is_file():
            raise ConfigError(f"{where}.model={path}: no config.json there (not a transformers checkpoint)")
        try:
            raw = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{where}.model={path}: unreadable config.json ({e})") from None
        if raw.get("auto_map") and not trust_remote_code:
            raise ConfigError(
                f"{where}.model={path} ships its own modelling code (auto_map in config.json); "
                f"set {where}.trust_remote_code=true to run it (only for checkpoints you trust)"
            )
        path = str(local)
    if trust_remote_code:
        kwargs["trust_remote_code"] = True
    try:
        return loader.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{where}.model={path}: cannot load it ({first})") from None


def trainable_state_keys(module: nn.Module) -> set[str]:
    """State-dict keys of ``module`` that training can change: its trainable parameters.

    Everything else (frozen pretrained weights, buffers) is rebuilt from the checkpoint
    pointer when the model is loaded, so a model directory need not store it.
    """
    return {name for name, p in module.named_parameters() if p.requires_grad}


def check_width(where: str, expected: int, actual: int, what: str) -> None:
    """An explicit width in the config must match the checkpoint's; the error names both."""
    if expected and expected != actual:
        raise ConfigError(f"{where}.output_dim={expected} but {what} is {actual} wide; set it to {actual} or 0 (auto)")
