"""The audio-language model: log-mel → audio encoder → projector → causal LM.

Each example becomes one CONTIGUOUS sequence ``[audio tokens (A_i)][text tokens (t_i)]``:
right-padded for training (`forward`), left-padded for generation (`generate`, so every
row's last real token sits in the last column). The merge is one vectorised gather from
``cat([audio, text])``; padding is masked as attention keys and is never a loss target.

Components are looked up by name in `registry` (AUDIO_ENCODERS / PROJECTORS /
LANGUAGE_MODELS); nothing here branches on a component's name.

Model directory (Hub-style): ``config.json`` (`AudioLLMConfig.to_dict`) and
``model.safetensors``; `save_pretrained` writes both atomically, `from_pretrained` raises
`ModelDirError` naming the missing/broken file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from audiollm import __version__
from audiollm.audio import SAMPLE_RATE
from audiollm.decoding.ctc_prefix import CTCPrefixScorer
from audiollm.decoding.loop import generate as decode
from audiollm.decoding.options import DecodingOptions
from audiollm.decoding.processors import LogitsProcessor
from audiollm.errors import ConfigError, ModelDirError
from audiollm.models.frontend import LogMel, LogMelConfig
from audiollm.models.lm import fuse_split_projections
from audiollm.models.registry import get_entry
from audiollm.models.token_loss import linear_cross_entropy_sum

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_META_KEYS = ("model_type", "audiollm_version")  # written to config.json, ignored when read back


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


def _config_from_dict(config_cls: type, values: dict, where: str):
    """Build ``config_cls(**values)``, naming ``where.key`` and the valid keys on a bad key."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(values).__name__}")
    allowed = [f.name for f in dataclasses.fields(config_cls)]
    for key in values:
        if key not in allowed:
            raise ConfigError(f"unknown key {where}.{key}; allowed: {', '.join(allowed)}")
    return config_cls(**values)


