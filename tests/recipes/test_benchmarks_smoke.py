"""Each benchmark runs end to end at toy size (--quick) and prints one JSON object.

Only correctness is asserted (outputs identical, fields present) — never timings.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from helpers import REPO

BENCH = REPO / "benchmarks"


def run_quick(script: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got: {proc.stdout[-1000:]}"
    return json.loads(lines[0])


def test_decode_kv_cache_quick():
    out = run_quick("decode_kv_cache.py")
    assert out["benchmark"] == "decode_kv_cache" and out["outputs_identical"] is True
    assert out["kv_cache_tokens_per_s"] > 0 and out["recompute_tokens_per_s"] > 0 and out["speedup"] > 0


def test_codec_lm_quick():
    out = run_quick("codec_lm.py")
    assert out["benchmark"] == "codec_lm" and out["outputs_identical"] is True
    assert out["kv_cache_frames_per_s"] > 0 and out["recompute_frames_per_s"] > 0
    assert set(out["vs_musicgen_decoder"]) == {"batch_1", "batch_4"}
    assert all(v["ours_frames_per_s"] > 0 and v["musicgen_frames_per_s"] > 0 for v in out["vs_musicgen_decoder"].values())


def test_decode_midi_quick():
    out = run_quick("decode_midi.py")
    assert out["benchmark"] == "decode_midi" and out["outputs_identical"] is True
    assert out["audio_tokens"] > 0 and out["kv_cache_tokens_per_s"] > 0 and out["recompute_tokens_per_s"] > 0


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="needs transformers")
def test_vs_hf_llama_quick():
    out = run_quick("vs_hf_llama.py")
    for key in ("generate_batch1", "generate_batch8"):
        assert out[key]["outputs_identical"] is True and out[key]["ratio"] > 0
    assert out["train_step"]["losses_equal"] is True and out["train_step"]["ratio"] > 0


def test_mfu_quick():
    out = run_quick("mfu.py")
    for dtype in ("float32", "bfloat16"):
        assert out[dtype]["matmul_peak_gflops"] > 0 and 0 < out[dtype]["mfu"]
    assert out["config"]["flops_per_token"] > 0


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="needs transformers")
@pytest.mark.shared_data
def test_feature_cache_quick():
    out = run_quick("feature_cache.py")
    losses = out["first_step_loss"]
    assert losses["recompute"] == pytest.approx(losses["cache"], rel=1e-4)  # the same step, from the cache
    assert out["cache_build"]["clips"] == 8 and out["steps_per_s"]["cache"] > 0 and out["speedup"] > 0


def test_attention_backend_quick():
    out = run_quick("attention_backend.py")
    assert out["benchmark"] == "attention_backend" and out["rule_max_keys"] > 0
    for rows in out["kernels"].values():
        assert rows and all(r["flash_ms"] > 0 and r["math_ms"] > 0 for r in rows)
    assert out["decoder_train_step"]["losses_equal"] is True and out["decoder_train_step"]["speedup"] > 0
