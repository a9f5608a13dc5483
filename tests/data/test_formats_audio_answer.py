"""Dataset readers that make rows of the audio-answer tasks: LJ Speech → ``tts`` rows
(``task=tts``) and GTZAN → ``text_to_audio`` rows (``task=text_to_audio``); the default rows of
both readers stay as they were."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiollm.cli.parser import main
from audiollm.data.formats import build_manifest, gtzan, ljspeech
from audiollm.errors import AudioLLMError

TTS_KEYS = ["task", "id", "audio", "text", "voice", "speaker", "seconds", "split"]


def write_audio(path: Path, seconds: float, sr: int = 22050) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * sr)
    sf.write(path, (0.1 * np.sin(np.arange(n) * 0.3)).astype(np.float32), sr)
    return path


def rows_of(fmt: str, root: Path, **options) -> tuple[list[dict], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = build_manifest(fmt, root, **options)
    return rows, [str(w.message) for w in caught]


@pytest.fixture
def lj_root(tmp_path: Path) -> Path:
    base = tmp_path / "LJSpeech-1.1"
    base.mkdir()
    (base / "metadata.csv").write_text(
        'LJ001-0001|Printing, in the only sense|Printing, in the only sense\n'
        'LJ001-0002|"The Dial," said Mr. Smith, "is open."|"The Dial," said Mister Smith, "is open."\n'
        "LJ002-0010|in 1869 the building was closed|in eighteen sixty-nine the building was closed\n"
        "LJ003-0005|never recorded|never recorded\n", encoding="utf-8")
    write_audio(base / "wavs" / "LJ001-0001.wav", 0.5)
    write_audio(base / "wavs" / "LJ001-0002.wav", 1.25)
    write_audio(base / "wavs" / "LJ002-0010.wav", 0.75)
    return tmp_path


def test_ljspeech_tts_rows(lj_root):
    rows, warns = rows_of("ljspeech", lj_root, task="tts")
    assert [r["id"] for r in rows] == ["ljspeech-LJ001-0001", "ljspeech-LJ001-0002", "ljspeech-LJ002-0010"]
    for r in rows:
        assert [k for k in r if k != "dataset"] == TTS_KEYS
        assert r["task"] == "tts" and r["speaker"] == "ljspeech"
        assert r["voice"] == "LJSpeech (US female, read audiobook)"
        assert Path(r["audio"]).is_file() and r["split"] == ljspeech.split_of(r["id"].removeprefix("ljspeech-"))
    quoted = rows[1]
    assert quoted["text"] == '"The Dial," said Mister Smith, "is open."' and quoted["seconds"] == 1.25
    assert rows[2]["text"] == "in eighteen sixty-nine the building was closed"
    assert any("skipped 1 clip(s) whose wav file is missing: wavs/LJ003-0005.wav" in w for w in warns)


def test_ljspeech_default_rows_unchanged(lj_root):
    default, _ = rows_of("ljspeech", lj_root)
    explicit, _ = rows_of("ljspeech", lj_root, task="asr")
    assert default == explicit
    assert {r["task"] for r in default} == {"asr"} and default[1]["answer"] == default[1]["text"]
    assert set(default[0]) == {"id", "task", "split", "audio", "answer", "text", "raw_text", "speaker", "dataset"}
    with pytest.raises(AudioLLMError, match="ljspeech option task='speech'; valid: asr, tts"):
        build_manifest("ljspeech", lj_root, task="speech")


def test_ljspeech_tts_through_the_cli(lj_root, tmp_path, capsys):
    out = tmp_path / "lj_tts.jsonl"
    code = main(["data", "manifest", str(lj_root), "--format", "ljspeech", "--option", "task=tts", "--out", str(out)])
    assert code == 0 and "wrote 3 rows" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["task"] for r in rows} == {"tts"} and all(r["seconds"] > 0 for r in rows)


@pytest.fixture
def gtzan_root(tmp_path: Path) -> Path:
    for name in ("blues/blues.00000.wav", "blues/blues.00012.wav", "blues/blues.00029.wav",
                 "hiphop/hiphop.00002.wav", "jazz/jazz.00073.wav", "classical/classical.00042.wav"):
        write_audio(tmp_path / "genres" / name, 0.1)
    return tmp_path


def test_gtzan_text_to_audio_rows(gtzan_root):
    rows, _ = rows_of("gtzan", gtzan_root, task="text_to_audio")
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"gtzan-blues.00000", "gtzan-blues.00012", "gtzan-blues.00029", "gtzan-hiphop.00002",
                          "gtzan-jazz.00073"}  # classical.00042 is one of the filtered split's faulty clips
    for r in rows:
        assert r["task"] == "text_to_audio" and Path(r["audio"]).is_file()
        assert {"caption", "genre", "split", "audio"} <= set(r) and "answer" not in r and "question" not in r
        name = gtzan.GENRE_NAMES.get(r["genre"], r["genre"])
        assert name in r["caption"].lower() and r["caption"].endswith(".") and r["caption"][0].isupper()
    assert "hip-hop" in by_id["gtzan-hiphop.00002"]["caption"].lower()
    assert [by_id[f"gtzan-blues.000{n}"]["split"] for n in ("00", "12", "29")] == ["valid", "test", "train"]
    again, _ = rows_of("gtzan", gtzan_root, task="text_to_audio")
    assert again == rows  # captions drawn deterministically
    captions = {gtzan.genre_caption("jazz", f"jazz.{n:05d}") for n in range(100)}
    assert len(captions) == len(gtzan.CAPTION_TEMPLATES) and "A jazz recording." in captions
    folds, _ = rows_of("gtzan", gtzan_root, task="text_to_audio", scheme="folds")
    assert len(folds) == 6


def test_gtzan_default_rows_unchanged(gtzan_root):
    default, _ = rows_of("gtzan", gtzan_root)
    assert default == rows_of("gtzan", gtzan_root, task="tagging")[0]
    assert {r["task"] for r in default} == {"tagging"} and all(r["question"] == gtzan.QUESTION for r in default)
    with pytest.raises(AudioLLMError, match="gtzan option task='tts'; valid: tagging, text_to_audio"):
        build_manifest("gtzan", gtzan_root, task="tts")
