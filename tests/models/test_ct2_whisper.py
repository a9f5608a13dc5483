"""CTranslate2 Whisper → transformers: checked against CTranslate2's own converter.

A tiny random transformers Whisper (with non-zero biases, so a misplaced slice shows) is
written to CTranslate2's format by ``ctranslate2.converters.TransformersConverter`` and
converted back by `audiollm convert ct2-whisper`: every tensor must come back exactly, the
result must load as the ``whisper`` audio encoder, and damaged inputs are one-line errors.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
ctranslate2 = pytest.importorskip("ctranslate2")

from helpers import build_tiny_whisper_ct2  # noqa: E402

from audiollm.cli.parser import main  # noqa: E402
from audiollm.models import AudioLLM, AudioLLMConfig  # noqa: E402
from audiollm.models.pretrained.ct2_whisper import (  # noqa: E402
    CT2FormatError,
    convert_ct2_whisper,
    read_ct2_model,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """A folder holding a random Whisper and its CTranslate2 copies (conftest.build_tiny_whisper_ct2)."""
    return tmp_path_factory.mktemp("whisper")


def to_ct2(reference: Path, quantization: str) -> Path:
    return build_tiny_whisper_ct2(reference, quantization)[1]


def test_every_tensor_comes_back_exactly_and_the_model_computes_the_same(reference, tmp_path):
    model, _ = build_tiny_whisper_ct2(reference)
    out = convert_ct2_whisper(to_ct2(reference, "float32"), tmp_path / "back")
    back = transformers.WhisperForConditionalGeneration.from_pretrained(out).eval()
    ours, theirs = back.state_dict(), model.state_dict()
    assert set(ours) == set(theirs)
    for name, tensor in theirs.items():
        assert torch.equal(ours[name], tensor), name
    feats = torch.randn(1, 80, 100)
    ids = torch.tensor([[91, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(back(input_features=feats, decoder_input_ids=ids).logits,
                                   model(input_features=feats, decoder_input_ids=ids).logits, rtol=0, atol=0)
    extractor = json.loads((out / "preprocessor_config.json").read_text())
    assert extractor["feature_size"] == 80 and extractor["chunk_length"] == 1  # 50 positions = a 1 s window
    assert json.loads((out / "converted_from.json").read_text())["spec"] == "WhisperSpec"
    assert not list(tmp_path.glob(".*tmp"))  # the temporary folder was renamed, not left behind


def test_float16_checkpoint_converts_to_the_float16_rounded_weights(reference, tmp_path):
    model, _ = build_tiny_whisper_ct2(reference)
    stored = read_ct2_model(to_ct2(reference, "float16") / "model.bin")
    assert stored.spec == "WhisperSpec" and stored.variables["encoder/conv1/weight"].dtype.name == "float16"
    back = transformers.WhisperForConditionalGeneration.from_pretrained(
        convert_ct2_whisper(to_ct2(reference, "float16"), tmp_path / "back"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor.half().float()), name


def test_special_tokens_come_from_the_checkpoints_tokenizer(reference, tmp_path):
    source = to_ct2(reference, "float32")
    staged = tmp_path / "src"
    staged.mkdir()
    for f in source.iterdir():
        (staged / f.name).write_bytes(f.read_bytes())
    added = [{"id": 7, "content": "<|endoftext|>"}, {"id": 8, "content": "<|startoftranscript|>"}]
    (staged / "tokenizer.json").write_text(json.dumps({"added_tokens": added}))
    out = convert_ct2_whisper(staged, tmp_path / "back")
    config = json.loads((out / "config.json").read_text())
    assert (config["eos_token_id"], config["decoder_start_token_id"]) == (7, 8)
    assert (out / "tokenizer.json").is_file()


def test_converted_checkpoint_is_a_whisper_audio_encoder(reference, tmp_path):
    out = main(["convert", "ct2-whisper", str(to_ct2(reference, "float32")), "--out", str(tmp_path / "w")])
    assert out == 0
    cfg = AudioLLMConfig.tiny(audio_encoder="whisper")
    cfg.audio_encoder_config.model = str(tmp_path / "w")
    model = AudioLLM(cfg).eval()
    hidden, frames = model.encode_frames(0.1 * torch.randn(2, 16000), torch.tensor([16000, 8000]))
    assert hidden.shape[-1] == 64 and frames.tolist() == [50, 25]


def _ct2_blob(spec: str, variables: dict[str, tuple[tuple[int, ...], bytes, int]]) -> bytes:
    """A CTranslate2 model.bin written by hand (version 6), for the error cases."""
    def text(s: str) -> bytes:
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw
    blob = struct.pack("<I", 6) + text(spec) + struct.pack("<II", 1, len(variables))
    for name, (shape, data, dtype) in variables.items():
        blob += text(name) + struct.pack("<B", len(shape)) + struct.pack("<" + "I" * len(shape), *shape)
        blob += struct.pack("<BI", dtype, len(data)) + data
    return blob + struct.pack("<I", 0)


def test_bad_sources_are_one_line_errors(reference, tmp_path, capsys):
    good = to_ct2(reference, "float32") / "model.bin"
    cases = {
        "missing": (tmp_path / "nope", "no such file or directory"),
        "empty dir": (tmp_path / "emptydir", "no model.bin"),
        "zero bytes": (tmp_path / "zero.bin", "truncated"),
        "truncated": (tmp_path / "cut.bin", "truncated"),
        "not ct2": (tmp_path / "text.bin", "not a CTranslate2 model"),
        "not whisper": (tmp_path / "mt.bin", "not a Whisper model"),
        "quantized": (tmp_path / "int8.bin", "quantized"),
        "incomplete": (tmp_path / "part.bin", "encoder/conv1/weight is missing"),
    }
    (tmp_path / "part.bin").write_bytes(_ct2_blob("WhisperSpec", {"decoder/embeddings/weight": ((2, 2), b"\0" * 16, 0)}))
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "zero.bin").write_bytes(b"")
    (tmp_path / "cut.bin").write_bytes(good.read_bytes()[:5000])
    (tmp_path / "text.bin").write_text("hello, not a model\n")
    (tmp_path / "mt.bin").write_bytes(_ct2_blob("TransformerSpec", {"x": ((2,), b"\0" * 8, 0)}))
    (tmp_path / "int8.bin").write_bytes(_ct2_blob("WhisperSpec", {
        "decoder/embeddings/weight": ((2, 2), b"\1" * 4, 1), "encoder/conv1/weight_scale": ((2,), b"\0" * 8, 0)}))
    for name, (source, message) in cases.items():
        assert main(["convert", "ct2-whisper", str(source), "--out", str(tmp_path / "out")]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("audiollm: error:") and message in err and "\n" not in err, (name, err)
        assert not (tmp_path / "out").exists(), name
    (tmp_path / "taken").mkdir()
    assert main(["convert", "ct2-whisper", str(good), "--out", str(tmp_path / "taken")]) == 2
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(CT2FormatError, match="is a directory"):
        (tmp_path / "d" / "model.bin").mkdir(parents=True)
        convert_ct2_whisper(tmp_path / "d", tmp_path / "out")
