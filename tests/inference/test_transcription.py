"""Transcription: manifest rows → windowed event answers, long audio → stitched notes → mir_eval."""

from __future__ import annotations

import json

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch
from helpers import REPO, tone

from audiollm.cli.parser import main
from audiollm.data.batching import IGNORE_INDEX, ExampleBuilder
from audiollm.data.manifest import read_manifest
from audiollm.errors import AudioLLMError, ManifestError
from audiollm.evaluation.evaluate import evaluate
from audiollm.inference.api import AudioLanguageModel
from audiollm.inference.transcribe import ctc_onsets, transcribe
from audiollm.metrics.notes import note_scores
from audiollm.models import hub
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig
from audiollm.music.grammar import AnchoredGrammar
from audiollm.music.midi_file import write_midi
from audiollm.music.notes import Note
from audiollm.tasks import get_task
from audiollm.tasks.transcription import notes_to_json, parse_notes
from audiollm.tokenizers.midi import MidiTokenError, MidiVocab
from audiollm.tokenizers.text import TextTokenizer
from audiollm.training.loop import load_rows

TASK = get_task("transcription")
SR = 16000


@pytest.fixture(scope="module")
def tok():
    text = TextTokenizer.train(["transcribe the notes", *TASK.questions] * 3, vocab_size=300)
    return text.with_midi(MidiVocab(programs=(0, 33, 40)))


def write_wav(path, seconds, fill=None):
    wav = tone(seconds) if fill is None else fill
    sf.write(path, wav, SR)
    return str(path)


NOTES = [Note(60, 0.2, 1.0, 90), Note(64, 3.5, 6.5, 60, 40), Note(36, 4.9, 9.0, 110, 33), Note(67, 7.0, 7.2, 30)]


def test_notes_formats_and_errors():
    five = parse_notes([[60, 0.5, 1.0, 80, 40]], "row")
    four = parse_notes([[0.5, 1.0, 60, 80]], "row", program=40)  # the embedded corpus's order
    assert five == four == [Note(60, 0.5, 1.0, 80, 40)]
    for bad, msg in [([[60, 1.0, 0.5, 80, 0]], "start < end"), ([[200, 0, 1, 80, 0]], "outside 0-127"),
                     ([[60, 0, 1]], "not \\[pitch"), ("x", "must be a list")]:
        with pytest.raises(ManifestError, match=msg):
            parse_notes(bad, "row")
    with pytest.raises(ManifestError, match="needs 'notes' or 'midi'"):
        TASK.validate({"audio": "a.wav", "task": "transcription"})


def test_training_example_is_the_cropped_window(tmp_path, tok):
    row = {"audio": write_wav(tmp_path / "a.wav", 10.0), "task": "transcription",
           "notes": [[n.pitch, n.start, n.end, n.velocity, n.program] for n in NOTES]}
    vocab = tok.midi
    q = vocab.quantize(NOTES)
    build = ExampleBuilder([row], tok, seed=3, max_audio_seconds=30.0)
    seen_held = False
    for draw in range(6):
        ex = build(0, draw)
        assert ex["audio"].shape[0] == 5 * SR  # cut to the task's 5 s window
        answer = [t for t, l in zip(ex["input_ids"], ex["labels"]) if l != IGNORE_INDEX][:-1]
        events = tok.decode_events(answer)
        assert len(events) == len(answer)  # the answer is events only
        # it is exactly the window of some grid-aligned start
        starts = [s for s in range(0, 501) if vocab.encode_window(q, s, 500) == events]
        assert starts, events
        seen_held |= events[0] != "<|tie|>"
    assert seen_held  # some draws start while a note sounds: the held section is used


