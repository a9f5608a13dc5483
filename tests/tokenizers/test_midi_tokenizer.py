"""MIDI event tokens: note lists and MIDI files round-trip through windowed tokens."""

from __future__ import annotations

import random

import pretty_midi
import pytest

from audiollm.music.midi_file import MidiFileError, read_midi, write_midi
from audiollm.music.notes import Note
from audiollm.tokenizers.midi import (
    TIE,
    MidiTokenError,
    MidiVocab,
    text_to_tokens,
    tokens_to_text,
)

VOCAB = MidiVocab()
STEP = VOCAB.time_step


def assert_same_notes(got: list[Note], want: list[Note], vocab: MidiVocab = VOCAB) -> None:
    """Equal up to the time resolution (half a step) and the velocity bin."""
    got = sorted(got, key=Note.sort_key)
    want = sorted(want, key=Note.sort_key)
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        assert (g.pitch, g.program) == (w.pitch, w.program), (g, w)
        assert abs(g.start - w.start) <= vocab.time_step / 2 + 1e-9, (g, w)
        assert abs(g.end - w.end) <= vocab.time_step / 2 + 1e-9, (g, w)
        assert vocab.velocity_bin(g.velocity) == vocab.velocity_bin(w.velocity), (g, w)


def roundtrip(notes: list[Note], window: float, total: float | None = None, vocab: MidiVocab = VOCAB) -> list[Note]:
    windows = vocab.encode_windows(notes, window, total)
    got, bad = vocab.decode_windows(windows, window, total)
    assert bad == 0
    return got


def test_vocabulary_is_small_and_unique():
    assert len(VOCAB.tokens) == len(set(VOCAB.tokens)) == 1 + 100 + 32 + 128 + 128 + 128
    piano = MidiVocab(programs=(0,))
    assert not any(t.startswith("<|prog_") for t in piano.tokens)
    assert len(piano.tokens) == 1 + 100 + 32 + 256


def test_one_window_chord_and_token_order():
    notes = [Note(60, 0.0, 0.5, 100), Note(64, 0.0, 0.5, 100), Note(67, 0.0, 0.5, 100), Note(72, 0.25, 0.3, 40)]
    (toks,) = VOCAB.encode_windows(notes, 1.0)
    v100, v40 = VOCAB.velocity_bin(100), VOCAB.velocity_bin(40)
    assert toks == [
        TIE, "<|prog_0|>", f"<|vel_{v100}|>", "<|on_60|>", "<|on_64|>", "<|on_67|>",
        "<|shift_25|>", f"<|vel_{v40}|>", "<|on_72|>",
        "<|shift_5|>", "<|off_72|>",
        "<|shift_20|>", "<|off_60|>", "<|off_64|>", "<|off_67|>",
    ]
    assert_same_notes(roundtrip(notes, 1.0), notes)


def test_long_gap_chains_shift_tokens():
    notes = [Note(60, 0.0, 0.1), Note(62, 2.6, 2.7)]
    (toks,) = VOCAB.encode_windows(notes, 3.0)
    assert toks[toks.index("<|off_60|>") + 1 : toks.index("<|on_62|>")] == ["<|shift_100|>", "<|shift_100|>", "<|shift_50|>"]
    assert_same_notes(roundtrip(notes, 3.0), notes)


def test_held_note_spans_three_windows_and_is_one_note():
    notes = [Note(48, 0.3, 5.2, 70), Note(60, 1.0, 1.5, 90), Note(64, 2.5, 4.5, 50)]
    windows = VOCAB.encode_windows(notes, 2.0, total_seconds=6.0)
    assert len(windows) == 3
    assert windows[0][0] == TIE  # nothing held at the start
    assert windows[1][: windows[1].index(TIE)] == ["<|prog_0|>", "<|on_48|>"]
    assert windows[2][: windows[2].index(TIE)] == ["<|prog_0|>", "<|on_48|>", "<|on_64|>"]
    assert "<|off_48|>" not in windows[0] + windows[1] and "<|off_48|>" in windows[2]
    assert_same_notes(roundtrip(notes, 2.0, 6.0), notes)


