"""The README's main command, `make demo` (scripts/demo.sh), end to end at toy size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

TINY = " ".join([
    "train.max_steps=4", "train.batch_size=8", "train.eval_every=0", "train.save_every=0", "train.eval_examples=8",
    "train.max_new_tokens=6", "tokenizer.vocab_size=300", "model.frontend.n_mels=16",
    "model.audio_encoder_config.n_mels=16", "model.audio_encoder_config.conv_channels=16",
    "model.audio_encoder_config.d_model=16", "model.audio_encoder_config.n_layers=1",
    "model.audio_encoder_config.n_heads=2", "model.audio_encoder_config.ffn_hidden=32",
    "model.projector_config.hidden=16", "model.lm_config.d_model=16", "model.lm_config.n_layers=1",
    "model.lm_config.n_heads=2", "model.lm_config.n_kv_heads=1", "model.lm_config.ffn_hidden=32",
])


@pytest.mark.slow
def test_demo_script_end_to_end(tmp_path):
    env = {
        **os.environ,
        "VENV": str(Path(sys.executable).parent.parent),
        "CORPUS": str(tmp_path / "corpus"),
        "RUN": str(tmp_path / "run"),
        "MUSIC_CLIPS": "10",
        "SPEECH_CLIPS": "10",
        "TRAIN_OVERRIDES": TINY,
    }
    out = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    for step in ("1/4", "2/4", "3/4", "4/4", "done in"):
        assert step in out.stdout
    assert out.stdout.count("A: ") == 3  # answers about a music clip (2) and a speech clip (1)
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "test_metrics.json").is_file()
