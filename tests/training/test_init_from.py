"""``train.init_from``: stage 2 starts from stage 1's weights (all, or named parts) with a fresh
optimizer and schedule; a model of another type or shape is a one-line error naming the part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import tiny_model_section, write_config
from safetensors.torch import load_file

from audiollm.cli.parser import main
from audiollm.errors import ConfigError
from audiollm.models import hub
from audiollm.training.config import load_config
from audiollm.training.init_from import init_weights
from audiollm.training.kinds import AudioLLMKind
from audiollm.training.loop import train


def losses(run: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.fixture(scope="module")
def stage_one(tmp_path_factory, toy_corpus_shared) -> Path:
    """A tiny model trained 30 steps on the toy corpus: stage 1."""
    tmp = tmp_path_factory.mktemp("stage1")
    return train(load_config(write_config(tmp, toy_corpus_shared, max_steps=30)), progress=False)


def test_stage_two_starts_where_stage_one_ended(stage_one, toy_corpus_shared, tmp_path, capsys):
    cfg = load_config(write_config(tmp_path / "two", toy_corpus_shared, max_steps=3, init_from=str(stage_one)))
    final = train(cfg, progress=False)
    assert f"initialised audio_encoder, lm, projector from {stage_one}" in capsys.readouterr().out
    fresh = train(load_config(write_config(tmp_path / "fresh", toy_corpus_shared, max_steps=3)), progress=False)
    one, two, scratch = losses(stage_one.parent), losses(final.parent), losses(fresh.parent)
    assert len(two) == 3  # a fresh schedule: steps count from 0, not from stage 1's 30
    assert two[0] < 0.7 * scratch[0] and abs(two[0] - one[-1]) < 0.1 * one[-1]  # measured: 3.24 vs 3.26, fresh 5.70
    # the same tokenizer, so token ids mean what they meant in stage 1
    assert (final / "tokenizer.json").read_text() == (stage_one / "tokenizer.json").read_text()
    card = (final / "README.md").read_text()
    assert f"initialised from {stage_one}, trained here" in card
    assert f"started from the weights of `{stage_one}` (audio_encoder, lm, projector)" in card


def test_init_parts_copies_only_the_named_parts(stage_one, toy_corpus_shared, tmp_path):
    cfg = load_config(write_config(tmp_path, toy_corpus_shared, init_from=str(stage_one), init_parts=["projector"]))
    model, tok = hub.load(stage_one)
    torch.manual_seed(1)
    fresh = AudioLLMKind.build(cfg, tok)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    assert init_weights(fresh, str(stage_one), ["projector"], "audiollm") == ["projector"]
    saved = load_file(str(stage_one / "model.safetensors"))
    for key, value in fresh.state_dict().items():
        expected = saved[key] if key.startswith("projector.") else before[key]
        assert torch.equal(value, expected), key
    with pytest.raises(ConfigError, match=r"has no part 'decoder'; it has audio_encoder, lm, projector"):
        init_weights(fresh, str(stage_one), ["decoder"], "audiollm")


def test_a_head_added_in_stage_two_starts_fresh(stage_one, toy_corpus_shared, tmp_path):
    model = tiny_model_section(heads={"ctc": 0.3})
    cfg = load_config(write_config(tmp_path, toy_corpus_shared, model=model, max_steps=2, init_from=str(stage_one)))
    final = train(cfg, progress=False)
    card = (final / "README.md").read_text()
    assert "| heads.ctc | CTCHead |" in card and "from scratch, trained here" in card.split("| heads.ctc |")[1]


def test_mismatched_shapes_and_other_model_types_are_one_line_errors(stage_one, toy_corpus_shared, mulan_dirs,
                                                                   tmp_path, capsys):
    wider = tiny_model_section()
    wider["lm_config"]["ffn_hidden"] *= 2
    config = write_config(tmp_path, toy_corpus_shared, model=wider, init_from=str(stage_one))
    assert main(["train", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("audiollm: error: train.init_from=") and "(part 'lm' differs)" in err[0]
    other = write_config(tmp_path, toy_corpus_shared, init_from=str(mulan_dirs[0]))
    assert main(["train", str(other), "--no-progress"]) == 2
    assert "has model type 'mulan'; this run trains model type 'audiollm'" in capsys.readouterr().err
    missing = write_config(tmp_path, toy_corpus_shared, init_from=str(tmp_path / "nowhere"))
    assert main(["train", str(missing), "--no-progress"]) == 2
    assert "train.init_from: " in capsys.readouterr().err
    with pytest.raises(ConfigError, match="train.init_parts needs train.init_from"):
        load_config(None, ["train.init_parts=[lm]"])
