"""A LLaMA-style decoder-only language model, written out in full.

Reads top-down: config → RMSNorm → rotary embeddings → attention → SwiGLU MLP →
TransformerBlock → KV cache → Decoder (forward; decoding is `audiollm.decoding.loop`).

The layer layout, RoPE convention (rotate-half, as in HF Llama) and norm placement match
HF Llama exactly, so weights convert both ways (`hf_llama.decoder_to_hf_llama`,
`hf_llama.hf_llama_to_decoder`) and logits agree to float32 rounding. `TransformerBlock(causal=False)` is also the audio
encoder's block: there is one attention implementation in the codebase.

Masks. Every forward takes an optional ``attention_mask`` (B, T_total) of *valid keys*
(True = a real token). Real queries never attend to padded keys. Padded *queries* (whose every
key may be masked, e.g. left padding under a causal mask) are always allowed to attend to
themselves, so no softmax row is empty and no NaN appears; their outputs are ignored. A
right-padded batch (training) needs no mask at all under causal attention: a real query never
reaches the pads after it, so SDPA's ``is_causal`` path runs (pad queries then also see earlier
pads, which changes nothing that is used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from audiollm.errors import ConfigError
from audiollm.models.registry import register_language_model

# enable_gqa (grouped K/V heads without copying them) arrived in torch 2.5.
_SDPA_HAS_GQA = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)
_HAS_FUSED_RMS_NORM = hasattr(F, "rms_norm")  # torch >= 2.4
# On CPU, SDPA's bf16 flash kernel costs more than the plain matmul-softmax-matmul ("math")
# path when training on short sequences: forward + backward 1.1-2.3x slower up to 160 keys,
# 1.1-1.6x faster from 192 keys. In float32 the two are within ~20% of each other, flash mostly
# ahead, so float32 keeps flash. benchmarks/attention_backend.py measures this on your machine.
CPU_MATH_ATTENTION_MAX_KEYS = 160


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """`F.scaled_dot_product_attention`, on the math backend when that is the faster one: a CPU
    training step (gradients wanted) in bf16/fp16 over at most `CPU_MATH_ATTENTION_MAX_KEYS`
    keys. Both backends compute the same function; decoding, float32 and GPU runs keep
    PyTorch's choice."""
    if (q.device.type == "cpu" and _cpu_compute_dtype(q) in (torch.bfloat16, torch.float16)
            and k.shape[-2] <= CPU_MATH_ATTENTION_MAX_KEYS and torch.is_grad_enabled() and q.requires_grad):
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, **kwargs)
    return F.scaled_dot_product_attention(q, k, v, **kwargs)


def _cpu_compute_dtype(q: torch.Tensor) -> torch.dtype:
    """The dtype SDPA will compute in on CPU: autocast's when it is on (q itself may still be
    float32 there, e.g. after RoPE), else q's."""
    try:
        enabled = torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        enabled = torch.is_autocast_cpu_enabled()
    if not enabled:
        return q.dtype
    try:
        return torch.get_autocast_dtype("cpu")
    except AttributeError:  # torch < 2.4
        return torch.get_autocast_cpu_dtype()


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


