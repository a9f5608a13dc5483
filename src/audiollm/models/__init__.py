"""Model components and the composite `AudioLLM`.

Importing this package registers every built-in component (see `registry`):
audio encoder "conv_transformer", projector "mlp", language model "llama".
"""

from .registry import (
    AUDIO_ENCODERS,
    LANGUAGE_MODELS,
    PROJECTORS,
    REGISTRIES,
    Entry,
    get_entry,
    register_audio_encoder,
    register_language_model,
    register_projector,
    tiny_config,
)
from .frontend import LogMel, LogMelConfig, mel_filterbank
from .lm import Decoder, DecoderConfig, KVCache, RMSNorm, TransformerBlock
from .hf_llama import decoder_to_hf_llama, hf_llama_to_decoder
from .audio_encoder import AudioEncoder, AudioEncoderConfig
from .projector import Projector, ProjectorConfig
from .audiollm import AudioLLM, AudioLLMConfig, AudioLLMOutput, merge_audio_text

__all__ = [
    "AUDIO_ENCODERS",
    "LANGUAGE_MODELS",
    "PROJECTORS",
    "REGISTRIES",
    "Entry",
    "get_entry",
    "register_audio_encoder",
    "register_language_model",
    "register_projector",
    "tiny_config",
    "LogMel",
    "LogMelConfig",
    "mel_filterbank",
    "Decoder",
    "DecoderConfig",
    "KVCache",
    "RMSNorm",
    "TransformerBlock",
    "decoder_to_hf_llama",
    "hf_llama_to_decoder",
    "AudioEncoder",
    "AudioEncoderConfig",
    "Projector",
    "ProjectorConfig",
    "AudioLLM",
    "AudioLLMConfig",
    "AudioLLMOutput",
    "merge_audio_text",
]
