"""Conversion between our `Decoder` and `transformers.LlamaForCausalLM` (same config, same weights).

transformers is an optional dependency (``pip install 'audiollm[hf]'``), imported only when a
conversion is called. Used by the HF-parity test and `benchmarks/vs_hf_llama.py`, and the
way to start from (or export to) a Llama-architecture checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from audiollm.errors import ConfigError
from audiollm.models.lm import Decoder, DecoderConfig

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM

# Our parameter name → HF name, per block ("blocks.{i}." ↔ "model.layers.{i}."). Our fused
# projections hold HF's matrices stacked by rows: qkv_proj = [q_proj; k_proj; v_proj] and
# gate_up_proj = [gate_proj; up_proj]; conversion splits (to HF) or concatenates (from HF) them.
_HF_BLOCK_NAMES = {
    "attn_norm.weight": ("input_layernorm.weight",),
    "attn.qkv_proj.weight": ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"),
    "attn.o_proj.weight": ("self_attn.o_proj.weight",),
    "mlp_norm.weight": ("post_attention_layernorm.weight",),
    "mlp.gate_up_proj.weight": ("mlp.gate_proj.weight", "mlp.up_proj.weight"),
    "mlp.down_proj.weight": ("mlp.down_proj.weight",),
}
_HF_TOP_NAMES = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
                 "lm_head.weight": "lm_head.weight"}


def _hf_parts(name: str, c: DecoderConfig) -> tuple[list[str], list[int] | None]:
    """The HF names of the matrices our parameter ``name`` holds, and their row counts when
    there are several (a fused projection; GQA: k and v have n_kv_heads heads)."""
    if name in _HF_TOP_NAMES:
        return [_HF_TOP_NAMES[name]], None
    _, idx, rest = name.split(".", 2)  # "blocks", "3", "attn.qkv_proj.weight"
    hf_names = [f"model.layers.{idx}.{n}" for n in _HF_BLOCK_NAMES[rest]]
    if rest == "attn.qkv_proj.weight":
        return hf_names, [c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim]
    if rest == "mlp.gate_up_proj.weight":
        return hf_names, [c.ffn_hidden, c.ffn_hidden]
    return hf_names, None


def _to_hf_state(state: dict[str, torch.Tensor], c: DecoderConfig) -> dict[str, torch.Tensor]:
    """A copy of our state dict under HF Llama's names (fused projections split)."""
    out = {}
    for name, value in state.items():
        hf_names, rows = _hf_parts(name, c)
        parts = value.detach().split(rows, dim=0) if rows else [value.detach()]
        out.update({n: part.clone() for n, part in zip(hf_names, parts)})
    return out


def _from_hf_state(hf_state: dict[str, torch.Tensor], c: DecoderConfig, names: list[str]) -> dict[str, torch.Tensor]:
    """A copy of HF Llama's weights under our parameter ``names`` (HF matrices concatenated)."""
    return {name: torch.cat([hf_state[n].detach() for n in _hf_parts(name, c)[0]], dim=0) for name in names}


def _import_transformers():
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("converting to/from HF Llama needs transformers: pip install 'audiollm[hf]'") from e
    return transformers


def decoder_to_hf_llama(decoder: Decoder) -> "LlamaForCausalLM":
    """An HF `LlamaForCausalLM` with the same config and a copy of the same weights."""
    transformers = _import_transformers()
    c = decoder.config
    hf_config = transformers.LlamaConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.d_model,
        intermediate_size=c.ffn_hidden,
        num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads,
        num_key_value_heads=c.n_kv_heads,
        head_dim=c.head_dim,
        hidden_act="silu",
        max_position_embeddings=c.max_seq_len,
        rms_norm_eps=c.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
        tie_word_embeddings=c.tie_embeddings,
        attention_dropout=c.dropout,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    hf = transformers.LlamaForCausalLM(hf_config)
    state = _to_hf_state(decoder.state_dict(), c)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (c.tie_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"HF Llama conversion mismatch: missing {missing}, unexpected {unexpected}")
    if c.tie_embeddings:
        hf.tie_weights()
    return hf.to(decoder.embed.weight.dtype).eval()


def hf_llama_to_decoder(hf_model: "LlamaForCausalLM") -> Decoder:
    """A `Decoder` with the config and a copy of the weights of an HF `LlamaForCausalLM`."""
    hc = hf_model.config
    rope = getattr(hc, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise ConfigError(f"HF Llama rope_type {rope.get('rope_type')!r} is not supported (allowed: 'default')")
    if getattr(hc, "attention_bias", False) or getattr(hc, "mlp_bias", False) or hc.hidden_act != "silu":
        raise ConfigError("HF Llama with attention_bias/mlp_bias or hidden_act != 'silu' is not supported")
    if getattr(hc, "head_dim", None) not in (None, hc.hidden_size // hc.num_attention_heads):
        raise ConfigError(f"HF Llama head_dim {hc.head_dim} != hidden_size / num_attention_heads is not supported")
    config = DecoderConfig(
        vocab_size=hc.vocab_size,
        d_model=hc.hidden_size,
        n_layers=hc.num_hidden_layers,
        n_heads=hc.num_attention_heads,
        n_kv_heads=hc.num_key_value_heads or hc.num_attention_heads,
        ffn_hidden=hc.intermediate_size,
        max_seq_len=hc.max_position_embeddings,
        rope_theta=float(rope.get("rope_theta", getattr(hc, "rope_theta", 10000.0))),
        norm_eps=hc.rms_norm_eps,
        tie_embeddings=bool(hc.tie_word_embeddings),
        dropout=float(hc.attention_dropout or 0.0),
    )
    decoder = Decoder(config)
    hf_state = hf_model.state_dict()
    decoder.load_state_dict(_from_hf_state(hf_state, config, list(decoder.state_dict())))
    return decoder.to(hf_model.dtype)
