"""The auxiliary heads (models/heads.py): the note-activity head's piano-roll targets per window,
its loss, and note ends and extra onsets read off it; the CTC head's targets."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch
from helpers import tone

from audiollm.config import from_dict, to_dict
from audiollm.data.batching import ExampleBuilder, collate
from audiollm.errors import AudioLLMError, ConfigError
from audiollm.inference.transcribe import (
    WindowActivity,
    frame_offsets,
    frame_onsets,
    merge_onsets,
    resolve_offsets,
    resolve_onsets,
    transcribe,
)
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig
from audiollm.models.heads import NoteActivityHead, piano_roll
from audiollm.music.notes import Note
from audiollm.tasks import get_task
from audiollm.tokenizers.midi import MidiVocab
from audiollm.tokenizers.text import TextTokenizer

TASK = get_task("transcription")
SR = 16000
NOTES = [Note(60, 0.2, 1.0, 90), Note(64, 3.5, 6.5, 60, 40), Note(36, 4.9, 9.0, 110, 33)]


@pytest.fixture(scope="module")
def tok():
    text = TextTokenizer.train(["transcribe the notes", *TASK.questions] * 3, vocab_size=300)
    return text.with_midi(MidiVocab(programs=(0, 33, 40)))


def model_with_heads(tok, **heads):
    cfg = AudioLLMConfig.tiny(**(heads or {"note_activity": 1.0}))
    cfg.lm_config.vocab_size = tok.vocab_size
    torch.manual_seed(0)
    return AudioLLM(cfg)


def window_targets(row, tok, start, duration):
    """What the task gives the heads for one window of the row."""
    return TASK.head_targets(row, TASK.target_ids(row, tok, start, duration), tok, start, duration)


def test_window_targets_are_the_notes_sounding_in_it_clipped(tmp_path, tok):
    sf.write(tmp_path / "a.wav", tone(10.0), SR)
    row = {"audio": str(tmp_path / "a.wav"), "task": "transcription",
           "notes": [[n.pitch, n.start, n.end, n.velocity, n.program] for n in NOTES]}
    def flat(notes):
        return pytest.approx([x for n in notes for x in n])

    # from 3 s: pitch 60 ended before the window; 64 and 36 clipped to it, times relative to 3 s
    late = window_targets(row, tok, 3.0, 5.0)["note_activity"]
    assert [x for n in late for x in n] == flat([(0.5, 3.5, 64), (1.9, 5.0, 36)])
    early = window_targets(row, tok, 0.0, 5.0)["note_activity"]
    assert [x for n in early for x in n] == flat([(0.2, 1.0, 60), (3.5, 5.0, 64), (4.9, 5.0, 36)])
    tagging = get_task("tagging")
    assert tagging.head_targets({"audio": "x.wav", "task": "tagging", "answer": "piano"}, [5, 6], tok, 0.0, 4.0) == {}
    build = ExampleBuilder([row], tok, seed=0, max_audio_seconds=30.0)
    for draw in range(4):  # each random window's targets are its own notes, relative to its start
        notes = build(0, draw)["targets"]["note_activity"]
        assert notes and all(0.0 <= s < e <= 5.0 + 1e-9 for s, e, _ in notes)
    examples = [build(0, 0), build(0, 1), build(0, 2)]
    examples[1]["targets"] = {}  # a row with no note targets …
    examples[2]["targets"] = {**examples[2]["targets"], "note_activity": []}  # … and a silent window
    batch = collate(examples, tok.pad_id)["targets"]["note_activity"]
    assert batch["counts"].tolist()[1:] == [-1, 0]
    assert batch["notes"].shape[0] == 3 and batch["notes"].shape[2] == 3


def test_piano_roll_marks_the_frames_whose_centre_a_note_covers():
    notes = torch.tensor([[[0.09, 0.29, 60.0], [0.0, 0.05, 72.0], [9.0, 9.9, 1.0]]])  # the third is padding
    # 0.4 s of audio over 10 frames: 40 ms frames centred at 0.02, 0.06, …
    roll = piano_roll(notes, torch.tensor([2]), torch.tensor([6400]), torch.tensor([10]), 10)
    assert roll.shape == (1, 10, 128)
    assert roll[0, :, 60].nonzero().flatten().tolist() == [2, 3, 4, 5, 6]  # centres 0.10 … 0.26
    assert roll[0, :, 72].nonzero().flatten().tolist() == [0]
    assert roll.sum() == 6  # nothing else, and not the padding note at pitch 1


def test_frame_loss_is_bce_over_real_frames_of_rows_with_targets(tok):
    model = model_with_heads(tok)
    wav = torch.from_numpy(tone(1.0)).float()
    audio = torch.stack([wav, wav, torch.cat([wav[: SR // 2], torch.zeros(SR // 2)])])
    lengths = torch.tensor([SR, SR, SR // 2])
    ids = torch.tensor([[5, 6, 7]] * 3)
    notes = torch.tensor([[[0.1, 0.6, 60.0]], [[0.0, 0.0, 0.0]], [[0.0, 0.5, 64.0]]])
    counts = torch.tensor([1, -1, 1])  # the second row has no note targets
    targets = {"note_activity": {"notes": notes, "counts": counts}}
    out = model(audio, lengths, ids, torch.tensor([3, 3, 3]), ids, targets=targets)
    hidden, enc = model.encode_frames(audio, lengths)
    logits = model.heads["note_activity"](hidden).float()
    want = 0.0
    for i in (0, 2):
        n = int(enc[i])
        roll = piano_roll(notes[i : i + 1], counts[i : i + 1], lengths[i : i + 1], enc[i : i + 1], n)[0]
        want += torch.nn.functional.binary_cross_entropy_with_logits(logits[i, :n], roll, reduction="sum")
    torch.testing.assert_close(out.aux_loss_sum, want * model.config.heads["note_activity"])
    out.aux_loss_sum.backward()
    grad = model.heads["note_activity"].proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # config: saved with the model, validated, off by default
    assert from_dict(AudioLLMConfig, to_dict(model.config)).heads == {"note_activity": 1.0}
    assert "note_activity" not in AudioLLM(AudioLLMConfig.tiny()).heads
    with pytest.raises(ConfigError, match="model.heads.note_activity"):
        from_dict(AudioLLMConfig, {**to_dict(AudioLLMConfig.tiny()), "heads": {"note_activity": -1}})


def test_frame_offsets_follow_activity_across_windows_and_stop_at_the_next_onset():
    spf = 0.04
    probs = [torch.zeros(50, 128), torch.zeros(50, 128)]  # two 2 s windows
    probs[0][10:50, 60] = 0.9   # pitch 60 sounds from 0.4 s to the end of window 0 …
    probs[1][0:5, 60] = 0.9     # … and on into window 1 until 2.2 s
    probs[0][20:30, 64] = 0.9   # pitch 64: 0.8 – 1.2 s, struck again at 1.0 s
    notes = [Note(60, 0.4, 0.6), Note(64, 0.8, 1.5), Note(64, 1.0, 1.1), Note(67, 0.5, 0.7)]
    got = frame_offsets(notes, [WindowActivity(p, spf) for p in probs], window_seconds=2.0)
    assert got[0].end == pytest.approx(2.2)          # the run crosses the window boundary
    assert got[1].end == pytest.approx(1.0)          # stops at the next onset of pitch 64
    assert got[2].end == pytest.approx(1.2)
    assert got[3] == notes[3]                        # pitch 67 never active: the decoder's end is kept
    assert [(n.pitch, n.start, n.velocity, n.program) for n in got] == [(n.pitch, n.start, n.velocity, n.program)
                                                                      for n in notes]


def test_transcription_reads_note_ends_from_the_head(tok):
    model = model_with_heads(tok).eval()
    with torch.no_grad():  # a head that says: pitch 60 sounds everywhere, nothing else does
        model.heads["note_activity"].proj.weight.zero_()
        model.heads["note_activity"].proj.bias.fill_(-20.0)
        model.heads["note_activity"].proj.bias[60] = 20.0
    wav = torch.from_numpy(tone(3.0)).float()
    lm_ends = transcribe(model, tok, [wav], window_seconds=2.0, max_new_tokens=120, offsets="lm")[0]
    framed = transcribe(model, tok, [wav], window_seconds=2.0, max_new_tokens=120, offsets="frames")[0]
    assert [(n.pitch, n.start) for n in framed] == [(n.pitch, n.start) for n in lm_ends]
    for before, after in zip(lm_ends, framed):
        later = [n.start for n in lm_ends if n.pitch == 60 and n.program == before.program and n.start > before.start]
        if before.pitch == 60:  # active to the end of the clip, or to its next onset
            assert after.end == pytest.approx(min(later, default=3.0), abs=1e-6)
        else:
            assert after.end == before.end
    assert resolve_offsets(model, "auto") == "frames"
    with pytest.raises(AudioLLMError, match="no note-activity head"):
        resolve_offsets(AudioLLM(AudioLLMConfig.tiny()), "frames")
    with pytest.raises(AudioLLMError, match="no CTC head"):
        resolve_onsets(AudioLLM(AudioLLMConfig.tiny()), "ctc")


def test_frame_onsets_are_rising_edges_that_last_and_only_fill_in_what_ctc_missed(tok):
    probs = torch.zeros(20, 128)
    probs[0:6, 48] = 0.9    # on from the window's first frame: maybe held over, not an onset
    probs[5:9, 60] = 0.9    # an onset at frame 5 (0.2 s = step 20 of the 10 ms grid)
    probs[12, 62] = 0.9     # one frame only: too short
    probs[10:14, 64] = 0.6  # an onset at frame 10 …
    probs[15:18, 64] = 0.9  # … and a re-strike at frame 15
    act = WindowActivity(probs, 0.04)
    assert frame_onsets(act, tok.midi) == [(20, 60), (40, 64), (60, 64)]
    assert frame_onsets(act, tok.midi, threshold=0.7) == [(20, 60), (60, 64)]
    assert frame_onsets(act, tok.midi, min_frames=4) == [(20, 60), (40, 64)]
    # a CTC onset of the same pitch within the tolerance wins; other pitches and times are added
    assert merge_onsets([(22, 60), (50, 67)], [(20, 60), (40, 64)], tolerance_steps=10) == [(22, 60), (40, 64), (50, 67)]
    assert merge_onsets([(5, 60)], [(20, 60)], tolerance_steps=10) == [(5, 60), (20, 60)]
    both = model_with_heads(tok, ctc=0.5, note_activity=0.1)
    assert resolve_onsets(both, "auto") == "ctc+frames"
    assert resolve_onsets(model_with_heads(tok, ctc=0.5), "auto") == "ctc"
    with pytest.raises(AudioLLMError, match="no note-activity head"):
        resolve_onsets(model_with_heads(tok, ctc=0.5), "ctc+frames")


def test_ctc_plus_frames_decodes_a_note_only_the_activity_head_hears(tok):
    model = model_with_heads(tok, ctc=0.5, note_activity=0.1).eval()
    wav = torch.from_numpy(tone(2.0)).float()
    with torch.no_grad():
        model.heads["ctc"].proj.weight.zero_()  # the CTC head hears nothing: blank everywhere
        model.heads["ctc"].proj.bias.fill_(-20.0)
        model.heads["ctc"].proj.bias[-1] = 20.0
        _, n_frames = model.encode_frames(wav[None], torch.tensor([wav.shape[0]]))
    spf = 2.0 / int(n_frames[0])

    class Head(NoteActivityHead):  # pitch 60 sounds from frame 5 to frame 9
        def forward(self, frames):
            out = torch.full((*frames.shape[:2], 128), -20.0)
            out[:, 5:10, 60] = 20.0
            return out

    model.heads["note_activity"] = Head(model.audio_encoder.output_dim, tok.vocab_size, 0.1)
    ctc_only = transcribe(model, tok, [wav], window_seconds=2.0, max_new_tokens=120, onsets="ctc", offsets="frames")[0]
    both = transcribe(model, tok, [wav], window_seconds=2.0, max_new_tokens=120, onsets="ctc+frames", offsets="frames")[0]
    assert not [n for n in ctc_only if n.start > 0]  # no onsets to anchor: only held notes, if any
    (note,) = [n for n in both if n.start > 0]
    assert note.pitch == 60
    assert note.start == pytest.approx(5 * spf, abs=tok.midi.time_step)
    assert note.end == pytest.approx(10 * spf, abs=1e-6)  # its end from the same activity
