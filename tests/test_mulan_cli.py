"""MuLaN CLI: embed, index (persisted, updatable, guarded), search, tag, score; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiollm.cli.main import main
from conftest import tone


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    from audiollm.models.mulan import MuLaN, MuLaNConfig
    from audiollm.inference.embedding import save_mulan_dir
    from audiollm.tokenizers.text import TextTokenizer

    d = tmp_path_factory.mktemp("mulan")
    tok = TextTokenizer.train(["warm jazz trumpet", "bright piano", "slow organ", "a low tone"] * 5, vocab_size=300)
    out = []
    for seed in (0, 1):
        cfg = MuLaNConfig.tiny()
        cfg.text_tower_config.vocab_size = tok.vocab_size
        torch.manual_seed(seed)
        out.append(save_mulan_dir(d / f"m{seed}", MuLaN(cfg).eval(), tok, card={}))
    return out


@pytest.fixture
def audio_dir(tmp_path):
    d = tmp_path / "music"
    d.mkdir()
    for i, f in enumerate((220.0, 440.0, 880.0)):
        sf.write(d / f"c{i}.wav", tone(0.5, f), 16000)
    return d


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_embed_audio_and_text(model_dirs, audio_dir, tmp_path, capsys):
    code, out, _ = run(capsys, "embed", model_dirs[0], *sorted(audio_dir.iterdir()), "--out", tmp_path / "a.npy", "--no-progress")
    assert code == 0
    a = np.load(tmp_path / "a.npy")
    assert a.shape == (3, 16) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    code, _, _ = run(capsys, "embed", model_dirs[0], "--text", "warm jazz trumpet", "--text", "slow organ", "--out", tmp_path / "t.npy")
    assert code == 0 and np.load(tmp_path / "t.npy").shape == (2, 16)


def test_bad_input_is_one_line(model_dirs, tmp_path, capsys):
    short = tmp_path / "short.wav"
    sf.write(short, tone(0.02), 16000)
    code, _, err = run(capsys, "embed", model_dirs[0], short, "--out", tmp_path / "x.npy", "--no-progress")
    assert code == 2 and "shorter than one patch" in err and err.count("\n") == 1
    assert not (tmp_path / "x.npy").exists()
    code, _, err = run(capsys, "embed", model_dirs[0], "--text", "   ", "--out", tmp_path / "x.npy")
    assert code == 2 and "empty text" in err
    code, _, err = run(capsys, "embed", model_dirs[0], "--text", "jazz " * 200, "--out", tmp_path / "x.npy")
    assert code == 0 and "truncated" in err and np.load(tmp_path / "x.npy").shape == (1, 16)
    code, _, err = run(capsys, "tag", model_dirs[0], short, "--labels", "piano")
    assert code == 2 and "at least two labels" in err


def test_index_update_guard_and_search(model_dirs, audio_dir, tmp_path, capsys, monkeypatch):
    index = tmp_path / "music.index"
    code, out, _ = run(capsys, "index", model_dirs[0], audio_dir, "--out", index, "--no-progress")
    assert code == 0 and "3 embedded" in out
    # re-running embeds only the new file: prove the old ones are not re-embedded
    import audiollm.inference.embedding as mulan_lib

    seen = []
    real = mulan_lib.embed_files
    monkeypatch.setattr(mulan_lib, "embed_files", lambda model, paths, **kw: (seen.extend(paths), real(model, paths, **kw))[1])
    sf.write(audio_dir / "c3.wav", tone(0.6, 330.0), 16000)
    code, out, _ = run(capsys, "index", model_dirs[0], audio_dir, "--out", index, "--no-progress")
    assert code == 0 and "1 embedded, 3 kept" in out
    assert [Path(p).name for p in seen] == ["c3.wav"]
    # same as embedding everything from scratch
    fresh = tmp_path / "fresh.index"
    run(capsys, "index", model_dirs[0], audio_dir, "--out", fresh, "--no-progress")
    from audiollm.inference.index import load_index

    np.testing.assert_allclose(load_index(index)[1], load_index(fresh)[1], atol=1e-5)
    # a different model is refused, naming both; the index is untouched
    before = index.read_bytes()
    code, _, err = run(capsys, "index", model_dirs[1], audio_dir, "--out", index)
    assert code == 2 and str(model_dirs[0].resolve()) in err and str(model_dirs[1].resolve()) in err
    assert index.read_bytes() == before
    # search text → audio and audio → audio
    code, out, _ = run(capsys, "search", index, "warm jazz trumpet", "-k", "2", "--json")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 2 and hits[0]["score"] >= hits[1]["score"]
    code, out, _ = run(capsys, "search", index, "--audio", audio_dir / "c1.wav", "-k", "4", "--json")
    hits = {Path(h["path"]).name: h["score"] for h in json.loads(out)}
    assert code == 0 and hits["c1.wav"] == pytest.approx(1.0, abs=1e-4) and max(hits.values()) <= 1.0 + 1e-4
    # a corrupted index: clear error, nothing overwritten
    index.write_bytes(b"garbage")
    code, _, err = run(capsys, "index", model_dirs[0], audio_dir, "--out", index)
    assert code == 2 and "not a readable embedding index" in err and index.read_bytes() == b"garbage"
    code, _, err = run(capsys, "search", index, "jazz")
    assert code == 2 and "not a readable embedding index" in err


def test_tag_and_score(model_dirs, audio_dir, capsys):
    code, out, _ = run(capsys, "tag", model_dirs[0], audio_dir / "c0.wav", "--labels", "piano,organ,trumpet", "--json")
    tags = json.loads(out)["tags"]
    assert code == 0 and [t["label"] for t in tags] != [] and sum(t["prob"] for t in tags) == pytest.approx(1, abs=1e-3)
    code, out, _ = run(capsys, "score", model_dirs[0], "--audio", audio_dir / "c0.wav", "--text", "slow organ", "--text", "bright piano")
    assert code == 0 and len(out.strip().splitlines()) == 2
    vals = [float(l.split()[0]) for l in out.strip().splitlines()]
    assert all(-1.0 <= v <= 1.0 for v in vals)


def test_rerank_keeps_the_best_scoring_clip(model_dirs):
    from audiollm.inference.embedding import generate_and_rerank, load_mulan_dir, rerank, score

    model, tok = load_mulan_dir(model_dirs[0])
    clips = [torch.from_numpy(tone(0.5, f)) for f in (220.0, 440.0, 880.0, 1760.0)]
    sims = score(model, tok, clips, ["bright piano"])[:, 0]
    best = rerank(model, tok, "bright piano", clips, keep=2)
    assert [i for i, _ in best] == sims.argsort(descending=True)[:2].tolist()
    it = iter(clips)
    kept = generate_and_rerank(model, tok, "bright piano", lambda text: next(it), n=4, keep=1)
    assert torch.equal(kept[0][0], clips[best[0][0]])


def test_retrieval_metrics_are_right():
    from audiollm.metrics.retrieval import retrieval_metrics

    e = torch.eye(12)
    m = retrieval_metrics(e, e)
    assert m["t2a_r1"] == 1.0 and m["a2t_median_rank"] == 1.0
    m = retrieval_metrics(e, e.roll(1, 0))  # every text matches the next clip
    assert m["t2a_r1"] == 0.0 and m["t2a_r10"] == 0.0 and m["t2a_median_rank"] == 12.0  # ties count against
    texts = torch.eye(12) + 0.9 * torch.eye(12).roll(1, 1)  # text j also resembles clip j+1
    m = retrieval_metrics(torch.eye(12), texts)
    assert m["a2t_r1"] == 1.0 and m["t2a_r1"] == 1.0  # still each pair's best match
    m = retrieval_metrics(torch.eye(12), torch.eye(12) * 0.5 + torch.eye(12).roll(1, 1))
    assert m["t2a_r1"] == 0.0 and m["t2a_r5"] == 1.0 and m["t2a_median_rank"] == 2.0
    m = retrieval_metrics(torch.ones(4, 3), torch.ones(4, 3))  # constant scores: worst rank, not best
    assert m["t2a_r1"] == 0.0 and m["t2a_median_rank"] == 4.0


def test_label_prompts_are_averaged_and_checked(model_dirs, audio_dir, capsys):
    from audiollm.inference.embedding import embed_texts, label_embeddings, load_mulan_dir

    model, tok = load_mulan_dir(model_dirs[0])
    templates = ["A slow {label} piece.", "{label} {x}"]  # other braces are left as they are
    got = label_embeddings(model, tok, ["piano", "organ"], templates)
    per = torch.stack([embed_texts(model, tok, [t.replace("{label}", l) for l in ("piano", "organ")]) for t in templates])
    want = torch.nn.functional.normalize(per.mean(0), dim=-1)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, per[0])  # the second prompt changed the label embeddings
    # the CLI's repeated --template is the same ensemble, and a prompt without {label} is refused
    code, out, _ = run(capsys, "tag", model_dirs[0], audio_dir / "c0.wav", "--labels", "piano,organ",
                       "--template", templates[0], "--template", templates[1], "--json")
    from audiollm.inference.embedding import tag
    from audiollm.audio import load_audio

    direct = tag(model, tok, load_audio(audio_dir / "c0.wav"), ["piano", "organ"], templates)
    assert code == 0 and [t["label"] for t in json.loads(out)["tags"]] == [l for l, _ in direct]
    code, _, err = run(capsys, "tag", model_dirs[0], audio_dir / "c0.wav", "--labels", "piano,organ", "--template", "music")
    assert code == 2 and "must contain {label}" in err and err.count("\n") == 1
