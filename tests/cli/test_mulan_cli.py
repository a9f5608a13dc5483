"""MuLaN CLI: embed, index (persisted, updatable, guarded), search, tag, score; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import tone

from audiollm.audio import load_audio
from audiollm.cli.parser import main
from audiollm.inference import index as index_lib
from audiollm.inference.embedding import tag
from audiollm.models import hub


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_embed_audio_and_text(mulan_dirs, music_dir, tmp_path, capsys):
    code, out, _ = run(capsys, "embed", mulan_dirs[0], *sorted(music_dir.iterdir()), "--out", tmp_path / "a.npy", "--no-progress")
    assert code == 0
    a = np.load(tmp_path / "a.npy")
    assert a.shape == (3, 16) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    code, _, _ = run(capsys, "embed", mulan_dirs[0], "--text", "warm jazz trumpet", "--text", "slow organ", "--out", tmp_path / "t.npy")
    assert code == 0 and np.load(tmp_path / "t.npy").shape == (2, 16)


def test_bad_input_is_one_line(mulan_dirs, tmp_path, capsys):
    short = tmp_path / "short.wav"
    sf.write(short, tone(0.02), 16000)
    code, _, err = run(capsys, "embed", mulan_dirs[0], short, "--out", tmp_path / "x.npy", "--no-progress")
    assert code == 2 and "shorter than one patch" in err and err.count("\n") == 1
    assert not (tmp_path / "x.npy").exists()
    code, _, err = run(capsys, "embed", mulan_dirs[0], "--text", "   ", "--out", tmp_path / "x.npy")
    assert code == 2 and "empty text" in err
    code, _, err = run(capsys, "embed", mulan_dirs[0], "--text", "jazz " * 200, "--out", tmp_path / "x.npy")
    assert code == 0 and "truncated" in err and np.load(tmp_path / "x.npy").shape == (1, 16)
    code, _, err = run(capsys, "tag", mulan_dirs[0], short, "--labels", "piano")
    assert code == 2 and "at least two labels" in err


def test_index_update_guard_and_search(mulan_dirs, music_dir, tmp_path, capsys, monkeypatch):
    index = tmp_path / "music.index"
    code, out, _ = run(capsys, "index", mulan_dirs[0], music_dir, "--out", index, "--no-progress")
    assert code == 0 and "3 embedded" in out
    # re-running embeds only the new file: prove the old ones are not re-embedded
    seen = []
    real = index_lib.embed_files
    monkeypatch.setattr(index_lib, "embed_files", lambda model, paths, **kw: (seen.extend(paths), real(model, paths, **kw))[1])
    sf.write(music_dir / "c3.wav", tone(0.6, 330.0), 16000)
    code, out, _ = run(capsys, "index", mulan_dirs[0], music_dir, "--out", index, "--no-progress")
    assert code == 0 and "1 embedded, 3 kept" in out
    assert [Path(p).name for p in seen] == ["c3.wav"]
    # same as embedding everything from scratch
    fresh = tmp_path / "fresh.index"
    run(capsys, "index", mulan_dirs[0], music_dir, "--out", fresh, "--no-progress")
    np.testing.assert_allclose(index_lib.load_index(index)[1], index_lib.load_index(fresh)[1], atol=1e-5)
    # a different model is refused, naming both; the index is untouched
    before = index.read_bytes()
    code, _, err = run(capsys, "index", mulan_dirs[1], music_dir, "--out", index)
    assert code == 2 and str(mulan_dirs[0].resolve()) in err and str(mulan_dirs[1].resolve()) in err
    assert index.read_bytes() == before
    # search text → audio and audio → audio
    code, out, _ = run(capsys, "search", index, "warm jazz trumpet", "-k", "2", "--json")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 2 and hits[0]["score"] >= hits[1]["score"]
    code, out, _ = run(capsys, "search", index, "--audio", music_dir / "c1.wav", "-k", "4", "--json")
    hits = {Path(h["path"]).name: h["score"] for h in json.loads(out)}
    assert code == 0 and hits["c1.wav"] == pytest.approx(1.0, abs=1e-4) and max(hits.values()) <= 1.0 + 1e-4
    # a corrupted index: clear error, nothing overwritten
    index.write_bytes(b"garbage")
    code, _, err = run(capsys, "index", mulan_dirs[0], music_dir, "--out", index)
    assert code == 2 and "not a readable embedding index" in err and index.read_bytes() == b"garbage"
    code, _, err = run(capsys, "search", index, "jazz")
    assert code == 2 and "not a readable embedding index" in err


def test_tag_and_score(mulan_dirs, music_dir, capsys):
    code, out, _ = run(capsys, "tag", mulan_dirs[0], music_dir / "c0.wav", "--labels", "piano,organ,trumpet", "--json")
    tags = json.loads(out)["tags"]
    assert code == 0 and [t["label"] for t in tags] != [] and sum(t["prob"] for t in tags) == pytest.approx(1, abs=1e-3)
    code, out, _ = run(capsys, "score", mulan_dirs[0], "--audio", music_dir / "c0.wav", "--text", "slow organ", "--text", "bright piano")
    assert code == 0 and len(out.strip().splitlines()) == 2
    vals = [float(l.split()[0]) for l in out.strip().splitlines()]
    assert all(-1.0 <= v <= 1.0 for v in vals)


def test_tag_prompt_ensemble_matches_the_library(mulan_dirs, music_dir, capsys):
    """The CLI's repeated --template is the library's prompt ensemble; a prompt without {label}
    is refused."""
    model, tok = hub.load(mulan_dirs[0])
    templates = ["A slow {label} piece.", "{label} {x}"]
    code, out, _ = run(capsys, "tag", mulan_dirs[0], music_dir / "c0.wav", "--labels", "piano,organ",
                       "--template", templates[0], "--template", templates[1], "--json")
    direct = tag(model, tok, load_audio(music_dir / "c0.wav"), ["piano", "organ"], templates)
    assert code == 0 and [t["label"] for t in json.loads(out)["tags"]] == [l for l, _ in direct]
    code, _, err = run(capsys, "tag", mulan_dirs[0], music_dir / "c0.wav", "--labels", "piano,organ", "--template", "music")
    assert code == 2 and "must contain {label}" in err and err.count("\n") == 1


def test_every_mulan_command_refuses_a_missing_gpu_and_a_bad_dtype(mulan_dirs, music_dir, tmp_path, capsys):
    index = tmp_path / "m.index"
    assert run(capsys, "index", mulan_dirs[0], music_dir, "--out", index, "--no-progress")[0] == 0
    clip = music_dir / "c0.wav"
    commands = {"embed": [mulan_dirs[0], clip, "--out", tmp_path / "e.npy"], "index": [mulan_dirs[0], music_dir, "--out", index],
                "search": [index, "jazz"], "tag": [mulan_dirs[0], clip, "--labels", "a,b"],
                "score": [mulan_dirs[0], "--audio", clip, "--text", "jazz"]}
    for name, args in commands.items():
        code, _, err = run(capsys, name, *args, "--dtype", "int8")
        assert code == 2 and err.startswith("audiollm: error:") and "int8" in err and err.count("\n") == 1, (name, err)
        if not torch.cuda.is_available():
            code, _, err = run(capsys, name, *args, "--device", "cuda")
            assert code == 2 and "no CUDA GPU is available here" in err and err.count("\n") == 1, (name, err)
