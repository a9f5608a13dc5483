"""Conversion between our `Decoder` and `transformers.LlamaForCausalLM` (same config, same weights).

transformers is an optional dependency (``pip install 'audiollm[hf]'``), imported only when a
conversion is called. Used by the HF-parity test and `benchmarks/vs_hf_llama.py`, and the
way to start from (or export to) a Llama-architecture checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from .lm import Decoder, DecoderConfig

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM

# Our parameter name → HF name, per block ("blocks.{i}." ↔ "model.layers.{i}.").
_HF_BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn.q_proj.weight": "self_attn.q_proj.weight",
    "attn.k_proj.weight": "self_attn.k_proj.weight",
    "attn.v_proj.weight": "self_attn.v_proj.weight",
    "attn.o_proj.weight": "self_attn.o_proj.weight",
    "mlp_norm.weight": "post_attention_layernorm.weight",
    "mlp.gate_proj.weight": "mlp.gate_proj.weight",
    "mlp.up_proj.weight": "mlp.up_proj.weight",
    "mlp.down_proj.weight": "mlp.down_proj.weight",
}


def _to_hf_name(name: str) -> str:
    if name == "embed.weight":
        return "model.embed_tokens.weight"
    if name == "norm.weight":
        return "model.norm.weight"
    if name == "lm_head.weight":
        return "lm_head.weight"
    _, idx, rest = name.split(".", 2)  # "blocks", "3", "attn.q_proj.weight"
    return f"model.layers.{idx}.{_HF_BLOCK_NAMES[rest]}"


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
    state = {_to_hf_name(k): v.detach().clone() for k, v in decoder.state_dict().items()}
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
    decoder.load_state_dict({k: hf_state[_to_hf_name(k)].detach().clone() for k in decoder.state_dict()})
    return decoder.to(hf_model.dtype)
