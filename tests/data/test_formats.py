"""Dataset formats: the registry, and FSDD on a fixture in its exact layout and on the
real recordings beside the checkout (../shared/data/fsdd, skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import FSDD

from audiollm.data.formats import FORMATS, build_manifest, fsdd
from audiollm.data.manifest import read_manifest, write_manifest
from audiollm.errors import AudioLLMError

SPEAKERS = ("alice", "bob", "carol")
TAKES = range(7)


@pytest.fixture
def fsdd_root(tmp_path: Path) -> Path:
    """ROOT/recordings/{digit}_{speaker}_{index}.wav: 3 speakers × digits 0-2 × takes 0-6,
    tiny 8 kHz clips, plus files that must be skipped or ignored."""
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for speaker in SPEAKERS:
        for digit in range(3):
            for take in TAKES:
                sf.write(rec / f"{digit}_{speaker}_{take}.wav", 0.1 * rng.standard_normal(400).astype(np.float32), 8000)
    sf.write(rec / "notes_about_it.wav", np.zeros(100, np.float32), 8000)   # bad name → skipped
    (rec / "README.txt").write_text("not audio")                              # not a .wav → ignored
    return tmp_path / "fsdd"


def test_registry_lists_fsdd_and_rejects_unknown_names(fsdd_root):
    assert "fsdd" in FORMATS
    with pytest.raises(AudioLLMError, match="valid formats: .*fsdd"):
        build_manifest("librispeech-typo", fsdd_root)
    with pytest.raises(AudioLLMError, match="valid options: test_speaker, split"):
        build_manifest("fsdd", fsdd_root, speaker="bob")


def test_fsdd_rows_and_default_split_rule(fsdd_root):
    with pytest.warns(UserWarning, match="skipped 1 file"):
        rows = build_manifest("fsdd", fsdd_root, test_speaker="carol")
    assert len(rows) == len(SPEAKERS) * 3 * len(TAKES)
    for r in rows:
        assert r["task"] == "asr" and r["answer"] == fsdd.DIGIT_WORDS[r["digit"]] == r["text"]
        assert r["dataset"] == "fsdd"  # build_manifest names the dataset (evaluation protocols read it)
        assert Path(r["audio"]).is_absolute() and Path(r["audio"]).is_file()
        assert Path(r["audio"]).name == f"{r['digit']}_{r['speaker']}_{r['index']}.wav"
        assert r["sample_rate"] == 8000 and r["duration"] == pytest.approx(400 / 8000)
        expected = "test" if r["speaker"] == "carol" else "valid" if r["index"] < 5 else "train"
        assert r["split"] == expected
    assert {r["speaker"] for r in rows if r["split"] == "test"} == {"carol"}
    assert len({r["id"] for r in rows}) == len(rows)
    assert rows == sorted(rows, key=lambda r: (r["speaker"], r["digit"], r["index"]))


def test_fsdd_split_option_recordings_folder_and_upstream_split(fsdd_root):
    with pytest.warns(UserWarning):
        train = build_manifest("fsdd", fsdd_root, test_speaker="carol", split="train")
    assert {r["split"] for r in train} == {"train"} and len(train) == 2 * 3 * 2
    with pytest.warns(UserWarning):
        direct = build_manifest("fsdd", fsdd_root / "recordings", test_speaker="carol")
    assert len(direct) == len(SPEAKERS) * 3 * len(TAKES)
    with pytest.warns(UserWarning):
        upstream = build_manifest("fsdd", fsdd_root, test_speaker="none")
    assert {r["split"] for r in upstream if r["index"] < 5} == {"test"}
    assert {r["split"] for r in upstream if r["index"] >= 5} == {"valid"}  # takes 5-9 (only 5, 6 here)
    with pytest.raises(AudioLLMError, match="split='dev'"):
        build_manifest("fsdd", fsdd_root, split="dev")


def test_fsdd_errors_name_the_problem(tmp_path, fsdd_root):
    empty = tmp_path / "empty"
    (empty / "recordings").mkdir(parents=True)
    (empty / "recordings" / "hello.txt").write_text("x")
    with pytest.raises(AudioLLMError, match=r"no FSDD recordings found; expected the layout ROOT/recordings"):
        build_manifest("fsdd", empty)
    with pytest.raises(AudioLLMError, match="no such folder"):
        build_manifest("fsdd", tmp_path / "missing")
    with pytest.raises(AudioLLMError, match="test_speaker='dave'.*alice, bob, carol"):
        build_manifest("fsdd", fsdd_root, test_speaker="dave")


def test_fsdd_skips_unreadable_audio_with_a_warning(fsdd_root):
    (fsdd_root / "recordings" / "notes_about_it.wav").unlink()
    (fsdd_root / "recordings" / "1_bob_40.wav").write_bytes(b"this is not a wav file")
    with pytest.warns(UserWarning, match="could not be read as audio: 1_bob_40.wav"):
        rows = build_manifest("fsdd", fsdd_root, test_speaker="carol")
    assert not any(r["speaker"] == "bob" and r["index"] == 40 for r in rows)


def test_fsdd_rows_round_trip_through_a_manifest(fsdd_root, tmp_path):
    with pytest.warns(UserWarning):
        rows = build_manifest("fsdd", fsdd_root, test_speaker="carol")
    back = read_manifest(write_manifest(tmp_path / "fsdd.jsonl", rows))
    assert [r["audio"] for r in back] == [r["audio"] for r in rows]
    assert [r["answer"] for r in back] == [r["answer"] for r in rows]


@pytest.mark.shared_data
def test_real_fsdd():
    rows = build_manifest("fsdd", FSDD)
    assert len(rows) == 2500
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "valid", "test")}
    assert counts == {"train": 1800, "valid": 200, "test": 500}
    assert {r["speaker"] for r in rows if r["split"] == "test"} == {fsdd.DEFAULT_TEST_SPEAKER}
    assert fsdd.DEFAULT_TEST_SPEAKER not in {r["speaker"] for r in rows if r["split"] != "test"}
    assert {r["sample_rate"] for r in rows} == {8000}
    assert all(0.1 < r["duration"] < 3.0 for r in rows)
    assert {r["answer"] for r in rows} == set(fsdd.DIGIT_WORDS)
