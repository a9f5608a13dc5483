"""The embedded corpus: a tiny real build (music21 + FluidSynth + espeak-ng), its
determinism, split hygiene, audio format, label consistency, and the text templates."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiollm.data.synth import corpus, music, speech, templates
from audiollm.errors import AudioLLMError
from audiollm.metrics.text import normalize_text
from audiollm.music import analysis, render, theory
from audiollm.tasks import ASR_QUESTIONS, CAPTION_QUESTIONS, TAGGING_QUESTIONS, get_task

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

SEED = 3
N_MUSIC = 12
N_SPEECH = 12


def _read_rows(root: Path) -> list[dict]:
    rows = []
    for split in corpus.SPLITS:
        with open(root / f"{split}.jsonl", encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """The same tiny corpus built twice: in-process, and with two worker processes."""
    a = tmp_path_factory.mktemp("corpus_a")
    b = tmp_path_factory.mktemp("corpus_b")
    stats = corpus.build_corpus(a, music_clips=N_MUSIC, speech_clips=N_SPEECH, seed=SEED, workers=1, progress=False)
    corpus.build_corpus(b, music_clips=N_MUSIC, speech_clips=N_SPEECH, seed=SEED, workers=2, progress=False)
    return a, b, stats


def test_layout_and_stats(built):
    root, _, stats = built
    for split in corpus.SPLITS:
        assert (root / f"{split}.jsonl").is_file()
        assert (root / "audio" / split).is_dir()
    on_disk = json.loads((root / "stats.json").read_text())
    assert on_disk == {k: v for k, v in stats.items() if k not in ("build_seconds", "out_dir")}
    assert stats["counts"]["music_clips"] == N_MUSIC and stats["counts"]["speech_clips"] == N_SPEECH
    assert stats["counts"]["clips"]["test"] == {"music": 1, "speech": 1}
    readme = (root / "README.md").read_text()
    assert "GPL-3.0" in readme and "music21" in readme and stats["soundfont"] in readme


def test_same_seed_gives_identical_files_for_any_worker_count(built):
    a, b, _ = built
    for name in [f"{s}.jsonl" for s in corpus.SPLITS] + ["stats.json", "README.md"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    wavs = sorted(p.relative_to(a) for p in (a / "audio").rglob("*.wav"))
    assert len(wavs) == N_MUSIC + N_SPEECH
    for rel in wavs:
        assert hashlib.md5((a / rel).read_bytes()).digest() == hashlib.md5((b / rel).read_bytes()).digest(), rel


def test_rows_schema(built):
    root, _, _ = built
    rows = _read_rows(root)
    assert len({r["id"] for r in rows}) == len(rows)
    by_task: dict[str, int] = {}
    for r in rows:
        by_task[r["task"]] = by_task.get(r["task"], 0) + 1
        if r["task"] == "text_to_midi":  # a caption and the clip's notes; no audio, no answer
            assert {"id", "task", "split", "question", "clip", "notes", "program", "duration"} <= set(r)
            assert "audio" not in r and "answer" not in r
            continue
        if r["task"] == "transcription":  # the clip's audio and its exact notes; no answer text
            assert {"id", "task", "split", "audio", "clip", "notes", "program", "duration"} <= set(r)
            assert "answer" not in r and (root / r["audio"]).is_file()
            get_task("transcription").validate(r)
            continue
        assert {"id", "task", "split", "audio", "answer", "clip"} <= set(r)
        assert not Path(r["audio"]).is_absolute() and (root / r["audio"]).is_file()
        assert r["audio"].startswith(f"audio/{r['split']}/")
        assert ("question" in r) == (r["task"] == "qa")
        assert "labels" not in r  # the tagging task would read it as the label set
    assert by_task["tagging"] == by_task["caption"] == by_task["text_to_midi"] == by_task["transcription"] == N_MUSIC
    assert by_task["asr"] == N_SPEECH
    assert N_MUSIC <= by_task["qa"] <= 2 * N_MUSIC + N_SPEECH
    for r in rows:
        if r["task"] == "tagging":
            assert r["answer"] == r["family"]
        if r["task"] == "asr":
            assert r["answer"] == r["text"]


def test_wavs_are_16k_mono_pcm16_and_not_silent(built):
    root, _, _ = built
    for r in _read_rows(root):
        if "audio" not in r:
            continue
        info = sf.info(str(root / r["audio"]))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        wav, _ = sf.read(str(root / r["audio"]), dtype="float32")
        assert np.abs(wav).max() > 0.1
        assert abs(info.duration - r["duration"]) < 1e-3
        if r["clip"].startswith("m"):
            assert info.frames == 4 * 16000
        else:
            assert info.duration <= 4.0


def test_music_labels_are_consistent(built):
    root, _, _ = built
    for r in _read_rows(root):
        if not r["clip"].startswith("m"):
            continue
        inst = theory.BY_PROGRAM[r["program"]]
        assert (r["family"], r["instrument"]) == (inst.family, inst.gm_name)
        assert r["tempo_class"] == theory.tempo_class(r["tempo_bpm"])
        assert 50 <= r["tempo_bpm"] <= 190
        assert r["key"] == f"{r['tonic']} {r['mode']}" and r["mode"] in ("major", "minor")
        assert r["composer"] == music.source_of(r["piece"]).composer
        notes = np.array(r["notes"])
        assert len(notes) > 0
        assert np.all(notes[:, 0] >= 0) and np.all(notes[:, 1] <= r["duration"] + 1e-9)
        assert np.all(notes[:, 0] < notes[:, 1])
        assert np.all((notes[:, 2] >= 0) & (notes[:, 2] <= 127)) and np.all((notes[:, 3] >= 1) & (notes[:, 3] <= 127))
        assert 1 <= r["voices"] <= 8 and -5 - 36 <= r["transpose"] <= 5 + 36
        assert r["transpose"] % 12 in {s % 12 for s in range(-5, 6)}


def test_speech_labels_are_consistent(built):
    root, _, _ = built

    for r in _read_rows(root):
        if not r["clip"].startswith("s"):
            continue
        assert r["text"] == normalize_text(r["text"])
        assert set(r["text"].split()) <= templates.VOCABULARY
        assert len(r["text"].split()) <= corpus.MAX_WORDS
        assert speech.voice_labels(r["voice"]) == {"accent": r["accent"], "gender": r["gender"]}
        assert r["rate"] >= 120 and 30 <= r["pitch"] <= 70


def test_no_leakage_in_the_built_corpus(built):
    root, _, _ = built
    seen: dict[str, dict[str, str]] = {"piece": {}, "text": {}}
    for r in _read_rows(root):
        for key in ("piece", "text"):
            if key in r:
                assert seen[key].setdefault(r[key], r["split"]) == r["split"], r[key]


def test_no_leakage_in_a_full_size_plan():
    """The 1600 + 1600 plan, including every fall-back piece a job might use."""
    jobs = corpus.plan_music(1600, seed=0)
    split_of_piece: dict[str, str] = {}
    for job in jobs:
        (split,) = {s.split for s in job.specs}
        for piece in job.candidates:
            assert split_of_piece.setdefault(piece, split) == split, piece
    assert sum(len(j.specs) for j in jobs) == 1600
    assert [len({p for p, s in split_of_piece.items() if s == x}) > 5 for x in corpus.SPLITS] == [True] * 3
    specs = corpus.plan_speech(1600, seed=0)
    split_of_text: dict[str, str] = {}
    for s in specs:
        assert split_of_text.setdefault(s.text, s.split) == s.split, s.text
    assert [sum(s.split == x for s in specs) for x in corpus.SPLITS] == [1280, 160, 160]


def test_split_counts_and_hash_are_stable():
    assert corpus.split_counts(1600) == {"train": 1280, "valid": 160, "test": 160}
    assert corpus.split_counts(12) == {"train": 10, "valid": 1, "test": 1}
    keys = [f"text:{i}" for i in range(5000)]
    shares = [sum(corpus.split_of(k) == s for k in keys) / len(keys) for s in corpus.SPLITS]
    assert abs(shares[0] - 0.8) < 0.03 and abs(shares[1] - 0.1) < 0.02
    assert corpus.split_of("piece:bach/bwv66.6.mxl") == corpus.split_of("piece:bach/bwv66.6.mxl")


def test_sampler_reaches_at_least_eight_families():
    import pretty_midi

    rng = random.Random(0)
    draws = [music.sample_settings(rng) for _ in range(2000)]
    families = {theory.BY_PROGRAM[d["program"]].family for d in draws}
    assert len(families) >= 8 and families == set(theory.FAMILIES)
    assert {theory.tempo_class(d["tempo_bpm"]) for d in draws} == set(theory.TEMPO_CLASSES)
    assert all(50 <= d["tempo_bpm"] <= 190 and -5 <= d["shift"] <= 5 for d in draws)
    for inst in theory.INSTRUMENTS:
        assert pretty_midi.program_to_instrument_name(inst.program) == inst.gm_name
        assert inst.low < inst.high


def test_key_analysis_matches_music21():
    from music21 import corpus as m21corpus

    for path in ("bach/bwv66.6.mxl", "bach/bwv57.8.mxl"):
        piece = music.load_piece(path)
        tonic, mode = analysis.key_of(np.concatenate(piece.parts))
        ref = m21corpus.parse(path).analyze("key")
        assert (tonic, mode) == (ref.tonic.pitchClass, ref.mode)


def test_speech_sampler_covers_both_genders_and_several_accents():
    rng = random.Random(0)
    voices = [speech.sample_voice(rng)["voice"] for _ in range(500)]
    labels = [speech.voice_labels(v) for v in voices]
    assert {lab["gender"] for lab in labels} == {"male", "female"}
    assert len({lab["accent"] for lab in labels}) >= 5


def test_qa_questions_never_reuse_task_paraphrases(built):
    task_questions = set(ASR_QUESTIONS) | set(CAPTION_QUESTIONS) | set(TAGGING_QUESTIONS)
    assert templates.RESERVED_QUESTIONS == task_questions
    ours = {q for table in (templates.MUSIC_QA, templates.SPEECH_QA) for qs, _ in table.values() for q in qs}
    assert ours and not ours & task_questions
    def norm(q: str) -> str:
        return re.sub(r"\W+", " ", q.lower()).strip()

    assert not {norm(q) for q in ours} & {norm(q) for q in task_questions}
    root, _, _ = built
    for r in _read_rows(root):
        if r["task"] == "qa":
            assert r["question"] in ours


def _random_labels(rng: random.Random) -> dict:
    inst = rng.choice(theory.INSTRUMENTS)
    bpm = rng.randint(50, 190)
    tonic = rng.choice(["C", "Db", "D", "Eb", "F#", "G#", "Bb", "B"])
    mode = rng.choice(["major", "minor"])
    return {"family": inst.family, "program": inst.program, "instrument": inst.gm_name,
            "instrument_phrase": inst.phrase, "tempo_bpm": bpm, "tempo_class": theory.tempo_class(bpm),
            "key": f"{tonic} {mode}", "tonic": tonic, "mode": mode, "voices": rng.randint(1, 8),
            "composer": rng.choice([s.composer for s in music.SOURCES])}


TEMPO_WORDS = {"slow": r"\bslow\b", "medium": r"\bmedium\b", "fast": r"\bfast\b"}


def _claims_match_labels(text: str, lab: dict) -> None:
    """Every fact the text states (family, tempo, key, bpm, voices, composer) is the label's."""
    phrase = lab["instrument_phrase"]
    rest = text.replace(phrase, " ").replace(phrase[:1].upper() + phrase[1:], " ")
    for fam in theory.FAMILIES:
        if re.search(rf"\b{fam}\b", rest, re.I):
            assert fam == lab["family"], (text, lab)
    for cls, pattern in TEMPO_WORDS.items():
        if re.search(pattern, text, re.I):
            assert cls == lab["tempo_class"], (text, lab)
    for tonic, mode in re.findall(r"\b([A-G](?:#|b)?) (major|minor)\b", text):
        assert f"{tonic} {mode}" == lab["key"], (text, lab)
    for bpm in re.findall(r"(\d+) beats per minute", text):
        assert abs(int(bpm) - lab["tempo_bpm"]) <= 2, (text, lab)
    for count in re.findall(r"\b(\w+) voices\b", text):
        assert count.lower() == templates.count_word(lab["voices"]), (text, lab)
    if "single voice" in text:
        assert lab["voices"] == 1, (text, lab)
    for composer in {s.composer for s in music.SOURCES}:
        if re.search(rf"\b{composer}\b", text, re.I):
            assert composer == lab["composer"], (text, lab)


