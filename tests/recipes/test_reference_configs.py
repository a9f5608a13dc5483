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

from audiollm.data.feature_cache import build_feature_cache  # noqa: E402
from audiollm.data.manifest import read_manifest  # noqa: E402
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint  # noqa: E402
from audiollm.training.config import load_config  # noqa: E402
from audiollm.training.dry_run import dry_run  # noqa: E402
from helpers import REPO  # noqa: E402

REFERENCE = sorted((REPO / "configs" / "reference").glob("*.yaml"))


def test_the_four_reference_experiments_are_shipped():
    assert [p.stem for p in REFERENCE] == ["clotho_captioning", "gtzan_tagging", "librispeech_whisper_asr",
                                          "musicqa_mert_lora"]


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
