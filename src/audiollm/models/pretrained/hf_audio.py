"""Pretrained audio encoders through transformers: Whisper, HuBERT, wav2vec 2.0, MERT, AST, CLAP.

They take **waveforms** (``input_kind = "waveform"``): `AudioLLM` then skips its own
log-mel frontend and hands the 16 kHz samples straight to the encoder, which makes its
checkpoint's own input (Whisper's 30 s log-mel, raw normalised samples at 16 or 24 kHz,
AST's Kaldi filterbank, CLAP's 48 kHz mel) exactly as its feature extractor would.

    audio (B, S) 16 kHz + lengths (B,) → checkpoint input → transformers model
        → hidden states of all layers → one layer, or a learned softmax-weighted sum of all
        → (B, F', hidden) + frame lengths (B,)

Options shared by every kind (`HFEncoderConfig`): which hidden layer, or a learned
layer-weighted sum over all layers (MU-LLaMA does this with MERT), frozen or tuned, and
``trust_remote_code`` for checkpoints that bring their own code (MERT).

Variable length: wav2vec-style models get an attention mask where their feature extractor
asks for one (and zero padding otherwise, as they were trained); Whisper always sees 30 s
windows (its trained input), longer clips are cut into consecutive windows and each clip's
frames past its real length are masked downstream; AST and CLAP pad each clip to their fixed
input length with their own feature extractor, and AST's time patches past the clip's end
are masked. A frozen encoder runs under ``no_grad`` and stays in eval mode (no dropout).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from audiollm.audio import resample
from audiollm.errors import ConfigError
from audiollm.models.frontend import mel_filterbank
from audiollm.models.pretrained.hf_common import (
    PretrainedPart,
    check_width,
    import_transformers,
    load_pretrained,
    local_or_hub,
    resolve_checkpoint,
)
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint
from audiollm.models.registry import register_audio_encoder

SAMPLE_RATE = 16000  # what AudioLLM hands every encoder (the library-wide audio convention)


@dataclass
class HFEncoderConfig:
    model: str = ""  # local checkpoint directory or hub id (required)
    layer: int = -1  # hidden state to use: 0 = embeddings, k = after layer k, -1 = last
    layer_weighting: bool = False  # learned softmax-weighted sum over ALL hidden states (overrides layer)
    freeze: bool = True  # keep the pretrained weights fixed (layer weights and projector still train)
    trust_remote_code: bool = False  # run the checkpoint's own modelling code (MERT needs it)
    output_dim: int = 0  # expected hidden width; 0 = read it from the checkpoint (a mismatch is an error)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str):
            raise ConfigError(f"audio_encoder_config.model must be a path or hub id, got {self.model!r}")
        self.model = local_or_hub(self.model)
        for name in ("layer", "output_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"audio_encoder_config.{name} must be an integer, got {value!r}")
        if self.output_dim < 0:
            raise ConfigError(f"audio_encoder_config.output_dim must be >= 0 (0 = auto), got {self.output_dim}")
        for name in ("layer_weighting", "freeze", "trust_remote_code"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"audio_encoder_config.{name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def tiny(cls) -> "HFEncoderConfig":
        return cls(model=tiny_checkpoint(cls.tiny_checkpoint_name))

    tiny_checkpoint_name = ""  # key in tiny_checkpoints.BUILDERS (set by each kind)


class HFAudioEncoder(PretrainedPart, nn.Module):
    """Base of the transformers-backed encoders: layer choice, weighting, freezing, saving."""

    input_kind = "waveform"  # AudioLLM feeds raw 16 kHz samples, not its log-mel
    where = "audio_encoder_config"
    # Output frames advance uniformly with time over the whole clip, so a crop of cached
    # states is (up to the encoder's context) the encoding of the cropped audio. False for
    # encoders with a fixed-size input (AST truncates, CLAP repeats or pools).
    frames_follow_time = True

    def __init__(self, config: HFEncoderConfig):
        super().__init__()
        self.config = config
        self.model = self.load(config)  # the transformers module that produces hidden states
        self.model.requires_grad_(not config.freeze)
        hidden = self.hidden_size()
        check_width(self.where, config.output_dim, hidden, f"the checkpoint at {config.model} (hidden size)")
        self.output_dim = hidden
        n_states = self.num_hidden_states()
        if not -n_states <= config.layer < n_states:
            raise ConfigError(
                f"{self.where}.layer={config.layer} is out of range: the checkpoint has {n_states} hidden "
                f"states (0 = embeddings … {n_states - 1} = last, or -1)"
            )
        # Softmax weights over every hidden state, starting uniform (zeros).
        self.layer_weights = nn.Parameter(torch.zeros(n_states)) if config.layer_weighting else None
        if self.training:
            self.train()

    # -- per kind ---------------------------------------------------------------------------------

    def load(self, config: HFEncoderConfig) -> nn.Module:
        raise TypeError(f"{type(self).__name__} must implement load()")

    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def num_hidden_states(self) -> int:
        return int(self.model.config.num_hidden_layers) + 1

    def hidden_states(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """All hidden states, each (B, F', D), and each clip's frame count (B,)."""
        raise TypeError(f"{type(self).__name__} must implement hidden_states()")

    # -- shared -----------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> "HFAudioEncoder":
        super().train(mode)
        if self.config.freeze:
            self.model.eval()  # frozen weights: no dropout, no masking tricks of the checkpoint
        return self


    # What a feature cache stores (`audiollm features`): the hidden states the rest of the
    # forward needs — all of them under layer weighting, else the chosen layer — so training
    # from the cache runs exactly `from_states` of what the encoder would have produced.

    @property
    def cached_states_count(self) -> int:
        """K: hidden states per frame that `cacheable_states` returns (and `from_states` takes)."""
        return self.layer_weights.numel() if self.layer_weights is not None else 1

    def cacheable_states(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) 16 kHz samples → the states `from_states` combines, (B, F', K, D), + frames (B,)."""
        lengths = lengths.to(audio.device).long()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze):
            states, frame_lengths = self.hidden_states(audio.float(), lengths)
        if self.layer_weights is not None:
            if len(states) != self.layer_weights.numel():
                raise ConfigError(f"{self.where}: the checkpoint returned {len(states)} hidden states, "
                                  f"expected {self.layer_weights.numel()}")
            stacked = torch.stack(states, dim=2)  # (B, F', L, D)
        else:
            stacked = states[self.config.layer].unsqueeze(2)  # (B, F', 1, D)
        return stacked, frame_lengths.clamp(1, stacked.shape[1])

    def from_states(self, states: torch.Tensor, frame_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F', K, D) states (computed now or read from a feature cache) → (B, F', D) frames."""
        if states.dim() != 4 or states.shape[2] != self.cached_states_count or states.shape[3] != self.output_dim:
            raise ConfigError(
                f"{self.where}: got encoder states of shape {tuple(states.shape)}, expected (batch, frames, "
                f"{self.cached_states_count}, {self.output_dim}); was the feature cache made for another encoder setting?"
            )
        if self.layer_weights is not None:
            w = torch.softmax(self.layer_weights, dim=0)
            x = torch.einsum("l,btld->btd", w.to(states.dtype), states)  # (B, F', D)
        else:
            x = states[:, :, 0]
        T = x.shape[1]
        frame_lengths = frame_lengths.to(x.device).long().clamp(1, T)
        valid = torch.arange(T, device=x.device)[None, :] < frame_lengths[:, None]  # (B, F')
        return x * valid[..., None].to(x.dtype), frame_lengths

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_states(*self.cacheable_states(audio, lengths))


def _preprocessor(path: str) -> dict:
    """The checkpoint's feature-extractor settings (preprocessor_config.json), {} when absent."""
    p = Path(resolve_checkpoint(path, "audio_encoder_config")) / "preprocessor_config.json"
    if p.is_file():
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{p}: unreadable ({e})") from None
    return {}