@dataclass
class DecoderConfig:
    vocab_size: int = 2048  # token ids the embedding/LM head cover (tokenizer vocab incl. specials)
    d_model: int = 256  # residual stream width
    n_layers: int = 4  # number of transformer blocks
    n_heads: int = 8  # query heads; head_dim = d_model // n_heads
    n_kv_heads: int = 4  # key/value heads (grouped-query attention); must divide n_heads
    ffn_hidden: int = 704  # SwiGLU inner width (~8/3 · d_model, rounded to a multiple of 64)
    max_seq_len: int = 2048  # longest prompt + generation generate() accepts (HF max_position_embeddings)
    rope_theta: float = 10000.0  # RoPE base frequency
    norm_eps: float = 1e-5  # RMSNorm epsilon
    tie_embeddings: bool = True  # LM head reuses the token embedding matrix
    dropout: float = 0.0  # dropout on attention probabilities and residual branches (training only)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"lm_config.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ConfigError(
                f"lm_config.d_model ({self.d_model}) must be divisible by lm_config.n_heads ({self.n_heads})"
            )
        if self.head_dim % 2 != 0:
            raise ConfigError(f"lm_config.d_model / n_heads must be even for RoPE, got head_dim={self.head_dim}")
        if self.n_heads % self.n_kv_heads != 0:
            raise ConfigError(
                f"lm_config.n_kv_heads ({self.n_kv_heads}) must divide lm_config.n_heads ({self.n_heads})"
            )
        if not self.rope_theta > 0:
            raise ConfigError(f"lm_config.rope_theta must be > 0, got {self.rope_theta}")
        if not self.norm_eps > 0:
            raise ConfigError(f"lm_config.norm_eps must be > 0, got {self.norm_eps}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lm_config.dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def tiny(cls) -> "DecoderConfig":
        """The test-size config (hidden 32, 2 layers, GQA 4→2 heads)."""
        return cls(vocab_size=128, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=64, max_seq_len=512)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """Root-mean-square norm (no mean subtraction, no bias), computed in float32 like HF Llama."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same formula; a fused kernel where torch has one (e.g. CUDA). ONNX export (opset < 23
        # has no RMSNormalization op) takes the explicit form.
        if _HAS_FUSED_RMS_NORM and not torch.onnx.is_in_onnx_export():
            return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for rotary position embeddings, computed from explicit position ids.

    Computing from position ids (rather than slicing a table by offset) is what makes left
    padding work: a left-padded row's first real token gets position 0.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        self.head_dim, self.theta = head_dim, theta
        self.register_buffer("inv_freq", self._inv_freq(), persistent=False)

    def _inv_freq(self, device=None) -> torch.Tensor:
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=device) / self.head_dim
        return 1.0 / (self.theta**exponents)

    def _apply(self, fn, recurse=True):
        # model.to(torch.bfloat16) must not round the frequencies (angles = position × inv_freq):
        # move the buffer, keep it float32.
        super()._apply(fn, recurse)
        self.inv_freq = self._inv_freq(self.inv_freq.device)
        return self

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq  # (B, T, head_dim/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, head_dim): rotate-half layout
        return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, T, H, head_dim) queries/keys by per-position angles (cos/sin: (B, T, head_dim))."""
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)  # (B, T, 1, head_dim): broadcast over heads
    return x * cos + rotate_half(x) * sin


def make_attention_mask(
    key_valid: torch.Tensor | None, q_len: int, k_len: int, causal: bool, device: torch.device | None = None
) -> torch.Tensor | None:
    """Boolean SDPA mask (B or 1, 1, q_len, k_len), True = may attend; None when none is needed.

    Queries are the *last* q_len of the k_len keys (that is how a KV cache grows), so query i
    sits at key slot ``k_len - q_len + i``. Each query may always see its own slot, which
    keeps every row non-empty (no NaN for padded queries). Returns None when the plain
    ``is_causal`` / unmasked SDPA path gives the same result at every real query (no padding;
    or right padding under a causal mask), so the fast kernels are used.
    """
    if key_valid is not None and bool(key_valid.all()):
        key_valid = None
    if key_valid is not None and causal and q_len == k_len and bool((key_valid[:, 1:] <= key_valid[:, :-1]).all()):
        key_valid = None  # right padding: is_causal alone keeps real queries off the pads after them
    if key_valid is None and (not causal or q_len == 1 or q_len == k_len):
        return None
    q_slot = torch.arange(k_len - q_len, k_len, device=device)[:, None]  # (q_len, 1)
    k_slot = torch.arange(k_len, device=device)[None, :]  # (1, k_len)
    allowed = torch.ones(1, 1, q_len, k_len, dtype=torch.bool, device=device)
    if key_valid is not None:
        allowed = allowed & key_valid[:, None, None, :]  # (B, 1, q_len, k_len)
    if causal:
        allowed = allowed & (k_slot <= q_slot)
    return allowed | (k_slot == q_slot)


