"""The training loop: learns, resumes exactly, and gives the same result for any split of a batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_model_section, write_config
from safetensors.torch import load_file

import audiollm.training.loop as train_mod
from audiollm.models import hub
from audiollm.training.checkpoint import list_checkpoints
from audiollm.training.config import load_config
from audiollm.training.loop import train


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
    model, tok = hub.load(final)
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


def test_ctrl_c_saves_a_checkpoint_and_the_run_resumes(tmp_path, toy_corpus):
    """SIGINT to `audiollm train` (what Ctrl-C sends): one error line, exit 130, a checkpoint
    at the step it stopped, and --resume carries on from there."""
    config = write_config(tmp_path, toy_corpus, max_steps=100000, log_every=1)
    cmd = [sys.executable, "-m", "audiollm", "train", str(config), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "run" / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and len(log.read_text().splitlines()) >= 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiollm: error: interrupted at step "), err
    step = int(lines[0].split("interrupted at step ")[1].split(";")[0])
    assert [c.name for c in list_checkpoints(tmp_path / "run")] == [f"step-{step:07d}"]
    resumed = subprocess.run([*cmd[:-1], f"train.max_steps={step + 2}", "--resume", str(tmp_path / "run"),
                              "--no-progress"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {tmp_path / 'run' / 'checkpoints' / f'step-{step:07d}'} at step {step}" in resumed.stdout


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
    path = write_config(tmp_path, toy_corpus, model=tiny_model_section(heads={"ctc": 0.5}), max_steps=3)
    final = train(load_config(path), progress=False)
    model, _ = hub.load(final)
    assert model.config.heads == {"ctc": 0.5} and "ctc" in model.heads
    # Saved and reloaded with the model; the head moved away from its initialisation.
    fresh = type(model)(model.config)
    assert not torch.equal(fresh.heads["ctc"].proj.weight, model.heads["ctc"].proj.weight)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(r["ctc_loss"] > 0 for r in log if "loss" in r)  # the head's own figure, per transcript row


def test_auto_precision_uses_bf16_only_on_native_hardware(monkeypatch):
    monkeypatch.setattr(train_mod, "native_bf16", lambda: False)
    assert train_mod._precision("auto") == "no"
    with pytest.warns(UserWarning, match="emulated"):
        assert train_mod._precision("bf16") == "bf16"
    monkeypatch.setattr(train_mod, "native_bf16", lambda: True)
    assert train_mod._precision("auto") == "bf16"
