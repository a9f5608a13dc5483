"""The audio-language model: log-mel → audio encoder → projector → causal LM, plus auxiliary heads.

Each example becomes one CONTIGUOUS sequence ``[audio tokens (A_i)][text tokens (t_i)]``:
right-padded for training (`forward`), left-padded for generation (`generate`, so every
row's last real token sits in the last column). The merge is one vectorised gather from
``cat([audio, text])``; padding is masked as attention keys and is never a loss target.

Components are looked up by name in `registry` (AUDIO_ENCODERS / PROJECTORS /
LANGUAGE_MODELS); auxiliary objectives on the encoder frames come from `heads.HEADS` by the
names in ``heads``. Nothing here branches on a component's or a head's name. A model
directory is written and read by `hub` (``model_type: audiollm``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from audiollm.config import choice, from_dict, resolve_choices
from audiollm.decoding.loop import generate as decode
from audiollm.decoding.options import DecodingOptions
from audiollm.decoding.processors import (
    ClassifierFreeGuidance,
    LogitsProcessor,
    LogProbabilities,
)
from audiollm.errors import AudioLLMError, ConfigError, ModelDirError
from audiollm.models.codec_answer import AudioAnswerConfig, CodecAnswer, CodecAnswerLM
from audiollm.models.frontend import LogMel, LogMelConfig
from audiollm.models.heads import HEADS, Stats, check_heads
from audiollm.models.lm import fuse_split_projections
from audiollm.models.registry import (
    AUDIO_ENCODERS,
    LANGUAGE_MODELS,
    PROJECTORS,
    get_entry,
    register_model,
)
from audiollm.models.token_loss import linear_cross_entropy_sum
from audiollm.tokenizers.hf import load_tokenizer

# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


@dataclass
class AudioLLMConfig:
    frontend: LogMelConfig = field(default_factory=LogMelConfig)  # waveform → log-mel settings (unused
    #   by encoders with input_kind "waveform": pretrained checkpoints make their own features)
    audio_encoder: str = "conv_transformer"  # name in registry.AUDIO_ENCODERS
    audio_encoder_config: Any = choice(AUDIO_ENCODERS, by="audio_encoder")  # that encoder's config
    projector: str = "mlp"  # name in registry.PROJECTORS
    projector_config: Any = choice(PROJECTORS, by="projector")  # that projector's config
    lm: str = "llama"  # name in registry.LANGUAGE_MODELS
    lm_config: Any = choice(LANGUAGE_MODELS, by="lm")  # that LM's config
    heads: dict[str, float] = field(default_factory=dict)  # auxiliary objectives on the encoder frames
    #   and their loss weights, e.g. {ctc: 1.0, note_activity: 0.3} (models.heads.HEADS)
    audio_answer: AudioAnswerConfig = field(default_factory=AudioAnswerConfig)  # answers made of codec
    #   tokens (text → speech, caption → music): the codec, its codebooks and their layout

    @classmethod
    def prepare_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """An encoder with mel bands follows the frontend's ``n_mels`` unless set explicitly."""
        encoder = get_entry("audio_encoder", raw.get("audio_encoder", cls.audio_encoder))
        sub = raw.get("audio_encoder_config")
        if (sub is None or isinstance(sub, dict)) and "n_mels" in encoder.config_cls.__dataclass_fields__:
            sub = dict(sub or {})
            frontend = raw.get("frontend") or {}
            sub.setdefault("n_mels", frontend.n_mels if isinstance(frontend, LogMelConfig)
                           else frontend.get("n_mels", LogMelConfig.n_mels))
            raw = {**raw, "audio_encoder_config": sub}
        return raw

    def __post_init__(self) -> None:
        if isinstance(self.frontend, dict):
            self.frontend = from_dict(LogMelConfig, self.frontend, "frontend")
        if isinstance(self.audio_answer, dict):
            self.audio_answer = from_dict(AudioAnswerConfig, self.audio_answer, "audio_answer")
        resolve_choices(self)
        self.heads = check_heads(self.heads)
        enc_mels = getattr(self.audio_encoder_config, "n_mels", None)
        if enc_mels is not None and enc_mels != self.frontend.n_mels:
            raise ConfigError(
                f"audio_encoder_config.n_mels ({enc_mels}) must equal frontend.n_mels ({self.frontend.n_mels})"
            )

    @classmethod
    def tiny(cls, audio_encoder: str = "conv_transformer", projector: str = "mlp", lm: str = "llama",
             **heads: float) -> "AudioLLMConfig":
        """Every component at its registered tiny size (the frontend follows the encoder's n_mels)."""
        enc = get_entry("audio_encoder", audio_encoder).config_cls.tiny()
        return cls(
            frontend=LogMelConfig(n_mels=getattr(enc, "n_mels", LogMelConfig.tiny().n_mels)),
            audio_encoder=audio_encoder,
            audio_encoder_config=enc,
            projector=projector,
            projector_config=get_entry("projector", projector).config_cls.tiny(),
            lm=lm,
            lm_config=get_entry("lm", lm).config_cls.tiny(),
            heads=heads,
        )