@dataclass
class AudioLLMConfig:
    frontend: LogMelConfig = field(default_factory=LogMelConfig)  # waveform → log-mel settings (unused
    #   by encoders with input_kind "waveform": pretrained checkpoints make their own features)
    audio_encoder: str = "conv_transformer"  # name in registry.AUDIO_ENCODERS
    audio_encoder_config: Any = None  # that encoder's config (dataclass or dict; None = its defaults)
    projector: str = "mlp"  # name in registry.PROJECTORS
    projector_config: Any = None  # that projector's config (dataclass or dict; None = defaults)
    lm: str = "llama"  # name in registry.LANGUAGE_MODELS
    lm_config: Any = None  # that LM's config (dataclass or dict; None = defaults)
    ctc_weight: float = 0.0  # > 0 adds a CTC head on the encoder, trained on transcript-like
    #   answers (tasks with aligned_answer) with this weight next to the LM loss (hybrid
    #   CTC/attention training: the encoder learns to align sound and tokens much sooner)
    frame_weight: float = 0.0  # > 0 adds a note-activity head on the encoder: per frame, which of
    #   the 128 MIDI pitches sound (a piano roll), trained with binary cross-entropy on the notes
    #   of tasks that give them (transcription); decoding reads note ends from it
    speaker_weight: float = 0.0  # > 0 trains a speaker-invariant encoder (adversarial training): a
    #   speaker classifier reads the pooled encoder states through a gradient-reversal layer
    #   that scales the gradient by -speaker_weight, so the encoder unlearns who is speaking
    speakers: list[str] = field(default_factory=list)  # the speakers that classifier tells apart; training
    #   fills it from the training rows' "speaker" field when speaker_weight > 0

    def __post_init__(self) -> None:
        for key in ("ctc_weight", "frame_weight", "speaker_weight"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{key} must be a number >= 0, got {value!r}")
        if not isinstance(self.speakers, list) or not all(isinstance(x, str) for x in self.speakers):
            raise ConfigError(f"speakers must be a list of speaker names, got {self.speakers!r}")
        if self.speaker_weight > 0 and self.speakers and len(self.speakers) < 2:
            raise ConfigError(f"speaker_weight > 0 needs at least 2 speakers to tell apart, got {self.speakers!r}")
        if isinstance(self.frontend, dict):
            self.frontend = _config_from_dict(LogMelConfig, self.frontend, "frontend")
        elif not isinstance(self.frontend, LogMelConfig):
            raise ConfigError(f"frontend must be a LogMelConfig or mapping, got {type(self.frontend).__name__}")
        for kind in ("audio_encoder", "projector", "lm"):
            entry = get_entry(kind, getattr(self, kind))
            sub = getattr(self, f"{kind}_config")
            if sub is None:
                sub = {}
            if isinstance(sub, dict):
                sub = dict(sub)
                names = {f.name for f in dataclasses.fields(entry.config_cls)}
                if kind == "audio_encoder" and "n_mels" in names and "n_mels" not in sub:
                    sub["n_mels"] = self.frontend.n_mels  # follow the frontend unless set explicitly
                sub = _config_from_dict(entry.config_cls, sub, f"{kind}_config")
            elif not isinstance(sub, entry.config_cls):
                raise ConfigError(
                    f"{kind}_config must be a {entry.config_cls.__name__} or mapping for {kind} "
                    f"{getattr(self, kind)!r}, got {type(sub).__name__}"
                )
            setattr(self, f"{kind}_config", sub)
        enc_mels = getattr(self.audio_encoder_config, "n_mels", None)
        if enc_mels is not None and enc_mels != self.frontend.n_mels:
            raise ConfigError(
                f"audio_encoder_config.n_mels ({enc_mels}) must equal frontend.n_mels ({self.frontend.n_mels})"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what config.json holds, minus metadata)."""
        return {
            "frontend": dataclasses.asdict(self.frontend),
            "audio_encoder": self.audio_encoder,
            "audio_encoder_config": dataclasses.asdict(self.audio_encoder_config),
            "projector": self.projector,
            "projector_config": dataclasses.asdict(self.projector_config),
            "lm": self.lm,
            "lm_config": dataclasses.asdict(self.lm_config),
            "ctc_weight": self.ctc_weight,
            "frame_weight": self.frame_weight,
            "speaker_weight": self.speaker_weight,
            "speakers": list(self.speakers),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "AudioLLMConfig":
        """Inverse of `to_dict`; missing keys take defaults, unknown keys raise ConfigError."""
        if not isinstance(values, dict):
            raise ConfigError(f"model config must be a mapping, got {type(values).__name__}")
        values = {k: v for k, v in values.items() if k not in _META_KEYS}
        allowed = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in allowed:
                raise ConfigError(f"unknown model config key {key!r}; allowed: {', '.join(allowed)}")
        return cls(**values)

    @classmethod
    def tiny(
        cls, audio_encoder: str = "conv_transformer", projector: str = "mlp", lm: str = "llama"
    ) -> "AudioLLMConfig":
        """Every component at its registered tiny size (the frontend follows the encoder's n_mels)."""
        enc = get_entry("audio_encoder", audio_encoder).config_cls.tiny()
        n_mels = getattr(enc, "n_mels", LogMelConfig.tiny().n_mels)
        return cls(
            frontend=LogMelConfig(n_mels=n_mels),
            audio_encoder=audio_encoder,
            audio_encoder_config=enc,
            projector=projector,
            projector_config=get_entry("projector", projector).config_cls.tiny(),
            lm=lm,
            lm_config=get_entry("lm", lm).config_cls.tiny(),
        )


N_PITCHES = 128  # MIDI pitches the note-activity head scores


def frame_seconds(audio_lengths: torch.Tensor, enc_lengths: torch.Tensor) -> torch.Tensor:
    """(B,) seconds per encoder frame of each row: its audio's length over its frame count."""
    return audio_lengths.float() / SAMPLE_RATE / enc_lengths.clamp(min=1).float()


def piano_roll(notes: torch.Tensor, counts: torch.Tensor, audio_lengths: torch.Tensor,
               enc_lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, n_frames, 128) float targets: 1 where a pitch sounds at a frame's centre.

    ``notes`` (B, N, 3) holds each row's ``(start_s, end_s, pitch)`` relative to its window, the
    first ``counts[i]`` real (a negative count: none). Frame f of row i is centred at
    ``(f + 0.5) · frame_seconds``; a note covers the frames whose centre is in ``[start, end)``.
    """
    B, N, _ = notes.shape
    centres = (torch.arange(n_frames, device=notes.device).float()[None, :] + 0.5) \
        * frame_seconds(audio_lengths, enc_lengths)[:, None]  # (B, F)
    real = torch.arange(N, device=notes.device)[None, :] < counts[:, None]  # (B, N)
    on = (notes[:, None, :, 0] <= centres[..., None]) & (centres[..., None] < notes[:, None, :, 1]) & real[:, None, :]
    pitch = F.one_hot(notes[..., 2].long().clamp(0, N_PITCHES - 1), N_PITCHES).float()  # (B, N, 128)
    return (on.float() @ pitch).clamp(max=1.0)  # (B, F, 128)


@dataclass
class AudioLLMOutput:
    logits: torch.Tensor | None  # (B, T, V) next-token logits over the merged [audio][text] sequence;
    #   None when the loss was taken straight from hidden states (labels given, return_logits=False)
    attention_mask: torch.Tensor  # (B, T) bool, True at real (audio or text) positions
    audio_token_lengths: torch.Tensor  # (B,) A_i: audio tokens at the start of each row
    loss: torch.Tensor | None = None  # mean CE over real target tokens (None without labels)
    loss_sum: torch.Tensor | None = None  # summed CE, for exact averaging across batches/processes
    n_targets: torch.Tensor | None = None  # number of real target tokens (long scalar)
    aux_loss_sum: torch.Tensor | None = None  # ctc_weight × summed CTC loss + frame_weight × summed
    #   note-activity loss (each 0 without rows that have such targets) + the speaker adversary's loss
    aux_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # for the
    #   training log, name → (sum, count) over this batch, unweighted: "ctc_loss" per transcript row,
    #   "speaker_loss" and "speaker_accuracy" of the adversary per row with a known speaker


# ---------------------------------------------------------------------------------------------
# Sequence merging
# ---------------------------------------------------------------------------------------------


def merge_audio_text(
    audio: torch.Tensor,
    audio_lengths: torch.Tensor,
    text: torch.Tensor,
    text_lengths: torch.Tensor,
    left_pad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pack each row's real audio then real text tokens contiguously, padded to the longest row.

    audio (B, A, D) with audio_lengths (B,); text (B, L, D) with text_lengths (B,).
    Returns embeds (B, T, D) (zeros at padding), valid (B, T) bool, and text_index (B, T):
    the text column each position came from, or -1 at audio/padding positions.
    """
    B, A, D = audio.shape
    L = text.shape[1]
    total = audio_lengths + text_lengths  # (B,)
    T = int(total.max())
    j = torch.arange(T, device=audio.device)[None, :]  # (1, T)
    rel = j - (T - total)[:, None] if left_pad else j.expand(B, T)  # (B, T): index within the row's content
    valid = (rel >= 0) & (rel < total[:, None])
    is_audio = rel < audio_lengths[:, None]
    text_col = rel - audio_lengths[:, None]  # (B, T)
    src = torch.where(is_audio, rel, A + text_col).clamp(0, A + L - 1)  # column in cat([audio, text])
    src = torch.where(valid, src, torch.zeros_like(src))
    both = torch.cat([audio, text.to(audio.dtype)], dim=1)  # (B, A + L, D)
    embeds = torch.gather(both, 1, src[..., None].expand(B, T, D))  # (B, T, D)
    embeds = embeds * valid[..., None].to(embeds.dtype)
    text_index = torch.where(valid & ~is_audio, text_col, torch.full_like(text_col, -1))
    return embeds, valid, text_index


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


def masked_mean(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, D) states → (B, D) mean over each row's first ``lengths`` positions."""
    w = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)[:, :, None]  # (B, T, 1)
    return (h * w).sum(1) / w.sum(1).clamp(min=1)


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``-scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


class AudioLLM(nn.Module):
    """Audio in, text out. See the module docstring and docs/DESIGN.md (Model API)."""

    def __init__(self, config: AudioLLMConfig):
        super().__init__()
        self.config = config
        self.audio_encoder = get_entry("audio_encoder", config.audio_encoder).module_cls(config.audio_encoder_config)
        # An encoder that brings its own input features (a pretrained checkpoint's feature
        # extractor) declares input_kind = "waveform" and gets the samples; ours get log-mel.
        self.takes_waveform = getattr(self.audio_encoder, "input_kind", "log_mel") == "waveform"
        self.frontend = None if self.takes_waveform else LogMel(config.frontend)
        self.lm = get_entry("lm", config.lm).module_cls(config.lm_config)
        self.projector = get_entry("projector", config.projector).module_cls(
            config.projector_config, in_dim=self.audio_encoder.output_dim, out_dim=self.lm.d_model
        )
        # CTC over the LM's vocabulary plus one blank (the last index).
        vocab = config.lm_config.vocab_size
        self.ctc_head = nn.Linear(self.audio_encoder.output_dim, vocab + 1) if config.ctc_weight > 0 else None
        # Note activity: one logit per MIDI pitch per encoder frame.
        self.frame_head = nn.Linear(self.audio_encoder.output_dim, N_PITCHES) if config.frame_weight > 0 else None
        # Speaker adversary: pooled encoder states → which training speaker (see speaker_loss_sum).
        self.speaker_head = None
        if config.speaker_weight > 0 and config.speakers:
            d = self.audio_encoder.output_dim
            self.speaker_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, len(config.speakers)))

    # -- pieces ---------------------------------------------------------------------------------

    def encode_frames(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) waveforms + sample lengths → encoder frames (B, F', d_enc) + frame counts (B,).

        ``audio`` may instead be a frozen pretrained encoder's cached states (B, F', K, D) with
        frame counts (`audiollm features`, :mod:`audiollm.data.feature_cache`): the encoder
        then only combines them (layer choice or learned weighting) instead of recomputing.

        A row with ``audio_lengths == 0`` has no audio (a text-only task such as text_to_midi):
        it gets zero frames, so zero audio tokens, and the encoder never sees it — a 0-sample
        STFT has no frames, and feeding silence instead would add tokens the task never had.
        """
        audio_lengths = audio_lengths.to(audio.device).long()
        has_audio = audio_lengths > 0
        if bool(has_audio.all()):
            return self._encode_rows(audio, audio_lengths)
        B = audio.shape[0]
        dtype = next(self.audio_encoder.parameters()).dtype
        if not bool(has_audio.any()):  # a batch of text-only rows: skip the encoder entirely
            return audio.new_zeros(B, 0, self.audio_encoder.output_dim, dtype=dtype), torch.zeros_like(audio_lengths)
        rows = has_audio.nonzero().squeeze(-1)  # (B_a,)
        longest = int(audio_lengths[rows].max())
        hidden, lengths = self._encode_rows(audio[rows, :longest], audio_lengths[rows])  # (B_a, F', d_enc)
        out = hidden.new_zeros(B, *hidden.shape[1:])  # (B, F', d_enc): zero rows for text-only rows
        out[rows] = hidden
        out_lengths = torch.zeros_like(audio_lengths)
        out_lengths[rows] = lengths.to(out_lengths.dtype)
        return out, out_lengths

    def _encode_rows(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if audio.dim() == 4:
            if not callable(getattr(self.audio_encoder, "from_states", None)):
                raise ConfigError(f"cached encoder states were given, but audio encoder "
                                  f"{self.config.audio_encoder!r} computes its own features (no feature cache)")
            return self.audio_encoder.from_states(audio, audio_lengths)
        if self.frontend is None:
            return self.audio_encoder(audio, audio_lengths)  # (B, F', d_enc), (B,)
        features, frame_lengths = self.frontend(audio, audio_lengths)  # (B, n_mels, F)
        return self.audio_encoder(features, frame_lengths)  # (B, F', d_enc), (B,)

    def encode_audio(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) waveforms + sample lengths → audio tokens (B, A, d_lm) + token counts (B,)."""
        return self.projector(*self.encode_frames(audio, audio_lengths))  # (B, A, d_lm), (B,)

    def prompt_embeds(
        self, audio_emb: torch.Tensor, audio_tok_lengths: torch.Tensor, prompt_ids: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio tokens (B, A, d_lm) + counts and each row's prompt ids → the LEFT-padded
        decoding prefixes ``[audio_i][prompt_i]`` (B, P, d_lm) and their valid mask (B, P)."""
        device = audio_emb.device
        B = len(prompt_ids)
        L = max(1, max(len(p) for p in prompt_ids))
        ids = torch.zeros(B, L, dtype=torch.long, device=device)
        for i, p in enumerate(prompt_ids):  # one small copy per row (B is the batch size, not tokens)
            if p:
                ids[i, : len(p)] = torch.as_tensor(p, dtype=torch.long, device=device)
        text_lengths = torch.tensor([len(p) for p in prompt_ids], dtype=torch.long, device=device)
        embeds, valid, _ = merge_audio_text(
            audio_emb, audio_tok_lengths, self.lm.embed_tokens(ids), text_lengths, left_pad=True
        )
        return embeds, valid

    def ctc_loss_sum(
        self, hidden: torch.Tensor, enc_lengths: torch.Tensor, ctc_labels: torch.Tensor, ctc_lengths: torch.Tensor
    ) -> torch.Tensor:
        """Summed CTC loss of the rows with ``ctc_lengths > 0`` (a 0-d zero when there are none).

        Rows without a transcript still contribute a zero-weighted term, so every process
        runs the head and DDP sees a gradient for it on every step.
        """
        rows = ctc_lengths.to(hidden.device) > 0
        logits = self.ctc_head(hidden).float()  # (B, F', V + 1)
        if not bool(rows.any()):
            return logits.sum() * 0.0
        log_probs = F.log_softmax(logits[rows], dim=-1).transpose(0, 1)  # (F', B_ctc, V + 1)
        loss = F.ctc_loss(
            log_probs,
            ctc_labels[rows].to(hidden.device),
            enc_lengths[rows],
            ctc_lengths.to(hidden.device)[rows],
            blank=logits.shape[-1] - 1,
            reduction="sum",
            zero_infinity=True,  # a transcript longer than its audio contributes nothing, not inf
        )
        return loss + logits.sum() * 0.0

    def frame_loss_sum(self, hidden: torch.Tensor, enc_lengths: torch.Tensor, audio_lengths: torch.Tensor,
                       frame_notes: torch.Tensor, frame_note_counts: torch.Tensor) -> torch.Tensor:
        """Summed binary cross-entropy of the note-activity head against each row's piano roll
        (:func:`piano_roll`), over the row's real frames and all 128 pitches. Rows with
        ``frame_note_counts < 0`` have no such targets and are left out (a row with 0 notes is a
        silent window: every pitch off); as with CTC every process still runs the head."""
        logits = self.frame_head(hidden).float()  # (B, F', 128)
        roll = piano_roll(frame_notes.to(hidden.device), frame_note_counts.to(hidden.device),
                          audio_lengths.to(hidden.device), enc_lengths, logits.shape[1])
        keep = (torch.arange(logits.shape[1], device=hidden.device)[None, :] < enc_lengths[:, None]) \
            & (frame_note_counts.to(hidden.device) >= 0)[:, None]  # (B, F')
        bce = F.binary_cross_entropy_with_logits(logits, roll, reduction="none").sum(-1)  # (B, F')
        return (bce * keep).sum() + logits.sum() * 0.0

    def speaker_loss_sum(
        self, hidden: torch.Tensor, enc_lengths: torch.Tensor, speaker_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Summed cross-entropy of the speaker adversary over rows with ``speaker_ids >= 0``,
        how many of those rows it names right, and how many there are.

        The head sees each row's mean encoder state over its real frames through a
        gradient-reversal layer: the head learns to name the speaker, while the encoder gets
        that gradient times ``-speaker_weight`` and so learns features the head cannot use
        (domain-adversarial training, Ganin & Lempitsky 2015; Meng et al. 2018 for speakers).
        """
        pooled = masked_mean(hidden, enc_lengths)  # (B, d_enc)
        logits = self.speaker_head(GradientReversal.apply(pooled, self.config.speaker_weight)).float()  # (B, n_spk)
        ids = speaker_ids.to(hidden.device)
        rows = ids >= 0
        n = rows.sum()
        if not bool(rows.any()):
            return logits.sum() * 0.0, n, n
        correct = (logits[rows].detach().argmax(-1) == ids[rows]).sum()
        return F.cross_entropy(logits[rows], ids[rows], reduction="sum") + logits.sum() * 0.0, correct, n

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """The tensors a model directory stores.

        A component built from a pretrained checkpoint (it defines ``trainable_state_keys``)
        contributes only what training can change (LoRA adapters, layer weights, a tuned
        encoder); the rest is reloaded from the checkpoint its config points at.
        """
        state = self.state_dict()
        for name, child in self.named_children():
            keys = getattr(child, "trainable_state_keys", None)
            if keys is None:
                continue
            kept = {f"{name}.{k}" for k in keys()}
            state = {k: v for k, v in state.items() if not k.startswith(f"{name}.") or k in kept}
        return state

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- training forward -----------------------------------------------------------------------

    def forward(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        input_ids: torch.Tensor,
        text_lengths: torch.Tensor,
        labels: torch.Tensor | None = None,
        ctc_labels: torch.Tensor | None = None,
        ctc_lengths: torch.Tensor | None = None,
        frame_notes: torch.Tensor | None = None,
        frame_note_counts: torch.Tensor | None = None,
        speaker_ids: torch.Tensor | None = None,
        return_logits: bool | None = None,
    ) -> AudioLLMOutput:
        """Logits over ``[audio][text]`` per row (right-padded); CE loss where labels != -100.

        With labels the (B, T, V) logits are not built unless ``return_logits=True``: the loss
        comes from the LM's hidden states at the target positions only
        (`token_loss.linear_cross_entropy_sum`), which is the training path.

        labels (B, L) are aligned with input_ids and the model shifts: merged position p
        predicts the label at merged position p + 1 (so the last audio token predicts the
        first text label). Labels past text_lengths are ignored. With a CTC head, rows with
        ``ctc_lengths > 0`` also get the CTC loss on ``ctc_labels``, and with a note-activity
        head rows with ``frame_note_counts >= 0`` the frame loss on ``frame_notes`` (both in
        ``aux_loss_sum``), and with a speaker adversary rows with ``speaker_ids >= 0`` its loss.
        """
        hidden, enc_lengths = self.encode_frames(audio, audio_lengths)
        audio_emb, audio_tok_lengths = self.projector(hidden, enc_lengths)
        text_lengths = text_lengths.to(input_ids.device).long()
        text_emb = self.lm.embed_tokens(input_ids)  # (B, L, d_lm)
        embeds, valid, text_index = merge_audio_text(
            audio_emb, audio_tok_lengths, text_emb, text_lengths, left_pad=False
        )  # (B, T, d_lm), (B, T), (B, T)
        if return_logits is None:
            return_logits = labels is None
        head = getattr(self.lm, "output_weight", None)  # (V, d_lm); None: the head is not a plain matrix
        if head is None:
            hidden_states, logits = None, self.lm(inputs_embeds=embeds, attention_mask=valid)  # (B, T, V)
        else:
            hidden_states = self.lm.hidden_states(inputs_embeds=embeds, attention_mask=valid)  # (B, T, d_lm)
            logits = F.linear(hidden_states, head) if return_logits else None  # (B, T, V)
        out = AudioLLMOutput(logits=logits if return_logits else None, attention_mask=valid,
                             audio_token_lengths=audio_tok_lengths)
        if labels is None:
            return out
        targets = torch.gather(labels.long(), 1, text_index.clamp(min=0))  # (B, T): label at each merged position
        targets = torch.where(text_index >= 0, targets, torch.full_like(targets, -100))
        # Shift the targets, not the logits (no copy of the big tensor): position p predicts p + 1.
        shifted = F.pad(targets[:, 1:], (0, 1), value=-100)  # (B, T)
        if hidden_states is not None:
            loss_sum = linear_cross_entropy_sum(hidden_states, head, shifted)
        else:
            loss_sum = F.cross_entropy(
                logits.float().view(-1, logits.shape[-1]), shifted.view(-1), ignore_index=-100, reduction="sum"
            )
        n_targets = (shifted != -100).sum()
        out.loss_sum = loss_sum
        out.n_targets = n_targets
        out.loss = loss_sum / n_targets.clamp(min=1)
        aux = []
        if self.ctc_head is not None and ctc_labels is not None and ctc_lengths is not None:
            ctc = self.ctc_loss_sum(hidden, enc_lengths, ctc_labels, ctc_lengths)
            aux.append(self.config.ctc_weight * ctc)
            out.aux_stats["ctc_loss"] = (ctc.detach(), (ctc_lengths > 0).sum())
        if self.frame_head is not None and frame_notes is not None and frame_note_counts is not None:
            if audio.dim() == 4:
                raise ConfigError("the note-activity head (model.frame_weight > 0) needs waveforms to time its "
                                  "frames, not cached encoder states")
            aux.append(self.config.frame_weight * self.frame_loss_sum(hidden, enc_lengths, audio_lengths,
                                                                      frame_notes, frame_note_counts))
        if self.speaker_head is not None and speaker_ids is not None:
            speaker_loss, correct, rows = self.speaker_loss_sum(hidden, enc_lengths, speaker_ids)
            aux.append(speaker_loss)
            out.aux_stats["speaker_loss"] = (speaker_loss.detach(), rows)
            out.aux_stats["speaker_accuracy"] = (correct, rows)
        if aux:
            out.aux_loss_sum = sum(aux[1:], aux[0])
        return out

    # -- generation -----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        prompt_ids: list[list[int]],
        options: DecodingOptions = DecodingOptions(),
        *,
        eos_id: int | None = None,
        processors: Sequence[LogitsProcessor] = (),
        generator: torch.Generator | None = None,
        ctc_rows: Sequence[bool] | None = None,
        return_logits: bool = False,
    ) -> list[list[int]] | tuple[list[list[int]], list[torch.Tensor]]:
        """Answer tokens per row (eos excluded) for prefixes ``[audio_i][prompt_i]``, decoded by
        the one loop (`audiollm.decoding.loop.generate`) with ``options`` and ``processors``.

        ``options.ctc_weight`` > 0 on a model with a CTC head also decodes the rows marked in
        ``ctc_rows`` (all rows when None; meant for transcripts) jointly with that head
        (`audiollm.decoding.ctc_prefix`).
        """
        if len(prompt_ids) != audio.shape[0]:
            raise ValueError(f"got {len(prompt_ids)} prompts for a batch of {audio.shape[0]} clips")
        hidden, enc_lengths = self.encode_frames(audio, audio_lengths)
        processors = list(processors)
        if options.ctc_weight > 0 and self.ctc_head is not None and (ctc_rows is None or any(ctc_rows)):
            active = None if ctc_rows is None else torch.tensor([bool(r) for r in ctc_rows])
            log_probs = F.log_softmax(self.ctc_head(hidden).float(), dim=-1)  # (B, F', V + 1)
            processors.append(CTCPrefixScorer(log_probs, enc_lengths, weight=options.ctc_weight, eos_id=eos_id,
                                              active=active))
        embeds, valid = self.prompt_embeds(*self.projector(hidden, enc_lengths), prompt_ids)
        return decode(self.lm, embeds, valid, options=options, eos_id=eos_id, processors=processors,
                      generator=generator, return_logits=return_logits)

    @torch.no_grad()
    def candidate_logprobs(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        contexts: list[list[list[int]]],
        candidates: list[list[list[int]]],
        chunk: int = 64,
    ) -> list[list[float]]:
        """Teacher-forced log-likelihood of candidate answers: for clip i and pair k,
        ``log P(candidates[i][k] | [audio_i] contexts[i][k])`` summed over the candidate's tokens.

        ``contexts[i][k]`` is the text before the candidate (prompt, and any answer prefix);
        it is not scored. The audio is encoded once per clip; its (context, candidate) pairs
        run through the LM in chunks of ``chunk`` sequences. This ranks answers the way the
        model would generate them, which generation's single greedy answer cannot.
        """
        if not (len(contexts) == len(candidates) == audio.shape[0]):
            raise ValueError("need one list of contexts and of candidates per clip")
        audio_emb, audio_tok_lengths = self.encode_audio(audio, audio_lengths)  # (B, A, d_lm), (B,)
        device = audio_emb.device
        out: list[list[float]] = []
        for i in range(audio.shape[0]):
            pairs = list(zip(contexts[i], candidates[i]))
            if any(not ctx or not cand for ctx, cand in pairs):
                raise ValueError("every context and candidate needs at least one token")
            a_len = int(audio_tok_lengths[i])
            scores: list[float] = []
            for start in range(0, len(pairs), chunk):
                part = pairs[start : start + chunk]
                C = len(part)
                lengths = torch.tensor([len(c) + len(k) for c, k in part], device=device)
                ids = torch.zeros(C, int(lengths.max()), dtype=torch.long, device=device)
                counted = torch.zeros_like(ids, dtype=torch.bool)  # text columns whose token is scored
                for r, (ctx, cand) in enumerate(part):
                    ids[r, : len(ctx) + len(cand)] = torch.as_tensor(ctx + cand, device=device)
                    counted[r, len(ctx) : len(ctx) + len(cand)] = True
                audio_rows = audio_emb[i : i + 1, :a_len].expand(C, a_len, -1)  # (C, A_i, d_lm)
                embeds, valid, _ = merge_audio_text(
                    audio_rows, torch.full((C,), a_len, device=device), self.lm.embed_tokens(ids), lengths,
                    left_pad=False,
                )  # (C, A_i + L, d_lm)
                logp = torch.log_softmax(self.lm(inputs_embeds=embeds, attention_mask=valid).float(), dim=-1)
                # Text column t sits at merged position a_len + t and is predicted by the one before it.
                pred = logp[:, a_len - 1 : a_len - 1 + ids.shape[1]]  # (C, L, V)
                token_logp = pred.gather(-1, ids[..., None]).squeeze(-1)  # (C, L)
                scores.extend((token_logp * counted).sum(dim=1).tolist())
            out.append(scores)
        return out

    # -- save / load ----------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json + model.safetensors into ``directory`` atomically.

        Both files are written into a temporary sibling directory first; a new directory is
        then renamed into place in one step, an existing one (e.g. already holding the
        tokenizer) gets each file via `os.replace`. A crash never leaves a half-written file.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
        try:
            config = {"model_type": "audiollm", "audiollm_version": __version__, **self.config.to_dict()}
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
            state, seen = {}, set()
            for k, v in self.state_to_save().items():
                v = v.detach().to("cpu").contiguous()
                if v.data_ptr() in seen:  # a tied tensor (e.g. a tuned HF LM's head): store a copy
                    v = v.clone()
                seen.add(v.data_ptr())
                state[k] = v
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            if not directory.exists():
                os.replace(tmp, directory)
            else:
                for name in (WEIGHTS_NAME, CONFIG_NAME):
                    os.replace(tmp / name, directory / name)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> "AudioLLM":
        """Load a `save_pretrained` directory; ModelDirError names what is missing or wrong."""
        from safetensors.torch import load_file

        directory = Path(directory)
        if not directory.is_dir():
            raise ModelDirError(f"model directory not found: {directory}")
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise ModelDirError(f"{config_path}: missing {CONFIG_NAME} (not a saved audiollm model directory?)")
        try:
            raw = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelDirError(f"{config_path}: cannot read {CONFIG_NAME}: {e}") from e
        try:
            config = AudioLLMConfig.from_dict(raw)
        except ConfigError as e:
            raise ModelDirError(f"{config_path}: {e}") from e
        weights_path = directory / WEIGHTS_NAME
        if not weights_path.is_file():
            raise ModelDirError(f"{weights_path}: missing {WEIGHTS_NAME}")
        try:
            state = load_file(str(weights_path), device=str(map_location))
        except Exception as e:  # safetensors raises its own error types for corrupt headers/data
            raise ModelDirError(f"{weights_path}: cannot read {WEIGHTS_NAME}: {e}") from e

        model = cls(config)  # pretrained components load their checkpoints here
        expected = model.state_to_save()
        state = fuse_split_projections(state, set(expected))  # directories saved before q/k/v, gate/up were fused
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} key(s) e.g. {', '.join(missing[:3])}")
            if unexpected:
                parts.append(f"unexpected {len(unexpected)} key(s) e.g. {', '.join(unexpected[:3])}")
            raise ModelDirError(f"{weights_path}: weights do not match {CONFIG_NAME}: {'; '.join(parts)}")
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise ModelDirError(
                    f"{weights_path}: {key} has shape {tuple(value.shape)}, {CONFIG_NAME} implies "
                    f"{tuple(expected[key].shape)}"
                )
        model.load_state_dict(state, strict=False)  # exactly state_to_save's keys, checked above
        return model.to(map_location).eval()
