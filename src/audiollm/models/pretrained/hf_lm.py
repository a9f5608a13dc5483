"""Any transformers causal LM (Qwen2, Llama, Mistral, …) as the language model, optional LoRA.

Driven with ``inputs_embeds`` (the audio prefix is embeddings, not ids) through the same
interface as our `lm.Decoder`: ``d_model``, ``embed_tokens``, ``forward`` → logits and
``generate`` (KV cache via the model's own cache, left-padded prompts, positions that count
real tokens only, rows that stop at eos independently).

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
from typing import Any

import torch
import torch.nn as nn

from audiollm.errors import ConfigError
from audiollm.decoding.sampling import check_sampling_args, finish, pick_next_token, record_step
from audiollm.models.pretrained.hf_common import (
    import_transformers,
    load_pretrained,
    local_or_hub,
    trainable_state_keys,
)
from audiollm.models.registry import register_language_model
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
class HFCausalLM(nn.Module):
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
    def tokenizer_source(lm_config: dict) -> str:
        """Where this LM's tokenizer lives (its checkpoint): the trainer loads it from there."""
        return str((lm_config or {}).get("model", ""))

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

    def trainable_state_keys(self) -> set[str]:
        return trainable_state_keys(self)

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
                      position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's final-norm hidden states (B, T, d_model), the LM head's input (no cache)."""
        B, T, _ = inputs_embeds.shape
        if attention_mask is None:
            attention_mask = torch.ones(B, T, dtype=torch.long, device=inputs_embeds.device)
        attention_mask = attention_mask.long()
        if position_ids is None:
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
        out = self.model.get_decoder()(inputs_embeds=inputs_embeds.to(self.model.dtype),
                                       attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
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

    @torch.no_grad()
    def generate(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 32,
        eos_id: int | None = None,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        return_logits: bool = False,
        rescorer: Any = None,
    ) -> list[list[int]] | tuple[list[list[int]], list[torch.Tensor]]:
        """Continue LEFT-padded prompt embeddings; each row's new tokens (eos excluded).

        Same contract as `lm.Decoder.generate`: finished rows leave the batch (their cache
        rows too); use_cache=False recomputes the whole prefix each step (the reference);
        a ``rescorer`` re-scores each step's logits before the pick.
        """
        check_sampling_args(temperature, top_k, top_p)
        T = import_transformers("lm hf_causal_lm")
        B, P, _ = inputs_embeds.shape
        device = inputs_embeds.device
        mask = torch.ones(B, P, dtype=torch.bool, device=device) if attention_mask is None else attention_mask.bool()
        if not bool(mask[:, -1].all()):
            raise ValueError("generate expects LEFT-padded prompts: attention_mask[:, -1] must be all True")
        if self.max_seq_len and P + max_new_tokens > self.max_seq_len:
            raise ConfigError(f"prompt ({P} tokens) + max_new_tokens ({max_new_tokens}) exceeds the LM's "
                              f"max_position_embeddings ({self.max_seq_len})")
        tokens: list[list[int]] = [[] for _ in range(B)]
        step_logits: list[list[torch.Tensor]] | None = [[] for _ in range(B)] if return_logits else None
        V = self.n_embeddings
        if max_new_tokens <= 0:
            return finish(tokens, step_logits, V)

        rows = list(range(B))  # original row index of each still-active batch row
        cache = T.DynamicCache(config=self.model.config) if use_cache else None
        seq = inputs_embeds
        logits = self(inputs_embeds=seq, attention_mask=mask, cache=cache, logits_to_keep=1)[:, -1]  # (B, V)
        for step in range(max_new_tokens):
            next_tok = pick_next_token(rows, logits, temperature, top_k, top_p, generator, rescorer)  # (b,)
            keep = record_step(rows, next_tok, logits, tokens, step_logits, eos_id)
            if not keep or step == max_new_tokens - 1:
                break
            if len(keep) < len(rows):  # drop finished rows so they cost nothing from now on
                idx = torch.tensor(keep, device=device)
                rows = [rows[j] for j in keep]
                next_tok, mask = next_tok[idx], mask[idx]
                if cache is not None:
                    cache.batch_select_indices(idx)
                else:
                    seq = seq[idx]
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)  # (b, T+1)
            new = self.embed_tokens(next_tok[:, None])  # (b, 1, D)
            if cache is not None:
                logits = self(inputs_embeds=new, attention_mask=mask, cache=cache)[:, -1]
            else:
                seq = torch.cat([seq, new.to(seq.dtype)], dim=1)
                logits = self(inputs_embeds=seq, attention_mask=mask, logits_to_keep=1)[:, -1]
        return finish(tokens, step_logits, V)
