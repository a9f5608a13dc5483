"""MuLaN through the one training loop: rows, augmentation, loss down, save, 2 processes == 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, write_config

from audiollm.audio import load_audio
from audiollm.data.augment import PairAugment
from audiollm.data.contrastive import PairBuilder, collate_pairs
from audiollm.errors import ConfigError
from audiollm.models import hub
from audiollm.models.frontend import LogMel, LogMelConfig
from audiollm.models.mulan import apply_spec_masks
from audiollm.tokenizers.text import TextTokenizer
from audiollm.training.config import load_config
from audiollm.training.kinds import MuLaNKind
from audiollm.training.loop import train

TINY_MODEL = {
    "type": "mulan",
    "frontend": {"n_mels": 16, "level": "absolute"},
    "audio_tower_config": {"patch_freq": 8, "patch_time": 8, "d_model": 32, "n_layers": 2, "n_heads": 4, "ffn_hidden": 64},
    "text_tower_config": {"d_model": 32, "n_layers": 1, "n_heads": 4, "ffn_hidden": 64, "max_len": 16},
    "embed_dim": 16,
    "quantizer": {"num_quantizers": 2, "codebook_size": 4, "namespaces": ["semantic"], "conditioning_dims": [8]},
}


def mulan_config(tmp_path: Path, corpus: Path, model=None, **train_overrides) -> Path:
    """A small MuLaN run over the toy corpus (helpers.write_config with MuLaN's sections)."""
    data = {"contrastive": {"augment": {"gain_db": 6.0, "time_mask_width": 5, "freq_mask_width": 4}}}
    return write_config(tmp_path, corpus, model=model or TINY_MODEL, data=data,
                        **{"max_steps": 8, "batch_size": 4, "warmup_steps": 1, "eval_batch_size": 4,
                           "best_metric": "retrieval/t2a_r1", **train_overrides})


def test_augmentation_really_changes_the_input(toy_corpus):
    rows = [{"audio": str(toy_corpus / "audio" / "train_m0.wav"), "answer": "a low tone"}]
    tok = TextTokenizer.train(["a low tone"] * 3, vocab_size=300)
    aug = PairAugment(crop_seconds=0.3, gain_db=6.0, freq_masks=2, freq_mask_width=4, time_masks=2, time_mask_width=5)
    plain = PairBuilder(rows, tok, max_text_tokens=16, n_mels=16, hop_length=160)(0, 0)
    seen = [PairBuilder(rows, tok, max_text_tokens=16, n_mels=16, hop_length=160, augment=aug)(0, d) for d in range(4)]
    wav = load_audio(rows[0]["audio"])
    assert torch.equal(plain["audio"], wav) and plain["freq_masks"] == []
    for ex in seen:
        assert ex["audio"].shape == (4800,)  # the crop length
        # a crop of the clip, scaled: correlation with the matching window is 1, level differs
        gain = float(ex["audio"].abs().max() / wav.abs().max())
        assert abs(gain - 1) > 1e-3
    assert len({float(e["audio"][:100].sum()) for e in seen}) == 4  # different crops/gains per draw
    # the gain reaches the features under the absolute level (and is divided out under peak)
    lm_abs, lm_peak = LogMel(LogMelConfig(n_mels=16, level="absolute")), LogMel(LogMelConfig(n_mels=16, level="peak"))
    x = wav[None, :4800]
    L = torch.tensor([4800])
    assert (lm_abs(x * 0.5, L)[0] - lm_abs(x, L)[0]).abs().max() > 0.05
    torch.testing.assert_close(lm_peak(x * 0.5, L)[0], lm_peak(x, L)[0], atol=1e-4, rtol=0)
    # masks land inside the clip and the batch keeps the lengths
    batch = collate_pairs(seen, tok.pad_id)
    assert batch["audio_lengths"].tolist() == [4800] * 4
    assert batch["freq_masks"].shape == (4, 2, 2) and batch["time_masks"].shape == (4, 2, 2)
    assert int((batch["freq_masks"].sum(-1)).max()) <= 16
    assert int((batch["time_masks"].sum(-1)).max()) <= 4800 // 160 + 1
    assert batch["freq_masks"][..., 1].sum() > 0 and batch["time_masks"][..., 1].sum() > 0
    feats, _ = lm_abs(batch["audio"], batch["audio_lengths"])
    masked = apply_spec_masks(feats, batch["freq_masks"], batch["time_masks"])
    assert (masked != feats).any() and masked.shape == feats.shape


def test_mulan_trains_through_the_one_loop(tmp_path, toy_corpus):
    import json

    final = train(load_config(mulan_config(tmp_path, toy_corpus)), progress=False)
    log = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 8 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert any("valid/retrieval/t2a_r1" in r for r in log)
    model, tok = hub.load(final)
    assert bool(model.quantizer.initted)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (final / name).is_file()
    # resume continues from the checkpoint with the saved tokenizer
    train(load_config(mulan_config(tmp_path, toy_corpus, max_steps=9)), resume=str(tmp_path / "run"), progress=False)


def test_grouped_draws_train_through_the_loop(tmp_path, toy_corpus):
    """data.group_by: each batch of 4 is two runs of 2 clips with the same caption."""
    import json

    cfg = load_config(mulan_config(tmp_path, toy_corpus, max_steps=4), ["data.contrastive.group_by=answer", "data.contrastive.group_size=2"])
    train(cfg, progress=False)
    log = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len([r for r in log if "loss" in r]) == 4
    missing = load_config(mulan_config(tmp_path, toy_corpus), ["data.contrastive.group_by=instrument"])
    with pytest.raises(ConfigError, match="no training row has that label"):
        train(missing, progress=False)


def test_grad_accum_is_refused_for_contrastive(tmp_path, toy_corpus):
    with pytest.raises(ConfigError, match="grad_accum"):
        train(load_config(mulan_config(tmp_path, toy_corpus, grad_accum=2)), progress=False)


def test_quickstart_config_validates():
    cfg = load_config(REPO / "configs" / "mulan_quickstart.yaml")
    MuLaNKind.check(cfg)
    assert cfg.model_type == "mulan" and cfg.data.contrastive.augment.crop_seconds == 3.0


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, toy_corpus):
    """`accelerate launch` with 2 CPU processes == 1 process on the same global batch
    (augmentation and patch dropout on: every random draw is keyed by the draw position)."""
    model = {**TINY_MODEL, "audio_tower_config": {**TINY_MODEL["audio_tower_config"], "patch_dropout": 0.3}}
    train(load_config(mulan_config(tmp_path / "one", toy_corpus, model=model, max_steps=3)), progress=False)
    cfg = mulan_config(tmp_path / "two", toy_corpus, model=model, max_steps=3)
    launcher = Path(sys.executable).parent / "accelerate"
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "audiollm", "train", str(cfg), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "one" / "run" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "run" / "final" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4, msg=k)
