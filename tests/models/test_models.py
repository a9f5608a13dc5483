"""Model components and the composite AudioLLM at tiny size: shapes, masking, padding
invariance, loss, save/load, config validation, HF Llama parity."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from helpers import gen, make_batch, tiny_model

from audiollm.config import from_dict, to_dict
from audiollm.data.augment import spec_augment
from audiollm.errors import ConfigError
from audiollm.models import (
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
    decoder_to_hf_llama,
    get_entry,
    hf_llama_to_decoder,
    register_projector,
)
from audiollm.models.frontend import mel_filterbank
from audiollm.models.heads import HEADS
from audiollm.models.lm import make_attention_mask

# ---------------------------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------------------------


def test_registries_refuse_duplicates_configs_without_tiny_and_unknown_names():
    class Other(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match="already registered to Projector"):
        register_projector("mlp", ProjectorConfig)(Other)

    @dataclasses.dataclass
    class NoTiny:
        width: int = 3

    with pytest.raises(TypeError, match="tiny"):
        register_projector("wide", NoTiny)(Other)
    assert "wide" not in PROJECTORS
    with pytest.raises(ConfigError, match="unknown lm 'gpt5'; allowed: hf_causal_lm, llama"):
        get_entry("lm", "gpt5")


def test_mel_filterbank_matches_transformers_slaney():
    audio_utils = pytest.importorskip("transformers.audio_utils")
    ours = mel_filterbank(16000, 400, 64, 0.0, 8000.0)
    ref = audio_utils.mel_filter_bank(
        num_frequency_bins=201, num_mel_filters=64, min_frequency=0.0, max_frequency=8000.0,
        sampling_rate=16000, norm="slaney", mel_scale="slaney",
    )
    torch.testing.assert_close(ours, torch.from_numpy(ref).float(), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("level", ["peak", "absolute"])
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
    masked = spec_augment(feats, lengths, cfg.freq_masks, cfg.freq_mask_width, cfg.time_masks, cfg.time_mask_width)
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
    model = AudioLLM(AudioLLMConfig.tiny(ctc=0.5))
    audio, audio_lengths, input_ids, text_lengths, labels = make_batch()
    targets = HEADS["ctc"].collate([[5, 6, 7], [8, 9], None])  # the third row has no transcript
    ctc_labels, ctc_lengths = targets["labels"], targets["lengths"]
    out = model(audio, audio_lengths, input_ids, text_lengths, labels, targets={"ctc": targets})
    hidden, lengths = model.encode_frames(audio, audio_lengths)
    log_probs = torch.log_softmax(model.heads["ctc"](hidden).float(), -1)
    blank = log_probs.shape[-1] - 1
    expected = sum(
        torch.nn.functional.ctc_loss(log_probs[i, : lengths[i]], ctc_labels[i, : ctc_lengths[i]],
                                     lengths[i : i + 1], ctc_lengths[i : i + 1], blank=blank, reduction="sum")
        for i in range(2)
    )
    torch.testing.assert_close(out.aux_loss_sum, 0.5 * expected, atol=1e-4, rtol=1e-5)
    # No transcript in the batch: a zero that still reaches the head (DDP needs its gradient).
    none = model(audio, audio_lengths, input_ids, text_lengths, labels, targets={"ctc": HEADS["ctc"].collate([None] * 3)})
    assert float(none.aux_loss_sum.detach()) == 0.0
    none.aux_loss_sum.backward()
    assert model.heads["ctc"].proj.weight.grad is not None
    assert out.aux_stats["ctc_loss"][1] == 2  # the log's figure is per transcript row
    # Without the head in the config there is no head and no auxiliary loss.
    plain = tiny_model()
    assert "ctc" not in plain.heads
    assert plain(audio, audio_lengths, input_ids, text_lengths, labels, targets={"ctc": targets}).aux_loss_sum is None
    with pytest.raises(ConfigError, match="model.heads.ctc must be a loss weight > 0"):
        from_dict(AudioLLMConfig, {**to_dict(AudioLLMConfig.tiny()), "heads": {"ctc": -1}})
    with pytest.raises(ConfigError, match="unknown head 'speaker'"):
        from_dict(AudioLLMConfig, {**to_dict(AudioLLMConfig.tiny()), "heads": {"speaker": 1.0}})


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
    d = json.loads(json.dumps(to_dict(cfg)))
    assert from_dict(AudioLLMConfig, d) == cfg
    # Partial dicts take defaults; the encoder follows the frontend's n_mels.
    partial = from_dict(AudioLLMConfig, {"frontend": {"n_mels": 40}, "lm_config": {"d_model": 64, "n_heads": 4}})
    assert partial.audio_encoder_config.n_mels == 40 and partial.lm_config.n_kv_heads == 4
    with pytest.raises(ConfigError, match="unknown config key 'encoder'"):
        from_dict(AudioLLMConfig, {"encoder": "x"})
    with pytest.raises(ConfigError, match="lm_config.widthh"):
        from_dict(AudioLLMConfig, {"lm_config": {"widthh": 3}})
    with pytest.raises(ConfigError, match="lm='gpt'; allowed: hf_causal_lm, llama"):
        from_dict(AudioLLMConfig, {"lm": "gpt"})
    with pytest.raises(ConfigError, match="n_mels"):
        from_dict(AudioLLMConfig, {"frontend": {"n_mels": 40}, "audio_encoder_config": {"n_mels": 64}})


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
    torch.manual_seed(0)
    wav = torch.randn(1, 8000) * 0.2
    n = torch.tensor([8000])
    peak = LogMel(LogMelConfig(level="peak"))
    assert torch.allclose(peak(wav, n)[0], peak(wav * 0.1, n)[0], atol=1e-5)
    absolute = LogMel(LogMelConfig(level="absolute"))
    assert not torch.allclose(absolute(wav, n)[0], absolute(wav * 0.1, n)[0], atol=1e-2)


def test_logmel_top_db_sets_the_floor():
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(1, 8000, generator=g) * torch.linspace(0, 1, 8000) ** 4
    lengths = torch.tensor([8000])
    for top_db in (40.0, 80.0):
        feats, _ = LogMel(LogMelConfig(top_db=top_db))(audio, lengths)
        assert abs(float(feats.min()) - (1.0 - top_db / 40.0)) < 1e-5  # floor = peak − top_db, /40 dB per unit
    with pytest.raises(ConfigError, match="top_db"):
        LogMelConfig(top_db=0)
    with pytest.raises(ConfigError, match="level"):
        LogMelConfig(level="band_mean")


