"""Tiny random transformers checkpoints, built from config objects (no download).

Each builder writes a real ``save_pretrained`` checkpoint directory (config.json +
model.safetensors, plus a tokenizer for the LM or a feature extractor) with hidden sizes of
8–64 and 1–2 layers. The codecs (EnCodec, DAC, Mimi) have 3–4 codebooks of 32 entries, filled
from the encoder's own latents so that random weights still give varied codes.
The pretrained components' ``tiny()`` configs point at these, so tests, smoke runs and the
registry-wide round trips exercise the same loading code a real checkpoint goes through.
Built once per machine under the temp folder (deterministic: seed 0), reused afterwards.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import torch

from audiollm.files import atomic_dir

ROOT = Path(tempfile.gettempdir()) / "audiollm-tiny-checkpoints"
VERSION = "v3"  # bump when a builder changes, so stale folders are not reused

# Text the tiny LM's byte-level BPE tokenizer is learned from (covers the test corpora).
_TOKENIZER_TEXT = [
    "Describe this audio.", "What is playing?", "Which instrument family is playing?",
    "Transcribe the speech.", "Is it high or low?", "It is high.", "It is low.",
    "a tone saying one", "a tone saying two", "low high one two three four five six seven eight nine zero",
    "A piano plays a slow melody in a major key with strings.", "The speaker says a digit.",
]


def _hf():
    import transformers

    return transformers


def whisper(directory: Path, d_model: int = 32, layers: int = 2, heads: int = 2, ffn: int = 64,
            window_seconds: int = 1) -> None:
    """A random Whisper checkpoint (encoder + a 1-layer decoder); the defaults are the tiny
    test model with 1 s windows, whisper-tiny's encoder is (384, 4, 6, 1536, 30)."""
    T = _hf()
    # Special token ids must lie below vocab_size; 50 encoder positions per second of window.
    config = T.WhisperConfig(
        vocab_size=64, num_mel_bins=80, d_model=d_model, encoder_layers=layers, encoder_attention_heads=heads,
        decoder_layers=1, decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=64,
        max_source_positions=50 * window_seconds, max_target_positions=32, pad_token_id=60, bos_token_id=61,
        eos_token_id=62, decoder_start_token_id=63, suppress_tokens=[], begin_suppress_tokens=[],
    )
    T.WhisperModel(config).save_pretrained(directory)
    T.WhisperFeatureExtractor(feature_size=80, chunk_length=window_seconds).save_pretrained(directory)


def _wav2vec_config(cls_name: str):
    T = _hf()
    return getattr(T, cls_name)(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_stride=(5, 8, 8), conv_kernel=(10, 8, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, feat_extract_norm="layer", vocab_size=32,
    )


def hubert(directory: Path) -> None:
    _hf().HubertModel(_wav2vec_config("HubertConfig")).save_pretrained(directory)


def wav2vec2(directory: Path) -> None:
    _hf().Wav2Vec2Model(_wav2vec_config("Wav2Vec2Config")).save_pretrained(directory)


def mert(directory: Path) -> None:
    """MERT's architecture is HuBERT's; a HuBERT stand-in with MERT's 24 kHz feature extractor."""
    T = _hf()
    T.HubertModel(_wav2vec_config("HubertConfig")).save_pretrained(directory)
    T.Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True, return_attention_mask=True).save_pretrained(directory)


def ast(directory: Path) -> None:
    T = _hf()
    config = T.ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_mel_bins=16, max_length=100, patch_size=16, frequency_stride=10, time_stride=10,
    )
    T.ASTModel(config).save_pretrained(directory)
    T.ASTFeatureExtractor(num_mel_bins=16, max_length=100).save_pretrained(directory)


def clap(directory: Path) -> None:
    T = _hf()
    # The audio hidden size must equal patch_embeds_hidden_size * 2 ** (len(depths) - 1).
    audio = dict(
        spec_size=64, window_size=4, num_mel_bins=16, patch_size=4, patch_stride=4,
        patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2], hidden_size=32,
        enable_fusion=False, projection_dim=16,
    )
    text = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=32, max_position_embeddings=40, projection_dim=16)
    config = T.ClapConfig(text_config=text, audio_config=audio, projection_dim=16)
    T.ClapModel(config).save_pretrained(directory)
    T.ClapFeatureExtractor(feature_size=16, sampling_rate=16000, hop_length=160, fft_window_size=400,
                           max_length_s=2, frequency_max=8000, truncation="rand_trunc").save_pretrained(directory)


def qwen2_lm(directory: Path) -> None:
    """A tiny Qwen2 causal LM with its own byte-level BPE tokenizer (vocab rounded up to 64s)."""
    T = _hf()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_TOKENIZER_TEXT, trainer=trainer)
    fast = T.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    vocab = -(-len(fast) // 64) * 64  # padded embedding rows, as real checkpoints have
    config = T.Qwen2Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
    )
    T.Qwen2ForCausalLM(config).save_pretrained(directory)
    fast.save_pretrained(directory)


# -- codecs --------------------------------------------------------------------------------------


def _probe_audio(sample_rate: int, channels: int) -> torch.Tensor:
    """Two 1 s clips (B, C, T): noise over a rising chirp, what the codebooks are drawn from."""
    t = torch.arange(sample_rate) / sample_rate
    chirp = 0.3 * torch.sin(2 * torch.pi * (200 + 1500 * t) * t)
    return (chirp + 0.1 * torch.randn(2, channels, sample_rate)).float()


