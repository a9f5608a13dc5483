"""Model components and the composite AudioLLM at tiny size: shapes, masking, padding
invariance, loss, save/load, config validation, HF Llama parity."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from audiollm.errors import ConfigError, ModelDirError
from audiollm.models import (
    AUDIO_ENCODERS,
    LANGUAGE_MODELS,
    PROJECTORS,
    AudioEncoder,
    AudioEncoderConfig,
    AudioLLM,
    AudioLLMConfig,
    Decoder,
    DecoderConfig,
    LogMel,
    LogMelConfig,
    Projector,
    ProjectorConfig,
    get_entry,
    tiny_config,
)
from audiollm.models.lm import make_attention_mask
from helpers import decode_ids, gen



def make_batch(vocab: int = 128, seed: int = 0):
    """3 rows with different audio and text lengths; labels only on the 'answer' part."""
    g = torch.Generator().manual_seed(seed)
    audio_lengths = torch.tensor([8000, 3200, 5600])
    audio = torch.randn(3, 8000, generator=g) * 0.1
    audio[1, 3200:] = 0.0
    audio[2, 5600:] = 0.0
    text_lengths = torch.tensor([9, 5, 7])
    input_ids = torch.randint(6, vocab, (3, 9), generator=g)
    labels = torch.full((3, 9), -100)
    for i, n in enumerate(text_lengths.tolist()):
        input_ids[i, n:] = 0  # pad id
        labels[i, n - 3 : n] = input_ids[i, n - 3 : n]  # last 3 real tokens are the "answer"
    return audio, audio_lengths, input_ids, text_lengths, labels


def tiny_model(seed: int = 0, **lm_overrides) -> AudioLLM:
    torch.manual_seed(seed)
    cfg = AudioLLMConfig.tiny()
    for k, v in lm_overrides.items():
        setattr(cfg.lm_config, k, v)
    return AudioLLM(cfg).eval()


# ---------------------------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------------------------


def test_registries_have_builtins_and_tiny_configs():
    assert "conv_transformer" in AUDIO_ENCODERS and "mlp" in PROJECTORS and "llama" in LANGUAGE_MODELS
    for kind, registry in (("audio_encoder", AUDIO_ENCODERS), ("projector", PROJECTORS), ("lm", LANGUAGE_MODELS)):
        for name, (config_cls, module_cls) in registry.items():
            cfg = tiny_config(kind, name)
            assert isinstance(cfg, config_cls) and isinstance(module_cls, type)
    with pytest.raises(ConfigError, match="allowed: hf_causal_lm, llama"):
        get_entry("lm", "gpt5")


def test_mel_filterbank_matches_transformers_slaney():
    audio_utils = pytest.importorskip("transformers.audio_utils")
    from audiollm.models.frontend import mel_filterbank

    ours = mel_filterbank(16000, 400, 64, 0.0, 8000.0)
    ref = audio_utils.mel_filter_bank(
        num_frequency_bins=201, num_mel_filters=64, min_frequency=0.0, max_frequency=8000.0,
        sampling_rate=16000, norm="slaney", mel_scale="slaney",
    )
    torch.testing.assert_close(ours, torch.from_numpy(ref).float(), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("level", ["peak", "band_mean", "absolute"])
def test_logmel_shapes_and_padding_invariance(level):
    fe = LogMel(LogMelConfig(level=level))
    g = torch.Generator().manual_seed(0)
    clip = torch.randn(4321, generator=g) * 0.3
    feats_alone, n_alone = fe(clip[None], torch.tensor([4321]))
    assert feats_alone.shape == (1, 64, 4321 // 160 + 1) and n_alone.item() == 4321 // 160 + 1
    batch = torch.randn(2, 9000, generator=g)  # garbage (not zeros) after the clip must not matter
    batch[0, :4321] = clip
    feats, n = fe(batch, torch.tensor([4321, 9000]))
    assert feats.shape == (2, 64, 9000 // 160 + 1) and n.tolist() == [28, 57]
    torch.testing.assert_close(feats[0, :, :28], feats_alone[0], atol=1e-5, rtol=0)
    assert torch.all(feats[0, :, 28:] == 0)
    assert torch.isfinite(feats).all()
    # Every level keeps 80 dB (8 in log10) of range below the clip's peak → spread ≤ 2 after /4.
    real = feats[1]
    assert real.max() - real.min() <= 2.0 + 1e-5


def test_logmel_config_validation():
    with pytest.raises(ConfigError, match="f_max"):
        LogMelConfig(f_max=9000.0)
    with pytest.raises(ConfigError, match="frontend.n_mels"):
        LogMelConfig(n_mels=0)


def test_audio_encoder_shapes_and_padding_invariance():
    torch.manual_seed(0)
    enc = AudioEncoder(AudioEncoderConfig.tiny()).eval()
    feats = torch.randn(1, 16, 37)
    alone, n_alone = enc(feats, torch.tensor([37]))
    assert alone.shape == (1, 10, 32) and n_alone.tolist() == [10]  # ceil(ceil(37/2)/2)
    batch = torch.randn(3, 16, 61)
    batch[1, :, :37] = feats[0]
    out, n = enc(batch, torch.tensor([61, 37, 5]))
    assert out.shape == (3, 16, 32) and n.tolist() == [16, 10, 2]
    torch.testing.assert_close(out[1, :10], alone[0], atol=1e-5, rtol=0)
    assert torch.all(out[1, 10:] == 0) and torch.all(out[2, 2:] == 0)


def test_spec_augment_only_in_training_mode():
    torch.manual_seed(0)
    cfg = AudioEncoderConfig.tiny()
    cfg.spec_augment = True
    enc = AudioEncoder(cfg)
    feats, lengths = torch.randn(2, 16, 40), torch.tensor([40, 30])
    enc.eval()
    a, _ = enc(feats, lengths)
    b, _ = enc(feats, lengths)
    torch.testing.assert_close(a, b)
    enc.train()
    torch.manual_seed(1)
    c, _ = enc(feats, lengths)
    assert not torch.allclose(a, c)
    from audiollm.models.audio_encoder import spec_augment

    masked = spec_augment(feats, lengths, cfg)
    assert (masked == 0).any() and ((masked == feats) | (masked == 0)).all()


def test_projector_stacks_and_zeroes_padding():
    proj = Projector(ProjectorConfig(stack=3, hidden=8), in_dim=4, out_dim=6)
    x = torch.randn(2, 7, 4)
    out, n = proj(x, torch.tensor([7, 4]))
    assert out.shape == (2, 3, 6) and n.tolist() == [3, 2]
    assert torch.all(out[1, 2:] == 0)
    # The group straddling the end of row 1 sees zeros, not the garbage frames 4..5.
    alone, _ = proj(x[1:, :4], torch.tensor([4]))
    torch.testing.assert_close(out[1, :2], alone[0], atol=1e-6, rtol=0)


def test_decoder_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="n_kv_heads"):
        DecoderConfig(n_heads=8, n_kv_heads=3)
    with pytest.raises(ConfigError, match="lm_config.d_model"):
        DecoderConfig(d_model=100, n_heads=8)
    with pytest.raises(ConfigError, match="vocab_size"):
        DecoderConfig(vocab_size=0)
    with pytest.raises(ConfigError, match="dropout"):
        DecoderConfig(dropout=1.5)


def test_attention_mask_never_has_empty_rows():
    key_valid = torch.tensor([[False, False, True, True], [True, True, True, True]])
    mask = make_attention_mask(key_valid, 4, 4, causal=True)
    assert mask.shape == (2, 1, 4, 4) and mask.any(-1).all()
    assert not mask[0, 0, 3, :2].any()  # real queries never see padded keys
    assert make_attention_mask(None, 4, 4, causal=True) is None  # fast is_causal path
    assert make_attention_mask(torch.ones(2, 6, dtype=torch.bool), 1, 6, causal=True) is None
    # Right padding needs no mask under causal attention, but does for an encoder (causal=False)
    # and when the padding is not all at the end of a row.
    right = torch.tensor([[True, True, False, False], [True, True, True, True]])
    assert make_attention_mask(right, 4, 4, causal=True) is None
    assert make_attention_mask(right, 4, 4, causal=False) is not None
    assert make_attention_mask(torch.tensor([[True, False, True, True]]), 4, 4, causal=True) is not None


def test_decoder_right_padding_matches_unpadded_rows():
    torch.manual_seed(0)
    dec = Decoder(DecoderConfig.tiny()).eval()
    ids = torch.randint(0, 128, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, 6:] = False  # row 0 right-padded by 3 (a training batch)
    with torch.no_grad():
        full = dec(input_ids=ids, attention_mask=mask)
        alone = dec(input_ids=ids[:1, :6])
    torch.testing.assert_close(full[0, :6], alone[0], atol=1e-5, rtol=0)


def test_decoder_left_padding_no_nan_and_cache_matches_full_forward():
    torch.manual_seed(0)
    dec = Decoder(DecoderConfig.tiny()).eval()
    ids = torch.randint(0, 128, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, :3] = False  # row 0 left-padded by 3
    full = dec(input_ids=ids, attention_mask=mask)
    assert torch.isfinite(full).all()
    # Row 0 alone (no padding) gives the same logits on its real positions.
    alone = dec(input_ids=ids[:1, 3:])
    torch.testing.assert_close(full[0, 3:], alone[0], atol=1e-5, rtol=0)
    # Feeding the same tokens in chunks through a KV cache gives the same logits.
    cache = dec.new_cache(2, 16)
    chunks = [dec(input_ids=ids[:, a:b], attention_mask=mask[:, :b], cache=cache) for a, b in ((0, 5), (5, 6), (6, 9))]
    torch.testing.assert_close(torch.cat(chunks, 1)[mask], full[mask], atol=1e-5, rtol=0)
    assert cache.length == 9


@pytest.mark.parametrize("tie", [True, False])
def test_hf_llama_parity(tie):
    pytest.importorskip("transformers")
    from audiollm.models import decoder_to_hf_llama, hf_llama_to_decoder

    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=96, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=96,
                        rope_theta=500.0, tie_embeddings=tie)
    dec = Decoder(cfg).eval()
    hf = decoder_to_hf_llama(dec)
    ids = torch.randint(0, 96, (2, 13))
    with torch.no_grad():
        ours = dec(input_ids=ids)
        theirs = hf(input_ids=ids).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    # Our fused projections hold HF's matrices stacked by rows (GQA: k/v have n_kv_heads heads).
    hf_state, q_rows, kv_rows = hf.state_dict(), cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    qkv = dec.blocks[1].attn.qkv_proj.weight
    assert torch.equal(hf_state["model.layers.1.self_attn.k_proj.weight"], qkv[q_rows : q_rows + kv_rows])
    assert torch.equal(hf_state["model.layers.1.mlp.up_proj.weight"], dec.blocks[1].mlp.gate_up_proj.weight[96:])
    back = hf_llama_to_decoder(hf).eval()
    assert back.config == cfg
    for name, value in dec.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids), ours, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------
# AudioLLM
# ---------------------------------------------------------------------------------------------


def test_audiollm_shapes_and_loss_targets():
    model = tiny_model()
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch()
    out = model(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True)
    # 16 kHz / 160 hop → 1 + len // 160 frames, /4 by the encoder convs, /2 by the projector.
    frames = audio_lengths // 160 + 1
    expect_a = (((frames + 1) // 2 + 1) // 2 + 1) // 2
    assert out.audio_token_lengths.tolist() == expect_a.tolist()
    T = int((expect_a + text_lengths).max())
    assert out.logits.shape == (3, T, 128)
    assert out.attention_mask.sum(1).tolist() == (expect_a + text_lengths).tolist()
    assert out.n_targets.item() == 9  # 3 answer tokens per row
    torch.testing.assert_close(out.loss, out.loss_sum / 9)
    # Manual CE: merged position (A_i + t - 1) predicts labels[i, t].
    ce = []
    for i in range(3):
        a, n = int(expect_a[i]), int(text_lengths[i])
        for t in range(n - 3, n):
            ce.append(torch.nn.functional.cross_entropy(out.logits[i, a + t - 1][None], input_ids[i, t][None]))
    torch.testing.assert_close(out.loss_sum, torch.stack(ce).sum(), atol=1e-4, rtol=1e-5)


def test_ctc_loss_matches_per_row_ctc_and_skips_rows_without_transcripts():
    torch.manual_seed(0)
    cfg = AudioLLMConfig.tiny()
    cfg.ctc_weight = 0.5
    model = AudioLLM(AudioLLMConfig.from_dict(cfg.to_dict()))
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch()
    ctc_labels = torch.tensor([[5, 6, 7], [8, 9, 0], [0, 0, 0]])
    ctc_lengths = torch.tensor([3, 2, 0])  # the third row has no transcript
    out = model(audio, audio_lengths, input_ids, text_lengths, labels, ctc_labels, ctc_lengths)
    hidden, lengths = model.encode_frames(audio, audio_lengths)
    log_probs = torch.log_softmax(model.ctc_head(hidden).float(), -1)
    blank = log_probs.shape[-1] - 1
    expected = sum(
        torch.nn.functional.ctc_loss(log_probs[i, : lengths[i]], ctc_labels[i, : ctc_lengths[i]],
                                     lengths[i : i + 1], ctc_lengths[i : i + 1], blank=blank, reduction="sum")
        for i in range(2)
    )
    torch.testing.assert_close(out.aux_loss_sum, 0.5 * expected, atol=1e-4, rtol=1e-5)
    # No transcript in the batch: a zero that still reaches the head (DDP needs its gradient).
    none = model(audio, audio_lengths, input_ids, text_lengths, labels, ctc_labels, torch.zeros(3, dtype=torch.long))
    assert float(none.aux_loss_sum.detach()) == 0.0
    none.aux_loss_sum.backward()
    assert model.ctc_head.weight.grad is not None
    # Without ctc_weight there is no head and no auxiliary loss.
    assert tiny_model().ctc_head is None
    with pytest.raises(ConfigError, match="ctc_weight"):
        AudioLLMConfig.from_dict({**AudioLLMConfig.tiny().to_dict(), "ctc_weight": -1})


def test_padding_content_and_pad_labels_change_nothing():
    model = tiny_model()
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch()
    ref = model(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True)

    audio2, ids2, labels2 = audio.clone(), input_ids.clone(), labels.clone()
    audio2[1, 3200:] = torch.randn(4800)  # garbage past the real samples
    ids2[1, 5:] = 77  # non-pad ids past text_lengths
    labels2[1, 5:] = 55  # labels at pad positions are ignored
    out = model(audio2, audio_lengths, ids2, text_lengths, labels2, return_logits=True)
    torch.testing.assert_close(out.loss_sum, ref.loss_sum, atol=1e-5, rtol=0)
    assert out.n_targets == ref.n_targets
    m = ref.attention_mask
    torch.testing.assert_close(out.logits[m], ref.logits[m], atol=1e-5, rtol=0)

    # Labels at prompt positions set to -100 already; changing which prompt tokens carry
    # -100 vs answer labels changes the target count — but the logits stay identical.
    labels3 = labels.clone()
    labels3[0, 0] = input_ids[0, 0]
    out3 = model(audio, audio_lengths, input_ids, text_lengths, labels3, return_logits=True)
    assert out3.n_targets.item() == ref.n_targets.item() + 1
    torch.testing.assert_close(out3.logits, ref.logits)


def test_example_alone_equals_example_in_padded_batch():
    model = tiny_model()
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch()
    batch = model(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True)
    for i in range(3):
        s, n = int(audio_lengths[i]), int(text_lengths[i])
        alone = model(audio[i : i + 1, :s], audio_lengths[i : i + 1], input_ids[i : i + 1, :n],
                      text_lengths[i : i + 1], labels[i : i + 1, :n], return_logits=True)
        T = alone.logits.shape[1]
        torch.testing.assert_close(batch.logits[i, :T], alone.logits[0], atol=1e-5, rtol=0)
        per_row = torch.nn.functional.cross_entropy(
            batch.logits[i, :T - 1], torch.cat([torch.full((int(batch.audio_token_lengths[i]),), -100),
                                               labels[i, :n]])[1:], ignore_index=-100, reduction="sum")
        torch.testing.assert_close(alone.loss_sum, per_row, atol=1e-5, rtol=0)


def test_loss_goes_down_with_adamw():
    model = tiny_model().train()
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(audio, audio_lengths, input_ids, text_lengths, labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_config_dict_round_trip_and_errors():
    cfg = AudioLLMConfig.tiny()
    d = json.loads(json.dumps(cfg.to_dict()))
    assert AudioLLMConfig.from_dict(d) == cfg
    # Partial dicts take defaults; the encoder follows the frontend's n_mels.
    partial = AudioLLMConfig.from_dict({"frontend": {"n_mels": 40}, "lm_config": {"d_model": 64, "n_heads": 4}})
    assert partial.audio_encoder_config.n_mels == 40 and partial.lm_config.n_kv_heads == 4
    with pytest.raises(ConfigError, match="unknown model config key 'encoder'"):
        AudioLLMConfig.from_dict({"encoder": "x"})
    with pytest.raises(ConfigError, match="lm_config.widthh"):
        AudioLLMConfig.from_dict({"lm_config": {"widthh": 3}})
    with pytest.raises(ConfigError, match="unknown lm 'gpt'; allowed: hf_causal_lm, llama"):
        AudioLLMConfig.from_dict({"lm": "gpt"})
    with pytest.raises(ConfigError, match="n_mels"):
        AudioLLMConfig.from_dict({"frontend": {"n_mels": 40}, "audio_encoder_config": {"n_mels": 64}})


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
    out_dir = model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.json", "model.safetensors"]
    loaded = AudioLLM.from_pretrained(out_dir)
    assert loaded.config == cfg and not loaded.training
    out = loaded(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True)
    torch.testing.assert_close(out.logits, ref.logits, atol=0, rtol=0)
    assert out.loss_sum.item() == ref.loss_sum.item()
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_save_into_existing_dir_keeps_other_files_and_leaves_no_temp(tmp_path):
    model = tiny_model()
    target = tmp_path / "m"
    target.mkdir()
    (target / "tokenizer.json").write_text("{}")
    model.save_pretrained(target)
    model.save_pretrained(target)  # overwrite in place
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    assert json.loads((target / "config.json").read_text())["model_type"] == "audiollm"


def test_from_pretrained_errors_name_the_file(tmp_path):
    model = tiny_model()
    with pytest.raises(ModelDirError, match="not found"):
        AudioLLM.from_pretrained(tmp_path / "nope")
    d = model.save_pretrained(tmp_path / "m")
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelDirError, match="model.safetensors"):
        AudioLLM.from_pretrained(d)
    d = model.save_pretrained(tmp_path / "m2")
    (d / "config.json").unlink()
    with pytest.raises(ModelDirError, match="config.json"):
        AudioLLM.from_pretrained(d)
    # A config whose architecture does not match the weights: a mismatched key set.
    d = model.save_pretrained(tmp_path / "m3")
    cfg = json.loads((d / "config.json").read_text())
    cfg["lm_config"]["n_layers"] = 3
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match=r"model.safetensors: weights do not match config.json: missing 6 key"):
        AudioLLM.from_pretrained(d)
    # Same key set, different shapes.
    cfg["lm_config"]["n_layers"] = 2
    cfg["lm_config"]["ffn_hidden"] = 48
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match="has shape"):
        AudioLLM.from_pretrained(d)
    # Unknown key / corrupt files.
    cfg["lm_config"]["bogus"] = 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirError, match="lm_config.bogus"):
        AudioLLM.from_pretrained(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="cannot read config.json"):
        AudioLLM.from_pretrained(d)
    d = model.save_pretrained(tmp_path / "m4")
    (d / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="cannot read model.safetensors"):
        AudioLLM.from_pretrained(d)


def test_num_parameters():
    model = tiny_model()
    total = model.num_parameters()
    assert total == sum(p.numel() for p in model.parameters())
    for p in model.audio_encoder.parameters():
        p.requires_grad_(False)
    assert model.num_parameters(trainable_only=True) == total - sum(
        p.numel() for p in model.audio_encoder.parameters()
    )


def test_bfloat16_model_runs_and_keeps_float32_frontend_and_rope():
    model = tiny_model()
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch()
    ref = model(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True)
    feats32, _ = model.frontend(audio, audio_lengths)
    model = model.to(torch.bfloat16)
    assert model.frontend.mel_fb.dtype == torch.float32 and model.lm.rope.inv_freq.dtype == torch.float32
    torch.testing.assert_close(model.frontend(audio, audio_lengths)[0], feats32)
    out = model(audio, audio_lengths, input_ids, text_lengths, labels, return_logits=True)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    assert abs(out.loss.item() - ref.loss.item()) < 0.1
    tokens = gen(model, audio, audio_lengths, [[5, 6], [7], [8, 9, 10]], max_new_tokens=4)
    assert [len(t) for t in tokens] == [4, 4, 4]


def test_peak_level_frontend_is_gain_invariant():
    """A recording 20 dB quieter gives the same features with level="peak" (not with "absolute")."""
    from audiollm.models.frontend import LogMel, LogMelConfig

    torch.manual_seed(0)
    wav = torch.randn(1, 8000) * 0.2
    n = torch.tensor([8000])
    peak = LogMel(LogMelConfig(level="peak"))
    assert torch.allclose(peak(wav, n)[0], peak(wav * 0.1, n)[0], atol=1e-5)
    band_mean = LogMel(LogMelConfig(level="band_mean"))
    assert torch.allclose(band_mean(wav, n)[0], band_mean(wav * 0.1, n)[0], atol=1e-5)
    absolute = LogMel(LogMelConfig(level="absolute"))
    assert not torch.allclose(absolute(wav, n)[0], absolute(wav * 0.1, n)[0], atol=1e-2)


def test_vtlp_warps_features_in_training_only_and_keeps_shapes():
    from audiollm.models.frontend import mel_filterbank, vtlp_warp, warped_mel_filterbank

    # The warp is the identity at alpha = 1, monotonic, and maps [0, nyquist] onto itself.
    freqs = torch.linspace(0, 8000, 201, dtype=torch.float64)
    w = vtlp_warp(freqs, torch.tensor([0.9, 1.0, 1.1]), 6400.0, 8000.0)
    torch.testing.assert_close(w[1], freqs)
    assert torch.all(w.diff(dim=1) > 0) and torch.allclose(w[:, -1], torch.full((3,), 8000.0, dtype=torch.float64))
    assert w[0, 50] < freqs[50] < w[2, 50]  # below the knee: f → α·f
    cfg = LogMelConfig(vtlp=0.1)
    torch.testing.assert_close(warped_mel_filterbank(cfg, torch.ones(2))[0], mel_filterbank(16000, 400, 64, 0.0, 8000.0))

    g = torch.Generator().manual_seed(0)
    t = torch.arange(9000) / 16000
    audio = torch.stack([torch.sin(2 * torch.pi * 700 * t), torch.randn(9000, generator=g) * 0.2])
    lengths = torch.tensor([9000, 6000])
    fe = LogMel(cfg)
    plain, n_plain = LogMel(LogMelConfig())(audio, lengths)
    fe.eval()
    torch.testing.assert_close(fe(audio, lengths)[0], plain)  # inference never warps
    fe.train()
    torch.manual_seed(0)
    warped, n_warped = fe(audio, lengths)
    assert warped.shape == plain.shape and torch.equal(n_warped, n_plain)
    assert not torch.allclose(warped, plain, atol=1e-3)
    assert torch.all(warped[1, :, int(n_plain[1]):] == 0)  # padding stays zero
    # The 700 Hz tone's strongest band moves with the warp (up for alpha > 1, down for < 1).
    peak_band = lambda feats: int(feats[0, :, 10].argmax())
    up = LogMel(LogMelConfig(vtlp=0.2)).train()
    torch.manual_seed(1)
    bands = []
    for _ in range(8):
        bands.append(peak_band(up(audio, lengths)[0]))
    assert len(set(bands)) > 1 and min(bands) <= peak_band(plain) <= max(bands)


def test_logmel_top_db_sets_the_floor():
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(1, 8000, generator=g) * torch.linspace(0, 1, 8000) ** 4
    lengths = torch.tensor([8000])
    for top_db in (40.0, 80.0):
        feats, _ = LogMel(LogMelConfig(top_db=top_db))(audio, lengths)
        assert abs(float(feats.min()) - (1.0 - top_db / 40.0)) < 1e-5  # floor = peak − top_db, /40 dB per unit
    with pytest.raises(ConfigError, match="top_db"):
        LogMelConfig(top_db=0)
    with pytest.raises(ConfigError, match="vtlp"):
        LogMelConfig(vtlp=0.7)


def test_random_eq_in_training_only_and_bounded():
    from audiollm.models.frontend import random_eq

    torch.manual_seed(0)
    curves = random_eq(64, 40, 12.0)
    assert curves.shape == (64, 40) and curves.abs().max() <= 1.2 + 1e-6  # ≤ 12 dB = 1.2 in log10
    assert curves.std(dim=0).min() > 0  # every band gets a random gain
    g = torch.Generator().manual_seed(0)
    audio, lengths = torch.randn(2, 8000, generator=g) * 0.3, torch.tensor([8000, 5000])
    fe = LogMel(LogMelConfig(eq_db=12.0))
    plain, n = LogMel(LogMelConfig())(audio, lengths)
    torch.testing.assert_close(fe.eval()(audio, lengths)[0], plain)
    eq, n_eq = fe.train()(audio, lengths)
    assert eq.shape == plain.shape and torch.equal(n, n_eq) and not torch.allclose(eq, plain, atol=1e-3)
    assert torch.all(eq[1, :, int(n[1]):] == 0)
    with pytest.raises(ConfigError, match="eq_db"):
        LogMelConfig(eq_db=-1)


def test_conv2d_subsampling_shapes_and_padding_invariance():
    torch.manual_seed(0)
    cfg = AudioEncoderConfig.tiny()
    cfg.subsample = "conv2d"
    enc = AudioEncoder(cfg).eval()
    assert isinstance(enc.conv1, torch.nn.Conv2d) and enc.conv_proj.in_features == 32 * 4  # 16 mels → 4
    feats = torch.randn(1, 16, 37)
    alone, n_alone = enc(feats, torch.tensor([37]))
    assert alone.shape == (1, 10, 32) and n_alone.tolist() == [10]
    batch = torch.randn(3, 16, 61)  # garbage after each clip's frames must not leak in
    batch[1, :, :37] = feats[0]
    out, n = enc(batch, torch.tensor([61, 37, 5]))
    assert out.shape == (3, 16, 32) and n.tolist() == [16, 10, 2]
    torch.testing.assert_close(out[1, :10], alone[0], atol=1e-5, rtol=0)
    assert torch.all(out[2, 2:] == 0)
    with pytest.raises(ConfigError, match="subsample"):
        AudioEncoderConfig(subsample="conv3d")


def test_directories_saved_before_fused_projections_still_load(tmp_path):
    """q/k/v and gate/up saved as separate matrices (audiollm 0.1.0) load into the fused layout."""
    from safetensors.torch import load_file, save_file

    model = tiny_model()
    model.save_pretrained(tmp_path)
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
    loaded = AudioLLM.from_pretrained(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_speaker_adversary_loss_ignores_padding_and_reverses_the_encoder_gradient(tmp_path):
    torch.manual_seed(0)
    cfg = AudioLLMConfig.tiny()
    cfg.speaker_weight, cfg.speakers = 0.25, ["a", "b", "c"]
    model = AudioLLM(AudioLLMConfig.from_dict(cfg.to_dict())).eval()  # eval: no SpecAugment draws
    assert model.speaker_head is not None
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch()
    speaker_ids = torch.tensor([2, -1, 0])  # the middle row names no known speaker
    out = model(audio, audio_lengths, input_ids, text_lengths, labels, speaker_ids=speaker_ids)
    # Expected: cross-entropy of the head on each row's mean over its real encoder frames.
    hidden, lengths = model.encode_frames(audio, audio_lengths)
    pooled = torch.stack([hidden[i, : lengths[i]].mean(0) for i in (0, 2)])
    expected = torch.nn.functional.cross_entropy(model.speaker_head(pooled), torch.tensor([2, 0]), reduction="sum")
    torch.testing.assert_close(out.aux_loss_sum, expected, atol=1e-5, rtol=1e-5)
    loss, rows = out.aux_stats["speaker_loss"]
    correct, rows2 = out.aux_stats["speaker_accuracy"]
    torch.testing.assert_close(loss, expected.detach())
    assert int(rows) == int(rows2) == 2
    assert int(correct) == int((model.speaker_head(pooled).argmax(-1) == torch.tensor([2, 0])).sum())
    # Garbage past a row's samples changes nothing.
    audio2 = audio.clone()
    audio2[2, 5600:] = torch.randn(2400)
    again = model(audio2, audio_lengths, input_ids, text_lengths, labels, speaker_ids=speaker_ids)
    torch.testing.assert_close(again.aux_loss_sum, out.aux_loss_sum, atol=1e-5, rtol=0)

    # The head descends the speaker loss; the encoder gets that gradient times -speaker_weight.
    model.zero_grad()
    out.aux_loss_sum.backward()
    reversed_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    hidden, lengths = model.encode_frames(audio, audio_lengths)
    pooled = torch.stack([hidden[i, : lengths[i]].mean(0) for i in (0, 2)])
    torch.nn.functional.cross_entropy(model.speaker_head(pooled), torch.tensor([2, 0]), reduction="sum").backward()
    plain = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert any(n.startswith("audio_encoder.") for n in plain) and any(n.startswith("speaker_head.") for n in plain)
    for name, grad in plain.items():
        scale = 1.0 if name.startswith("speaker_head.") else -0.25
        torch.testing.assert_close(reversed_grads[name], scale * grad, atol=1e-5, rtol=1e-4)

    # No known speaker in the batch: a zero that still reaches the head (DDP needs its gradient).
    none = model(audio, audio_lengths, input_ids, text_lengths, labels, speaker_ids=torch.full((3,), -1))
    assert float(none.aux_loss_sum.detach()) == 0.0
    # Saved with the model: the head and its speakers come back.
    model.save_pretrained(tmp_path / "m")
    back = AudioLLM.from_pretrained(tmp_path / "m")
    assert back.config.speakers == ["a", "b", "c"]
    torch.testing.assert_close(back.speaker_head[0].weight, model.speaker_head[0].weight)
    assert tiny_model().speaker_head is None
    with pytest.raises(ConfigError, match="at least 2 speakers"):
        AudioLLMConfig.from_dict({**AudioLLMConfig.tiny().to_dict(), "speaker_weight": 1.0, "speakers": ["a"]})