class Attention(nn.Module):
    """Multi-head attention with grouped-query K/V, RoPE and `F.scaled_dot_product_attention`."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, dropout: float, causal: bool):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = d_model // n_heads
        self.causal = causal
        self.dropout = dropout
        # q, k and v come out of one GEMM: rows [q heads | k heads | v heads] of the weight.
        self.qkv_proj = nn.Linear(d_model, (n_heads + 2 * n_kv_heads) * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: "KVCache | None" = None,
        layer_idx: int = 0,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        qkv = self.qkv_proj(x).view(B, T, self.n_heads + 2 * self.n_kv_heads, self.head_dim)  # (B, T, H_all, hd)
        qk, v = qkv.split([self.n_heads + self.n_kv_heads, self.n_kv_heads], dim=2)
        qk = apply_rope(qk, cos, sin)  # queries and keys rotated in one pass: (B, T, n_heads + n_kv, hd)
        q, k = qk.split([self.n_heads, self.n_kv_heads], dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, hd)
        if cache is not None:
            k, v = cache.update(layer_idx, k, v)  # (B, n_kv, T_total, hd)
        # Without a mask, causal attention is SDPA's is_causal (queries == keys) or no mask at all
        # (a single new query sees every cached key); make_attention_mask guarantees one of these.
        is_causal = mask is None and self.causal and T > 1
        dropout_p = self.dropout if self.training else 0.0
        rep = self.n_heads // self.n_kv_heads
        if rep == 1:
            y = attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
        elif T == 1:
            # One new token (decoding): the rep query heads sharing a K/V head become rep "queries"
            # of that head, so the cache is read as is instead of being copied rep times.
            q = q.view(B, self.n_kv_heads, rep, self.head_dim)  # (B, n_kv, rep, hd)
            y = attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, n_kv, rep, hd)
            # reshape, not view: CUDA's SDPA kernels may return (B, n_kv, rep, hd) non-contiguous.
            y = y.reshape(B, self.n_heads, 1, self.head_dim)  # (B, n_heads, 1, hd)
        elif mask is None and _SDPA_HAS_GQA:
            y = attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal, enable_gqa=True)
        else:
            k = k[:, :, None].expand(B, self.n_kv_heads, rep, *k.shape[2:]).reshape(B, self.n_heads, -1, self.head_dim)
            v = v[:, :, None].expand(B, self.n_kv_heads, rep, *v.shape[2:]).reshape(B, self.n_heads, -1, self.head_dim)
            y = attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, d_model)
        return self.o_proj(y)


class SwiGLU(nn.Module):
    """LLaMA's gated MLP: down(silu(gate(x)) * up(x)), gate and up computed by one GEMM."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate_up_proj = nn.Linear(d_model, 2 * hidden, bias=False)  # rows [gate | up]
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)  # (B, T, hidden) each
        return self.down_proj(F.silu(gate) * up)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)). causal=False for encoders."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int,
        ffn_hidden: int,
        norm_eps: float = 1e-5,
        dropout: float = 0.0,
        causal: bool = True,
    ):
        super().__init__()
        self.attn_norm = RMSNorm(d_model, norm_eps)
        self.attn = Attention(d_model, n_heads, n_kv_heads, dropout, causal)
        self.mlp_norm = RMSNorm(d_model, norm_eps)
        self.mlp = SwiGLU(d_model, ffn_hidden)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: "KVCache | None" = None,
        layer_idx: int = 0,
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), cos, sin, mask, cache, layer_idx))
        return x + self.drop(self.mlp(self.mlp_norm(x)))


def init_weights(module: nn.Module, n_layers: int, std: float = 0.02) -> None:
    """GPT-2/nanoGPT init: N(0, 0.02) weights, zero biases; residual output projections
    (attention o_proj, MLP down_proj) scaled by 1/sqrt(2·n_layers) so the residual stream's
    variance does not grow with depth."""
    for name, p in module.named_parameters():
        if p.dim() < 2:
            continue  # norms keep their ones, biases are zeroed below
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            nn.init.normal_(p, mean=0.0, std=std / math.sqrt(2 * n_layers))
        else:
            nn.init.normal_(p, mean=0.0, std=std)
    for name, p in module.named_parameters():
        if name.endswith(".bias"):
            nn.init.zeros_(p)


# ---------------------------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------------------------


def fuse_split_projections(state: dict[str, torch.Tensor], expected: set[str] | None = None) -> dict[str, torch.Tensor]:
    """Rewrite a state dict saved before the projections were fused (audiollm ≤ 0.1.0).

    ``…attn.{q,k,v}_proj.weight`` become ``…attn.qkv_proj.weight`` (rows q, k, v) and
    ``…mlp.{gate,up}_proj.weight`` become ``…mlp.gate_up_proj.weight`` (rows gate, up), so
    model directories written by earlier versions keep loading. Other keys pass through; with
    ``expected`` (the model's own keys), only matrices whose fused name the model has are fused,
    so a pretrained HF LM's own ``q_proj``/``gate_proj`` inside the model are left alone.
    """
    out = dict(state)
    for key in list(state):
        if key.endswith("attn.q_proj.weight"):
            stem = key[: -len("q_proj.weight")]
            parts = [f"{stem}{n}_proj.weight" for n in "qkv"]
            if all(p in out for p in parts) and (expected is None or f"{stem}qkv_proj.weight" in expected):
                out[f"{stem}qkv_proj.weight"] = torch.cat([out.pop(p) for p in parts], dim=0)
        elif key.endswith("mlp.gate_proj.weight"):
            stem = key[: -len("gate_proj.weight")]
            parts = [f"{stem}gate_proj.weight", f"{stem}up_proj.weight"]
            if all(p in out for p in parts) and (expected is None or f"{stem}gate_up_proj.weight" in expected):
                out[f"{stem}gate_up_proj.weight"] = torch.cat([out.pop(p) for p in parts], dim=0)
    return out


