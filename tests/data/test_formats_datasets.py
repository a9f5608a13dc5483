"""The public dataset readers, each on a tiny fixture written in the dataset's real layout:
the same folder names, file names, CSV dialects and quirks (quoted TAB fields, pipes,
Python-literal lists, column-oriented JSON, ...), with a few clips missing or broken on
purpose."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiollm.cli.parser import main
from audiollm.data.formats import FORMATS, build_manifest, gtzan, ljspeech
from audiollm.data.manifest import read_manifest
from audiollm.errors import AudioLLMError
from audiollm.tasks import TASKS

NEW_FORMATS = ("gtzan", "librispeech", "clotho", "maestro", "ljspeech", "musiccaps", "musicqa", "magnatagatune",
               "audiocaps")


def write_audio(path: Path, seconds: float = 0.05, sr: int = 8000) -> Path:
    """A tiny real audio file; the container follows the extension (.wav .flac .au .mp3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * sr)
    sf.write(path, (0.1 * np.sin(np.arange(n) * 0.3)).astype(np.float32), sr)
    return path


def build(fmt: str, root: Path, **options) -> tuple[list[dict], list[str]]:
    """Rows and the warning messages the reader raised."""
    with _Recorder() as rec:
        rows = build_manifest(fmt, root, **options)
    return rows, rec.messages