def test_boundary_cases_are_neither_duplicated_nor_dropped():
    notes = [
        Note(60, 0.5, 2.0),   # ends exactly on the boundary: not held by window 2
        Note(62, 2.0, 2.5),   # starts exactly on the boundary: belongs to window 2
        Note(64, 1.99, 2.01),  # crosses the boundary by one step each side
        Note(65, 1.5, 4.0),   # ends exactly at the end of window 2
        Note(67, 3.9, 4.5),   # open at the end of window 2, ends in window 3
    ]
    windows = VOCAB.encode_windows(notes, 2.0, total_seconds=5.0)
    assert windows[1][: windows[1].index(TIE)] == ["<|prog_0|>", "<|on_64|>", "<|on_65|>"]
    assert windows[2][: windows[2].index(TIE)] == ["<|prog_0|>", "<|on_67|>"]
    assert_same_notes(roundtrip(notes, 2.0, 5.0), notes)


def test_note_sounding_past_the_audio_end_is_cut_there():
    got = roundtrip([Note(60, 1.0, 9.0)], 2.0, total=3.0)
    assert_same_notes(got, [Note(60, 1.0, 3.0)])


def test_several_instruments_keep_their_programs():
    notes = [Note(60, 0.0, 1.2, 80, 0), Note(60, 0.0, 1.0, 60, 40), Note(36, 0.5, 2.5, 100, 33), Note(72, 1.9, 2.2, 30, 40)]
    windows = VOCAB.encode_windows(notes, 1.0, 3.0)
    assert windows[1][: windows[1].index(TIE)] == ["<|prog_0|>", "<|on_60|>", "<|prog_33|>", "<|on_36|>"]
    assert_same_notes(roundtrip(notes, 1.0, 3.0), notes)


def test_repeated_key_and_same_pitch_overlap():
    # A re-struck key: the off comes before the on at the same instant.
    notes = [Note(60, 0.0, 0.5), Note(60, 0.5, 1.0)]
    (toks,) = VOCAB.encode_windows(notes, 2.0)
    i = toks.index("<|off_60|>")
    assert toks[i + 1] == "<|on_60|>"
    assert_same_notes(roundtrip(notes, 2.0), notes)
    # Overlapping notes of one key cannot both sound: the first ends where the second starts.
    assert_same_notes(roundtrip([Note(60, 0.0, 1.0), Note(60, 0.5, 1.5)], 2.0), [Note(60, 0.0, 0.5), Note(60, 0.5, 1.5)])


@pytest.mark.parametrize("window", [0.5, 1.0, 2.56, 5.0])
def test_random_note_lists_roundtrip(window):
    rng = random.Random(int(window * 100))
    vocab = MidiVocab(programs=(0, 24, 40))
    notes = []
    for _ in range(120):
        start = rng.uniform(0, 12)
        notes.append(Note(rng.randrange(21, 109), start, start + rng.choice([0.004, 0.05, 0.3, 1.7, 4.0]),
                          rng.randrange(1, 128), rng.choice(vocab.programs)))
    total = 14.0
    # The reference is the quantised list: one voice per key, at least one step long.
    # Notes are cut at the audio end.
    want = [Note(w.pitch, w.start * STEP, min(w.end * STEP, total), vocab.bin_velocity(w.velocity), w.program)
            for w in vocab.quantize(notes) if w.start * STEP < total]
    got = roundtrip(notes, window, total, vocab)
    assert_same_notes(got, want, vocab)


def test_decode_repairs_invalid_sequences():
    toks = ["<|on_61|>", TIE, "<|off_60|>", "<|on_62|>", "<|shift_10|>", "<|vel_31|>", "<|on_64|>",
            "<|shift_100|>", "<|shift_100|>", "<|on_65|>", "<|off_64|>", TIE]
    dec = VOCAB.decode_window(toks, 150)
    # unmatched off, on past the window end, and the second tie are dropped
    assert dec.n_invalid == 3
    by_pitch = {w.pitch: w for w in dec.notes}
    assert by_pitch[61].held and by_pitch[61].open and by_pitch[61].end == 150
    assert by_pitch[62].velocity == 64 and by_pitch[62].open  # no velocity yet → 64; never ended → open
    assert (by_pitch[64].start, by_pitch[64].end, by_pitch[64].velocity) == (10, 150, VOCAB.bin_velocity(31))
    assert not by_pitch[64].open
    # a held note with nothing to continue (first window) is dropped by stitching
    notes, bad = VOCAB.decode_windows([toks], 1.5)
    assert sorted(n.pitch for n in notes) == [62, 64] and bad == 4


def test_tokens_text_roundtrip_ignores_other_text():
    toks = VOCAB.encode_windows([Note(60, 0.0, 0.5)], 1.0)[0]
    assert text_to_tokens("junk " + tokens_to_text(toks) + " <|nope|>") == toks


