"""Pretrained backbones through transformers: tiny random checkpoints built from config objects.

Every encoder kind and the HF causal LM (with LoRA through peft) load from a saved checkpoint
directory, train through the real `train()` loop, save, load and generate; the errors a user
can cause (remote code not allowed, wrong widths, a tokenizer bigger than the LM) are one line.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from helpers import gen, tiny_model_section, write_config  # noqa: E402

from audiollm.cli.parser import main  # noqa: E402
from audiollm.config import from_dict, to_dict  # noqa: E402
from audiollm.decoding.options import DecodingOptions  # noqa: E402
from audiollm.errors import ConfigError  # noqa: E402
from audiollm.inference.answer import generate_answers  # noqa: E402
from audiollm.models import AudioLLM, AudioLLMConfig, hub  # noqa: E402
from audiollm.models.pretrained.hf_audio import SAMPLE_RATE, WhisperEncoder  # noqa: E402
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint  # noqa: E402
from audiollm.tokenizers.hf import (
    HFTokenizer,  # noqa: E402
    load_tokenizer,
)
from audiollm.training.config import load_config  # noqa: E402
from audiollm.training.loop import train  # noqa: E402

ENCODERS = ["whisper", "hubert", "wav2vec2", "mert", "ast", "clap"]


def model_section(encoder: str = "whisper", lm: str = "hf_causal_lm", **encoder_options) -> dict:
    return tiny_model_section(encoder, lm, **encoder_options)


def backbone_config(tmp_path: Path, corpus: Path, model: dict, **train_overrides) -> Path:
    """A 3-step run without validation (pretrained backbones are slow to score)."""
    return write_config(tmp_path, corpus, model=model, data={"valid": ""},
                        **{"max_steps": 3, "batch_size": 4, "warmup_steps": 1, "max_new_tokens": 4, **train_overrides})


def batch(lengths=(24000, 9000)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(len(lengths), max(lengths), generator=g)
    return audio, torch.tensor(lengths)


# ---------------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ENCODERS)
def test_encoder_takes_waveforms_and_a_clip_alone_equals_it_in_a_batch(encoder):
    torch.manual_seed(0)
    model = AudioLLM(AudioLLMConfig.tiny(audio_encoder=encoder)).eval()
    assert model.takes_waveform and model.frontend is None  # the log-mel frontend is bypassed
    audio, lengths = batch()
    hidden, frames = model.encode_frames(audio, lengths)
    assert hidden.shape[0] == 2 and hidden.shape[-1] == model.audio_encoder.output_dim
    alone, alone_frames = model.encode_frames(audio[1:, :9000], lengths[1:])
    assert int(frames[1]) == int(alone_frames[0])
    n = int(frames[1])
    # MERT resamples to 24 kHz: the filter sees a little of the neighbouring padding.
    atol = 1e-3 if encoder == "mert" else 1e-4
    torch.testing.assert_close(hidden[1, :n], alone[0, :n], atol=atol, rtol=0)
    assert float(hidden[1, n:].abs().sum()) == 0.0  # frames past the clip are zeroed
    # Frozen by default: only the projector and LM adapters train.
    assert not any(p.requires_grad for p in model.audio_encoder.model.parameters())


def test_whisper_features_match_the_whisper_feature_extractor():
    encoder = WhisperEncoder(AudioLLMConfig.tiny(audio_encoder="whisper").audio_encoder_config)
    extractor = transformers.WhisperFeatureExtractor.from_pretrained(tiny_checkpoint("whisper"))
    wav = (0.3 * np.sin(2 * np.pi * 440 * np.arange(12000) / SAMPLE_RATE)).astype(np.float32)
    ref = extractor(wav, sampling_rate=SAMPLE_RATE, return_tensors="pt")["input_features"]  # padded to the window
    padded = torch.zeros(1, encoder.window_frames * encoder.hop)
    padded[0, : wav.shape[0]] = torch.from_numpy(wav)
    ours = encoder.log_mel(padded)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=2e-4, rtol=0)


def test_whisper_long_clip_is_encoded_in_consecutive_windows():
    model = AudioLLM(AudioLLMConfig.tiny(audio_encoder="whisper")).eval()
    win = model.audio_encoder.window_frames * model.audio_encoder.hop  # 1 s in the tiny checkpoint
    audio, lengths = batch((int(2.5 * win), win // 2))
    hidden, frames = model.encode_frames(audio, lengths)
    P = model.audio_encoder.model.config.max_source_positions
    assert hidden.shape[1] == 3 * P and frames.tolist() == [int(2.5 * P), P // 2]


def test_layer_choice_and_learned_layer_weighting():
    base = AudioLLMConfig.tiny(audio_encoder="hubert")
    audio, lengths = batch()
    states = {}
    for layer in (0, -1):
        cfg = from_dict(AudioLLMConfig, {**to_dict(base), "audio_encoder_config": {"model": base.audio_encoder_config.model, "layer": layer}})
        states[layer] = AudioLLM(cfg).eval().encode_frames(audio, lengths)[0]
    assert not torch.allclose(states[0], states[-1])
    cfg = from_dict(AudioLLMConfig, {**to_dict(base), "audio_encoder_config": {"model": base.audio_encoder_config.model,
                                                                             "layer_weighting": True}})
    model = AudioLLM(cfg)
    enc = model.audio_encoder
    assert enc.layer_weights.requires_grad and enc.layer_weights.numel() == 3  # embeddings + 2 layers
    hidden, _ = model.encode_frames(audio, lengths)
    hidden.square().mean().backward()
    assert enc.layer_weights.grad is not None and float(enc.layer_weights.grad.abs().sum()) > 0
    assert "audio_encoder.layer_weights" in model.state_to_save()
    assert not any(k.startswith("audio_encoder.model.") for k in model.state_to_save())
    with pytest.raises(ConfigError, match=r"layer=7 is out of range: the checkpoint has 3 hidden states"):
        AudioLLM(from_dict(AudioLLMConfig, {**to_dict(base), "audio_encoder_config": {"model": base.audio_encoder_config.model, "layer": 7}}))


def test_tuned_encoder_is_trainable_and_saved_whole(tmp_path):
    base = AudioLLMConfig.tiny(audio_encoder="wav2vec2")
    cfg = from_dict(AudioLLMConfig, {**to_dict(base), "audio_encoder_config": {"model": base.audio_encoder_config.model,
                                                                             "freeze": False}})
    model = AudioLLM(cfg)
    assert all(p.requires_grad for p in model.audio_encoder.model.parameters())
    with torch.no_grad():
        for p in model.audio_encoder.model.parameters():
            p.add_(0.01)
    loaded = hub.load_model(hub.save_model(tmp_path / "m", model))
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


def test_wrong_widths_and_missing_checkpoints_are_one_line_errors(tmp_path):
    path = tiny_checkpoint("hubert")
    cfg = from_dict(AudioLLMConfig, {"audio_encoder": "hubert", "audio_encoder_config": {"model": path, "output_dim": 768},
                                    "lm_config": {"vocab_size": 64}})
    with pytest.raises(ConfigError, match=r"output_dim=768 but the checkpoint at .* is 32 wide"):
        AudioLLM(cfg)
    cfg = from_dict(AudioLLMConfig, {"audio_encoder": "hubert", "audio_encoder_config": {"model": str(tmp_path / "nope")},
                                    "lm_config": {"vocab_size": 64}})
    with pytest.raises(ConfigError, match="no such checkpoint here; put it at"):
        AudioLLM(cfg)
    with pytest.raises(ConfigError, match="audio_encoder_config.model is required"):
        AudioLLM(from_dict(AudioLLMConfig, {"audio_encoder": "ast", "lm_config": {"vocab_size": 64}}))


# A checkpoint with its own modelling code, as MERT's hub repository has (auto_map): a HuBERT
# stand-in whose classes live in Python files inside the checkpoint directory.
_REMOTE_CONFIG = '''from transformers import HubertConfig


class StandInMERTConfig(HubertConfig):
    model_type = "standin_mert"
'''
_REMOTE_MODEL = '''from transformers import HubertModel

from .configuration_standin import StandInMERTConfig


class StandInMERTModel(HubertModel):
    config_class = StandInMERTConfig
'''


def remote_code_checkpoint(tmp_path: Path) -> Path:
    d = tmp_path / "mert-standin"
    shutil.copytree(tiny_checkpoint("mert"), d)
    (d / "configuration_standin.py").write_text(_REMOTE_CONFIG)
    (d / "modeling_standin.py").write_text(_REMOTE_MODEL)
    config = json.loads((d / "config.json").read_text())
    config["model_type"] = "standin_mert"
    config["architectures"] = ["StandInMERTModel"]
    config["auto_map"] = {"AutoConfig": "configuration_standin.StandInMERTConfig",
                          "AutoModel": "modeling_standin.StandInMERTModel"}
    (d / "config.json").write_text(json.dumps(config))
    return d


def test_mert_runs_its_own_code_only_when_trusted(tmp_path):
    d = remote_code_checkpoint(tmp_path)
    trusted = from_dict(AudioLLMConfig, {"audio_encoder": "mert", "audio_encoder_config": {"model": str(d)},
                                        "lm_config": {"vocab_size": 64}})
    model = AudioLLM(trusted).eval()
    assert type(model.audio_encoder.model).__name__ == "StandInMERTModel"
    assert model.audio_encoder.sample_rate == 24000  # from the checkpoint's preprocessor_config.json
    hidden, frames = model.encode_frames(*batch())
    assert hidden.shape[-1] == 32 and frames.tolist()[0] > frames.tolist()[1]
    refused = from_dict(AudioLLMConfig, {"audio_encoder": "mert", "lm_config": {"vocab_size": 64},
                                        "audio_encoder_config": {"model": str(d), "trust_remote_code": False}})
    with pytest.raises(ConfigError, match="ships its own modelling code .* set audio_encoder_config.trust_remote_code=true"):
        AudioLLM(refused)


# ---------------------------------------------------------------------------------------------
# HF causal LM, LoRA, tokenizer
# ---------------------------------------------------------------------------------------------


def test_hf_lm_cached_generation_equals_uncached():
    torch.manual_seed(0)
    cfg = AudioLLMConfig.tiny(audio_encoder="whisper", lm="hf_causal_lm")
    cfg.lm_config.vocab_size = 0
    model = AudioLLM(cfg).eval()
    with torch.no_grad():  # non-zero LoRA B so the adapters change the output
        for name, p in model.lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    audio, lengths = batch()
    prompts = [[5, 6, 7], [8]]
    cached, lc = gen(model, audio, lengths, prompts, max_new_tokens=6, return_logits=True)
    full, lf = gen(model, audio, lengths, prompts, max_new_tokens=6, use_cache=False, return_logits=True)
    assert cached == full and all(len(t) == 6 for t in cached)
    for a, b in zip(lc, lf):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_train_save_load_generate_every_encoder_with_lora_lm(tmp_path, toy_corpus_shared, encoder):
    cfg = load_config(backbone_config(tmp_path, toy_corpus_shared, model_section(encoder)))
    final = train(cfg, progress=False)
    # Only trained tensors are stored: projector, LoRA adapters, nothing of the frozen bases.
    stored = json.loads((final / "model.safetensors").read_bytes()[8 : 8 + int.from_bytes((final / "model.safetensors").read_bytes()[:8], "little")])
    names = [k for k in stored if k != "__metadata__"]
    assert names and all(k.startswith("projector.") or "lora_" in k for k in names), names
    model, tokenizer = hub.load(final)
    assert isinstance(tokenizer, HFTokenizer)
    answers = generate_answers(model, tokenizer, [torch.zeros(8000), 0.1 * torch.randn(12000)],
                               ["Is it high or low?", "What is playing?"], DecodingOptions(max_new_tokens=4))
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_lora_training_changes_only_adapters_and_projector_and_saves_small(tmp_path, toy_corpus_shared):
    cfg = load_config(backbone_config(tmp_path, toy_corpus_shared, model_section("hubert"), max_steps=4))
    final = train(cfg, progress=False)
    model, _ = hub.load(final)
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_checkpoint("qwen2_lm"))
    merged = model.lm.model.base_model.model
    for name, p in base.named_parameters():  # base weights untouched by training
        key = name.replace("q_proj.", "q_proj.base_layer.").replace("v_proj.", "v_proj.base_layer.")
        torch.testing.assert_close(dict(merged.named_parameters())[key], p, atol=0, rtol=0)
    lora_b = [p for n, p in model.lm.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.abs().sum()) > 0 for p in lora_b)  # the adapters learned something
    saved = (final / "model.safetensors").stat().st_size
    full = sum(p.numel() * p.element_size() for p in model.parameters())
    assert saved < 0.5 * full


def test_full_finetune_of_tied_hf_lm_round_trips(tmp_path):
    cfg = AudioLLMConfig.tiny(audio_encoder="ast", lm="hf_causal_lm")
    cfg.lm_config.lora_r = 0
    cfg.lm_config.freeze = False
    model = AudioLLM(cfg)
    with torch.no_grad():
        model.lm.model.get_input_embeddings().weight.add_(0.05)
    loaded = hub.load_model(hub.save_model(tmp_path / "m", model))
    torch.testing.assert_close(loaded.lm.model.get_input_embeddings().weight,
                               model.lm.model.get_input_embeddings().weight, atol=0, rtol=0)
    torch.testing.assert_close(loaded.lm.model.get_output_embeddings().weight,
                               model.lm.model.get_output_embeddings().weight, atol=0, rtol=0)


def test_tokenizer_bigger_than_the_lm_is_a_clear_error(tmp_path, toy_corpus_shared, capsys):
    big = tmp_path / "big-tokenizer"
    tok = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint("qwen2_lm"))
    tok.add_tokens([f"<extra_{i}>" for i in range(200)])
    tok.save_pretrained(big)
    path = backbone_config(tmp_path, toy_corpus_shared, model_section("hubert"))
    code = main(["train", str(path), f"tokenizer.pretrained={big}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "audiollm: error: the tokenizer has" in err and "embedding rows" in err


def test_hf_tokenizer_prompt_uses_chat_template_when_present(tmp_path):
    tok = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint("qwen2_lm"))
    plain = HFTokenizer(tok)
    assert plain.decode(plain.prompt_ids("What is it?")) == "User: What is it?\nAssistant:"
    tok.chat_template = "{% for m in messages %}<<{{ m['content'] }}>>{% endfor %}{% if add_generation_prompt %}=>{% endif %}"
    templated = HFTokenizer(tok)
    assert templated.decode(templated.prompt_ids("hi")) == "<<hi>>=>"
    templated.save_pretrained(tmp_path / "t")
    again = load_tokenizer(tmp_path / "t")
    assert isinstance(again, HFTokenizer) and again.prompt_ids("hi") == templated.prompt_ids("hi")


# ---------------------------------------------------------------------------------------------
# Dry run
# ---------------------------------------------------------------------------------------------


def test_train_dry_run_prints_counts_memory_tokens_and_first_batch(tmp_path, toy_corpus_shared, capsys):
    path = backbone_config(tmp_path, toy_corpus_shared, model_section("whisper"))
    assert main(["train", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "trainable" in out and "memory estimate" in out and "tokens per example" in out
    assert "first batch:" in out and "answer:" in out and "dry run: nothing was trained" in out
    assert not (tmp_path / "run").exists()


def test_a_local_checkpoint_is_recorded_by_its_absolute_path(tmp_path, monkeypatch):
    """A saved model directory must find its checkpoint from any working directory: a relative
    local path is stored resolved; a hub id (nothing local by that name) stays as written."""
    shutil.copytree(tiny_checkpoint("whisper"), tmp_path / "models" / "w")
    monkeypatch.chdir(tmp_path)
    cfg = to_dict(AudioLLMConfig.tiny(audio_encoder="whisper"))
    cfg["audio_encoder_config"]["model"] = "models/w"
    model = AudioLLM(from_dict(AudioLLMConfig, cfg))
    hub.save_model(tmp_path / "saved", model)
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["audio_encoder_config"]["model"] == str((tmp_path / "models" / "w").resolve())
    monkeypatch.chdir(tmp_path / "saved")
    assert hub.load_model(tmp_path / "saved").audio_encoder.output_dim == model.audio_encoder.output_dim
    cfg["audio_encoder_config"]["model"] = "openai/whisper-tiny.en"
    assert from_dict(AudioLLMConfig, cfg).audio_encoder_config.model == "openai/whisper-tiny.en"