def test_captions_and_answers_only_state_labelled_facts(built):
    rng = random.Random(0)
    for _ in range(600):
        lab = _random_labels(rng)
        _claims_match_labels(templates.caption(lab, rng), lab)
        for _, _, answer in templates.qa_pairs(templates.MUSIC_QA, lab, rng, 2):
            _claims_match_labels(answer, lab)
    root, _, _ = built
    for r in _read_rows(root):
        if r["clip"].startswith("m") and r["task"] in ("caption", "qa"):
            lab = {**r, "instrument_phrase": theory.BY_PROGRAM[r["program"]].phrase}
            _claims_match_labels(r["answer"], lab)


def test_number_words_and_vocabulary():
    cases = {0: "zero", 13: "thirteen", 40: "forty", 42: "forty two", 100: "one hundred",
             312: "three hundred and twelve", 2005: "two thousand and five",
             4300: "four thousand three hundred", 9999: "nine thousand nine hundred and ninety nine"}
    for n, words in cases.items():
        assert templates.number_to_words(n) == words
    with pytest.raises(ValueError):
        templates.number_to_words(10000)
    assert 150 <= len(templates.VOCABULARY) <= 250
    rng = random.Random(1)
    for _ in range(3000):
        text, kind = templates.sentence(rng)
        assert kind in templates.SENTENCE_KINDS
        assert set(text.split()) <= templates.VOCABULARY, text
        assert text == text.lower() and not re.search(r"[^a-z ]", text)


def test_bad_arguments_and_foreign_output_folder(tmp_path):
    with pytest.raises(AudioLLMError):
        corpus.build_corpus(tmp_path / "x", music_clips=-1, speech_clips=2, seed=0)
    with pytest.raises(AudioLLMError):
        corpus.build_corpus(tmp_path / "x", music_clips=2, speech_clips=2, seed=0, clip_seconds=0.1)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(AudioLLMError, match="not empty"):
        corpus.build_corpus(foreign, music_clips=0, speech_clips=2, seed=0, progress=False)
    with pytest.raises(AudioLLMError, match="soundfont"):
        render.find_soundfont(tmp_path / "missing.sf2")


def test_rebuild_replaces_a_previous_corpus(tmp_path):
    out = tmp_path / "c"
    corpus.build_corpus(out, music_clips=0, speech_clips=10, seed=1, workers=1, progress=False)
    assert len(list((out / "audio").rglob("*.wav"))) == 10
    corpus.build_corpus(out, music_clips=0, speech_clips=3, seed=1, workers=1, progress=False)
    assert len(list((out / "audio").rglob("*.wav"))) == 3
    assert sum(1 for r in _read_rows(out) if r["task"] == "asr") == 3
