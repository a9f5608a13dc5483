"""One save/load for every model type (models/hub.py): round trips, strict checks, atomic
writes, legacy directories, devices and dtypes, the model card, and pretrained parts found
again after a model directory moves to another machine."""

from __future__ import annotations

import itertools
import json
import shutil

import pytest
import torch
from helpers import make_batch, tiny_model
from safetensors.torch import load_file, save_file

from audiollm.errors import ConfigError, ModelDirError
from audiollm.models import (
    AUDIO_ENCODERS,
    LANGUAGE_MODELS,
    PROJECTORS,
    AudioLLM,
    AudioLLMConfig,
    hub,
)
from audiollm.models.pretrained.hf_common import CHECKPOINTS_ENV
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint
from audiollm.tokenizers.text import TextTokenizer


def _every_combination():
    for enc, proj, lm in itertools.product(AUDIO_ENCODERS, PROJECTORS, LANGUAGE_MODELS):
        yield pytest.param(enc, proj, lm, id=f"{enc}-{proj}-{lm}")


@pytest.mark.parametrize("enc,proj,lm", list(_every_combination()))
@pytest.mark.parametrize("tie", [True, False])
def test_save_load_round_trip_every_combination(tmp_path, enc, proj, lm, tie):
    torch.manual_seed(0)
    cfg = AudioLLMConfig.tiny(audio_encoder=enc, projector=proj, lm=lm)
    if hasattr(cfg.lm_config, "tie_embeddings"):
        cfg.lm_config.tie_embeddings = tie
    model = AudioLLM(cfg).eval()
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch(vocab=128)
    ref = model(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True)
    out_dir = hub.save_model(tmp_path / "m", model)
    assert sorted(p.name for p in out_dir.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = hub.load_model(out_dir)
    assert loaded.config == cfg and not loaded.training
    out = loaded(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True)
    torch.testing.assert_close(out.logits, ref.logits, atol=0, rtol=0)
    assert out.loss_sum.item() == ref.loss_sum.item()
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_saving_over_a_directory_replaces_it_whole_and_leaves_no_temp(tmp_path):
    model, tok = tiny_model(), TextTokenizer.train(["a tone saying one"] * 3, vocab_size=300)
    target = tmp_path / "m"
    target.mkdir()
    (target / "stale.txt").write_text("from an older run")
    hub.save_model(target, model, tok)
    names = {p.name for p in target.iterdir()}
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= names and "stale.txt" not in names
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left beside it
    assert json.loads((target / "config.json").read_text())["model_type"] == "audiollm"


def test_load_errors_name_the_file(tmp_path):
    model = tiny_model()
    with pytest.raises(ModelDirError, match="no such model directory"):
        hub.load_model(tmp_path / "nope")
    d = hub.save_model(tmp_path / "m", model)
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelDirError, match="model.safetensors"):
        hub.load_model(d)
    d = hub.save_model(tmp_path / "m2", model)
    (d / "config.json").unlink()
    with pytest.raises(ModelDirError, match="config.json"):
        hub.load_model(d)
    # A config whose architecture does not match the weights: a mismatched key set.
    d = hub.save_model(tmp_path / "m3", model)
    cfg = json.loads((d / "config.json").read_text())
    cfg["lm_config"]["n_layers"] = 3
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match=r"model.safetensors: weights do not match config.json: missing 6 key"):
        hub.load_model(d)
    # Same key set, different shapes.
    cfg["lm_config"]["n_layers"] = 2
    cfg["lm_config"]["ffn_hidden"] = 48
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match="has shape"):
        hub.load_model(d)
    # Unknown key / corrupt files.
    cfg["lm_config"]["bogus"] = 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match="lm_config.bogus"):
        hub.load_model(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="cannot read config.json"):
        hub.load_model(d)
    d = hub.save_model(tmp_path / "m4", model)
    (d / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="cannot read model.safetensors"):
        hub.load_model(d)