def test_ctc_labels_are_the_windows_onsets_in_order(tmp_path, tok):
    """With a CTC head the encoder learns onsets: each example's CTC labels are the note-on
    ids that follow <|tie|> (held notes and every other event left out)."""
    row = {"audio": write_wav(tmp_path / "a.wav", 10.0), "task": "transcription",
           "notes": [[n.pitch, n.start, n.end, n.velocity, n.program] for n in NOTES]}
    build = ExampleBuilder([row], tok, seed=3, max_audio_seconds=30.0)
    for draw in range(6):
        ex = build(0, draw)
        answer = [t for t, l in zip(ex["input_ids"], ex["labels"]) if l != IGNORE_INDEX][:-1]
        events = tok.decode_events(answer)
        onsets = events[events.index("<|tie|>") + 1:]
        assert tok.decode_events(ex["targets"]["ctc"]) == [t for t in onsets if t.startswith("<|on_")]
    # the full window from 0 s: the onsets of 60 (0.2 s) and 64 (3.5 s), and 36 (4.9 s) in order
    target = TASK.target_ids(row, tok, 0.0, 5.0)
    ctc = TASK.head_targets(row, target, tok, 0.0, 5.0)["ctc"]
    assert tok.decode_events(ctc) == ["<|on_60|>", "<|on_64|>", "<|on_36|>"]
    text_row = {"audio": "x.wav", "answer": "one"}
    assert get_task("tagging").head_targets(text_row, [5, 6], tok, 0.0, 1.0) == {}
    assert get_task("asr").head_targets(text_row, [5, 6], tok, 0.0, 1.0) == {"ctc": [5, 6]}


def test_unknown_instrument_lists_valid_programs(tmp_path):
    piano = TextTokenizer.train(["notes"] * 3, vocab_size=300).with_midi(MidiVocab(programs=(0,)))
    row = {"audio": "a.wav", "task": "transcription", "notes": [[60, 0, 1, 80, 40]]}
    with pytest.raises(MidiTokenError, match=r"program 40 \(Violin\) is not in the MIDI vocabulary; valid: 0 \(Acoustic Grand Piano\)"):
        TASK.target_ids(row, piano, 0.0, 5.0)


def test_load_rows_skips_corrupt_and_empty_midi_with_a_warning(tmp_path):
    good = write_midi(NOTES, tmp_path / "good.mid")
    (tmp_path / "bad.mid").write_bytes(b"not midi at all")
    pretty_midi.PrettyMIDI().write(str(tmp_path / "empty.mid"))
    write_wav(tmp_path / "a.wav", 1.0)
    rows = [{"audio": "a.wav", "task": "transcription", "midi": name, "split": "train"}
            for name in ("good.mid", "bad.mid", "empty.mid")]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning, match=r"skipped 2 of 3 transcription row\(s\):.*bad\.mid: not a readable MIDI file.*empty\.mid: has no notes"):
        kept = load_rows(str(manifest))
    assert [r["midi"] for r in kept] == [str(good)]  # relative MIDI paths resolve like audio
    assert TASK.notes(kept[0]) == sorted(TASK.notes(kept[0]), key=Note.sort_key) and len(TASK.notes(kept[0])) == 4


def test_note_scores_follow_mir_eval_tolerances():
    ref = [Note(60, 1.0, 2.0, 80), Note(64, 1.0, 2.0, 40), Note(67, 3.0, 3.5, 100)]
    assert note_scores(ref, ref) == {k: 1.0 for k in note_scores(ref, ref)}
    late = [Note(n.pitch, n.start + 0.03, n.end, n.velocity) for n in ref]  # within 50 ms
    assert note_scores(ref, late)["note_f1"] == 1.0
    too_late = [Note(n.pitch, n.start + 0.07, n.end + 0.07, n.velocity) for n in ref]
    assert note_scores(ref, too_late)["note_f1"] == 0.0
    short = [Note(n.pitch, n.start, n.start + 0.1, n.velocity) for n in ref]  # offsets wrong
    s = note_scores(ref, short)
    assert s["note_f1"] == 1.0 and s["note_offset_f1"] == 0.0
    flat = [Note(n.pitch, n.start, n.end, [80, 100, 40][i]) for i, n in enumerate(ref)]  # velocities shuffled
    s = note_scores(ref, flat)
    assert s["note_offset_f1"] == 1.0 and s["note_offset_velocity_f1"] < 1.0
    half = note_scores(ref, ref[:1] + [Note(50, 5.0, 6.0)])
    assert half["note_precision"] == pytest.approx(0.5) and half["note_recall"] == pytest.approx(1 / 3)
    assert note_scores(ref, [])["note_f1"] == 0.0


