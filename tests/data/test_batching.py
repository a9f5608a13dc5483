"""Batching: labels cover only the answer; the mixture stream is deterministic and weighted."""

from collections import Counter

import pytest
import torch

from audiollm.data.augment import AudioAugment
from audiollm.data.batching import (
    IGNORE_INDEX,
    ExampleBuilder,
    GroupedSampler,
    MixtureSampler,
    collate,
    make_sampler,
)
from audiollm.data.manifest import read_manifest
from audiollm.errors import ConfigError
from audiollm.tasks import TaskOptions
from audiollm.tokenizers.text import TextTokenizer
from audiollm.training.config import ContrastiveDataConfig, DataConfig


def _tok(rows):
    return TextTokenizer.train([r["answer"] for r in rows] * 3 + ["Transcribe the speech."], vocab_size=300)


def test_labels_only_on_answer_and_eos(toy_corpus):
    rows = read_manifest(toy_corpus / "train.jsonl")
    tok = _tok(rows)
    ex = ExampleBuilder(rows, tok, seed=0)(0, 0)
    answer = tok.encode(rows[0]["answer"]) + [tok.eos_id]
    labelled = [l for l in ex["labels"] if l != IGNORE_INDEX]
    assert labelled == answer
    assert ex["input_ids"][-len(answer):] == answer
    assert ex["input_ids"][0] == tok.user_id and tok.assistant_id in ex["input_ids"]


def test_collate_pads_with_ignore(toy_corpus):
    rows = read_manifest(toy_corpus / "train.jsonl")
    tok = _tok(rows)
    build = ExampleBuilder(rows, tok, seed=0)
    batch = collate([build(i, i) for i in range(4)], tok.pad_id)
    for i in range(4):
        n = int(batch["text_lengths"][i])
        assert (batch["input_ids"][i, n:] == tok.pad_id).all()
        assert (batch["labels"][i, n:] == IGNORE_INDEX).all()
        assert (batch["audio"][i, int(batch["audio_lengths"][i]):] == 0).all()


def test_examples_are_a_function_of_draw(toy_corpus):
    rows = read_manifest(toy_corpus / "train.jsonl")
    tok = _tok(rows)
    a = ExampleBuilder(rows, tok, seed=3, augment=AudioAugment())(5, 17)
    b = ExampleBuilder(rows, tok, seed=3, augment=AudioAugment())(5, 17)
    c = ExampleBuilder(rows, tok, seed=3, augment=AudioAugment())(5, 18)
    assert torch.equal(a["audio"], b["audio"]) and a["input_ids"] == b["input_ids"]
    assert not torch.equal(a["audio"], c["audio"][: a["audio"].shape[0]]) or a["audio"].shape != c["audio"].shape


def test_augment_changes_audio():
    import random

    wav = torch.sin(torch.arange(16000) / 10.0) * 0.5
    out = AudioAugment(speed_perturb=0.1, gain_db=6)(wav.clone(), random.Random(1))
    assert out.shape != wav.shape or not torch.allclose(out, wav)
    # each part on its own changes the waveform (same length, different samples)
    for aug in (AudioAugment(0, 0, tilt=0.8), AudioAugment(0, 0, noise_snr_db=10), AudioAugment(0, 6)):
        outs = [aug(wav.clone(), random.Random(seed)) for seed in range(4)]
        assert all(o.shape == wav.shape for o in outs)
        assert any(not torch.allclose(o, wav, atol=1e-4) for o in outs)


