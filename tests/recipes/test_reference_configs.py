"""The reference-experiment configs (configs/reference/) are valid and run their real path.

Their checkpoints and datasets cannot be downloaded here, so each config is dry-run with its
pretrained encoder/LLM swapped for a tiny random checkpoint of the same kind and its data for
the toy corpus — every other setting (layers, layer weighting, LoRA, projector, LM shape,
feature cache, batch) is the config's own.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from helpers import REPO  # noqa: E402

from audiollm.data.feature_cache import build_feature_cache  # noqa: E402
from audiollm.data.manifest import read_manifest  # noqa: E402
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint  # noqa: E402
from audiollm.training.config import load_config  # noqa: E402
from audiollm.training.dry_run import dry_run  # noqa: E402

REFERENCE = sorted((REPO / "configs" / "reference").glob("*.yaml"))


def test_every_shipped_config_is_documented():
    """Each config in configs/ (and configs/reference/) is named in the README or a docs page,
    so no recipe ships that a user cannot find."""
    docs = (REPO / "README.md").read_text() + "".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    configs = sorted((REPO / "configs").rglob("*.yaml"))
    assert len(REFERENCE) >= 4 and len(configs) > len(REFERENCE)
    undocumented = [str(p.relative_to(REPO)) for p in configs if str(p.relative_to(REPO)) not in docs]
    assert not undocumented, f"configs named in no README/docs page: {undocumented}"


@pytest.mark.parametrize("path", REFERENCE, ids=[p.stem for p in REFERENCE])
def test_reference_config_dry_runs_with_tiny_stand_ins(path, tmp_path, toy_corpus_shared):
    text = path.read_text()
    assert text.startswith("#") and "Hardware and time" in text and "audiollm train" in text
    cfg = load_config(path)  # validates every key
    encoder = cfg.model.audio_encoder
    overrides = [
        f"model.audio_encoder_config.model={tiny_checkpoint(encoder)}",
        f"data.train={toy_corpus_shared / 'train.jsonl'}", f"data.valid={toy_corpus_shared / 'valid.jsonl'}",
        "train.batch_size=4", "train.grad_accum=1",
    ]
    if cfg.model.lm == "hf_causal_lm":
        overrides += [f"model.lm_config.model={tiny_checkpoint('qwen2_lm')}", "model.lm_config.dtype=float32"]
    if cfg.data.feature_cache:  # make the cache the config expects, with the stand-in encoder
        stand_in = load_config(path, overrides)
        rows = read_manifest(toy_corpus_shared / "train.jsonl")
        build_feature_cache(stand_in.model, [r["audio"] for r in rows],
                            tmp_path / "cache", progress=False)
        overrides.append(f"data.feature_cache={tmp_path / 'cache'}")
    info = dry_run(load_config(path, overrides))
    assert info["parameters"]["trainable"] > 0 and len(info["first_batch"]) == 4
    if cfg.model.lm == "hf_causal_lm":  # LoRA: a small fraction of the model trains
        assert info["parameters"]["trainable"] < info["parameters"]["total"]
