"""Frozen-encoder feature cache: cached states give the model exactly what recomputing gives.

`audiollm features` encodes each clip once; training with ``data.feature_cache`` reads the
states instead of running the encoder; a changed, missing or mismatched clip or setting is a
clear error, never silently wrong features.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")

from helpers import gen, tiny_model_section, write_config

from audiollm.audio import load_audio, pad_batch  # noqa: E402
from audiollm.cli.parser import main  # noqa: E402
from audiollm.data.batching import ExampleBuilder, collate  # noqa: E402
from audiollm.data.feature_cache import FeatureCache, build_feature_cache, frame_window  # noqa: E402
from audiollm.data.manifest import read_manifest  # noqa: E402
from audiollm.errors import AudioLLMError, ConfigError  # noqa: E402
from audiollm.models import (  # noqa: E402
    AudioLLM,
    AudioLLMConfig,
    hub,  # noqa: E402
)
from audiollm.tokenizers.text import TextTokenizer  # noqa: E402
from audiollm.training.config import load_config  # noqa: E402
from audiollm.training.dry_run import dry_run  # noqa: E402
from audiollm.training.loop import train


def whisper_config(**options) -> AudioLLMConfig:
    cfg = AudioLLMConfig.tiny(audio_encoder="whisper")
    for k, v in options.items():
        setattr(cfg.audio_encoder_config, k, v)
    return cfg


def clips(corpus: Path) -> list[str]:
    return sorted({row["audio"] for row in read_manifest(corpus / "train.jsonl")})


@pytest.mark.parametrize("options", [{}, {"layer": 1}, {"layer_weighting": True}])
def test_cached_states_reproduce_the_encoder_output(tmp_path, toy_corpus_shared, options):
    cfg = whisper_config(**options)
    paths = clips(toy_corpus_shared)
    report = build_feature_cache(cfg, paths, tmp_path / "cache", batch_size=3, storage="float32", progress=False)
    assert (report.clips, report.computed, report.missing) == (len(paths), len(paths), 0)
    model = AudioLLM(cfg).eval()
    if options.get("layer_weighting"):  # non-uniform weights, so a wrong layer order would show
        model.audio_encoder.layer_weights.data = torch.tensor([0.3, -1.0, 2.0])
    cache = FeatureCache(tmp_path / "cache")
    wavs = [load_audio(p) for p in paths[:5]]
    audio, lengths = pad_batch(wavs)
    states, frames = pad_batch([cache.load(p).states for p in paths[:5]])
    assert states.shape[2] == (3 if options.get("layer_weighting") else 1)  # tiny whisper: 2 layers + embeddings
    with torch.no_grad():
        direct, direct_len = model.encode_audio(audio, lengths)
        cached, cached_len = model.projector(*model.encode_frames(None, lengths, states, frames))
    assert torch.equal(direct_len, cached_len)
    for i, n in enumerate(direct_len.tolist()):
        torch.testing.assert_close(cached[i, :n], direct[i, :n], atol=1e-5, rtol=1e-5)


def test_training_loss_from_the_cache_equals_recomputing(tmp_path, toy_corpus_shared):
    cfg = whisper_config()
    rows = read_manifest(toy_corpus_shared / "train.jsonl")
    build_feature_cache(cfg, [r["audio"] for r in rows], tmp_path / "cache", storage="float32", progress=False)
    tokenizer = TextTokenizer.train([r["answer"] for r in rows], vocab_size=300)
    cfg.lm_config.vocab_size = tokenizer.vocab_size
    model = AudioLLM(cfg).eval()
    losses = []
    for features in (None, FeatureCache(tmp_path / "cache")):
        build = ExampleBuilder(rows, tokenizer, seed=3, max_audio_seconds=10.0, features=features)
        batch = collate([build(i, i) for i in range(8)], tokenizer.pad_id)
        with torch.no_grad():
            out = model(**batch)
        losses.append(float(out.loss_sum) / int(out.n_targets))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_long_clips_are_cropped_in_frames():
    # A 2.5 s clip with 125 frames (50 per second): a 1 s window at 0.5 s is frames 25..75.
    assert frame_window(125, 40000, 8000, 16000) == (25, 75)
    assert frame_window(125, 40000, 0, 16000) == (0, 50)
    assert frame_window(125, 40000, 24000, 16000) == (75, 125)
    assert frame_window(3, 40000, 39999, 1) == (2, 3)  # never an empty window


def test_cropped_cached_example_keeps_targets_and_duration(tmp_path, toy_corpus_shared):
    cfg = whisper_config()
    rows = read_manifest(toy_corpus_shared / "train.jsonl")
    build_feature_cache(cfg, [r["audio"] for r in rows], tmp_path / "cache", progress=False)
    tokenizer = TextTokenizer.train([r["answer"] for r in rows], vocab_size=300)
    cache = FeatureCache(tmp_path / "cache")
    full = ExampleBuilder(rows, tokenizer, max_audio_seconds=10.0, features=cache)(0, 0)
    cropped = ExampleBuilder(rows, tokenizer, max_audio_seconds=0.3, features=cache)(0, 0)
    assert cropped["input_ids"] == full["input_ids"]
    assert cropped["seconds"] == pytest.approx(0.3) and full["seconds"] > 0.45
    assert 14 <= cropped["encoder_states"].shape[0] <= 16 < full["encoder_states"].shape[0]  # ~50 frames a second
    assert "audio" not in cropped and cropped["samples"] == round(0.3 * 16000)


def test_rerun_encodes_only_new_or_changed_clips_and_counts_missing(tmp_path, toy_corpus_shared):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(toy_corpus_shared, corpus)
    paths = clips(corpus)
    cfg = whisper_config()
    build_feature_cache(cfg, paths, tmp_path / "cache", progress=False)
    again = build_feature_cache(cfg, paths, tmp_path / "cache", progress=False)
    assert (again.computed, again.already_cached) == (0, len(paths))
    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))  # the file changed
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(AudioLLMError, match="changed since it was cached"):
        cache.load(paths[0])
    Path(paths[1]).unlink()
    third = build_feature_cache(cfg, paths, tmp_path / "cache", progress=False)
    assert (third.computed, third.missing, third.first_missing) == (1, 1, paths[1])
    cache.load(paths[0])  # refreshed
    with pytest.raises(AudioLLMError, match="not in feature cache"):
        cache.load(str(tmp_path / "elsewhere.wav"))


def test_mismatched_or_uncacheable_settings_are_config_errors(tmp_path, toy_corpus_shared):
    paths = clips(toy_corpus_shared)[:2]
    build_feature_cache(whisper_config(), paths, tmp_path / "cache", progress=False)
    with pytest.raises(ConfigError, match="layer: cache -1 vs config 1"):
        FeatureCache(tmp_path / "cache").check_matches(whisper_config(layer=1))
    with pytest.raises(AudioLLMError, match="already holds features"):
        build_feature_cache(whisper_config(layer=1), paths, tmp_path / "cache", progress=False)
    with pytest.raises(ConfigError, match="trained with the model"):
        build_feature_cache(AudioLLMConfig.tiny(), paths, tmp_path / "other", progress=False)
    with pytest.raises(ConfigError, match="freeze is false"):
        build_feature_cache(whisper_config(freeze=False), paths, tmp_path / "other", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("user data")
    with pytest.raises(AudioLLMError, match="not a feature cache"):
        build_feature_cache(whisper_config(), paths, tmp_path / "full", progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "user data"
    with pytest.raises(AudioLLMError, match="no features.json"):
        FeatureCache(tmp_path / "nowhere")


def test_cli_features_then_train_from_the_cache(tmp_path, toy_corpus_shared, capsys):
    section = tiny_model_section("whisper", lm="llama")
    config = write_config(tmp_path, toy_corpus_shared, model=section, data={"valid": ""}, max_steps=2, batch_size=4)
    cache = tmp_path / "cache"
    manifests = [str(toy_corpus_shared / "train.jsonl"), str(toy_corpus_shared / "valid.jsonl")]
    assert main(["features", str(config), *manifests, "--out", str(cache), "--no-progress"]) == 0
    out = capsys.readouterr().out
    n = len({r["audio"] for m in manifests for r in read_manifest(m)})
    assert f"{n} clips: {n} encoded" in out and "data.feature_cache=" in out
    overrides = [f"data.feature_cache={cache}", "data.augment=false", f"data.valid={manifests[1]}",
                 "train.eval_every=2", "train.eval_examples=4"]
    assert dry_run(load_config(config, overrides))["first_batch"]
    final = train(load_config(config, overrides), progress=False)
    model, tokenizer = hub.load(final)  # the saved model still takes raw audio
    assert gen(model, torch.zeros(1, 8000), torch.tensor([8000]), [tokenizer.prompt_ids("Q?")],
                          max_new_tokens=2, eos_id=tokenizer.eos_id)
    # Bad setups are one-line errors before any training.
    assert main(["train", str(config), f"data.feature_cache={cache}"]) == 2
    assert "set data.augment=false" in capsys.readouterr().err
    assert main(["train", str(config), f"data.feature_cache={cache}", "data.augment=false",
                 "model.audio_encoder_config.layer=1"]) == 2
    assert "another encoder setting" in capsys.readouterr().err
    assert main(["features", str(tmp_path / "nope"), manifests[0], "--out", str(cache)]) == 2
    assert "nope" in capsys.readouterr().err