@dataclass
class AudioLLMOutput:
    logits: torch.Tensor | None  # (B, T, V) next-token logits over the merged [audio][text] sequence;
    #   None when the loss was taken straight from hidden states (labels given, return_logits=False)
    attention_mask: torch.Tensor  # (B, T) bool, True at real (audio or text) positions
    audio_token_lengths: torch.Tensor  # (B,) A_i: audio tokens at the start of each row
    loss: torch.Tensor | None = None  # mean CE over real target tokens (None without labels)
    loss_sum: torch.Tensor | None = None  # summed CE, for exact averaging across batches/processes
    n_targets: torch.Tensor | None = None  # number of real target tokens (long scalar)
    aux_loss_sum: torch.Tensor | None = None  # the heads' losses, each times its weight (None without heads)
    aux_stats: Stats = field(default_factory=dict)  # the heads' unweighted figures for the training log


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


@register_model("audiollm", AudioLLMConfig)
class AudioLLM(nn.Module):
    """Audio in, text (or MIDI event tokens) out. See the module docstring and docs/DESIGN.md."""

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
        d_enc, vocab = self.audio_encoder.output_dim, config.lm_config.vocab_size
        self.heads = nn.ModuleDict({name: HEADS[name](d_enc, vocab, w) for name, w in config.heads.items()})
        # Codec heads and embeddings when the model answers in audio (models.codec_answer).
        self.audio_answer = CodecAnswer(config.audio_answer, self.lm.d_model) if config.audio_answer.enabled else None

    # -- audio → frames → tokens ----------------------------------------------------------------

    def encode_frames(
        self,
        audio: torch.Tensor | None,
        audio_lengths: torch.Tensor,
        encoder_states: torch.Tensor | None = None,
        encoder_lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms (B, S) + sample lengths → encoder frames (B, F', d_enc) + frame counts (B,).

        A frozen pretrained encoder's cached states (`audiollm features`,
        :mod:`audiollm.data.feature_cache`) may come instead as ``encoder_states`` (B, F', K, D)
        with ``encoder_lengths`` frames: the encoder then only combines them (layer choice or
        learned weighting) instead of recomputing. A row with no audio (length 0: a text-only
        task such as text_to_midi) gets zero frames, so zero audio tokens, and the encoder
        never sees it — feeding silence instead would add tokens the task never had.
        """
        cached = encoder_states is not None
        x = encoder_states if cached else audio
        lengths = (encoder_lengths if cached else audio_lengths).to(x.device).long()
        has_audio = lengths > 0
        if bool(has_audio.all()):
            return self._encode_rows(x, lengths, cached)
        B = x.shape[0]
        if not bool(has_audio.any()):  # a batch of text-only rows: skip the encoder entirely
            dtype = next(self.audio_encoder.parameters()).dtype
            return x.new_zeros(B, 0, self.audio_encoder.output_dim, dtype=dtype), torch.zeros_like(lengths)
        rows = has_audio.nonzero().squeeze(-1)  # (B_a,)
        longest = int(lengths[rows].max())
        hidden, out = self._encode_rows(x[rows, :longest], lengths[rows], cached)  # (B_a, F', d_enc)
        frames = hidden.new_zeros(B, *hidden.shape[1:])  # zero rows for the text-only rows
        frames[rows] = hidden
        frame_lengths = torch.zeros_like(lengths)
        frame_lengths[rows] = out.to(frame_lengths.dtype)
        return frames, frame_lengths

    def _encode_rows(self, x: torch.Tensor, lengths: torch.Tensor, cached: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if cached:
            if not callable(getattr(self.audio_encoder, "from_states", None)):
                raise ConfigError(f"cached encoder states were given, but audio encoder "
                                  f"{self.config.audio_encoder!r} computes its own features (no feature cache)")
            return self.audio_encoder.from_states(x, lengths)
        if self.frontend is None:
            return self.audio_encoder(x, lengths)  # (B, F', d_enc), (B,)
        features, frame_lengths = self.frontend(x, lengths)  # (B, n_mels, F)
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

    # -- training forward -----------------------------------------------------------------------

    def forward(
        self,
        audio: torch.Tensor | None,
        audio_lengths: torch.Tensor,
        input_ids: torch.Tensor,
        text_lengths: torch.Tensor,
        labels: torch.Tensor | None = None,
        targets: dict[str, dict[str, torch.Tensor]] | None = None,
        encoder_states: torch.Tensor | None = None,
        encoder_lengths: torch.Tensor | None = None,
        return_logits: bool | None = None,
        codes: torch.Tensor | None = None,
        code_lengths: torch.Tensor | None = None,
        n_code_targets: torch.Tensor | None = None,
    ) -> AudioLLMOutput:
        """Logits over ``[audio][text]`` per row (right-padded); CE loss where labels != -100.

        With labels the (B, T, V) logits are not built unless ``return_logits=True``: the loss
        comes from the LM's hidden states at the target positions only
        (`token_loss.linear_cross_entropy_sum`), which is the training path.

        labels (B, L) are aligned with input_ids and the model shifts: merged position p
        predicts the label at merged position p + 1 (so the last audio token predicts the
        first text label). Labels past text_lengths are ignored. ``targets`` (from
        `heads.collate_targets`) feed the auxiliary heads the model has; their weighted losses
        come back in ``aux_loss_sum``.

        ``codes`` (B, K, T) with ``code_lengths`` real frames (0: the row answers in text) are
        audio answers: their pattern steps (`decoding.codec_pattern`) follow each row's prompt,
        and the codec heads' cross-entropy on their real targets joins ``loss_sum`` and
        ``n_targets`` (also logged as ``codec_loss``). ``n_code_targets``, counted by the
        collate for the loss normaliser, is checked against the model's own count.
        """
        hidden, enc_lengths = self.encode_frames(audio, audio_lengths, encoder_states, encoder_lengths)
        audio_emb, audio_tok_lengths = self.projector(hidden, enc_lengths)
        text_lengths = text_lengths.to(input_ids.device).long()
        text_emb = self.lm.embed_tokens(input_ids)  # (B, L, d_lm)
        embeds, valid, text_index = merge_audio_text(
            audio_emb, audio_tok_lengths, text_emb, text_lengths, left_pad=False
        )  # (B, T, d_lm), (B, T), (B, T)
        answer_steps = None
        if codes is not None and code_lengths is not None and bool((code_lengths > 0).any()):
            if self.audio_answer is None:
                raise ConfigError("the batch has audio answers (codes), but this model has no audio_answer codec heads")
            embeds, valid, text_index, answer_steps = self._append_answer_steps(embeds, valid, text_index, codes,
                                                                                code_lengths)
        if return_logits is None:
            return_logits = labels is None
        head = getattr(self.lm, "output_weight", None)  # (V, d_lm); None: the head is not a plain matrix
        if head is None and answer_steps is None:
            hidden_states, logits = None, self.lm(inputs_embeds=embeds, attention_mask=valid)  # (B, T, V)
        else:
            hidden_states = self.lm.hidden_states(inputs_embeds=embeds, attention_mask=valid)  # (B, T, d_lm)
            if head is None:
                logits = self.lm(inputs_embeds=embeds, attention_mask=valid)
            else:
                logits = F.linear(hidden_states, head) if return_logits else None  # (B, T, V)
        out = AudioLLMOutput(logits=logits if return_logits else None, attention_mask=valid,
                             audio_token_lengths=audio_tok_lengths)
        if labels is None:
            return out
        targets_at = torch.gather(labels.long(), 1, text_index.clamp(min=0))  # (B, T): label at each position
        targets_at = torch.where(text_index >= 0, targets_at, torch.full_like(targets_at, -100))
        # Shift the targets, not the logits (no copy of the big tensor): position p predicts p + 1.
        shifted = F.pad(targets_at[:, 1:], (0, 1), value=-100)  # (B, T)
        if head is not None:
            loss_sum = linear_cross_entropy_sum(hidden_states, head, shifted)
        else:
            loss_sum = F.cross_entropy(
                logits.float().view(-1, logits.shape[-1]), shifted.view(-1), ignore_index=-100, reduction="sum"
            )
        n_targets = (shifted != -100).sum()
        if answer_steps is not None:
            positions, code_targets = answer_steps
            at = positions.clamp(max=hidden_states.shape[1] - 1)[..., None].expand(-1, -1, hidden_states.shape[-1])
            codec_sum, codec_n = self.audio_answer.loss_sum(torch.gather(hidden_states, 1, at), code_targets)
            if n_code_targets is not None and int(n_code_targets) != int(codec_n):
                raise ValueError(f"the batch counts {int(n_code_targets)} codec targets, the model {int(codec_n)}")
            out.aux_stats["codec_loss"] = (codec_sum.detach(), codec_n)
            loss_sum, n_targets = loss_sum + codec_sum, n_targets + codec_n
        out.loss_sum, out.n_targets, out.loss = loss_sum, n_targets, loss_sum / n_targets.clamp(min=1)
        aux = []
        for name, module in self.heads.items():
            if targets is None or name not in targets:
                continue
            loss, stats = module.loss_sum(hidden, enc_lengths, audio_lengths, **targets[name])
            aux.append(module.weight * loss)
            out.aux_stats.update(stats)
        if aux:
            out.aux_loss_sum = sum(aux[1:], aux[0])
        return out

    def _append_answer_steps(self, embeds, valid, text_index, codes, code_lengths):
        """``[audio][text]`` rows (right-padded) + audio answers → the rows with their answer's
        pattern steps appended, and (positions (B, S) of the hidden states that predict each
        step, targets (B, S, K))."""
        pattern = self.audio_answer.pattern
        inputs, targets, n_steps = pattern.training_steps(codes[:, : pattern.K], code_lengths)
        step_emb = self.audio_answer.embed_steps(inputs).to(embeds.dtype)  # (B, S - 1, d_lm)
        prefix = valid.sum(1)  # (B,) real positions before the answer
        embeds, valid, _ = merge_audio_text(embeds, prefix, step_emb, (n_steps - 1).clamp(min=0), left_pad=False)
        text_index = F.pad(text_index, (0, embeds.shape[1] - text_index.shape[1]), value=-1)
        # The prompt's last position predicts step 0; step s's input predicts step s + 1.
        positions = prefix[:, None] - 1 + torch.arange(targets.shape[1], device=embeds.device)[None, :]
        return embeds, valid, text_index, (positions, targets)

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
        encoder_states: torch.Tensor | None = None,
        encoder_lengths: torch.Tensor | None = None,
    ) -> list[list[int]] | tuple[list[list[int]], list[torch.Tensor]]:
        """Answer tokens per row (eos excluded) for prefixes ``[audio_i][prompt_i]``, decoded by
        the one loop (`audiollm.decoding.loop.generate`) with ``options`` and ``processors``.

        ``options.ctc_weight`` > 0 on a model with a CTC head also decodes the rows marked in
        ``ctc_rows`` (all rows when None; meant for transcripts) jointly with that head
        (`audiollm.decoding.ctc_prefix`). Cached encoder states may replace the audio, as in
        `encode_frames`.
        """
        rows = (encoder_states if audio is None else audio).shape[0]
        if len(prompt_ids) != rows:
            raise ValueError(f"got {len(prompt_ids)} prompts for a batch of {rows} clips")
        frames, frame_lengths = self.encode_frames(audio, audio_lengths, encoder_states, encoder_lengths)
        processors = list(processors)
        if options.ctc_weight > 0 and "ctc" in self.heads and (ctc_rows is None or any(ctc_rows)):
            processors.append(self.heads["ctc"].prefix_scorer(frames, frame_lengths, weight=options.ctc_weight,
                                                              eos_id=eos_id, rows=ctc_rows))
        embeds, valid = self.prompt_embeds(*self.projector(frames, frame_lengths), prompt_ids)
        return decode(self.lm, embeds, valid, options=options, eos_id=eos_id, processors=processors,
                      generator=generator, return_logits=return_logits)

    @torch.no_grad()
    def generate_codes(
        self,
        prompt_ids: list[list[int]],
        *,
        max_frames: Sequence[int],
        min_frames: Sequence[int] | int = 1,
        options: DecodingOptions = DecodingOptions(),
        unconditional_ids: list[int] | None = None,
        generator: torch.Generator | None = None,
        prompt_codes: Sequence[torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """Audio answers: codes (K, T_i) per text prompt, T_i between ``min_frames`` and
        ``max_frames[i]`` frames, decoded by the one loop through the codec heads under the
        model's pattern (`decoding.codec_pattern`), with ``options`` (temperature, top-k/top-p,
        KV cache). ``options.guidance`` ≠ 1 adds the ``unconditional_ids`` prompt as the second
        branch of classifier-free guidance. ``prompt_codes`` (K, P) per row (one P for all) are
        an audio prompt to continue: its steps follow the text prompt, and only the new frames
        come back."""
        if self.audio_answer is None:
            raise AudioLLMError("this model answers in text: it has no codec heads (model.audio_answer)")
        pattern = self.audio_answer.pattern
        if len(max_frames) != len(prompt_ids):
            raise ValueError(f"got {len(max_frames)} frame budgets for {len(prompt_ids)} prompts")
        guided = options.guidance != 1.0
        rows = list(prompt_ids)
        if guided:
            if unconditional_ids is None:
                raise ValueError("guidance needs the unconditional prompt (unconditional_ids)")
            rows += [unconditional_ids] * len(prompt_ids)
        device = next(self.parameters()).device
        no_audio = torch.zeros(len(rows), 0, self.lm.d_model, device=device)
        embeds, mask = self.prompt_embeds(no_audio, torch.zeros(len(rows), dtype=torch.long, device=device), rows)
        P = 0
        if prompt_codes is not None:
            if len(prompt_codes) != len(prompt_ids):
                raise ValueError(f"got {len(prompt_codes)} audio prompts for {len(prompt_ids)} prompts")
            prompt_codes = [c[: pattern.K].long().cpu() for c in prompt_codes]
            P = int(prompt_codes[0].shape[1])
            steps_in = torch.stack([pattern.prompt_steps(c) for c in prompt_codes]).to(device)  # (B, S_p, width)
            step_emb = self.audio_answer.embed_steps(steps_in).to(embeds.dtype)
            if guided:
                step_emb = torch.cat([step_emb, step_emb])
            embeds = torch.cat([embeds, step_emb], dim=1)  # still left-padded: the steps are real positions
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], step_emb.shape[1])], dim=1)
        min_frames = [min_frames] * len(prompt_ids) if isinstance(min_frames, int) else list(min_frames)
        processors = [LogProbabilities()] + ([ClassifierFreeGuidance(options.guidance)] if guided else [])
        processors.append(pattern.processor([P + m for m in max_frames], [P + m for m in min_frames], prompt_codes))
        budget = pattern.max_steps(P + max(max_frames)) - pattern.steps_before(P)
        steps = decode(CodecAnswerLM(self.lm, self.audio_answer), embeds, mask,
                       options=options.replace(max_new_tokens=budget), eos_id=pattern.eos_id, processors=processors,
                       generator=generator)
        prompts = prompt_codes or [None] * len(steps)
        return [pattern.codes_from_steps(s, p) for s, p in zip(steps, prompts)]

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

    # -- what a model directory stores (models.hub) -----------------------------------------------

    CARD_TITLE = "audiollm audio-language model"
    CARD_USE = ('print(model.ask("clip.wav", "Which instrument family is playing?"))',)

    def card_summary(self) -> str:
        heads = f", with auxiliary heads {', '.join(self.heads)}" if len(self.heads) else ""
        front = "" if self.takes_waveform else "log-mel frontend → "
        out = "text out"
        if self.audio_answer is not None:
            a = self.config.audio_answer
            out = (f"text or audio out (codes of the codec at {a.codec}, fingerprint {a.fingerprint}: "
                   f"{a.num_codebooks} × {a.codebook_size} codes at {a.frame_rate:g} frames/s, {a.pattern} pattern)")
        return (f"Audio in, {out}: {front}`{self.config.audio_encoder}` audio encoder → `{self.config.projector}` "
                f"projector → `{self.config.lm}` causal language model{heads}.")

    @staticmethod
    def load_tokenizer(config: AudioLLMConfig, directory: Path):
        return load_tokenizer(directory)

    @staticmethod
    def upgrade_saved_config(values: dict[str, Any], where: Path) -> dict[str, Any]:
        """config.json of a directory written before auxiliary heads were plug-ins (audiollm
        0.1.0): ``ctc_weight`` / ``frame_weight`` become ``heads``. Options that left the code
        (a speaker adversary, a band-mean or warped frontend, Conv2d subsampling) are refused
        by name; their training-only settings at 0 are dropped."""
        values = dict(values)
        heads = dict(values.pop("heads", {}) or {})
        for old, new in (("ctc_weight", "ctc"), ("frame_weight", "note_activity")):
            weight = values.pop(old, 0.0)
            if weight:
                heads[new] = weight
        values["heads"] = heads
        if values.pop("speaker_weight", 0.0):
            raise ModelDirError(f"{where}: trained with the speaker adversary (speaker_weight), which audiollm no "
                                "longer has (see docs/experiments); retrain without it")
        values.pop("speakers", None)
        frontend = dict(values.get("frontend") or {})
        for key in ("vtlp", "eq_db"):  # training-time augmentation: no effect on a saved model
            frontend.pop(key, None)
        if frontend.get("level") == "band_mean":
            raise ModelDirError(f"{where}: uses frontend.level band_mean, which audiollm no longer has; retrain")
        values["frontend"] = frontend
        encoder = dict(values.get("audio_encoder_config") or {})
        if encoder.pop("subsample", "conv1d") != "conv1d":
            raise ModelDirError(f"{where}: uses Conv2d subsampling, which audiollm no longer has; retrain")
        values["audio_encoder_config"] = encoder
        return values

    @staticmethod
    def upgrade_saved_state(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
        """Weights saved before heads were plug-ins or projections were fused keep loading."""
        renamed = {}
        for key, value in state.items():
            for old, new in (("ctc_head.", "heads.ctc.proj."), ("frame_head.", "heads.note_activity.proj.")):
                if key.startswith(old):
                    key = new + key[len(old):]
            renamed[key] = value
        return fuse_split_projections(renamed, expected)

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
