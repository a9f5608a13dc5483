"""Loading pretrained transformers checkpoints, and what a model directory keeps of them.

A pretrained component (an HF audio encoder or causal LM) names its checkpoint in its
config (``model: <local directory or hub id>``). Its weights are loaded from there every
time the component is built; a saved audiollm model directory stores only the tensors
that training changed (``trainable_state_keys``), plus the pointer, so a frozen 7B LM does
not make a 7B model directory.

transformers (and peft, for LoRA) are optional dependencies imported here lazily.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
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


CHECKPOINTS_ENV = "AUDIOLLM_CHECKPOINTS"
DEFAULT_CHECKPOINTS = Path("~/.cache/audiollm/checkpoints")


def checkpoints_folder() -> Path:
    """Where pretrained checkpoints are looked up by name: ``$AUDIOLLM_CHECKPOINTS``, else
    ``~/.cache/audiollm/checkpoints``."""
    return Path(os.environ.get(CHECKPOINTS_ENV) or DEFAULT_CHECKPOINTS).expanduser()


def local_or_hub(path: str) -> str:
    """A checkpoint pointer as it should be recorded: an existing local directory becomes its
    absolute path (so a saved model directory finds it from any working directory); anything
    else (a hub id, or a path not there yet) is kept as written."""
    if isinstance(path, str) and path and Path(path).expanduser().exists():
        return str(Path(path).expanduser().resolve())
    return path


def resolve_checkpoint(pointer: str, where: str) -> str:
    """Where a recorded checkpoint is now: the path itself when it exists, else a folder of the
    same name in the checkpoints folder (`checkpoints_folder`: a model directory copied to
    another machine finds its pretrained parts there), else — for a hub id — the hub id. A
    local path found nowhere is a one-line ConfigError saying where to put it."""
    local = Path(pointer).expanduser()
    if local.exists():
        return str(local)
    named = checkpoints_folder() / local.name
    if local.name and named.is_dir():
        return str(named)
    looks_local = pointer.startswith(("/", ".", "~")) or pointer.count("/") > 1 or os.sep != "/" and os.sep in pointer
    if looks_local:
        raise ConfigError(f"{where}.model={pointer}: no such checkpoint here; put it at {named} (the checkpoints "
                          f"folder, ${CHECKPOINTS_ENV}) or set {where}.model to where it is")
    return pointer


def load_pretrained(loader: Any, path: str, *, where: str, trust_remote_code: bool = False, **kwargs) -> Any:
    """``loader.from_pretrained(path)`` with user errors as one line naming ``where.model``.

    A local checkpoint whose config.json carries ``auto_map`` brings its own Python code
    (MERT does): it is only run with ``trust_remote_code=True``, which the config must say.
    """
    if not path:
        raise ConfigError(f"{where}.model is required: a local checkpoint directory or a hub id")
    path = resolve_checkpoint(path, where)
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
        with hub_errors_only():
            return loader.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not local.exists():  # tried as a hub id
            first = f"no such folder here or in {checkpoints_folder()}; as a hub id: {first}"
        raise ConfigError(f"{where}.model={path}: cannot load it ({first})") from None


@contextlib.contextmanager
def hub_errors_only():
    """Silence huggingface_hub's retry warnings (one line per attempt, on stderr) while a
    checkpoint loads: where the hub cannot be reached, the one-line error says so."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


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


class PretrainedPart:
    """Mixin of a component built from a transformers checkpoint named by ``config.model``:
    the model card names that checkpoint (`pretrained_source`), and a model directory stores
    only the tensors training can change (`trainable_state_keys`)."""

    @property
    def pretrained_source(self) -> str:
        return self.config.model

    def trainable_state_keys(self) -> set[str]:
        return trainable_state_keys(self)
