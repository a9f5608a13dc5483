"""A codec trains through the one loop: several manifests, validation at every bitrate, exact
resume, a saved model the API and the CLI open; its config's errors are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from helpers import REPO, tone
from safetensors.torch import load_file

import audiollm
from audiollm.cli.parser import main
from audiollm.errors import ConfigError
from audiollm.training.config import load_config
from audiollm.training.kinds import CodecKind
from audiollm.training.loop import train

TINY_CODEC = {"type": "codec", "hop_length": 160, "n_fft": 320, "dim": 16, "intermediate": 32, "encoder_layers": 1,
              "decoder_layers": 1, "quantizer": {"num_codebooks": 2, "codebook_size": 16, "codebook_dim": 8,
                                                 "kmeans_iters": 2}}


def codec_config(tmp_path, corpus, **train_overrides):
    cfg = {"output_dir": str(tmp_path / "run"),
           "data": {"train": [str(corpus / "train.jsonl"), str(corpus / "valid.jsonl")], "valid": str(corpus / "valid.jsonl"),
                    "max_audio_seconds": 0.4},
           "model": TINY_CODEC,
           "train": {"max_steps": 6, "batch_size": 4, "lr": 3e-3, "warmup_steps": 1, "eval_every": 0, "save_every": 0,
                     "log_every": 1, "eval_examples": 4, "eval_batch_size": 2, "best_metric": "mel_distance",
                     "mixed_precision": "no", **train_overrides}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "codec.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_codec_trains_validates_and_saves(tmp_path, toy_corpus):
    final = train(load_config(codec_config(tmp_path, toy_corpus)), progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert len(steps) == 6 and all(np.isfinite(r["loss"]) and r["audio_samples_per_s"] > 0 for r in steps)
    valid = [r for r in log if "valid/mel_distance" in r][-1]
    assert {"valid/mel_distance_1cb", "valid/mel_distance_2cb", "valid/codes_used/0", "valid/codes_used/1"} <= set(valid)
    assert json.loads((final / "config.json").read_text())["model_type"] == "codec"
    assert not (final / "tokenizer.json").exists()
    codec = audiollm.load(final)
    wav = tone(0.5, 330.0)
    assert codec.reconstruct(wav).shape == wav.shape


def test_codec_resume_is_exact(tmp_path, toy_corpus):
    """6 steps == 3 steps + resume + 3 steps (same schedule, crops, quantizer dropout and
    dead-code draws): codebooks, EMA statistics and weights alike; another seed differs."""
    straight = train(load_config(codec_config(tmp_path / "a", toy_corpus)), progress=False)
    train(load_config(codec_config(tmp_path / "b", toy_corpus, save_every=3, keep_checkpoints=5)), progress=False)
    step3 = tmp_path / "b" / "run" / "checkpoints" / "step-0000003"
    resumed = train(load_config(codec_config(tmp_path / "c", toy_corpus)), resume=str(step3), progress=False)
    other = train(load_config(codec_config(tmp_path / "d", toy_corpus, seed=1)), progress=False)
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert set(a) == set(b) and any("codebooks" in k for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5, msg=k)
    d = load_file(str(other / "model.safetensors"))
    assert any(not torch.allclose(a[k], d[k]) for k in a)


def test_codec_config_errors_are_one_line(tmp_path, toy_corpus):
    with pytest.raises(ConfigError, match="feature_cache"):
        CodecKind.check(load_config(codec_config(tmp_path, toy_corpus), ["data.feature_cache=cache"]))
    with pytest.raises(ConfigError, match="a path or a list of paths"):
        load_config(codec_config(tmp_path, toy_corpus), ["data.train=[1, 2]"])
    quick = load_config(REPO / "configs" / "codec_quickstart.yaml")
    assert quick.model_type == "codec" and quick.model.quantizer.num_codebooks == 4
    assert quick.model.sample_rate / quick.model.hop_length * 4 * 10 == 2000  # 2.0 kbps with every codebook


def test_codec_cli_round_trip_and_bad_input(tmp_path, toy_corpus, capsys):
    final = train(load_config(codec_config(tmp_path, toy_corpus, max_steps=2)), progress=False)
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.stack([tone(0.6, 440.0, sr=22050)] * 2, axis=1), 22050)  # stereo, another rate
    codes = tmp_path / "clip.codes.safetensors"
    assert main(["codec", "encode", str(clip), "--model", str(final), "--out", str(codes), "--num-codebooks", "1"]) == 0
    assert "1 codebooks at 100 Hz = 0.4 kbps" in capsys.readouterr().out
    out = tmp_path / "clip.codec.wav"
    assert main(["codec", "decode", str(codes), "--model", str(final), "--out", str(out)]) == 0
    data, rate = sf.read(out)
    assert rate == 16000 and abs(len(data) - 0.6 * 16000) <= 1
    for argv, message in [
        (["codec", "decode", str(clip), "--model", str(final), "--out", str(out)], "not a codes file"),
        (["codec", "encode", str(clip), "--model", str(tmp_path / "nope"), "--out", str(codes)], "no such codec directory"),
        (["codec", "encode", str(clip), "--model", str(final), "--out", str(tmp_path / "x.npy")], "must end in .safetensors"),
        (["codec", "encode", str(clip), "--model", str(final), "--out", str(codes), "--num-codebooks", "5"], "1 to 2"),
        (["codec", "decode", str(codes), "--model", str(final), "--out", str(tmp_path / "x.mp3")], "must end in .wav"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)


def test_codes_cache_encodes_once_and_names_its_codec(tmp_path, toy_corpus, capsys):
    from audiollm.data.feature_cache import FeatureCache

    final = train(load_config(codec_config(tmp_path / "a", toy_corpus, max_steps=2)), progress=False)
    other = train(load_config(codec_config(tmp_path / "b", toy_corpus, max_steps=2, seed=1)), progress=False)
    manifest, out = str(toy_corpus / "train.jsonl"), tmp_path / "codes"
    assert main(["codec", "cache", manifest, "--model", str(final), "--out", str(out), "--no-progress"]) == 0
    assert "16 clips: 16 encoded" in capsys.readouterr().out
    assert main(["codec", "cache", manifest, "--model", str(final), "--out", str(out), "--no-progress"]) == 0
    rerun = capsys.readouterr().out
    assert "16 clips: 0 encoded" in rerun and "16 already cached" in rerun
    clip = toy_corpus / "audio" / "train_m0.wav"
    cached = FeatureCache(out).load(clip)
    direct = audiollm.load(final).encode(clip)
    assert cached.states.dtype == torch.int64 and torch.equal(cached.states, torch.from_numpy(direct.codes))
    assert main(["codec", "cache", manifest, "--model", str(other), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds" in err[0]
