"""Model directories: the one way every model type is saved and loaded.

A model directory (what training writes to ``RUN/final`` and every command reads)::

    config.json        {"model_type": "audiollm" | "mulan", "audiollm_version": …, **the model config}
    model.safetensors  the model's ``state_to_save()``: everything it learned; a frozen pretrained
                       part is not copied, it is found again through its checkpoint pointer
                       (`models.pretrained.hf_common.resolve_checkpoint`)
    tokenizer files    our BPE (tokenizer.json [+ midi_vocab.json]) or a pretrained one's own
    extra files        the model's ``save_files(dir)`` (a pretrained text tower's config)
    train_config.yaml  the experiment that trained it (when training wrote it)
    README.md          a model card written from the config: which parts are pretrained,
                       frozen, LoRA-tuned or trained here, and how the run went

`save_model` writes it into a temporary folder renamed into place, so a crash never leaves a
half-written directory and an old one is replaced only by a finished one. `load_model` reads
``model_type`` and builds that type from `registry.MODELS`; weights are checked strictly
(every key the model expects, no other, each with its shape), and every problem is a
one-line `ModelDirError` naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from audiollm import __version__
from audiollm.config import from_dict, to_dict
from audiollm.errors import ConfigError, ModelDirError
from audiollm.files import atomic_dir
from audiollm.models.registry import MODELS

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_META_KEYS = ("model_type", "audiollm_version")  # written to config.json beside the config


# ---------------------------------------------------------------------------------------------
# Devices and dtypes
# ---------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a GPU when there is one) → a torch device;
    ConfigError for a GPU that is not there or a name torch does not know."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {name!r} is not a device name; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: no CUDA GPU is available here; use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    elif dev.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported; use cpu, cuda, cuda:N or auto")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``float32``, ``bfloat16``, ``float16`` (or None: as saved) → a torch dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    return DTYPES[dtype]


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------


def model_type_of(model: torch.nn.Module) -> str:
    for name, entry in MODELS.items():
        if type(model) is entry.module_cls:
            return name
    raise ModelDirError(f"{type(model).__name__} is not a registered model type ({', '.join(MODELS)})")


def save_model(directory: str | os.PathLike, model: torch.nn.Module, tokenizer: Any = None, *,
               card: dict[str, Any] | None = None, train_config: Any = None) -> Path:
    """Write ``model`` (+ its tokenizer, the training config and a model card) as a model
    directory, atomically. ``card`` holds what the run knows: run, steps, train, valid_metrics,
    init_from."""
    with atomic_dir(directory) as tmp:
        config = {"model_type": model_type_of(model), "audiollm_version": __version__, **to_dict(model.config)}
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        state, seen = {}, set()
        for k, v in model.state_to_save().items():
            v = v.detach().to("cpu").contiguous()
            if v.data_ptr() in seen:  # a tied tensor (e.g. a tuned HF LM's head): store a copy
                v = v.clone()
            seen.add(v.data_ptr())
            state[k] = v
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        if hasattr(model, "save_files"):
            model.save_files(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if train_config is not None:
            (tmp / "train_config.yaml").write_text(yaml.safe_dump(to_dict(train_config), sort_keys=False))
        (tmp / "README.md").write_text(model_card(model, card or {}))
    return Path(directory)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def read_model_config(directory: str | os.PathLike) -> tuple[str, Any, dict[str, Any]]:
    """(model type, its config, the raw config.json) of a model directory."""
    d = Path(directory)
    if not d.exists():
        raise ModelDirError(f"{d}: no such model directory")
    if not d.is_dir():
        raise ModelDirError(f"{d}: is a file, expected a model directory")
    path = d / CONFIG_NAME
    if not path.is_file():
        raise ModelDirError(f"{path}: missing {CONFIG_NAME} (not a saved audiollm model directory?)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelDirError(f"{path}: cannot read {CONFIG_NAME}: {e}") from None
    if not isinstance(raw, dict):
        raise ModelDirError(f"{path}: expected a JSON object")
    model_type = raw.get("model_type", "audiollm")
    if model_type not in MODELS:
        raise ModelDirError(f"{d}: model_type {model_type!r} is not one audiollm knows ({', '.join(MODELS)})")
    entry = MODELS[model_type]
    values = {k: v for k, v in raw.items() if k not in _META_KEYS}
    upgrade = getattr(entry.module_cls, "upgrade_saved_config", None)
    if upgrade is not None:
        values = upgrade(values, path)
    try:
        return model_type, from_dict(entry.config_cls, values), raw
    except ConfigError as e:
        raise ModelDirError(f"{path}: {e}") from None


def load_model(directory: str | os.PathLike, *, device: str | torch.device = "cpu",
               dtype: str | torch.dtype | None = None, model_type: str | None = None) -> torch.nn.Module:
    """The model of a model directory, on ``device`` (in ``dtype``), in eval mode.
    ``model_type`` set: refuse a directory of another type."""
    d = Path(directory)
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    kind, config, _ = read_model_config(d)
    if model_type is not None and kind != model_type:
        raise ModelDirError(f"{d}: has model type {kind!r}, not {model_type!r}")
    state = read_weights(d)
    weights = d / WEIGHTS_NAME
    cls = MODELS[kind].module_cls
    model = cls.for_loading(config, d) if hasattr(cls, "for_loading") else cls(config)
    upgrade = getattr(cls, "upgrade_saved_state", None)
    expected = model.state_to_save()
    if upgrade is not None:
        state = upgrade(state, set(expected))
    check_state(state, expected, weights)
    model.load_state_dict(state, strict=False)  # exactly state_to_save's keys, checked above
    model = model.to(dev)
    if dt is not None:
        model = model.to(dt)
    return model.eval()


def read_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a model directory's weights file (on the CPU), as saved."""
    weights = Path(directory) / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelDirError(f"{weights}: missing {WEIGHTS_NAME}")
    try:
        return load_file(str(weights), device="cpu")
    except Exception as e:  # safetensors raises its own error types for corrupt headers/data
        raise ModelDirError(f"{weights}: cannot read {WEIGHTS_NAME}: {str(e)[:160]}") from None