@torch.no_grad()
def _codebooks_from_latents(latents: torch.Tensor, codebooks: list[torch.Tensor]) -> None:
    """Fill residual codebooks (each (size, dim), in place) with latent frames (N, dim), each
    level from what the levels before it leave, as k-means initialisation does from data. A
    random init's codebooks (zeros in EnCodec and Mimi) give the same code almost everywhere."""
    residual = latents
    for embed in codebooks:
        embed.copy_(residual[torch.randperm(len(residual))[: len(embed)]])
        residual = residual - embed[torch.cdist(residual, embed).argmin(-1)]


def _frames(latents: torch.Tensor) -> torch.Tensor:
    return latents.transpose(1, 2).reshape(-1, latents.shape[1])  # (B, D, F) -> (B·F, D)


def encodec(directory: Path, audio_channels: int = 1) -> None:
    """A random EnCodec shaped like MusicGen's facebook/encodec_32khz (non-causal convolutions,
    reflect padding, no conv shortcut) at 16 kHz: hop 64 (250 frames/s), codebooks of 32 (5
    bits), target bandwidths 1.25/2.5/5 kbps = 1/2/4 codebooks."""
    T = _hf()
    config = T.EncodecConfig(
        sampling_rate=16000, audio_channels=audio_channels, hidden_size=16, num_filters=8,
        upsampling_ratios=[4, 4, 4], num_lstm_layers=1, codebook_size=32, target_bandwidths=[1.25, 2.5, 5.0],
        use_causal_conv=False, pad_mode="reflect", use_conv_shortcut=False, norm_type="weight_norm",
    )
    model = T.EncodecModel(config).eval()
    with torch.no_grad():
        latents = model.encoder(_probe_audio(16000, audio_channels))
    _codebooks_from_latents(_frames(latents), [layer.codebook.embed for layer in model.quantizer.layers])
    model.save_pretrained(directory)
    T.EncodecFeatureExtractor(feature_size=audio_channels, sampling_rate=16000).save_pretrained(directory)


def dac(directory: Path) -> None:
    """A random DAC (descript/dac_16khz's layout, 4 strides instead of 4 larger ones): hop 64
    (250 frames/s at 16 kHz), 3 codebooks of 32. Its factorised cosine codebooks vary as drawn."""
    T = _hf()
    config = T.DacConfig(
        encoder_hidden_size=8, downsampling_ratios=[2, 4, 8], decoder_hidden_size=32, n_codebooks=3,
        codebook_size=32, codebook_dim=4, sampling_rate=16000,
    )
    T.DacModel(config).save_pretrained(directory)
    T.DacFeatureExtractor(sampling_rate=16000, hop_length=config.hop_length).save_pretrained(directory)


def mimi(directory: Path) -> None:
    """A random Mimi (kyutai/mimi's layout: causal SEANet, 1-layer causal transformers, stride-2
    downsampling, 1 semantic + 3 acoustic codebooks of 32, a projection into the quantizer) at
    16 kHz: SEANet hop 40 (odd stride 5, as kyutai/mimi has) × 2 = 80 samples, 200 frames/s."""
    T = _hf()
    config = T.MimiConfig(
        sampling_rate=16000, hidden_size=16, num_filters=4, upsampling_ratios=[5, 4, 2], codebook_size=32,
        codebook_dim=8, num_quantizers=4, num_semantic_quantizers=1, vector_quantization_hidden_dimension=8,
        upsample_groups=16, num_hidden_layers=1, intermediate_size=32, num_attention_heads=2,
        num_key_value_heads=2, sliding_window=32, max_position_embeddings=1024,
    )
    model = T.MimiModel(config).eval()
    with torch.no_grad():
        latents = model.encoder(_probe_audio(16000, 1)).latents  # (B, hidden, F)
    for rvq in (model.quantizer.semantic_residual_vector_quantizer, model.quantizer.acoustic_residual_vector_quantizer):
        projected = rvq.input_proj(latents) if rvq.input_proj is not None else latents
        books = []
        for layer in rvq.layers:
            layer.codebook.cluster_usage.fill_(1.0)  # the codebook is embed_sum / cluster_usage
            layer.codebook._embed = None
            books.append(layer.codebook.embed_sum)
        _codebooks_from_latents(_frames(projected), books)
        for layer in rvq.layers:
            layer.codebook._embed = None
    model.save_pretrained(directory)
    T.EncodecFeatureExtractor(feature_size=1, sampling_rate=16000).save_pretrained(directory)  # kyutai/mimi's


BUILDERS: dict[str, Callable[[Path], None]] = {
    "whisper": whisper, "hubert": hubert, "wav2vec2": wav2vec2, "mert": mert,
    "ast": ast, "clap": clap, "qwen2_lm": qwen2_lm, "encodec": encodec, "dac": dac, "mimi": mimi,
}


def tiny_checkpoint(name: str) -> str:
    """Path of the tiny checkpoint ``name`` (see BUILDERS), built on first use."""
    directory = ROOT / f"{name}-{VERSION}"
    if not (directory / "config.json").is_file():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            with atomic_dir(directory) as tmp:
                BUILDERS[name](tmp)
    return str(directory)
