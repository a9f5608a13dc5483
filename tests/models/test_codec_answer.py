"""Codec-token answers on the AudioLLM: loss only on real frames, the trained answer decoded
back exactly (both layouts), KV cache = recomputation, guidance changes the output, save/load."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from audiollm.decoding.options import DecodingOptions
from audiollm.errors import AudioLLMError, ConfigError
from audiollm.models import AudioLLM, AudioLLMConfig
from audiollm.models.codec_answer import AudioAnswerConfig
from audiollm.models.hub import load_model, save_model

K, C = 2, 16


def codec_model(pattern: str = "delay", seed: int = 0) -> AudioLLM:
    torch.manual_seed(seed)
    cfg = AudioLLMConfig.tiny()
    cfg = dataclasses.replace(cfg, audio_answer=AudioAnswerConfig(codec="tiny-codec", num_codebooks=K, codebook_size=C,
                                                                   frame_rate=50.0, sample_rate=16000,
                                                                   fingerprint="abc", pattern=pattern))
    return AudioLLM(cfg).eval()


def text_batch(prompts: list[list[int]], codes: torch.Tensor, lengths: list[int]) -> dict:
    B = len(prompts)
    L = max(len(p) for p in prompts)
    ids = torch.zeros(B, L, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(p)
    return {"audio": torch.zeros(B, 0), "audio_lengths": torch.zeros(B, dtype=torch.long), "input_ids": ids,
            "text_lengths": torch.tensor([len(p) for p in prompts]), "labels": torch.full((B, L), -100),
            "codes": codes, "code_lengths": torch.tensor(lengths)}


@pytest.mark.parametrize("pattern", ["delay", "flatten"])
def test_loss_counts_only_real_frames_and_ignores_what_lies_past_them(pattern):
    model = codec_model(pattern)
    codes = torch.randint(0, C, (2, K, 6))
    batch = text_batch([[4, 7, 9], [4, 8]], codes, [6, 3])
    out = model(**batch)
    per_frame = K if pattern == "delay" else None
    expected = (7 + 4) * K if per_frame else (6 * K + 1) + (3 * K + 1)
    assert int(out.n_targets) == expected
    changed = codes.clone()
    changed[1, :, 3:] = (changed[1, :, 3:] + 1) % C  # past row 1's three real frames
    again = model(**{**batch, "codes": changed})
    torch.testing.assert_close(out.loss_sum, again.loss_sum)
    out.loss_sum.backward()
    assert model.audio_answer.embed.weight.grad.abs().sum() > 0 and model.audio_answer.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("pattern", ["delay", "flatten"])
def test_a_trained_answer_is_decoded_back_exactly_with_and_without_the_cache(pattern):
    model = codec_model(pattern).train()
    prompts = [[4, 7, 9, 5], [4, 11, 5]]
    codes = torch.randint(0, C, (2, K, 7))
    batch = text_batch(prompts, codes, [7, 4])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        out = model(**batch)
        (out.loss_sum / out.n_targets).backward()
        opt.step()
    model.eval()
    for use_cache in (True, False):
        got = model.generate_codes(prompts, max_frames=[20, 20], options=DecodingOptions(use_cache=use_cache))
        assert got[0].tolist() == codes[0].tolist()
        assert got[1].tolist() == codes[1, :, :4].tolist()  # ends on its own EOA, not the budget
    # continuation: the first frames as an audio prompt, the rest decoded after them
    for use_cache in (True, False):
        rest = model.generate_codes(prompts, max_frames=[20, 20], prompt_codes=[codes[0, :, :3], codes[1, :, :3]],
                                    options=DecodingOptions(use_cache=use_cache))
        assert rest[0].tolist() == codes[0, :, 3:].tolist() and rest[1].tolist() == codes[1, :, 3:4].tolist()


@pytest.mark.parametrize("pattern", ["delay", "flatten"])
def test_budget_floor_and_sampling_are_honoured(pattern):
    model = codec_model(pattern)
    out = model.generate_codes([[4, 5]] * 3, max_frames=[2, 5, 9], min_frames=2,
                               options=DecodingOptions(temperature=1.0, top_k=5, seed=3))
    assert [c.shape[0] for c in out] == [K] * 3
    assert all(2 <= c.shape[1] <= m for c, m in zip(out, [2, 5, 9]))
    assert all(int(c.max()) < C for c in out if c.numel())


def test_guidance_changes_the_answer_and_needs_the_unconditional_prompt():
    model = codec_model()
    with torch.no_grad():
        model.audio_answer.head.weight.mul_(100)  # logits that depend on the prompt, as trained ones do
    opts = DecodingOptions(temperature=1.0, seed=1)
    plain = model.generate_codes([[4, 9, 5]], max_frames=[12], min_frames=12, options=opts)
    guided = model.generate_codes([[4, 9, 5]], max_frames=[12], min_frames=12, options=opts.replace(guidance=3.0),
                                  unconditional_ids=[4, 5])
    assert plain[0].shape == guided[0].shape == (K, 12)
    assert plain[0].tolist() != guided[0].tolist()
    with pytest.raises(ValueError, match="unconditional"):
        model.generate_codes([[4, 5]], max_frames=[3], options=opts.replace(guidance=3.0))


def test_text_models_refuse_audio_answers_and_bad_settings_are_named():
    with pytest.raises(AudioLLMError, match="no codec heads"):
        AudioLLM(AudioLLMConfig.tiny()).generate_codes([[4]], max_frames=[3])
    with pytest.raises(ConfigError, match="audio_answer.pattern='zigzag'"):
        AudioAnswerConfig(codec="x", pattern="zigzag")
    with pytest.raises(ConfigError, match="codebook_size"):
        AudioLLM(dataclasses.replace(AudioLLMConfig.tiny(), audio_answer=AudioAnswerConfig(codec="x")))


def test_save_load_keeps_the_codec_heads_and_their_answers(tmp_path):
    model = codec_model()
    save_model(tmp_path / "m", model)
    back = load_model(tmp_path / "m")
    assert back.config.audio_answer == model.config.audio_answer
    opts = DecodingOptions(temperature=1.0, seed=2)
    a = model.generate_codes([[4, 6]], max_frames=[8], options=opts)
    b = back.generate_codes([[4, 6]], max_frames=[8], options=opts)
    assert a[0].tolist() == b[0].tolist()