def check_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: Path) -> None:
    """ModelDirError unless ``state`` has exactly ``expected``'s keys, each with its shape."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {', '.join(unexpected[:3])}")
        raise ModelDirError(f"{where}: weights do not match {CONFIG_NAME}: {'; '.join(parts)}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ModelDirError(f"{where}: {key} has shape {tuple(value.shape)}, {CONFIG_NAME} implies "
                                f"{tuple(expected[key].shape)}")


def load_tokenizer(directory: str | os.PathLike, model: torch.nn.Module) -> Any:
    """The tokenizer saved beside ``model``; its size must match the model's vocabulary."""
    d = Path(directory)
    tokenizer = type(model).load_tokenizer(model.config, d)
    lm_config = getattr(model.config, "lm_config", None)
    if lm_config is not None and lm_config.vocab_size != tokenizer.vocab_size:
        raise ModelDirError(f"{d}: tokenizer has {tokenizer.vocab_size} tokens but the model's vocabulary is "
                            f"{lm_config.vocab_size}")
    return tokenizer


def load(directory: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None,
         model_type: str | None = None) -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer) of a model directory (see `load_model`)."""
    model = load_model(directory, device=device, dtype=dtype, model_type=model_type)
    return model, load_tokenizer(directory, model)


# ---------------------------------------------------------------------------------------------
# The model card
# ---------------------------------------------------------------------------------------------


def describe_parts(model: torch.nn.Module, init_from: str = "", init_parts: Sequence[str] = ()
                   ) -> list[tuple[str, str, int, str]]:
    """(part, what, parameters, origin) for each top-level part with parameters. A part names
    its origin through ``pretrained_source`` (its checkpoint) and ``adapter_summary`` (LoRA);
    ``init_parts`` are the parts whose weights a run copied from the model at ``init_from``."""
    rows = []
    for name, part in model.named_children():
        modules = part.items() if isinstance(part, torch.nn.ModuleDict) else [(None, part)]
        for sub, module in modules:
            params = list(module.parameters())
            if not params:
                continue
            n = sum(p.numel() for p in params)
            trained = sum(p.numel() for p in params if p.requires_grad)
            source = getattr(module, "pretrained_source", "")
            adapter = getattr(module, "adapter_summary", "")
            if source:
                origin = f"pretrained ({source})"
            elif name in init_parts:
                origin = f"initialised from {init_from}"
            else:
                origin = "from scratch"
            if adapter:
                origin += f", {adapter} trained here"
            elif trained == 0:
                origin += ", frozen"
            elif trained < n:
                origin += f", frozen except {trained:,} parameters trained here"
            else:
                origin += ", fine-tuned here" if source else ", trained here"
            label = f"{name}.{sub}" if sub else name
            rows.append((label, type(module).__name__, n, origin))
    return rows


def model_card(model: torch.nn.Module, card: dict[str, Any]) -> str:
    """A short card written from the model's config and the run's facts; only true statements."""
    n_params = sum(p.numel() for p in model.parameters())
    n_trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines = [f"# {model.CARD_TITLE}", "", model.card_summary(), "",
             f"Parameters: {n_params:,} ({n_trained:,} trained here).", "",
             "| part | module | parameters | origin |", "|---|---|---|---|"]
    lines += [f"| {p} | {w} | {n:,} | {o} |" for p, w, n, o in describe_parts(model, card.get("init_from", ""), card.get("init_parts", ()))]
    lines += ["", "## Training", "", f"- run: `{card.get('run', 'unknown')}`, steps: {card.get('steps', 'unknown')}",
              f"- training manifest: `{card.get('train', 'unknown')}`"]
    if card.get("init_from"):
        parts = ", ".join(card.get("init_parts") or ()) or "no parts"
        lines.append(f"- started from the weights of `{card['init_from']}` ({parts})")
    metrics = card.get("valid_metrics") or card.get("metrics")
    if metrics:
        lines += ["", "## Validation metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items()) if isinstance(v, (int, float))]
    if card.get("best"):
        lines += ["", f"Best checkpoint record: `{json.dumps(card['best'])}`"]
    lines += ["", "## Use", "", "```python", "import audiollm", "", 'model = audiollm.load("THIS_DIR")',
              *model.CARD_USE, "```", "", "## Limits", "",
              "The parts trained here learned only from the training data above: answers about audio unlike it",
              "are guesses. Pretrained parts bring what their checkpoints learned, nothing more.", ""]
    return "\n".join(lines)
