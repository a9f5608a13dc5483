"""Component registries: one visible dict per kind, filled by a decorator on the module class.

    MODELS["audiollm"]                  -> Entry(AudioLLMConfig, AudioLLM)
    AUDIO_ENCODERS["conv_transformer"]  -> Entry(AudioEncoderConfig, AudioEncoder)
    PROJECTORS["mlp"]                   -> Entry(ProjectorConfig, Projector)
    LANGUAGE_MODELS["llama"]            -> Entry(DecoderConfig, Decoder)

A new component (e.g. a pretrained "whisper" encoder or an "hf_causal_lm") is one new file
that decorates its class and is imported from ``models/__init__.py``; `AudioLLM` only ever
looks names up here. Every config class provides ``tiny()``: the test-size config.

Constructor protocol the composite relies on:
  audio encoder:  cls(config); forward(features (B, n_mels, F), frame_lengths (B,))
                  -> (hidden (B, F', output_dim), lengths (B,)); attribute ``output_dim``.
  projector:      cls(config, in_dim, out_dim); forward(x (B, F', in_dim), lengths)
                  -> (B, A, out_dim), lengths (B,).
  audio tower:    cls(config); forward(features, frame_lengths, ...) -> (B, output_dim).
  text tower:     cls(config); forward(input_ids, lengths) -> (B, output_dim); classmethods
                  make_tokenizer(config, texts, ...) and load_tokenizer(model_dir).
  language model: cls(config); ``d_model``, ``max_seq_len``, ``embed_tokens(ids)``,
                  forward(inputs_embeds=, attention_mask=, position_ids=, cache=, logits_to_keep=),
                  ``new_cache(batch, max_len, dtype, device)`` like `lm.Decoder`; decoding is
                  `audiollm.decoding.loop` for every LM.
  model:          a whole model type (`AudioLLM`, `MuLaN`); `models.hub` saves and loads it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, TypeVar

from audiollm.errors import ConfigError


class Entry(NamedTuple):
    config_cls: type  # dataclass with every field commented and a ``tiny()`` classmethod
    module_cls: type  # the nn.Module built from it


AUDIO_ENCODERS: dict[str, Entry] = {}
PROJECTORS: dict[str, Entry] = {}
LANGUAGE_MODELS: dict[str, Entry] = {}
AUDIO_TOWERS: dict[str, Entry] = {}  # MuLaN: audio → pooled vector (models/mulan.py)
TEXT_TOWERS: dict[str, Entry] = {}  # MuLaN: token ids → pooled vector
MODELS: dict[str, Entry] = {}  # whole models by type: "audiollm", "mulan" (a model directory's model_type)

REGISTRIES: dict[str, dict[str, Entry]] = {
    "audio_encoder": AUDIO_ENCODERS,
    "projector": PROJECTORS,
    "lm": LANGUAGE_MODELS,
    "audio_tower": AUDIO_TOWERS,
    "text_tower": TEXT_TOWERS,
    "model": MODELS,
}

T = TypeVar("T", bound=type)


def _register(registry: dict[str, Entry], kind: str, name: str, config_cls: type) -> Callable[[T], T]:
    def decorator(module_cls: T) -> T:
        if name in registry and registry[name].module_cls is not module_cls:
            raise ValueError(f"{kind} {name!r} is already registered to {registry[name].module_cls.__name__}")
        if not callable(getattr(config_cls, "tiny", None)):
            raise TypeError(f"{config_cls.__name__} must define a tiny() classmethod (the test-size config)")
        registry[name] = Entry(config_cls, module_cls)
        return module_cls

    return decorator


def register_audio_encoder(name: str, config_cls: type) -> Callable[[T], T]:
    """Class decorator: ``@register_audio_encoder("conv_transformer", AudioEncoderConfig)``."""
    return _register(AUDIO_ENCODERS, "audio_encoder", name, config_cls)


def register_projector(name: str, config_cls: type) -> Callable[[T], T]:
    """Class decorator: ``@register_projector("mlp", ProjectorConfig)``."""
    return _register(PROJECTORS, "projector", name, config_cls)


def register_language_model(name: str, config_cls: type) -> Callable[[T], T]:
    """Class decorator: ``@register_language_model("llama", DecoderConfig)``."""
    return _register(LANGUAGE_MODELS, "lm", name, config_cls)


def register_audio_tower(name: str, config_cls: type) -> Callable[[T], T]:
    """Class decorator: ``@register_audio_tower("ast", ASTConfig)``."""
    return _register(AUDIO_TOWERS, "audio_tower", name, config_cls)


def register_text_tower(name: str, config_cls: type) -> Callable[[T], T]:
    """Class decorator: ``@register_text_tower("transformer", TextTransformerConfig)``."""
    return _register(TEXT_TOWERS, "text_tower", name, config_cls)


def register_model(name: str, config_cls: type) -> Callable[[T], T]:
    """Class decorator: ``@register_model("audiollm", AudioLLMConfig)`` — a model type, what
    ``model.type`` in a config and ``model_type`` in a model directory's config.json name."""
    return _register(MODELS, "model", name, config_cls)


def get_entry(kind: str, name: str) -> Entry:
    """The registered (config class, module class) for ``name``; ConfigError lists the choices."""
    if kind not in REGISTRIES:
        raise ConfigError(f"unknown component kind {kind!r}; allowed: {', '.join(REGISTRIES)}")
    registry = REGISTRIES[kind]
    if name not in registry:
        raise ConfigError(f"unknown {kind} {name!r}; allowed: {', '.join(sorted(registry))}")
    return registry[name]


def tiny_config(kind: str, name: str):
    """The tiny (hidden 16–64, 2 layers) config of a registered component, used by tests."""
    return get_entry(kind, name).config_cls.tiny()
