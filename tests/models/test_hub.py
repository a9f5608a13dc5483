"""One save/load for every model type (models/hub.py): round trips, strict checks, atomic
writes, legacy directories, devices and dtypes, the model card, and pretrained parts found
again after a model directory moves to another machine."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from audiollm.errors import ModelDirError
from audiollm.models import AUDIO_ENCODERS, LANGUAGE_MODELS, PROJECTORS, AudioLLM, AudioLLMConfig, hub
from audiollm.tokenizers.text import TextTokenizer
from helpers import make_batch, tiny_model


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
    from safetensors.torch import load_file, save_file

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