def _resample(audio: torch.Tensor, lengths: torch.Tensor, rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """16 kHz batch → ``rate`` (julius, band-limited); lengths scale with it."""
    if rate == SAMPLE_RATE:
        return audio, lengths
    audio = audio * (torch.arange(audio.shape[-1], device=audio.device)[None, :] < lengths[:, None])
    out = resample(audio, SAMPLE_RATE, rate)
    return out, torch.div(lengths * rate + SAMPLE_RATE - 1, SAMPLE_RATE, rounding_mode="floor").clamp(max=out.shape[-1])


# ---------------------------------------------------------------------------------------------
# wav2vec 2.0 / HuBERT / MERT: raw samples
# ---------------------------------------------------------------------------------------------


class WaveformEncoder(HFAudioEncoder):
    """Raw-sample encoders: per-clip normalisation, optional attention mask, conv subsampling."""

    model_class = ""  # transformers class name; "" = AutoModel (a checkpoint's own code allowed)

    def load(self, config: HFEncoderConfig) -> nn.Module:
        T = import_transformers(f"audio encoder {type(self).__name__}")
        loader = getattr(T, self.model_class) if self.model_class else T.AutoModel
        model = load_pretrained(loader, config.model, where=self.where, trust_remote_code=config.trust_remote_code)
        pre = _preprocessor(config.model)
        self.sample_rate = int(pre.get("sampling_rate", SAMPLE_RATE))
        self.do_normalize = bool(pre.get("do_normalize", True))
        # Models with a group-norm feature encoder were trained on zero-padded batches without
        # a mask (their feature extractor returns none); layer-norm ones take a mask.
        default_mask = getattr(model.config, "feat_extract_norm", "layer") == "layer"
        self.use_mask = bool(pre.get("return_attention_mask", default_mask))
        return model

    def hidden_states(self, audio, lengths):
        audio, lengths = _resample(audio, lengths, self.sample_rate)
        S = audio.shape[-1]
        valid = torch.arange(S, device=audio.device)[None, :] < lengths[:, None]  # (B, S)
        audio = audio * valid
        if self.do_normalize:  # zero mean, unit variance over each clip's real samples
            n = lengths.clamp(min=1)[:, None].to(audio.dtype)
            mean = audio.sum(-1, keepdim=True) / n
            var = ((audio - mean).square() * valid).sum(-1, keepdim=True) / n
            audio = (audio - mean) / torch.sqrt(var + 1e-7) * valid
        out = self.model(
            input_values=audio,
            attention_mask=valid.long() if self.use_mask else None,
            output_hidden_states=True,
        )
        frame_lengths = self.model._get_feat_extract_output_lengths(lengths).long()
        return out.hidden_states, frame_lengths


@dataclass
class HubertEncoderConfig(HFEncoderConfig):
    tiny_checkpoint_name = "hubert"


@dataclass
class Wav2Vec2EncoderConfig(HFEncoderConfig):
    tiny_checkpoint_name = "wav2vec2"


@dataclass
class MERTEncoderConfig(HFEncoderConfig):
    trust_remote_code: bool = True  # MERT checkpoints ship their own modelling code (MERTModel)
    tiny_checkpoint_name = "mert"


@register_audio_encoder("hubert", HubertEncoderConfig)
class HubertEncoder(WaveformEncoder):
    model_class = "HubertModel"


@register_audio_encoder("wav2vec2", Wav2Vec2EncoderConfig)
class Wav2Vec2Encoder(WaveformEncoder):
    model_class = "Wav2Vec2Model"


@register_audio_encoder("mert", MERTEncoderConfig)
class MERTEncoder(WaveformEncoder):
    """MERT (m-a-p/MERT-v1-95M/330M): HuBERT-style music encoder at 24 kHz, own code via AutoModel."""

    model_class = ""


# ---------------------------------------------------------------------------------------------
# Whisper: its own 30 s log-mel windows
# ---------------------------------------------------------------------------------------------


@dataclass
class WhisperEncoderConfig(HFEncoderConfig):
    tiny_checkpoint_name = "whisper"


@register_audio_encoder("whisper", WhisperEncoderConfig)
class WhisperEncoder(HFAudioEncoder):
    """Whisper's encoder, fed exactly what WhisperFeatureExtractor makes (80 or 128 mels).

    Whisper only accepts full windows (30 s in released checkpoints; 2 × max_source_positions
    frames) and has no input mask, so every clip is zero-padded to a whole number of windows
    (long clips: several consecutive windows, encoded as a batch and concatenated) and each
    clip's output frames past ``ceil(samples / hop / 2)`` are masked downstream.
    """

    def load(self, config):
        T = import_transformers("audio encoder whisper")
        full = load_pretrained(T.WhisperModel, config.model, where=self.where)
        encoder = full.get_encoder()  # the decoder is not needed: drop it
        pre = _preprocessor(config.model)
        self.n_fft = int(pre.get("n_fft", 400))
        self.hop = int(pre.get("hop_length", 160))
        self.n_mels = int(full.config.num_mel_bins)
        self.window_frames = int(full.config.max_source_positions) * 2  # conv1 stride 1 × conv2 stride 2
        self.register_buffer("mel_fb", mel_filterbank(SAMPLE_RATE, self.n_fft, self.n_mels, 0.0, SAMPLE_RATE / 2),
                             persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        return encoder

    def hidden_size(self):
        return int(self.model.config.d_model)

    def num_hidden_states(self):
        return int(self.model.config.encoder_layers) + 1

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(N, window samples) → (N, n_mels, window frames): WhisperFeatureExtractor's features."""
        with torch.autocast(device_type=audio.device.type, enabled=False):
            spec = torch.stft(audio.float(), self.n_fft, self.hop, window=self.window.float(), center=True,
                              pad_mode="reflect", return_complex=True)  # (N, n_fft // 2 + 1, frames + 1)
            power = spec[..., :-1].abs().square()  # Whisper drops the last frame
            mel = torch.matmul(self.mel_fb.float().T, power).clamp(min=1e-10).log10()  # (N, n_mels, frames)
            mel = torch.maximum(mel, mel.amax(dim=(1, 2), keepdim=True) - 8.0)
            return (mel + 4.0) / 4.0

    def hidden_states(self, audio, lengths):
        B, S = audio.shape
        win = self.window_frames * self.hop  # samples per window (480000 = 30 s in real checkpoints)
        n_win = max(1, -(-int(lengths.max()) // win))
        x = torch.zeros(B, n_win * win, dtype=audio.dtype, device=audio.device)
        S = min(S, n_win * win)
        x[:, :S] = audio[:, :S] * (torch.arange(S, device=audio.device)[None, :] < lengths[:, None])
        feats = self.log_mel(x.reshape(B * n_win, win))  # (B·n_win, n_mels, window frames)
        out = self.model(input_features=feats.to(self.model.conv1.weight.dtype), output_hidden_states=True)
        states = tuple(h.reshape(B, -1, h.shape[-1]) for h in out.hidden_states)  # (B, n_win·P, D) each
        frames = torch.div(lengths + self.hop - 1, self.hop, rounding_mode="floor")  # mel frames touching the clip
        frame_lengths = (frames + 1) // 2  # conv2 (stride 2): ceil(frames / 2)
        return states, frame_lengths


# ---------------------------------------------------------------------------------------------
# AST and CLAP: their own feature extractors, fixed-length inputs
# ---------------------------------------------------------------------------------------------


@dataclass
class ASTEncoderConfig(HFEncoderConfig):
    tiny_checkpoint_name = "ast"


@register_audio_encoder("ast", ASTEncoderConfig)
class ASTEncoder(HFAudioEncoder):
    """Audio Spectrogram Transformer: Kaldi fbank (ASTFeatureExtractor) → patch tokens.

    The patch grid (frequency × time) is averaged over frequency into one token per time
    patch; time patches starting past a clip's end are masked. Clips longer than the
    checkpoint's max_length frames (10.24 s for AudioSet models) are truncated by its
    feature extractor, as in AST's own training.
    """

    frames_follow_time = False

    def load(self, config):
        T = import_transformers("audio encoder ast")
        model = load_pretrained(T.ASTModel, config.model, where=self.where)
        c = model.config
        pre = _preprocessor(config.model)
        pre.pop("feature_extractor_type", None)
        pre.pop("processor_class", None)
        pre.setdefault("num_mel_bins", c.num_mel_bins)
        pre.setdefault("max_length", c.max_length)
        self.extractor = T.ASTFeatureExtractor(**pre)
        self.f_dim, self.t_dim = model.embeddings.get_shape(c)
        self.time_stride = int(c.time_stride)
        return model

    def hidden_states(self, audio, lengths):
        wavs = [a[: int(n)].detach().cpu().numpy() for a, n in zip(audio, lengths)]
        feats = self.extractor(wavs, sampling_rate=SAMPLE_RATE, return_tensors="pt")["input_values"]
        out = self.model(input_values=feats.to(audio.device), output_hidden_states=True)
        B, D = audio.shape[0], self.output_dim

        def time_tokens(h: torch.Tensor) -> torch.Tensor:
            patches = h[:, -self.f_dim * self.t_dim :]  # drop the [CLS] and distillation tokens
            return patches.reshape(B, self.f_dim, self.t_dim, D).mean(dim=1)  # (B, t_dim, D)

        frames = torch.div(lengths, 160, rounding_mode="floor").clamp(min=1)  # 10 ms fbank frames
        frame_lengths = torch.div(frames - 1, self.time_stride, rounding_mode="floor") + 1
        return tuple(time_tokens(h) for h in out.hidden_states), frame_lengths


@dataclass
class ClapEncoderConfig(HFEncoderConfig):
    tiny_checkpoint_name = "clap"


@register_audio_encoder("clap", ClapEncoderConfig)
class ClapEncoder(HFAudioEncoder):
    """CLAP's audio tower (HTS-AT Swin transformer) from a ClapModel checkpoint.

    ClapFeatureExtractor makes its 48 kHz mel input (repeat-padded or truncated to its
    max_length_s); the tokens are the last stage's (frequency-group × time) grid, flattened.
    Swin stages differ in width, so only the last hidden state is available (layer=-1).
    """

    frames_follow_time = False

    def load(self, config):
        if config.layer_weighting or config.layer != -1:
            raise ConfigError(f"{self.where}: clap's stages differ in width; use layer=-1 without layer_weighting")
        T = import_transformers("audio encoder clap")
        full = load_pretrained(T.ClapModel, config.model, where=self.where)
        pre = _preprocessor(config.model)
        for key in ("feature_extractor_type", "processor_class", "nb_max_samples", "nb_frequency_bins",
                    "nb_max_frames", "mel_filters", "mel_filters_slaney", "chunk_length_s"):
            pre.pop(key, None)
        self.extractor = T.ClapFeatureExtractor(**pre)
        self.sample_rate = int(self.extractor.sampling_rate)
        return full.audio_model

    def num_hidden_states(self):
        return 1

    def hidden_states(self, audio, lengths):
        audio, lengths = _resample(audio, lengths, self.sample_rate)
        wavs = [a[: int(n)].detach().cpu().numpy() for a, n in zip(audio, lengths)]
        feats = self.extractor(wavs, sampling_rate=self.sample_rate, return_tensors="pt")
        out = self.model(input_features=feats["input_features"].to(audio.device),
                         is_longer=feats.get("is_longer", None))
        x = out.last_hidden_state.flatten(2).transpose(1, 2)  # (B, tokens, D)
        return (x,), torch.full_like(lengths, x.shape[1])