def test_directories_saved_before_fused_projections_still_load(tmp_path):
    """q/k/v and gate/up saved as separate matrices (audiollm 0.1.0) load into the fused layout."""
    model = tiny_model()
    hub.save_model(tmp_path, model)
    state = load_file(str(tmp_path / "model.safetensors"))
    legacy = {}
    for key, value in state.items():
        if key.endswith("qkv_proj.weight"):
            lm = key.startswith("lm.")
            cfg = model.config.lm_config if lm else model.config.audio_encoder_config
            hd = cfg.d_model // cfg.n_heads
            kv = (cfg.n_kv_heads if lm else cfg.n_heads) * hd
            q, k, v = value.split([cfg.n_heads * hd, kv, kv], dim=0)
            stem = key[: -len("qkv_proj.weight")]
            legacy.update({f"{stem}q_proj.weight": q, f"{stem}k_proj.weight": k, f"{stem}v_proj.weight": v})
        elif key.endswith("gate_up_proj.weight"):
            gate, up = value.chunk(2, dim=0)
            stem = key[: -len("gate_up_proj.weight")]
            legacy.update({f"{stem}gate_proj.weight": gate, f"{stem}up_proj.weight": up})
        else:
            legacy[key] = value
    assert not any("qkv_proj" in k for k in legacy)
    save_file(legacy, str(tmp_path / "model.safetensors"))
    loaded = hub.load_model(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_directories_saved_before_heads_were_plug_ins_still_load(tmp_path):
    """audiollm 0.1.0 wrote ``ctc_weight`` / ``frame_weight`` and ``ctc_head.*`` / ``frame_head.*``
    weights, and frontend/encoder options since removed; such a folder loads to the same model."""
    torch.manual_seed(0)
    model = AudioLLM(AudioLLMConfig.tiny(ctc=0.3, note_activity=0.1)).eval()
    d = hub.save_model(tmp_path / "m", model)
    raw = json.loads((d / "config.json").read_text())
    raw.pop("heads")
    raw.update(ctc_weight=0.3, frame_weight=0.1, speaker_weight=0.0, speakers=0)
    raw["frontend"].update(vtlp=0.0, eq_db=0.0)
    raw["audio_encoder_config"]["subsample"] = "conv1d"
    (d / "config.json").write_text(json.dumps(raw))
    state = load_file(str(d / "model.safetensors"))
    renamed = {k.replace("heads.ctc.proj.", "ctc_head.").replace("heads.note_activity.proj.", "frame_head."): v
               for k, v in state.items()}
    assert any(k.startswith("ctc_head.") for k in renamed) and any(k.startswith("frame_head.") for k in renamed)
    save_file(renamed, str(d / "model.safetensors"))
    loaded = hub.load_model(d)
    assert loaded.config == model.config and set(loaded.heads) == {"ctc", "note_activity"}
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    # options that left the code are refused by name, not silently ignored
    for key, value, name in (("speaker_weight", 0.5, "speaker adversary"),):
        (d / "config.json").write_text(json.dumps({**raw, key: value}))
        with pytest.raises(ModelDirError, match=name):
            hub.load_model(d)
    raw["audio_encoder_config"]["subsample"] = "conv2d"
    (d / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelDirError, match="Conv2d subsampling"):
        hub.load_model(d)


def test_devices_and_dtypes(tmp_path):
    d = hub.save_model(tmp_path / "m", tiny_model())
    assert next(hub.load_model(d, dtype="bfloat16").parameters()).dtype == torch.bfloat16
    assert next(hub.load_model(d, device="auto").parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="dtype 'int4'; allowed: float32, bfloat16, float16"):
        hub.load_model(d, dtype="int4")
    with pytest.raises(ConfigError, match="device 'gpu0'"):
        hub.load_model(d, device="gpu0")
    with pytest.raises(ModelDirError, match="has model type 'audiollm', not 'mulan'"):
        hub.load_model(d, model_type="mulan")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available here"):
            hub.load_model(d, device="cuda:0")


def card_rows(directory) -> dict[str, str]:
    """part → origin, from the model card's table."""
    rows = [line.split("|") for line in (directory / "README.md").read_text().splitlines() if line.startswith("| ")]
    return {r[1].strip(): r[4].strip() for r in rows[1:] if len(r) > 4 and r[1].strip() != "metric"}


def test_model_card_says_which_parts_are_pretrained_frozen_lora_or_trained_here(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    torch.manual_seed(0)
    scratch = hub.save_model(tmp_path / "scratch", AudioLLM(AudioLLMConfig.tiny(ctc=0.3)))
    assert card_rows(scratch) == {"audio_encoder": "from scratch, trained here", "projector": "from scratch, trained here",
                                  "lm": "from scratch, trained here", "heads.ctc": "from scratch, trained here"}
    cfg = AudioLLMConfig.tiny(audio_encoder="whisper", lm="hf_causal_lm")
    cfg.audio_encoder_config.layer_weighting = True
    model = AudioLLM(cfg)
    rows = card_rows(hub.save_model(tmp_path / "pretrained", model))
    whisper, qwen = cfg.audio_encoder_config.model, cfg.lm_config.model
    weights = sum(p.numel() for p in model.audio_encoder.parameters() if p.requires_grad)
    assert rows["audio_encoder"] == f"pretrained ({whisper}), frozen except {weights:,} parameters trained here"
    assert rows["lm"] == f"pretrained ({qwen}), LoRA adapters (r=4, alpha=8, on q_proj,v_proj) trained here"
    assert rows["projector"] == "from scratch, trained here"
    card = (tmp_path / "pretrained" / "README.md").read_text()
    assert "from scratch" not in card.split("| audio_encoder |")[1].splitlines()[0]


def test_a_copied_model_directory_finds_its_pretrained_part_in_the_checkpoints_folder(tmp_path, monkeypatch):
    """A model folder records its frozen encoder by path; on another machine (the path gone)
    it finds a folder of that name in $AUDIOLLM_CHECKPOINTS, and otherwise says where to put it."""
    pytest.importorskip("transformers")
    here = tmp_path / "machine_a" / "whisper-tiny"
    here.parent.mkdir()
    shutil.copytree(tiny_checkpoint("whisper"), here)
    cfg = AudioLLMConfig.tiny(audio_encoder="whisper")
    cfg.audio_encoder_config.model = str(here)
    torch.manual_seed(0)
    model = AudioLLM(cfg).eval()
    d = hub.save_model(tmp_path / "model", model)
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch(vocab=128)
    ref = model(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True).logits
    shelf = tmp_path / "machine_b_checkpoints"
    shelf.mkdir()
    here.rename(shelf / "whisper-tiny")  # the original path is gone
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=f"no such checkpoint here; put it at {tmp_path / 'empty' / 'whisper-tiny'}"):
        hub.load_model(d)
    monkeypatch.setenv(CHECKPOINTS_ENV, str(shelf))
    out = hub.load_model(d)(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True).logits
    torch.testing.assert_close(out, ref, atol=0, rtol=0)
