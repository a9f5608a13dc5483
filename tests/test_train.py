"""The training loop: learns, resumes exactly, and gives the same result for any split of a batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from audiollm.training.checkpoint import list_checkpoints
from audiollm.config import load_config
from audiollm.models.hub import load_model_dir
from audiollm.models.audiollm import AudioLLMConfig
from audiollm.training.loop import train


def write_config(tmp_path: Path, corpus: Path, **train_overrides) -> Path:
    model = AudioLLMConfig.tiny().to_dict()
    model["lm_config"].pop("vocab_size")
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "data": {"train": str(corpus / "train.jsonl"), "valid": str(corpus / "valid.jsonl"), "max_audio_seconds": 1.0},
        "tokenizer": {"vocab_size": 300},
        "model": model,
        "train": {"max_steps": 10, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2, "eval_every": 0,
                  "save_every": 0, "log_every": 1, "eval_examples": 8, "max_new_tokens": 8,
                  # float32 everywhere: "auto" would pick bf16 on AMX/AVX512-BF16 CPUs, and the
                  # equivalence tests below compare weights to 1e-5
                  "mixed_precision": "no", **train_overrides},
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "cfg.yaml"
    path.write_text("# test config\n" + yaml.safe_dump(cfg))
    return path


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def assert_same_weights(a: Path, b: Path, atol: float) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert worst <= atol, f"max weight difference {worst:g} > {atol:g}"


def test_loss_goes_down_and_final_model_loads(tmp_path, toy_corpus):
    cfg = load_config(write_config(tmp_path, toy_corpus, max_steps=40, eval_every=20, best_metric="tagging/accuracy"))
    final = train(cfg, progress=False)
    log = [yaml.safe_load(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    assert any("valid/tagging/accuracy" in r for r in log)  # task metrics, not only loss
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (final / name).is_file()
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    model, tok = load_model_dir(final)
    assert model.training is False and tok.vocab_size == model.config.lm_config.vocab_size


def test_resume_is_exact(tmp_path, toy_corpus):
    """10 steps == 5 steps + resume + 5 steps (same schedule, data order, RNG)."""
    straight = load_config(write_config(tmp_path / "a", toy_corpus))
    train(straight, progress=False)
    split = load_config(write_config(tmp_path / "b", toy_corpus, save_every=5, keep_checkpoints=5))
    train(split, progress=False)
    step5 = [c for c in list_checkpoints(tmp_path / "b" / "run") if c.name.endswith("0000005")][0]
    resumed = load_config(write_config(tmp_path / "c", toy_corpus))
    train(resumed, resume=str(step5), progress=False)
    assert_same_weights(tmp_path / "a" / "run" / "final", tmp_path / "c" / "run" / "final", atol=1e-6)
    # ... and the comparison can fail: another seed gives other weights.
    other = load_config(write_config(tmp_path / "d", toy_corpus, seed=1))
    train(other, progress=False)
    with pytest.raises(AssertionError, match="max weight difference"):
        assert_same_weights(tmp_path / "a" / "run" / "final", tmp_path / "d" / "run" / "final", atol=1e-6)


def test_grad_accumulation_matches_full_batch(tmp_path, toy_corpus):
    train(load_config(write_config(tmp_path / "a", toy_corpus, max_steps=4)), progress=False)
    train(load_config(write_config(tmp_path / "b", toy_corpus, max_steps=4, grad_accum=4)), progress=False)
    assert_same_weights(tmp_path / "a" / "run" / "final", tmp_path / "b" / "run" / "final", atol=1e-5)


def test_checkpoints_are_atomic_and_pruned(tmp_path, toy_corpus):
    train(load_config(write_config(tmp_path, toy_corpus, save_every=2, keep_checkpoints=2)), progress=False)
    ckpts = list_checkpoints(tmp_path / "run")
    assert [c.name for c in ckpts] == ["step-0000008", "step-0000010"]
    leftovers = [p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_ctrl_c_saves_a_checkpoint(tmp_path, toy_corpus, monkeypatch):
    import audiollm.training.loop as train_mod

    real = train_mod.collate
    calls = {"n": 0}

    def interrupt_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "collate", interrupt_on_third)
    with pytest.raises(train_mod.TrainingInterrupted, match="interrupted at step 2"):
        train(load_config(write_config(tmp_path, toy_corpus)), progress=False)
    assert [c.name for c in list_checkpoints(tmp_path / "run")] == ["step-0000002"]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, toy_corpus):
    """`accelerate launch` with 2 CPU processes == 1 process on the same global batch."""
    train(load_config(write_config(tmp_path / "one", toy_corpus, max_steps=4)), progress=False)
    cfg = write_config(tmp_path / "two", toy_corpus, max_steps=4)
    launcher = Path(sys.executable).parent / "accelerate"
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "audiollm", "train", str(cfg), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert_same_weights(tmp_path / "one" / "run" / "final", tmp_path / "two" / "run" / "final", atol=1e-5)


def test_length_groups_match_one_padded_batch(tmp_path, toy_corpus):
    """Splitting each batch into length groups changes padding, not the gradient."""
    train(load_config(write_config(tmp_path / "a", toy_corpus, max_steps=4)), progress=False)
    train(load_config(write_config(tmp_path / "b", toy_corpus, max_steps=4, length_groups=3)), progress=False)
    assert_same_weights(tmp_path / "a" / "run" / "final", tmp_path / "b" / "run" / "final", atol=1e-5)


def test_ctc_auxiliary_loss_trains_the_ctc_head(tmp_path, toy_corpus):
    path = write_config(tmp_path, toy_corpus, max_steps=3)
    raw = yaml.safe_load(path.read_text())
    raw["model"]["ctc_weight"] = 0.5
    path.write_text(yaml.safe_dump(raw))
    final = train(load_config(path), progress=False)
    model, _ = load_model_dir(final)
    assert model.config.ctc_weight == 0.5 and model.ctc_head is not None
    # Saved and reloaded with the model; the head moved away from its initialisation.
    fresh = type(model)(model.config)
    assert not torch.equal(fresh.ctc_head.weight, model.ctc_head.weight)


def test_speaker_adversary_takes_its_speakers_from_the_training_rows(tmp_path, toy_corpus):
    import json

    from audiollm.data.batching import ExampleBuilder, collate
    from audiollm.errors import ConfigError

    path = write_config(tmp_path, toy_corpus, max_steps=3)
    raw = yaml.safe_load(path.read_text())
    raw["model"]["speaker_weight"] = 0.5
    path.write_text(yaml.safe_dump(raw))
    # The toy corpus names no speakers: a clear error before any training.
    with pytest.raises(ConfigError, match="at least 2 speakers"):
        train(load_config(path), progress=False)

    rows = [json.loads(line) for line in (toy_corpus / "train.jsonl").read_text().splitlines()]
    asr = [r for r in rows if r["task"] == "asr"]
    for i, r in enumerate(asr):
        r["speaker"] = ["spk_b", "spk_a"][i % 2]
    (toy_corpus / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    final = train(load_config(path), progress=False)
    model, tokenizer = load_model_dir(final)
    assert model.config.speakers == ["spk_a", "spk_b"]  # sorted, and saved with the model
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]["speakers"] == ["spk_a", "spk_b"]
    fresh = type(model)(model.config)
    assert not torch.equal(fresh.speaker_head[0].weight, model.speaker_head[0].weight)  # the head trained
    # The log shows how well the adversary names the speaker (a rate) and its loss.
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logged if "loss" in r]
    assert steps and all(0.0 <= r["speaker_accuracy"] <= 1.0 and r["speaker_loss"] > 0 for r in steps)
    # Batches carry each row's speaker index; rows without a known speaker get -1.
    rows = [{**r, "audio": str(toy_corpus / r["audio"])} for r in rows]
    build = ExampleBuilder(rows, tokenizer, speakers=model.config.speakers)
    batch = collate([build(i, i) for i in range(len(rows))], tokenizer.pad_id)
    expected = [{"spk_a": 0, "spk_b": 1}.get(r.get("speaker"), -1) for r in rows]
    assert batch["speaker_ids"].tolist() == expected and 0 in expected and 1 in expected and -1 in expected


def test_auto_precision_uses_bf16_only_on_native_hardware(monkeypatch):
    import audiollm.training.loop as train_mod

    monkeypatch.setattr(train_mod, "native_bf16", lambda: False)
    assert train_mod._precision("auto") == "no"
    with pytest.warns(UserWarning, match="emulated"):
        assert train_mod._precision("bf16") == "bf16"
    monkeypatch.setattr(train_mod, "native_bf16", lambda: True)
    assert train_mod._precision("auto") == "bf16"
