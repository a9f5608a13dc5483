"""Any transformers causal LM (Qwen2, Llama, Mistral, …) as the language model, optional LoRA.

Driven with ``inputs_embeds`` (the audio prefix is embeddings, not ids) through the same
interface as our `lm.Decoder`: ``d_model``, ``embed_tokens``, ``forward`` → logits,
``new_cache`` (the model's own dynamic cache) and ``max_seq_len``, so the one decoding loop
(`audiollm.decoding.loop`) drives it exactly as it drives ours: left-padded prompts,
positions that count real tokens only, rows that stop at eos independently.

Training: by default the base weights are frozen. ``lora_r > 0`` wraps the model with peft
LoRA adapters on ``lora_targets``; then only the adapters (and the projector, and a
pretrained encoder's layer weights) train, and a saved model directory stores only those
tensors plus the checkpoint pointer (``model``) in config.json. ``freeze: false`` without
LoRA fine-tunes every weight (and stores them all).

The tokenizer is the checkpoint's own (`tokenizers.hf.HFTokenizer`, loaded from ``model``
unless ``tokenizer.pretrained`` names another); a tokenizer with more ids than the
checkpoint has embedding rows is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from audiollm.errors import ConfigError
from audiollm.models.hub import DTYPES
from audiollm.models.pretrained.hf_common import (
    PretrainedPart,
    import_transformers,
    load_pretrained,
    local_or_hub,
    resolve_checkpoint,
)
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint
from audiollm.models.registry import register_language_model


@dataclass
class HFCausalLMConfig:
    model: str = ""  # local checkpoint directory or hub id of an AutoModelForCausalLM (required)
    vocab_size: int = 0  # the tokenizer's size (set by the trainer); must be <= the checkpoint's embedding rows
    freeze: bool = True  # keep the base weights fixed (LoRA adapters, if any, still train)
    lora_r: int = 0  # LoRA rank; 0 = no LoRA
    lora_alpha: float = 16.0  # LoRA scaling numerator (scale = alpha / r)
    lora_dropout: float = 0.0  # dropout on the LoRA input (training only)
    lora_targets: str = "q_proj,v_proj"  # comma-separated module names to adapt, or "all-linear"
    dtype: str = "float32"  # base weights: float32 | bfloat16 | float16 (bf16 halves a 7B's memory)
    trust_remote_code: bool = False  # run the checkpoint's own modelling code

    def __post_init__(self) -> None:
        if not isinstance(self.model, str):
            raise ConfigError(f"lm_config.model must be a path or hub id, got {self.model!r}")
        self.model = local_or_hub(self.model)
        for name in ("vocab_size", "lora_r"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"lm_config.{name} must be an integer >= 0, got {value!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"lm_config.dtype={self.dtype!r}; allowed: {', '.join(DTYPES)}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lm_config.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.lora_alpha > 0:
            raise ConfigError(f"lm_config.lora_alpha must be > 0, got {self.lora_alpha}")
        if not isinstance(self.lora_targets, str) or not self.lora_targets.strip():
            raise ConfigError("lm_config.lora_targets must name modules, e.g. 'q_proj,v_proj' or 'all-linear'")

    @classmethod
    def tiny(cls) -> "HFCausalLMConfig":
        return cls(model=tiny_checkpoint("qwen2_lm"), lora_r=4, lora_alpha=8.0)


@register_language_model("hf_causal_lm", HFCausalLMConfig)
class HFCausalLM(PretrainedPart, nn.Module):
    """A transformers causal LM behind the `lm.Decoder` interface."""

    where = "lm_config"

    def __init__(self, config: HFCausalLMConfig):
        super().__init__()
        self.config = config
        T = import_transformers("lm hf_causal_lm")
        model = load_pretrained(T.AutoModelForCausalLM, config.model, where=self.where,
                                trust_remote_code=config.trust_remote_code, dtype=DTYPES[config.dtype])
        rows = model.get_input_embeddings().num_embeddings
        if config.vocab_size > rows:
            raise ConfigError(
                f"the tokenizer has {config.vocab_size} tokens but the LM at {config.model} has only {rows} "
                f"embedding rows: use the checkpoint's own tokenizer"
            )
        self.n_embeddings = rows
        self.d_model = int(model.config.hidden_size)
        self.max_seq_len = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        model.requires_grad_(not config.freeze)
        if config.lora_r > 0:
            model = self._add_lora(model, config)
        self.model = model

    @staticmethod
    def tokenizer_source(lm_config: HFCausalLMConfig) -> str:
        """Where this LM's tokenizer lives (its checkpoint): the trainer loads it from there."""
        return resolve_checkpoint(lm_config.model, "lm_config") if lm_config.model else ""

    def _add_lora(self, model: nn.Module, config: HFCausalLMConfig) -> nn.Module:
        try:
            import peft
        except ImportError:
            raise ConfigError("lm_config.lora_r > 0 needs peft: pip install 'audiollm[hf]'") from None
        targets = config.lora_targets.strip()
        target_modules = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
        lora = peft.LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                               target_modules=target_modules, bias="none")
        try:
            return peft.get_peft_model(model, lora)
        except ValueError as e:
            raise ConfigError(f"lm_config.lora_targets={targets!r}: {str(e).splitlines()[0]}") from None


    @property
    def adapter_summary(self) -> str:
        """What training adds on top of the checkpoint, for the model card ("" = nothing)."""
        c = self.config
        return f"LoRA adapters (r={c.lora_r}, alpha={c.lora_alpha:g}, on {c.lora_targets})" if c.lora_r > 0 else ""

    def new_cache(self, batch_size: int, max_len: int, dtype=None, device=None):
        """The model's own dynamic KV cache, with ``select_rows`` as the decoding loop expects."""
        T = import_transformers("lm hf_causal_lm")
        cache = T.DynamicCache(config=self.model.config)
        cache.select_rows = cache.batch_select_indices
        return cache

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids → (B, T, d_model) embeddings (what ``inputs_embeds`` expects)."""
        if input_ids.numel() and int(input_ids.max()) >= self.n_embeddings:
            raise ConfigError(f"token id {int(input_ids.max())} is past the LM's {self.n_embeddings} embedding rows")
        return self.model.get_input_embeddings()(input_ids)

    @property
    def output_weight(self) -> torch.Tensor | None:
        """The LM head's (V, d_model) matrix when logits are exactly ``hidden @ W.T``; None for a
        head with a bias, a logit scale or soft-capping (training then takes the full-logits path)."""
        head = self.model.get_output_embeddings()
        cfg = self.model.config
        if (not isinstance(head, nn.Linear) or head.bias is not None or getattr(cfg, "final_logit_softcapping", None)
                or getattr(cfg, "logit_scale", None) not in (None, 1, 1.0)):
            return None
        return head.weight

    def hidden_states(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      position_ids: torch.Tensor | None = None, cache=None) -> torch.Tensor:
        """The decoder's final-norm hidden states (B, T, d_model), the LM head's input; ``cache``
        (from `new_cache`) is updated in place, as in `forward`."""
        B, T, _ = inputs_embeds.shape
        if attention_mask is None:
            past = cache.get_seq_length() if cache is not None else 0
            attention_mask = torch.ones(B, past + T, dtype=torch.long, device=inputs_embeds.device)
        attention_mask = attention_mask.long()
        if position_ids is None:
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -T:]  # (B, T)
        out = self.model.get_decoder()(inputs_embeds=inputs_embeds.to(self.model.dtype),
                                       attention_mask=attention_mask, position_ids=position_ids,
                                       past_key_values=cache, use_cache=cache is not None)
        return out.last_hidden_state

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache=None,
        logits_to_keep: int = 0,
    ) -> torch.Tensor:
        """Next-token logits (B, T, V); ``cache`` is a transformers Cache updated in place.

        attention_mask (B, T_total) marks real tokens over cached + new positions; default
        positions count real tokens only (right padding in training, left in generation).
        """
        B, T, _ = inputs_embeds.shape
        if attention_mask is None:
            past = cache.get_seq_length() if cache is not None else 0
            attention_mask = torch.ones(B, past + T, dtype=torch.long, device=inputs_embeds.device)
        attention_mask = attention_mask.long()
        if position_ids is None:
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -T:]  # (B, T)
        out = self.model(
            inputs_embeds=inputs_embeds.to(self.model.dtype),
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=cache is not None,
            logits_to_keep=logits_to_keep,
        )
        return out.logits