class ScriptedModel(torch.nn.Module):
    """Answers each window with the reference tokens of that window.

    The audio of window k is the constant (k + 1) / 100, so the model can tell which window
    it was given; this exercises the real windowing, batching and stitching of `transcribe`.
    """

    def __init__(self, tok: TextTokenizer, windows: list[list[str]]):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.tok, self.windows, self.lengths = tok, windows, []
        self.heads = torch.nn.ModuleDict()  # no auxiliary heads: the decoder writes every token
        self.config = type("C", (), {"lm_config": type("L", (), {"max_seq_len": 4096})()})()

    def encode_audio(self, audio, lengths):
        return torch.zeros(audio.shape[0], 10, 4), torch.full((audio.shape[0],), 10)

    def generate(self, audio, audio_lengths, prompt_ids, options, eos_id=None, **_):
        max_new_tokens = options.max_new_tokens
        self.lengths += audio_lengths.tolist()
        out = []
        for row in audio:
            k = int(round(float(row[0]) * 100)) - 1
            out.append(self.tok.encode_events(self.windows[k])[:max_new_tokens])
        return out


def window_coded_audio(seconds: float, window: float) -> np.ndarray:
    n = int(round(seconds * SR))
    w = int(round(window * SR))
    return ((np.arange(n) // w + 1) / 100).astype(np.float32)


@pytest.mark.parametrize("seconds", [9.0, 11.3, 2.5])
def test_transcribe_stitches_windows_without_duplicates_or_drops(tok, seconds):
    # 64 crosses the 5 s boundary, 36 starts 0.1 s before it and lasts into the third window.
    windows = tok.midi.encode_windows(NOTES, 5.0, total_seconds=seconds)
    model = ScriptedModel(tok, windows)
    (notes,) = transcribe(model, tok, [torch.from_numpy(window_coded_audio(seconds, 5.0))], window_seconds=5.0, batch_size=2)
    assert len(model.lengths) == len(windows) == max(1, int(np.ceil(seconds / 5.0)))
    assert model.lengths[-1] == int(round(seconds * SR)) - (len(windows) - 1) * 5 * SR  # the short last window
    want = [Note(n.pitch, n.start, min(n.end, seconds), n.velocity, n.program) for n in NOTES if n.start < seconds]
    got_keys = [(n.pitch, n.program, round(n.start, 2), round(n.end, 2)) for n in notes]
    assert got_keys == [(n.pitch, n.program, round(n.start, 2), round(n.end, 2)) for n in want]
    assert [tok.midi.velocity_bin(n.velocity) for n in notes] == [tok.midi.velocity_bin(n.velocity) for n in want]


def test_transcribe_needs_a_midi_vocabulary(tok):
    text_only = TextTokenizer.train(["notes"] * 3, vocab_size=300)
    with pytest.raises(AudioLLMError, match="no MIDI vocabulary"):
        transcribe(ScriptedModel(tok, []), text_only, [torch.zeros(SR)])
    with pytest.raises(MidiTokenError, match="not a positive multiple"):
        transcribe(ScriptedModel(tok, []), tok, [torch.zeros(SR)], window_seconds=5.001)


def test_evaluate_scores_long_clips_through_windows(tmp_path, tok):
    seconds = 11.3
    audio = write_wav(tmp_path / "long.wav", seconds, window_coded_audio(seconds, 5.0))
    row = {"audio": audio, "task": "transcription", "id": "x",
           "notes": [[n.pitch, n.start, n.end, n.velocity, n.program] for n in NOTES]}
    model = ScriptedModel(tok, tok.midi.encode_windows(NOTES, 5.0, total_seconds=seconds))
    result = evaluate(AudioLanguageModel(model, tok), [row], max_audio_seconds=10.0, progress=False)  # longer than the limit: windowed
    scores = result.results["transcription"]
    assert scores["n"] == 1 and scores["note_f1"] == 1.0 and scores["note_offset_f1"] == 1.0
    assert scores["note_offset_velocity_f1"] == 1.0
    assert len(json.loads(result.predictions[0])) == len(NOTES)
    bad = TASK.score([notes_to_json(NOTES[:2])], [row])
    assert bad["note_recall"] == 0.5 and bad["note_precision"] == 1.0
    with pytest.raises(AudioLLMError, match="not a note list"):
        TASK.score(["piano"], [row])


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tok):
    """A tiny untrained model whose tokenizer holds the MIDI vocabulary, saved like a trained one."""
    cfg = AudioLLMConfig.tiny()
    cfg.lm_config.vocab_size = tok.vocab_size
    torch.manual_seed(0)
    return hub.save_model(tmp_path_factory.mktemp("tiny") / "model", AudioLLM(cfg), tok)


@pytest.mark.parametrize("seconds", [1.5, 7.0])  # shorter than a window; two windows
def test_cli_transcribe_writes_a_midi_file_and_a_plot(tiny_model_dir, tmp_path, capsys, seconds):
    audio = write_wav(tmp_path / "in.wav", seconds)
    out, plot = tmp_path / "out" / "song.mid", tmp_path / "roll.png"
    code = main(["transcribe", str(tiny_model_dir), audio, "--out", str(out), "--plot", str(plot),
                 "--max-new-tokens", "24", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and f"written to {out}" in printed
    pm = pretty_midi.PrettyMIDI(str(out))  # a valid MIDI file (notes, if any, lie inside the audio)
    assert all(0 <= n.start < n.end <= seconds + 1e-6 for i in pm.instruments for n in i.notes)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_transcribe_bad_input_is_one_line(tiny_model_dir, tmp_path, capsys):
    audio = write_wav(tmp_path / "in.wav", 1.0)
    cases = [
        ([str(tiny_model_dir), audio, "--out", str(tmp_path / "x.wav")], "must end in .mid"),
        ([str(tiny_model_dir), str(tmp_path / "missing.wav"), "--out", str(tmp_path / "x.mid")], "no such file"),
        ([str(tiny_model_dir), audio, "--out", str(tmp_path / "x.mid"), "--window", "0.123"], "not a positive multiple"),
    ]
    text_only = TextTokenizer.train(["notes"] * 3, vocab_size=300)
    cfg = AudioLLMConfig.tiny()
    cfg.lm_config.vocab_size = text_only.vocab_size
    text_dir = hub.save_model(tmp_path / "text_model", AudioLLM(cfg), text_only)
    cases.append(([str(text_dir), audio, "--out", str(tmp_path / "x.mid")], "no MIDI vocabulary"))
    for argv, fragment in cases:
        code = main(["transcribe", *argv, "--no-progress"])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code != 0 and len(lines) == 1 and lines[0].startswith("audiollm: error:") and fragment in lines[0], err


def test_data_transcription_derives_one_row_per_clip_with_paths_relative_to_the_new_manifest(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    (corpus / "audio").mkdir(parents=True)
    sf.write(corpus / "audio" / "m1.wav", tone(1.0), 16000)
    notes = [[0.0, 0.5, 60, 80], [0.5, 1.0, 64, 90]]
    clip = {"clip": "m1", "audio": "audio/m1.wav", "program": 40, "family": "strings", "notes": notes}
    rows = [{"id": "m1-tagging", "task": "tagging", "answer": "strings", **clip},
            {"id": "m1-caption", "task": "caption", "answer": "a violin", **clip},
            {"id": "m1-t2m", "task": "text_to_midi", "question": "a violin", "program": 40, "notes": notes},
            {"id": "s1-asr", "task": "asr", "audio": "audio/m1.wav", "answer": "hello"}]
    (corpus / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "elsewhere" / "tr.jsonl"
    assert main(["data", "transcription", "--from", str(corpus / "train.jsonl"), "--out", str(out)]) == 0
    assert "wrote 1 transcription rows" in capsys.readouterr().out
    raw = json.loads(out.read_text())
    assert raw["audio"] == "../corpus/audio/m1.wav" and raw["task"] == "transcription" and "answer" not in raw
    (row,) = read_manifest(out, require_answer=False)
    task = get_task("transcription")
    task.validate(row)
    assert task.notes(row) == [Note(60, 0.0, 0.5, 80, 40), Note(64, 0.5, 1.0, 90, 40)]
    # a manifest without music rows is a one-line error, not an empty file
    (corpus / "speech.jsonl").write_text(json.dumps(rows[-1]) + "\n")
    assert main(["data", "transcription", "--from", str(corpus / "speech.jsonl"), "--out", str(tmp_path / "y.jsonl")]) != 0
    assert "no music rows with 'notes' and 'program'" in capsys.readouterr().err
    assert not (tmp_path / "y.jsonl").exists()


def test_transcription_benchmark_scores_a_model_dir_on_a_family(tiny_model_dir, tmp_path):
    """benchmarks/transcription.py end to end at toy size: one JSON line, the family filter,
    scores in range; basic-pitch left out (it is not a dependency)."""
    import os
    import subprocess
    import sys

    rows = [{"audio": write_wav(tmp_path / f"{i}.wav", 1.0), "task": "transcription", "family": fam,
             "notes": [[0.1, 0.6, 60 + i, 80]], "program": 0} for i, fam in enumerate(["piano", "organ", "piano"])]
    manifest = tmp_path / "test.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = REPO / "benchmarks" / "transcription.py"
    proc = subprocess.run([sys.executable, str(script), str(tiny_model_dir), "--manifest", str(manifest), "--quick",
                           "--no-basic-pitch", "--max-new-tokens", "24"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CI": "1"})  # pyfluidsynth prints at import under $CI
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [x for x in proc.stdout.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stdout  # stdout holds the JSON object only
    out = json.loads(lines[0])
    assert out["clips"] == 2 and out["family"] == "piano" and out["basic_pitch"] == {"skipped": "--no-basic-pitch"}
    assert 0.0 <= out["ours"]["note_f1"] <= 1.0 and out["ours"]["audio_seconds_per_s"] > 0
    bad = subprocess.run([sys.executable, str(script), str(tiny_model_dir), "--manifest", str(manifest),
                          "--family", "banjo", "--no-basic-pitch"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"error: {manifest}: no transcription rows of family 'banjo'"]


# ------------------------------------------------------------------ onsets from the CTC head


def random_walk(grammar, tok, row: int, gen: torch.Generator, limit: int = 3000) -> list[str]:
    """Tokens drawn uniformly among those the grammar allows, until end of sequence."""
    out = []
    for _ in range(limit):
        allowed = grammar.mask([row])[0].nonzero().squeeze(-1)
        assert len(allowed), f"the grammar allows nothing after {out}"
        nxt = int(allowed[torch.randint(len(allowed), (1,), generator=gen)])
        grammar.advance([row], [nxt])
        if nxt == tok.eos_id:
            return tok.decode_events(out)
        out.append(nxt)
    raise AssertionError("no end of sequence")


def test_anchored_grammar_writes_exactly_the_anchors_and_nothing_else(tok):
    # A chord; a key struck again while still sounding (needs its note-off first); a duplicate;
    # an anchor past the window end (clamps to the last step); a window with no anchors at all.
    anchors = [[(10, 60), (10, 64), (30, 60), (31, 60), (31, 60), (500, 72)], []]
    length = 100
    for seed in range(5):
        g = AnchoredGrammar(tok, 2, [length, 50], anchors, held=True)
        gen = torch.Generator().manual_seed(seed)
        for row, want in ((0, {(10, 60), (10, 64), (30, 60), (31, 60), (99, 72)}), (1, set())):
            tokens = random_walk(g, tok, row, gen)
            window = tok.midi.decode_window(tokens, [length, 50][row])
            assert window.n_invalid == 0
            assert {(n.start, n.pitch) for n in window.notes if not n.held} == want, tokens


class OneHotHead(torch.nn.Module):
    """A CTC head that emits a fixed label per frame (blank = the last index)."""

    def __init__(self, labels: list[int], vocab_size: int):
        super().__init__()
        self.labels, self.v = labels, vocab_size

    def forward(self, frames):
        return torch.nn.functional.one_hot(torch.tensor([self.labels]), self.v + 1).float()


def test_ctc_onsets_collapse_repeats_and_read_a_chord_run_at_its_first_frame(tok):
    from types import SimpleNamespace

    on = {p: tok.encode_events([f"<|on_{p}|>"])[0] for p in (60, 64, 67)}
    blank, text = tok.vocab_size, 5
    labels = [blank, on[60], on[64], on[67], blank, blank, on[60], on[60], blank, on[60], text, on[64], blank, on[67]]
    model = SimpleNamespace(heads={"ctc": OneHotHead(labels, tok.vocab_size)})
    frames = torch.zeros(1, len(labels), 4)
    n_frames = len(labels) - 1  # the last frame is padding: not read
    # 40 ms frames: frame t starts at step 4t of the 10 ms vocabulary.
    (got,) = ctc_onsets(model, tok, frames, torch.tensor([n_frames]), torch.tensor([n_frames * 640]))
    assert got == [(4, 60), (4, 64), (4, 67), (24, 60), (36, 60), (44, 64)]


def test_ctc_anchored_transcription_starts_every_note_at_a_ctc_onset(tok):
    cfg = AudioLLMConfig.tiny(ctc=0.5)
    cfg.lm_config.vocab_size = tok.vocab_size
    torch.manual_seed(0)
    model = AudioLLM(cfg).eval()
    on_ids = tok.encode_events([f"<|on_{p}|>" for p in range(128)])
    with torch.no_grad():  # an untrained head that emits note-ons often, so there are anchors to follow
        model.heads["ctc"].proj.weight.mul_(50.0)
        keep = torch.zeros(tok.vocab_size + 1, dtype=torch.bool)
        keep[on_ids + [tok.vocab_size]] = True
        model.heads["ctc"].proj.bias.masked_fill_(~keep, -1e4)
    wav = torch.from_numpy(tone(3.0)) + 0.1 * torch.randn(3 * SR)
    with torch.no_grad():
        frames, n_frames = model.encode_frames(wav[None], torch.tensor([wav.shape[0]]))
        (anchors,) = ctc_onsets(model, tok, frames, n_frames, torch.tensor([wav.shape[0]]))
    assert anchors, "the test needs a head that emits note-ons"
    (notes,) = transcribe(model, tok, [wav], window_seconds=5.0, max_new_tokens=400, onsets="ctc")
    onsets = {(round(n.start / tok.midi.time_step), n.pitch) for n in notes}
    assert set(anchors) <= onsets  # every CTC onset is a note (the budget is ample)
    assert all(step == 0 for step, _ in onsets - set(anchors))  # others only held notes at the clip start
    lm_only = transcribe(model, tok, [wav], window_seconds=5.0, max_new_tokens=400, onsets="lm")[0]
    assert {(round(n.start / tok.midi.time_step), n.pitch) for n in lm_only} != onsets


def test_ctc_onsets_need_a_ctc_head(tiny_model_dir, tmp_path, capsys):
    audio = write_wav(tmp_path / "in.wav", 1.0)
    code = main(["transcribe", str(tiny_model_dir), audio, "--out", str(tmp_path / "x.mid"), "--onsets", "ctc",
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.startswith("audiollm: error:") and "no CTC head" in err and "\n" not in err