def test_unknown_program_names_valid_ones():
    piano = MidiVocab(programs=(0, 1))
    with pytest.raises(MidiTokenError, match=r"program 40 \(Violin\) is not in the MIDI vocabulary; valid: 0 \(Acoustic Grand Piano\), 1"):
        piano.encode_windows([Note(60, 0, 1, 80, 40)], 1.0)
    with pytest.raises(MidiTokenError, match="GM programs 0-9, 20"):
        MidiVocab(programs=(*range(10), 20)).encode_windows([Note(60, 0, 1, 80, 40)], 1.0)
    with pytest.raises(MidiTokenError, match="not a positive multiple"):
        VOCAB.encode_windows([Note(60, 0, 1)], 1.005)
    with pytest.raises(MidiTokenError, match="pitch 128"):
        VOCAB.encode_windows([Note(128, 0, 1)], 1.0)


def test_vocab_config_roundtrip():
    v = MidiVocab(time_step=0.02, max_shift_steps=50, velocity_bins=16, programs=(0, 33))
    assert MidiVocab.from_dict(v.to_dict()) == v and MidiVocab.from_dict(v.to_dict()).tokens == v.tokens
    with pytest.raises(MidiTokenError, match="unknown MIDI vocabulary key 'bins'"):
        MidiVocab.from_dict({"bins": 3})


# ---------------------------------------------------------------------------- MIDI files


def _pm_with(notes: list[tuple[int, float, float, int]], program: int = 0, pedal: list[tuple[float, int]] = ()):
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program)
    inst.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, s, e, v in notes]
    inst.control_changes = [pretty_midi.ControlChange(64, value, time) for time, value in pedal]
    pm.instruments.append(inst)
    return pm


def test_midi_file_roundtrip_several_instruments(tmp_path):
    notes = [Note(60, 0.0, 1.5, 90, 0), Note(64, 0.0, 1.5, 90, 0), Note(67, 0.0, 1.5, 90, 0),  # chord
             Note(43, 0.2, 7.3, 60, 32), Note(76, 2.9, 3.4, 110, 40), Note(79, 6.8, 7.0, 20, 40)]
    src = write_midi(notes, tmp_path / "in.mid")
    read = read_midi(src)
    assert_same_notes(read, notes)
    windows = VOCAB.encode_windows(read, 2.0, total_seconds=8.0)
    back, bad = VOCAB.decode_windows(windows, 2.0, total_seconds=8.0)
    assert bad == 0
    out = write_midi(back, tmp_path / "out.mid")
    assert_same_notes(read_midi(out), notes)
    assert [i.program for i in pretty_midi.PrettyMIDI(str(out)).instruments] == [0, 32, 40]


def test_sustain_pedal_folds_into_note_ends(tmp_path):
    pm = _pm_with(
        [(60, 0.0, 0.5, 80), (64, 0.2, 0.4, 80), (60, 1.5, 1.8, 80), (67, 3.0, 3.2, 80), (69, 3.5, 3.6, 80)],
        pedal=[(0.1, 127), (2.0, 0), (3.1, 100), (3.3, 0)],
    )
    path = tmp_path / "pedal.mid"
    pm.write(str(path))
    notes = read_midi(path)
    want = [
        Note(60, 0.0, 1.5, 80),  # held by the pedal until the same key is struck again at 1.5
        Note(64, 0.2, 2.0, 80),  # released under the pedal → sounds until the pedal lifts
        Note(60, 1.5, 2.0, 80),
        Note(67, 3.0, 3.3, 80),
        Note(69, 3.5, 3.6, 80),  # pedal already up
    ]
    assert_same_notes(notes, want)
    assert_same_notes(read_midi(path, sustain=False)[:2], [Note(60, 0.0, 0.5, 80), Note(64, 0.2, 0.4, 80)])
    # ... and the folded notes survive windowing across the pedal
    assert_same_notes(roundtrip(notes, 1.0, 4.0), want)


def test_bad_midi_files(tmp_path):
    with pytest.raises(MidiFileError, match="no such MIDI file"):
        read_midi(tmp_path / "missing.mid")
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(MidiFileError, match=r"bad\.mid: not a readable MIDI file"):
        read_midi(bad)
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(MidiFileError, match="has no notes"):
        read_midi(empty)
    drums = tmp_path / "drums.mid"
    pm = _pm_with([(36, 0, 0.1, 100)])
    pm.instruments[0].is_drum = True
    pm.write(str(drums))
    with pytest.raises(MidiFileError, match="drum track"):
        read_midi(drums)
