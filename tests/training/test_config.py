"""Configs: YAML + dotted overrides, strict keys, errors that name key and allowed values."""

import json
import types
from pathlib import Path

import pytest
import soundfile as sf
from helpers import REPO, tone

from audiollm.cli.parser import main
from audiollm.errors import ConfigError
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint
from audiollm.training.config import load_config
from audiollm.training.kinds import MODEL_KINDS

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def stand_ins(path: Path) -> list[str]:
    """Overrides swapping a config's pretrained checkpoint for a tiny random one of its kind
    (no real weights in the tests) and dropping its feature cache; tests/test_fsdd_recipe.py
    runs the cached path itself."""
    model = load_config(path).model
    if not getattr(getattr(model, "audio_encoder_config", None), "model", None):
        return []
    return [f"model.audio_encoder_config.model={tiny_checkpoint(model.audio_encoder)}", "data.feature_cache="]


def audio_answer_stand_ins(folder: Path) -> list[str]:
    """A tiny codec, tts rows of two clips in ``folder`` (train and valid) and their codes cache:
    the overrides that put them in place of a config's codec and cache."""
    from audiollm.inference.codec import CodecModel, build_codes_cache
    from audiollm.models.codec import AudioCodec, CodecConfig
    from audiollm.models.hub import save_model

    codec = AudioCodec(CodecConfig.tiny())
    save_model(folder / "codec", codec.eval())
    rows = []
    for i in range(2):
        sf.write(folder / f"say{i}.wav", tone(0.5, 300.0 + 100 * i), 16000)
        rows.append({"task": "tts", "audio": f"say{i}.wav", "text": f"Sentence number {i}.", "voice": "test"})
        rows.append({"task": "text_to_audio", "audio": f"say{i}.wav", "caption": f"A tone, take {i}."})
    for split in ("train", "valid"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_codes_cache(CodecModel(codec), {folder / r["audio"] for r in rows}, folder / "codes", progress=False)
    return [f"model.audio_answer.codec={folder / 'codec'}", "model.audio_answer.num_codebooks=0",
            "model.audio_answer.codebook_size=0", f"data.codes_cache={folder / 'codes'}"]


def test_overrides_parse_types():
    c = load_config(None, ["train.lr=3e-4", "train.max_steps=7", "data.augment=false", "output_dir=runs/x"])
    assert c.train.lr == 3e-4 and c.train.max_steps == 7 and c.data.augment is False and c.output_dir == "runs/x"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "unknown config key 'train.lrr'; valid keys under 'train'"),
        ("nope=1", "unknown config key 'nope'"),
        ("train.mixed_precision=fp8", "allowed: auto, no, bf16, fp16"),
        ("train.lr=abc", "train.lr must be a number"),
        ("train.max_steps=0", "train.max_steps must be ≥ 1"),
        ("train", "must look like key.sub=value"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, [override])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load_and_build(path):

    text = path.read_text()
    assert text.startswith("#"), "each config opens with a comment header"
    cfg = load_config(path, stand_ins(path))
    kind = MODEL_KINDS[cfg.model_type]
    model = kind.build(cfg, types.SimpleNamespace(vocab_size=500))
    assert type(model).__name__ == {"audiollm": "AudioLLM", "mulan": "MuLaN", "codec": "AudioCodec"}[cfg.model_type]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_dry_run(path, toy_corpus_shared, capsys, tmp_path):
    """`audiollm train CONFIG --dry-run` works for every shipped config (data: the toy corpus;
    event-answer rows, which need notes, written here)."""
    toy = toy_corpus_shared
    tasks = set(load_config(path).data.tasks)
    if tasks & {"text_to_midi", "transcription"}:
        toy = tmp_path
        sf.write(toy / "clip.wav", tone(2.0), 16000)
        rows = [{"task": "text_to_midi", "question": f"a cello in D minor, take {i}", "program": 42,
                 "notes": [[0.25 * k, 0.25 * k + 0.2, 50 + k + i, 80] for k in range(8)]} for i in range(4)]
        if "transcription" in tasks:
            rows = [{"task": "transcription", "audio": "clip.wav", "program": r["program"], "notes": r["notes"]}
                    for r in rows]
        for split in ("train", "valid"):
            (toy / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    codec = []
    if load_config(path).model_type == "audiollm" and load_config(path).model.audio_answer.enabled:
        toy, codec = tmp_path, audio_answer_stand_ins(tmp_path)
    code = main(["train", str(path), f"data.train={toy / 'train.jsonl'}", f"data.valid={toy / 'valid.jsonl'}",
                 "data.cache_audio=false", "train.batch_size=4", "train.grad_accum=1", *stand_ins(path), *codec,
                 "--dry-run"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "parameters:" in out.out and "first batch:" in out.out and "dry run: nothing was trained" in out.out