class _Recorder:
    """Collects warnings without failing when there are none."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings(record=True)
        self._caught = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        return False

    @property
    def messages(self) -> list[str]:
        return [str(w.message) for w in self._caught]


def assert_rows_basic(rows: list[dict], task: str) -> None:
    for r in rows:
        assert r["task"] == task
        assert Path(r["audio"]).is_absolute() and Path(r["audio"]).is_file(), r["audio"]
        assert r["split"] in ("train", "valid", "test")
        assert str(r["answer"]).strip()
    assert len({r["id"] for r in rows}) == len(rows)


def test_all_formats_registered():
    assert set(NEW_FORMATS) <= set(FORMATS)


# --------------------------------------------------------------------------- GTZAN

def test_gtzan_filtered_split_table_matches_the_published_counts():
    table = gtzan.filtered_split_table()
    counts = {s: sum(v == s for v in table.values()) for s in ("train", "valid", "test")}
    assert counts == {"train": 443, "valid": 197, "test": 290}
    assert len(table) == 930 and table["blues.00029"] == "train" and table["jazz.00073"] == "test"
    assert "classical.00042" not in table  # one of the 70 clips the filtered split leaves out


def make_gtzan(root: Path) -> Path:
    g = root / "genres"
    for name in ("blues/blues.00000.wav", "blues/blues.00012.wav", "blues/blues.00029.wav",
                 "classical/classical.00042.wav", "classical/classical.00019.wav", "jazz/jazz.00073.wav"):
        write_audio(g / name, sr=22050)
    (g / "jazz" / "jazz.00054.wav").write_bytes(b"RIFF not really")  # the unreadable Kaggle clip
    write_audio(g / "blues" / "blues_extra.wav")                     # bad name
    (g / "blues" / "notes.txt").write_text("ignored")
    return root


def test_gtzan_genres_layout_filtered_and_folds(tmp_path):
    rows, warns = build("gtzan", make_gtzan(tmp_path / "gtzan"))
    assert_rows_basic(rows, "tagging")
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"gtzan-blues.00000", "gtzan-blues.00012", "gtzan-blues.00029", "gtzan-classical.00019",
                          "gtzan-jazz.00073"}
    assert [by_id[f"gtzan-blues.000{n}"]["split"] for n in ("00", "12", "29")] == ["valid", "test", "train"]
    assert by_id["gtzan-jazz.00073"]["answer"] == "jazz" and by_id["gtzan-jazz.00073"]["sample_rate"] == 22050
    assert all(r["question"] == gtzan.QUESTION for r in rows)
    assert any("skipped 1 file(s) that could not be read as audio: jazz/jazz.00054.wav" in w for w in warns)
    assert any("skipped 1 file(s) not named" in w and "blues_extra.wav" in w for w in warns)

    folds, _ = build("gtzan", tmp_path / "gtzan", scheme="folds")
    split = {r["id"]: r["split"] for r in folds}
    assert split["gtzan-classical.00042"] == "train" and split["gtzan-classical.00019"] == "test"
    assert split["gtzan-blues.00029"] == "test" and len(folds) == 6


def test_gtzan_kaggle_layout_and_au_files(tmp_path):
    write_audio(tmp_path / "Data" / "genres_original" / "rock" / "rock.00010.wav")
    write_audio(tmp_path / "Data" / "genres_original" / "pop" / "pop.00002.au")
    rows, _ = build("gtzan", tmp_path)
    assert {(r["genre"], r["split"]) for r in rows} == {("rock", "test"), ("pop", "train")}
    assert any(r["audio"].endswith(".au") for r in rows)


def test_gtzan_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioLLMError, match=r"no GTZAN genre folders .*expected the layout ROOT/genres/<genre>"):
        build_manifest("gtzan", tmp_path / "empty")
    write_audio(tmp_path / "g" / "genres" / "blues" / "blues.00000.wav")
    with pytest.raises(AudioLLMError, match="scheme='random'; valid: filtered, folds"):
        build_manifest("gtzan", tmp_path / "g", scheme="random")
    write_audio(tmp_path / "f" / "genres" / "classical" / "classical.00042.wav")  # faulty clip only
    with pytest.raises(AudioLLMError, match="no GTZAN examples found"):
        build("gtzan", tmp_path / "f")


# --------------------------------------------------------------------------- LibriSpeech

SPEAKERS_TXT = """\
; Some speakers have also been present in the LibriVox recordings
; ID   |SEX| SUBSET           |MINUTES| NAME
14   | F | train-clean-360  | 25.03 | Kristin LeMoine
60   | M | train-clean-100  | 20.18 | |CBW|Simon
1272 | M | dev-clean        |  8.08 | John Rose
"""


def make_librispeech(root: Path) -> Path:
    ls = root / "LibriSpeech"
    ls.mkdir(parents=True)
    (ls / "SPEAKERS.TXT").write_text(SPEAKERS_TXT)
    chapters = {"train-clean-100": ("60", "121082"), "dev-clean": ("1272", "128104"), "test-other": ("1688", "142285")}
    for subset, (spk, chap) in chapters.items():
        folder = ls / subset / spk / chap
        lines = []
        for utt in range(3):
            uid = f"{spk}-{chap}-{utt:04d}"
            lines.append(f"{uid} MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES'S {utt}")
            if not (subset == "test-other" and utt == 2):  # one FLAC never downloaded
                write_audio(folder / f"{uid}.flac", sr=16000)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_librispeech_rows_splits_subsets_and_speakers(tmp_path):
    make_librispeech(tmp_path)
    rows, warns = build("librispeech", tmp_path)
    assert_rows_basic(rows, "asr")
    assert len(rows) == 8
    assert {(r["subset"], r["split"]) for r in rows} == {("train-clean-100", "train"), ("dev-clean", "valid"),
                                                        ("test-other", "test")}
    r = next(r for r in rows if r["id"] == "librispeech-60-121082-0001")
    assert r["text"] == "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES'S 1"
    assert r["answer"] == r["text"].lower() and r["speaker"] == "60" and r["chapter"] == "121082"
    assert r["gender"] == "M"                       # from the "|CBW|Simon" line
    assert "gender" not in next(r for r in rows if r["speaker"] == "1688")
    assert any("skipped 1 utterance(s) whose .flac file is missing" in w and "1688-142285-0002.flac" in w for w in warns)

    dev, _ = build("librispeech", tmp_path / "LibriSpeech", subsets="dev-clean")
    assert {r["subset"] for r in dev} == {"dev-clean"} and len(dev) == 3
    one, _ = build("librispeech", tmp_path / "LibriSpeech" / "test-other")
    assert len(one) == 2 and {r["split"] for r in one} == {"test"}
    with pytest.raises(AudioLLMError, match="test-clean not found .*present: dev-clean, test-other, train-clean-100"):
        build_manifest("librispeech", tmp_path, subsets="test-clean")


def test_librispeech_wrong_layout(tmp_path):
    (tmp_path / "LibriSpeech" / "books").mkdir(parents=True)
    with pytest.raises(AudioLLMError, match="no LibriSpeech subset folders .*<speaker>-<chapter>.trans.txt"):
        build_manifest("librispeech", tmp_path)


# --------------------------------------------------------------------------- Clotho

CLOTHO_CAPTIONS = [
    ["Distorted AM Radio noise.wav", "A radio is tuned, crackling, between stations.",
     'Someone says "hello" over a noisy, buzzing radio.', "Static hisses.", "A radio dial is turned.",
     "Noise from an old radio."],
    ["Rain, on a tin roof.wav", "Rain falls steadily on a metal roof.", "Heavy rain drums on tin.",
     "Water drops hit a roof.", "It is raining hard.", "Raindrops patter on metal."],
]


def write_clotho_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)  # quotes only fields with commas or quotes, doubling inner quotes, as the release does
        w.writerow(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
        w.writerows(rows)


def make_clotho(root: Path) -> Path:
    write_clotho_csv(root / "clotho_captions_development.csv", CLOTHO_CAPTIONS)
    write_clotho_csv(root / "clotho_captions_validation.csv",
                     [["Café ambience.wav", "People chat in a café.", "Cups clink.", "Chatter.", "A busy café.", ""]])
    write_clotho_csv(root / "clotho_csv_files" / "clotho_captions_evaluation.csv",
                     [["bird song 01.wav", "Birds sing.", "Birds chirp.", "Many birds.", "Tweeting.", "Song birds."]])
    write_audio(root / "development" / "Distorted AM Radio noise.wav")  # "Rain, on a tin roof.wav" is missing
    write_audio(root / "clotho_audio_validation" / "Café ambience.wav")
    write_audio(root / "clotho_audio_files" / "evaluation" / "bird song 01.wav")
    return root


def test_clotho_captions_quotes_commas_and_folders(tmp_path):
    rows, warns = build("clotho", make_clotho(tmp_path))
    assert_rows_basic(rows, "caption")
    assert [(r["subset"], r["split"]) for r in rows] == [("development", "train"), ("validation", "valid"),
                                                         ("evaluation", "test")]
    radio = rows[0]
    assert radio["answer"] == "A radio is tuned, crackling, between stations."
    assert radio["answers"][1] == 'Someone says "hello" over a noisy, buzzing radio.' and len(radio["answers"]) == 5
    assert rows[1]["answers"] == ["People chat in a café.", "Cups clink.", "Chatter.", "A busy café."]
    assert any("skipped 1 development clip(s) whose audio file is missing: Rain, on a tin roof.wav" in w for w in warns)


def test_clotho_errors(tmp_path):
    (tmp_path / "development").mkdir()
    with pytest.raises(AudioLLMError, match="no clotho_captions_<split>.csv found"):
        build_manifest("clotho", tmp_path)
    (tmp_path / "clotho_captions_development.csv").write_text("file,caption\nx.wav,hi\n")
    with pytest.raises(AudioLLMError, match="missing column.*file_name"):
        build_manifest("clotho", tmp_path)


def test_clotho_aac_datasets_layout_and_misspelt_evaluation_folder(tmp_path):
    base = tmp_path / "CLOTHO_v2.1"
    write_clotho_csv(base / "clotho_csv_files" / "clotho_captions_evaluation.csv",
                     [["bird song 01.wav", "Birds sing.", "Birds chirp.", "Many birds.", "Tweeting.", "Song birds."]])
    write_audio(base / "clotho_audio_files" / "evaluation" / "bird song 01.wav")
    rows, _ = build("clotho", tmp_path)
    assert len(rows) == 1 and rows[0]["split"] == "test"
    write_clotho_csv(tmp_path / "v1" / "clotho_captions_evaluation.csv",
                     [["bird song 01.wav", "Birds sing.", "Birds chirp.", "Many birds.", "Tweeting.", "Song birds."]])
    write_audio(tmp_path / "v1" / "clotho_audio_evalution" / "bird song 01.wav")
    rows, _ = build("clotho", tmp_path / "v1")
    assert len(rows) == 1 and rows[0]["audio"].endswith("clotho_audio_evalution/bird song 01.wav")


# --------------------------------------------------------------------------- MAESTRO

MAESTRO_TABLE = [
    {"canonical_composer": "Alban Berg", "canonical_title": "Sonata Op. 1", "split": "train", "year": 2018,
     "midi_filename": "2018/MIDI-Unprocessed_Chamber3_MID--AUDIO_10_R3_2018_wav--1.midi",
     "audio_filename": "2018/MIDI-Unprocessed_Chamber3_MID--AUDIO_10_R3_2018_wav--1.wav", "duration": 698.661160312},
    {"canonical_composer": "Franz Schubert / Franz Liszt", "canonical_title": 'Ständchen, "Leise flehen"',
     "split": "validation", "year": 2004, "midi_filename": "2004/MIDI-Unprocessed_XP_04_R1_2004_01-02_ORIG_MID--AUDIO_04_R1_2004_02_Track02_wav.midi",
     "audio_filename": "2004/MIDI-Unprocessed_XP_04_R1_2004_01-02_ORIG_MID--AUDIO_04_R1_2004_02_Track02_wav.wav",
     "duration": 327.5},
    {"canonical_composer": "Frédéric Chopin", "canonical_title": "Ballade No. 1 in G Minor, Op. 23", "split": "test",
     "year": 2009, "midi_filename": "2009/MIDI-Unprocessed_11_R1_2009_06-09_ORIG_MID--AUDIO_11_R1_2009_11_R1_2009_06_WAV.midi",
     "audio_filename": "2009/MIDI-Unprocessed_11_R1_2009_06-09_ORIG_MID--AUDIO_11_R1_2009_11_R1_2009_06_WAV.wav",
     "duration": 561.1},
]


def make_maestro_files(root: Path, skip_audio_of: int | None = None) -> None:
    for i, rec in enumerate(MAESTRO_TABLE):
        (root / rec["midi_filename"]).parent.mkdir(parents=True, exist_ok=True)
        (root / rec["midi_filename"]).write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0")
        if i != skip_audio_of:
            write_audio(root / rec["audio_filename"])


def make_maestro(root: Path) -> Path:
    make_maestro_files(root, skip_audio_of=2)
    with open(root / "maestro-v3.0.0.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(MAESTRO_TABLE[0]))
        w.writeheader()
        w.writerows(MAESTRO_TABLE)
    return root


def test_maestro_csv(tmp_path):
    rows, warns = build("maestro", make_maestro(tmp_path))
    assert_rows_basic(rows, "transcription")
    assert [r["split"] for r in rows] == ["train", "valid"]
    second = rows[1]
    assert second["title"] == 'Ständchen, "Leise flehen"' and second["composer"] == "Franz Schubert / Franz Liszt"
    assert second["duration"] == 327.5 and second["year"] == 2004
    assert second["midi"].endswith("Track02_wav.midi") and Path(second["midi"]).is_file()
    assert any("skipped 1 performance(s) whose .wav is missing" in w for w in warns)


def test_maestro_column_oriented_json(tmp_path):
    make_maestro_files(tmp_path)
    columns = {c: {str(i): rec[c] for i, rec in enumerate(MAESTRO_TABLE)} for c in MAESTRO_TABLE[0]}
    (tmp_path / "maestro-v3.0.0.json").write_text(json.dumps(columns))
    rows, _ = build("maestro", tmp_path)
    assert [r["split"] for r in rows] == ["train", "valid", "test"]
    assert rows[2]["title"] == "Ballade No. 1 in G Minor, Op. 23" and rows[2]["composer"] == "Frédéric Chopin"


def test_maestro_errors(tmp_path):
    with pytest.raises(AudioLLMError, match=r"no maestro-v\*.csv or maestro-v\*.json found"):
        build_manifest("maestro", tmp_path)
    (tmp_path / "maestro-v3.0.0.json").write_text(json.dumps({"canonical_title": {"0": "x"}}))
    with pytest.raises(AudioLLMError, match="column-oriented table.*missing or not a column: canonical_composer"):
        build_manifest("maestro", tmp_path)


# --------------------------------------------------------------------------- LJ Speech

LJ_METADATA = (
    "LJ001-0001|Printing, in the only sense with which we are at present concerned, differs from most if not from all "
    "the arts and crafts represented in the Exhibition|Printing, in the only sense with which we are at present "
    "concerned, differs from most if not from all the arts and crafts represented in the Exhibition\n"
    'LJ001-0002|"The Dial," said Mr. Smith, "is open."|"The Dial," said Mister Smith, "is open."\n'
    "LJ002-0010|in 1869 the building was closed|in eighteen sixty-nine the building was closed\n"
    "LJ003-0005|this clip was never recorded|this clip was never recorded\n"
    "not a metadata line\n"
)


def make_ljspeech(root: Path) -> Path:
    base = root / "LJSpeech-1.1"
    base.mkdir(parents=True)
    (base / "metadata.csv").write_text(LJ_METADATA, encoding="utf-8")
    for clip in ("LJ001-0001", "LJ001-0002", "LJ002-0010"):
        write_audio(base / "wavs" / f"{clip}.wav", sr=22050)
    return root


def test_ljspeech_keeps_quotes_and_commas(tmp_path):
    rows, warns = build("ljspeech", make_ljspeech(tmp_path))  # the folder that contains LJSpeech-1.1
    assert_rows_basic(rows, "asr")
    quoted = next(r for r in rows if r["id"] == "ljspeech-LJ001-0002")
    assert quoted["answer"] == '"The Dial," said Mister Smith, "is open."'
    assert quoted["raw_text"] == '"The Dial," said Mr. Smith, "is open."'
    assert rows[2]["answer"] == "in eighteen sixty-nine the building was closed"
    # What a default CSV reader would have made of the quoted line: not the text.
    mangled = next(csv.reader(['LJ001-0002|"The Dial," said Mr. Smith, "is open."|x'], delimiter="|"))
    assert mangled[1] != '"The Dial," said Mr. Smith, "is open."'
    assert any("skipped 1 line(s)" in w for w in warns)
    assert any("skipped 1 clip(s) whose wav file is missing: wavs/LJ003-0005.wav" in w for w in warns)
    assert all(r["split"] == ljspeech.split_of(r["id"].removeprefix("ljspeech-")) for r in rows)


def test_ljspeech_hash_split_is_stable_and_proportioned():
    ids = [f"LJ{c:03d}-{n:04d}" for c in range(1, 51) for n in range(1, 263)]
    splits = [ljspeech.split_of(i) for i in ids]
    share = {s: splits.count(s) / len(ids) for s in ("train", "valid", "test")}
    assert 0.01 < share["test"] < 0.03 and 0.01 < share["valid"] < 0.03
    assert ljspeech.split_of("LJ001-0001") == ljspeech.split_of("LJ001-0001")


def test_ljspeech_wrong_layout(tmp_path):
    (tmp_path / "wavs").mkdir()
    with pytest.raises(AudioLLMError, match=r"no metadata.csv found; expected the LJ Speech layout"):
        build_manifest("ljspeech", tmp_path)


# --------------------------------------------------------------------------- MusicCaps

MUSICCAPS_CSV = (
    "ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval\n"
    '-0Gj8-vB1q4,30,40,"/m/0140xf,/m/02cjck,/m/04rlf","[\'low quality\', \'sustained strings melody\', \'sad\']",'
    '"The low quality recording features a ballad, with sustained strings and a soft female vocal.",4,False,True\n'
    '-FEPOSP7ay0,260,270,/m/0395lw,"[\'loud bells impacts\', \'mono\']",The recording features loud bells. It is mono.,'
    "4,False,False\n"
    '-8C-gydUbR8,30,40,"/m/04rlf,/t/dd00003","[\\"children\'s choir\\", \'gospel music, live\']",'
    '"A children’s choir sings ""Amazing Grace"" softly.",1,True,False\n'
    "zzzzGoneVid,0,10,/m/04rlf,\"['rock']\",A rock song.,2,False,False\n"
)


def make_musiccaps(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    # The CSV as Google ships it: aspect lists are Python literals; an aspect with an
    # apostrophe is double-quoted inside the literal (escaped here for the CSV).
    (root / "musiccaps-public.csv").write_text(MUSICCAPS_CSV.replace('\\"', '""'), encoding="utf-8")
    write_audio(root / "audio" / "-0Gj8-vB1q4.wav", sr=16000)
    write_audio(root / "audio" / "[-FEPOSP7ay0]-[260-270].wav", sr=16000)
    write_audio(root / "audio" / "more" / "-8C-gydUbR8_30-40.flac", sr=16000)
    return root


def test_musiccaps_rows_names_and_missing_audio(tmp_path):
    make_musiccaps(tmp_path / "mc")
    rows, warns = build("musiccaps", tmp_path / "mc")
    assert_rows_basic(rows, "caption")
    by = {r["ytid"]: r for r in rows}
    assert set(by) == {"-0Gj8-vB1q4", "-FEPOSP7ay0", "-8C-gydUbR8"}
    assert by["-0Gj8-vB1q4"]["split"] == "test" and by["-0Gj8-vB1q4"]["is_audioset_eval"] is True
    assert by["-0Gj8-vB1q4"]["audioset_labels"] == ["/m/0140xf", "/m/02cjck", "/m/04rlf"]
    assert by["-0Gj8-vB1q4"]["answer"].startswith("The low quality recording features a ballad, with")
    assert by["-FEPOSP7ay0"]["audioset_labels"] == ["/m/0395lw"] and by["-FEPOSP7ay0"]["start_s"] == 260
    assert by["-8C-gydUbR8"]["aspects"] == ["children's choir", "gospel music, live"]
    assert by["-8C-gydUbR8"]["answer"] == 'A children’s choir sings "Amazing Grace" softly.'
    assert by["-8C-gydUbR8"]["is_balanced_subset"] is True
    assert {by[y]["split"] for y in ("-FEPOSP7ay0", "-8C-gydUbR8")} <= {"train", "valid"}
    assert any("skipped 1 clip(s) with no audio file" in w and "zzzzGoneVid" in w for w in warns)

    tagged, _ = build("musiccaps", tmp_path / "mc", tagging="true")
    tags = [r for r in tagged if r["task"] == "tagging"]
    assert len(tags) == 3 and len(tagged) == 6
    choir = next(r for r in tags if r["ytid"] == "-8C-gydUbR8")
    assert choir["labels"] == choir["tags"] == ["children's choir", "gospel music, live"]
    assert choir["answer"] == "children's choir, gospel music, live"


def test_musiccaps_audio_dir_option_and_errors(tmp_path):
    make_musiccaps(tmp_path / "mc")
    (tmp_path / "mc" / "audio").rename(tmp_path / "clips")
    rows, _ = build("musiccaps", tmp_path / "mc", audio_dir=str(tmp_path / "clips"))
    assert len(rows) == 3
    rows, _ = build("musiccaps", tmp_path / "mc", audio_dir="../clips")   # relative to ROOT
    assert len(rows) == 3
    with pytest.raises(AudioLLMError, match="audio_dir='nowhere'"):
        build_manifest("musiccaps", tmp_path / "mc", audio_dir="nowhere")
    with pytest.raises(AudioLLMError, match="tagging='maybe'; expected true or false"):
        build_manifest("musiccaps", tmp_path / "mc", tagging="maybe")
    with pytest.warns(UserWarning, match="skipped 4 clip"), pytest.raises(AudioLLMError, match="no MusicCaps examples found with audio"):
        build_manifest("musiccaps", tmp_path / "mc")  # ROOT has no audio/ now: every clip is missing
    with pytest.raises(AudioLLMError, match="no musiccaps-public.csv found"):
        build_manifest("musiccaps", tmp_path)


# --------------------------------------------------------------------------- MusicQA

def qa_entry(audio: str, q: str, a: str) -> dict:
    return {"audio_name": audio, "conversation": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}


def make_musicqa(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    finetune = [qa_entry(f"{i:06d}.wav", " What is the tempo of the music?", f"The tempo is {60 + i} bpm.")
                for i in range(40)]
    finetune.append({"audio_name": "000001.wav", "conversation": "not a list"})        # malformed
    (root / "FinetuneMusicQA.json").write_text(json.dumps(finetune, indent=2))
    evaluation = [qa_entry("012542.wav", "Describe the audio", "The audio is an alternative rock track."),
                  qa_entry("012542.wav", "What is the electronic element in the audio?", "It is experimental."),
                  qa_entry("099999.wav", "Describe the audio", "Missing clip.")]
    (root / "EvalMusicQA.json").write_text(json.dumps(evaluation, indent=2))
    for name in [f"{i:06d}.wav" for i in range(40)] + ["012542.wav"]:
        write_audio(root / "audios" / name, seconds=0.02)
    return root


def test_musicqa_rows_and_splits(tmp_path):
    make_musicqa(tmp_path)
    rows, warns = build("musicqa", tmp_path)
    assert_rows_basic(rows, "qa")
    ev = [r for r in rows if r["subset"] == "eval"]
    assert len(ev) == 2 and {r["split"] for r in ev} == {"test"}
    assert ev[1]["question"] == "What is the electronic element in the audio?"
    ft = [r for r in rows if r["subset"] == "finetune"]
    assert len(ft) == 40 and ft[0]["question"] == "What is the tempo of the music?"   # leading space trimmed
    assert {r["split"] for r in ft} <= {"train", "valid"} and any(r["split"] == "train" for r in ft)
    assert any("skipped 1 entry(ies) without audio_name" in w for w in warns)
    assert any("skipped 1 eval clip(s) whose audio file is missing: 099999.wav" in w for w in warns)
    only_eval, _ = build("musicqa", tmp_path, subsets="eval")
    assert {r["subset"] for r in only_eval} == {"eval"}
    with pytest.raises(AudioLLMError, match="pretrain not found .*present: finetune, eval"):
        build_manifest("musicqa", tmp_path, subsets="pretrain")


def test_musicqa_single_generated_file_and_errors(tmp_path):
    make_musicqa(tmp_path)
    (tmp_path / "FinetuneMusicQA.json").rename(tmp_path / "MusicQA.json")
    (tmp_path / "EvalMusicQA.json").unlink()
    rows, _ = build("musicqa", tmp_path)
    assert {r["subset"] for r in rows} == {"all"} and len(rows) == 40
    (tmp_path / "MusicQA.json").write_text('{"audio_name": "x.wav"}')
    with pytest.raises(AudioLLMError, match="expected a JSON list"):
        build_manifest("musicqa", tmp_path)
    (tmp_path / "MusicQA.json").write_text('[{"audio_name": "x.wav",')
    with pytest.raises(AudioLLMError, match=r"MusicQA.json:1: not valid JSON"):
        build_manifest("musicqa", tmp_path)
    (tmp_path / "MusicQA.json").unlink()
    with pytest.raises(AudioLLMError, match="no MusicQA JSON files found"):
        build_manifest("musicqa", tmp_path)


# --------------------------------------------------------------------------- MagnaTagATune

MTAT_TAGS = ["no voice", "singer", "guitar", "classical", "techno", "female vocal"]


def make_mtat(root: Path) -> Path:
    clips = [  # clip_id, tags set, mp3_path
        (2, {"classical", "guitar"}, "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"),
        (6, {"classical"}, "0/jacob_heringman-josquin_des_prez_lute_settings-01-praeludium-0-29.mp3"),
        (10, {"guitar", "techno"}, "0/jacob_heringman-josquin_des_prez_lute_settings-02-another-30-59.mp3"),
        (11, {"singer"}, "c/some_artist-some_album-03-song-117-146.mp3"),
        (12, {"classical", "no voice"}, "d/norine_braun-now_and_zen-08-gently-117-146.mp3"),
        (13, {"female vocal"}, "d/untagged_in_top-3.mp3"),
        (14, {"guitar"}, "e/never_extracted-01-x-0-29.mp3"),
    ]
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "annotations_final.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL)  # the release quotes every field
        w.writerow(["clip_id", *MTAT_TAGS, "mp3_path"])
        for clip_id, tags, mp3 in clips:
            w.writerow([clip_id, *[int(t in tags) for t in MTAT_TAGS], mp3])
    for _, _, mp3 in clips[:4]:
        write_audio(root / mp3, sr=16000)
    (root / clips[4][2]).parent.mkdir(parents=True, exist_ok=True)
    (root / clips[4][2]).write_bytes(b"")   # one of the release's zero-byte MP3s
    return root


def test_magnatagatune_top_tags_split_and_quirks(tmp_path):
    make_mtat(tmp_path)
    text = (tmp_path / "annotations_final.csv").read_text()
    assert text.startswith('"clip_id"\t"no voice"')
    rows, warns = build("magnatagatune", tmp_path, top="3")
    assert_rows_basic(rows, "tagging")
    by = {r["clip_id"]: r for r in rows}
    # Top 3: guitar and classical (3 clips each; guitar's column comes first), then "no voice"
    # (1 clip, the first of the four one-clip tags). Clips 11 and 13 have none of them.
    assert set(by) == {"2", "6", "10"}
    assert by["2"]["tags"] == ["guitar", "classical"] and by["2"]["answer"] == "guitar, classical"
    assert by["2"]["labels"] == by["2"]["tags"] and by["2"]["split"] == "test"
    assert by["6"]["split"] == "train" and by["6"]["question"] == "Which tags describe this music?"
    assert any("skipped 2 clip(s) with none of the top-3 tags: 11, 13" in w for w in warns)
    assert any("skipped 2 clip(s) whose MP3 is missing or empty" in w for w in warns)


def test_magnatagatune_errors(tmp_path):
    with pytest.raises(AudioLLMError, match="no annotations_final.csv found"):
        build_manifest("magnatagatune", tmp_path)
    make_mtat(tmp_path / "m")
    with pytest.raises(AudioLLMError, match="top='many'"):
        build_manifest("magnatagatune", tmp_path / "m", top="many")
    (tmp_path / "n").mkdir()
    (tmp_path / "m" / "annotations_final.csv").rename(tmp_path / "n" / "annotations_final.csv")
    with pytest.raises(AudioLLMError, match=r"no MP3 folders 0/ ... f/ found"):
        build_manifest("magnatagatune", tmp_path / "n")


# --------------------------------------------------------------------------- AudioCaps

def make_audiocaps(root: Path) -> Path:
    ds = root / "dataset"
    ds.mkdir(parents=True)
    (ds / "train.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n"
        "91139,r1nicOVtvkQ,130,A woman talks nearby as water pours\n"
        '58146,UDGBjjwyaqE,20,"Multiple clanging and clanking sounds, then a man speaks"\n'
        "11111,goneVideo00,0,A dog barks\n")
    val_lines = ["audiocap_id,youtube_id,start_time,caption"]
    val_lines += [f"{97150 + i},rqfQRErjfk8,170,A large crowd cheers and applauds {i}" for i in range(5)]
    (ds / "val.csv").write_text("\n".join(val_lines) + "\n")
    (ds / "test.csv").write_text("audiocap_id,youtube_id,start_time,caption\n"
                                 "103549,--0w1YA1Hm4,30,A vehicle driving as a man and woman are talking\n")
    audio = root / "audio"
    write_audio(audio / "train" / "91139.wav", sr=16000)            # audiocaps-download naming
    write_audio(audio / "train" / "UDGBjjwyaqE.wav", sr=16000)      # youtube id
    write_audio(audio / "val" / "97152.wav", sr=16000)              # any caption id of the clip
    write_audio(audio / "test" / "Y--0w1YA1Hm4_30.000_40.000.wav", sr=16000)   # AudioSet style
    return root


def test_audiocaps_groups_captions_and_finds_audio(tmp_path):
    rows, warns = build("audiocaps", make_audiocaps(tmp_path / "audiocaps"))
    assert_rows_basic(rows, "caption")
    assert [r["split"] for r in rows] == ["train", "train", "valid", "test"]
    assert rows[1]["answer"] == "Multiple clanging and clanking sounds, then a man speaks"
    val = rows[2]
    assert val["answer"] == "A large crowd cheers and applauds 0" and len(val["answers"]) == 5
    assert val["audiocap_ids"] == [str(97150 + i) for i in range(5)] and val["start_time"] == 170
    assert any("skipped 1 train clip(s) with no audio file" in w and "goneVideo00@0" in w for w in warns)


def test_audiocaps_errors(tmp_path):
    with pytest.raises(AudioLLMError, match="no train.csv, val.csv or test.csv found"):
        build_manifest("audiocaps", tmp_path)
    (tmp_path / "test.csv").write_text("youtube_id,caption\nabc,hi\n")
    with pytest.raises(AudioLLMError, match="missing column.*audiocap_id"):
        build_manifest("audiocaps", tmp_path)


# --------------------------------------------------------------------------- CLI

MAKERS = {"gtzan": make_gtzan, "librispeech": make_librispeech, "clotho": make_clotho, "maestro": make_maestro,
          "ljspeech": make_ljspeech, "musiccaps": make_musiccaps, "musicqa": make_musicqa,
          "magnatagatune": make_mtat, "audiocaps": make_audiocaps}


@pytest.mark.parametrize("fmt", NEW_FORMATS)
def test_cli_manifest_every_format(fmt, tmp_path, capsys):
    """``audiollm data manifest --format NAME`` on each fixture: exit 0, warnings one line
    each, a manifest that reads back and whose rows pass their task's validation."""
    root = MAKERS[fmt](tmp_path / fmt)
    out = tmp_path / f"{fmt}.jsonl"
    code = main(["data", "manifest", str(root), "--format", fmt, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert all(l.startswith("audiollm: warning: ") for l in captured.err.splitlines() if l.strip())
    rows = read_manifest(out)
    assert f"wrote {len(rows)} rows to {out}" in captured.out
    for row in rows:
        if row["task"] in TASKS:   # "transcription" (MAESTRO) is registered by its own module
            TASKS[row["task"]].validate(row)
        assert Path(row["audio"]).is_file()


def test_cli_manifest_end_to_end_with_warnings(tmp_path, capsys):
    base = make_ljspeech(tmp_path) / "LJSpeech-1.1"
    out = tmp_path / "lj.jsonl"
    code = main(["data", "manifest", str(base), "--format", "ljspeech", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "wrote 3 rows" in captured.out
    warn_lines = [l for l in captured.err.splitlines() if l.strip()]
    assert len(warn_lines) == 2 and all(l.startswith("audiollm: warning: ") for l in warn_lines)
    back = read_manifest(out)
    assert {r["answer"] for r in back} >= {'"The Dial," said Mister Smith, "is open."'}

    code = main(["data", "manifest", str(tmp_path / "nothing-here"), "--format", "gtzan", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("audiollm: error:") and "GTZAN layout" in err[0]


def test_cli_manifest_help_lists_every_format(capsys):
    assert main(["data", "manifest", "--help"]) == 0
    out = capsys.readouterr().out
    for name in NEW_FORMATS + ("fsdd",):
        assert f"  {name} " in out
    assert "options: scheme" in out and "options: audio_dir, tagging" in out