def test_sampler_deterministic_and_weighted():
    rows = [{"task": "a"}] * 10 + [{"task": "b"}] * 90
    s1 = MixtureSampler(rows, {"a": 1.0, "b": 1.0}, seed=0)
    s2 = MixtureSampler(rows, {"a": 1.0, "b": 1.0}, seed=0)
    draws = s1.indices(0, 2000)
    assert draws == s2.indices(0, 2000)
    assert s1.indices(1000, 1010) == draws[1000:1010]  # random access = resumable
    share_a = sum(rows[i]["task"] == "a" for i in draws) / len(draws)
    assert 0.45 < share_a < 0.55
    # Rows of a task are drawn without replacement within a pass: 10 'a' rows all appear early.
    first_a = [i for i in draws if rows[i]["task"] == "a"][:10]
    assert sorted(first_a) == list(range(10))
    natural = MixtureSampler(rows, None, seed=0).indices(0, 2000)
    assert Counter(rows[i]["task"] for i in natural)["b"] > 1600
    zero = MixtureSampler(rows, {"a": 0.0, "b": 1.0}, seed=0).indices(0, 100)
    assert all(rows[i]["task"] == "b" for i in zero)


def test_grouped_sampler_draws_runs_of_one_label():
    # 5 instruments with uneven row counts (13 rows of 'c', 3 of 'e'): 103 rows, runs of 8.
    sizes = {"a": 40, "b": 30, "c": 13, "d": 17, "e": 3}
    rows = [{"task": "caption", "instrument": k} for k, n in sizes.items() for _ in range(n)]
    s = GroupedSampler(rows, "instrument", 8, seed=0)
    assert s.pass_length == 96  # 103 // 8 runs; 7 leftover rows sit each pass out
    draws = s.indices(0, 3 * 96)
    assert draws == GroupedSampler(rows, "instrument", 8, seed=0).indices(0, 3 * 96)
    assert s.indices(150, 170) == draws[150:170]  # random access = resumable
    assert draws != GroupedSampler(rows, "instrument", 8, seed=1).indices(0, 3 * 96)
    for p in range(3):
        one_pass = draws[p * 96 : (p + 1) * 96]
        assert len(set(one_pass)) == 96  # without replacement within a pass
        runs = [one_pass[k : k + 8] for k in range(0, 96, 8)]
        pure = [r for r in runs if len({rows[i]["instrument"] for i in r}) == 1]
        # every value's full runs: 5 + 3 + 1 + 2 + 0 = 11 of the 12; the 12th mixes leftovers
        assert len(pure) == 11
    # Over passes, the leftover rows change: every row is drawn.
    assert set(draws) == set(range(len(rows)))


def test_grouped_sampler_config_errors():
    rows = [{"task": "caption", "instrument": "piano"}] * 20
    with pytest.raises(ConfigError, match="same value"):
        GroupedSampler(rows, "instrument", 4)
    with pytest.raises(ConfigError, match="group_size"):
        GroupedSampler(rows[:3], "instrument", 4)
    with pytest.raises(ConfigError, match="cannot both be set"):
        DataConfig(contrastive=ContrastiveDataConfig(group_by="instrument"), tasks={"caption": TaskOptions(weight=1.0)})
    with pytest.raises(ConfigError, match="group_size"):
        ContrastiveDataConfig(group_by="instrument", group_size=0)
    assert isinstance(make_sampler(rows, DataConfig(), 0), MixtureSampler)


def test_cached_audio_gives_the_same_examples(toy_corpus, tmp_path):
    import shutil

    rows = read_manifest(toy_corpus / "train.jsonl")[:3]
    copies = []
    for i, r in enumerate(rows):  # private copies of the clips, so one can be deleted
        dst = tmp_path / f"clip{i}.wav"
        shutil.copy(r["audio"], dst)
        copies.append({**r, "audio": str(dst)})
    tok = _tok(rows)
    plain = ExampleBuilder(copies, tok, seed=1, augment=AudioAugment())
    cached = ExampleBuilder(copies, tok, seed=1, augment=AudioAugment(), cache_audio=True)
    first = cached(0, 5)
    assert torch.equal(first["audio"], plain(0, 5)["audio"])
    (tmp_path / "clip0.wav").unlink()  # the cache read it once; later draws do not touch the file
    again = cached(0, 5)
    assert torch.equal(again["audio"], first["audio"])  # augmentation did not alter the cached clip
    assert not torch.equal(cached(0, 6)["audio"][:10], first["audio"][:10]) or cached(0, 6)["audio"].shape != first["audio"].shape
