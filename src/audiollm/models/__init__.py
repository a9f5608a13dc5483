"""Model components and the composite `AudioLLM`.

Importing this package registers every built-in component (see `registry`):
audio encoders "conv_transformer" (from scratch) and the pretrained "whisper", "hubert",
"wav2vec2", "mert", "ast", "clap" (transformers); projector "mlp"; language models "llama"
(from scratch) and "hf_causal_lm" (any transformers causal LM, optional LoRA via peft).
"""

from audiollm.models.registry import (
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
from audiollm.models.frontend import LogMel, LogMelConfig, mel_filterbank
from audiollm.models.lm import Decoder, DecoderConfig, KVCache, RMSNorm, TransformerBlock
from audiollm.models.pretrained.hf_llama import decoder_to_hf_llama, hf_llama_to_decoder
from audiollm.models.audio_encoder import AudioEncoder, AudioEncoderConfig
from audiollm.models.projector import Projector, ProjectorConfig
from audiollm.models.pretrained import (
    hf_audio,  # registers whisper, hubert, wav2vec2, mert, ast, clap (transformers loaded lazily)
)
from audiollm.models.pretrained import (
    hf_lm,  # registers hf_causal_lm (transformers/peft loaded lazily)
)
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig, AudioLLMOutput, merge_audio_text

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