class KVCache:
    """Preallocated keys/values, one (B, n_kv_heads, max_len, head_dim) pair per layer.

    ``length`` is the write index: slots [0, length) hold the tokens seen so far (padding
    included, so slots line up with the attention mask's columns). Each layer writes its new
    keys/values at [length, length + T); `Decoder.forward` advances ``length`` once after the
    last layer. `select_rows` drops finished sequences from a batch.
    """

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.max_len = max_len
        self.length = 0

    def update(self, layer_idx: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write (B, n_kv, T, hd) new keys/values; return all keys/values so far (B, n_kv, length+T, hd)."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} tokens > max_len {self.max_len}")
        self.k[layer_idx][:, :, start:end] = k
        self.v[layer_idx][:, :, start:end] = v
        return self.k[layer_idx][:, :, :end], self.v[layer_idx][:, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep only batch rows ``rows`` (a long index), e.g. the still-unfinished sequences."""
        self.k = [t.index_select(0, rows) for t in self.k]
        self.v = [t.index_select(0, rows) for t in self.v]


# ---------------------------------------------------------------------------------------------
# The decoder
# ---------------------------------------------------------------------------------------------


@register_language_model("llama", DecoderConfig)
class Decoder(nn.Module):
    """Token embedding → n_layers causal TransformerBlocks → RMSNorm → LM head."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.d_model = config.d_model
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                config.d_model,
                config.n_heads,
                config.n_kv_heads,
                config.ffn_hidden,
                config.norm_eps,
                config.dropout,
                causal=True,
            )
            for _ in range(config.n_layers)
        )
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        # Tied: the head is F.linear with the embedding matrix, so there is one tensor, one
        # state-dict entry, and nothing shared to de-duplicate when saving.
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.rope = RotaryEmbedding(config.head_dim, config.rope_theta)
        init_weights(self, config.n_layers)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids → (B, T, d_model) embeddings (what `inputs_embeds` expects)."""
        return self.embed(input_ids)

    def new_cache(self, batch_size: int, max_len: int, dtype: torch.dtype | None = None, device=None) -> KVCache:
        c = self.config
        return KVCache(
            c.n_layers,
            batch_size,
            c.n_kv_heads,
            max_len,
            c.head_dim,
            dtype=dtype or self.embed.weight.dtype,
            device=device or self.embed.weight.device,
        )

    @property
    def max_seq_len(self) -> int:
        """Longest prefix + answer the model decodes (`audiollm.decoding.loop` checks it)."""
        return self.config.max_seq_len

    @property
    def output_weight(self) -> torch.Tensor | None:
        """The LM head's (V, d_model) matrix (the embedding matrix when tied), or None if a
        head put in its place is not a plain bias-free linear map (training then uses full logits)."""
        if self.lm_head is None:
            return self.embed.weight
        plain = type(self.lm_head) is nn.Linear and self.lm_head.bias is None
        return self.lm_head.weight if plain else None

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        logits_to_keep: int = 0,
    ) -> torch.Tensor:
        """Next-token logits (B, T, V) for T new tokens; ``cache`` (if given) is updated in place.

        attention_mask: (B, T_total) bool, True = real token, over cached + new tokens.
        position_ids: (B, T); default counts real tokens only (cumsum of the mask − 1), which
        is right for both right padding (training) and left padding (batched generation).
        logits_to_keep: if > 0, only the last that many positions go through the LM head.
        """
        x = self.hidden_states(input_ids, inputs_embeds, attention_mask, position_ids, cache)
        if logits_to_keep > 0:
            x = x[:, -logits_to_keep:]
        return F.linear(x, self.embed.weight) if self.lm_head is None else self.lm_head(x)

    def hidden_states(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """The final-norm hidden states (B, T, d_model) that the LM head reads; same arguments
        as `forward`. Training takes its loss from these (`token_loss.linear_cross_entropy_sum`),
        so the head only runs where there is a target."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        B, T, _ = x.shape
        past = cache.length if cache is not None else 0
        k_len = past + T
        if attention_mask is not None:
            if attention_mask.shape != (B, k_len):
                raise ValueError(
                    f"attention_mask must be (B, T_total)=({B}, {k_len}), got {tuple(attention_mask.shape)}"
                )
            attention_mask = attention_mask.bool()
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]  # (B, T)
            else:
                position_ids = torch.arange(past, k_len, device=x.device).expand(B, T)  # (B, T)
        cos, sin = self.rope(position_ids, x.dtype)
        mask = make_attention_mask(attention_mask, T, k_len, causal=True, device=x.device)

        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, mask, cache, i)
        if cache is not None:
            cache.advance(T)
        return self.norm(x)
