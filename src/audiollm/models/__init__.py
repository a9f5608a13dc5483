"""Models: the components, the two model types, auxiliary heads, and saving/loading.

Importing this package registers every built-in component (see `registry`): audio encoders
"conv_transformer" (from scratch) and the pretrained "whisper", "hubert", "wav2vec2", "mert",
"ast", "clap" (transformers, loaded lazily); projector "mlp"; language models "llama" (from
scratch) and "hf_causal_lm" (any transformers causal LM, optional LoRA via peft); MuLaN's
audio tower "ast" and text towers "transformer" and "pretrained"; the heads "ctc" and
"note_activity"; the model types "audiollm" (`AudioLLM`), "mulan" (`MuLaN`) and "codec"
(`AudioCodec`), which `hub` saves and loads; and the transformers codecs "encodec", "dac" and
"mimi" (`codecs.CODECS`, opened by `codecs.load_codec`).
"""

from audiollm.models.audio_encoder import AudioEncoder, AudioEncoderConfig
from audiollm.models.audiollm import (
    AudioLLM,
    AudioLLMConfig,
    AudioLLMOutput,
    merge_audio_text,
)
from audiollm.models.codec import AudioCodec, CodecConfig
from audiollm.models.frontend import LogMel, LogMelConfig, mel_filterbank
from audiollm.models.heads import HEADS, register_head
from audiollm.models.lm import (
    Decoder,
    DecoderConfig,
    KVCache,
    RMSNorm,
    TransformerBlock,
)
from audiollm.models.mulan import MuLaN, MuLaNConfig
from audiollm.models.pretrained import hf_audio, hf_codec, hf_lm  # noqa: F401  (register the transformers components and codecs)
from audiollm.models.pretrained.hf_llama import decoder_to_hf_llama, hf_llama_to_decoder
from audiollm.models.projector import Projector, ProjectorConfig
from audiollm.models.registry import (
    AUDIO_ENCODERS,
    LANGUAGE_MODELS,
    MODELS,
    PROJECTORS,
    REGISTRIES,
    Entry,
    get_entry,
    register_audio_encoder,
    register_language_model,
    register_model,
    register_projector,
    tiny_config,
)

__all__ = [
    "AUDIO_ENCODERS", "LANGUAGE_MODELS", "MODELS", "PROJECTORS", "REGISTRIES", "HEADS", "Entry", "get_entry",
    "register_audio_encoder", "register_language_model", "register_model", "register_projector", "register_head",
    "tiny_config", "LogMel", "LogMelConfig", "mel_filterbank", "Decoder", "DecoderConfig", "KVCache", "RMSNorm",
    "TransformerBlock", "decoder_to_hf_llama", "hf_llama_to_decoder", "AudioEncoder", "AudioEncoderConfig",
    "Projector", "ProjectorConfig", "AudioLLM", "AudioLLMConfig", "AudioLLMOutput", "merge_audio_text", "MuLaN",
    "MuLaNConfig", "AudioCodec", "CodecConfig",
]
