"""text_to_midi: rows without audio (zero audio tokens), captions, condition dropout, guided and
grammar-constrained sampling, attribute adherence, the generate CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from helpers import REPO, gen, sample

from audiollm.audio import load_audio
from audiollm.cli.parser import main
from audiollm.config import from_dict, to_dict
from audiollm.data.batching import IGNORE_INDEX, ExampleBuilder, collate
from audiollm.data.manifest import read_manifest
from audiollm.data.music_events import derive_rows
from audiollm.decoding.options import DecodingOptions
from audiollm.errors import AudioLLMError, ConfigError, ManifestError
from audiollm.evaluation.evaluate import evaluate
from audiollm.inference.api import AudioLanguageModel
from audiollm.inference.compose import check_generation, generate_midi
from audiollm.inference.embedding import score
from audiollm.metrics.notes import attribute_adherence, midi_round_trip
from audiollm.models import hub
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig
from audiollm.models.mulan import MuLaN, MuLaNConfig
from audiollm.music.analysis import (
    TEMPO_TOLERANCE,
    estimate_tempo,
    key_of,
    tempo_matches,
)
from audiollm.music.grammar import MidiGrammar, plan_choices
from audiollm.music.midi_file import read_midi, write_midi
from audiollm.music.notes import Note
from audiollm.music.prompt import MusicRequest, caption, check_request, parse_request
from audiollm.music.render import find_soundfont
from audiollm.music.tempo_fit import fit_tempo
from audiollm.music.theory import TEMPO_RANGES, key_name
from audiollm.tasks import TASKS, TextToMidiOptions, get_task
from audiollm.tokenizers.midi import TEMPO_BINS, TIE, MidiVocab, bin_tempo, tempo_bin
from audiollm.tokenizers.text import TextTokenizer
from audiollm.training.config import ExperimentConfig

TASK = get_task("text_to_midi")
PROGRAMS = (0, 40, 42)  # piano, violin, cello


def clip_row(clip="m00001", program=42, bpm=72, key="D minor", composer="Bach", seconds=4.0, question=None):
    """A music clip's labels and notes (the corpus's 4-element [start, end, pitch, velocity])."""
    beat = 60.0 / bpm
    pitches = [62, 64, 65, 67, 69, 65, 62, 61]
    notes = [[round(i * beat / 2, 3), round((i + 1) * beat / 2, 3), p, 80] for i, p in enumerate(pitches)
             if (i + 1) * beat / 2 <= seconds]
    tonic, mode = key.split()
    row = {"id": f"{clip}-caption", "task": "caption", "clip": clip, "audio": "x.wav", "answer": "a cello",
           "program": program, "tempo_bpm": bpm, "tempo_class": "slow" if bpm < 80 else "medium", "key": key,
           "tonic": tonic, "mode": mode, "composer": composer, "duration": seconds, "notes": notes}
    if question is not None:
        row["question"] = question
    return row


@pytest.fixture(scope="module")
def tok():
    texts = ["a cello in D minor at 72 bpm", "a slow baroque piece for violin", "piano, fast, C major"] * 3
    return TextTokenizer.train(texts, vocab_size=300).with_midi(MidiVocab(programs=PROGRAMS))


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    cfg = to_dict(AudioLLMConfig.tiny())
    cfg["lm_config"]["vocab_size"] = tok.vocab_size
    return AudioLLM(from_dict(AudioLLMConfig, cfg)).eval()


# ------------------------------------------------------------------ rows without audio


def test_text_only_rows_get_zero_audio_tokens_and_match_a_batch_alone(model):
    torch.manual_seed(1)
    ids = torch.randint(0, 100, (2, 7))
    audio = torch.randn(2, 8000) * 0.1
    lengths = torch.tensor([8000, 0])  # row 1 has no audio
    mixed = model(audio, lengths, ids, torch.tensor([7, 7]))
    assert mixed.audio_token_lengths.tolist()[1] == 0 and mixed.audio_token_lengths[0] > 0
    alone = model(torch.zeros(1, 0), torch.tensor([0]), ids[1:], torch.tensor([7]))  # no encoder call at all
    assert alone.logits.shape[1] == 7
    torch.testing.assert_close(mixed.logits[1, :7], alone.logits[0], atol=1e-5, rtol=1e-5)
    with_audio = model(audio[:1], lengths[:1], ids[:1], torch.tensor([7]))
    a = int(with_audio.audio_token_lengths[0])
    torch.testing.assert_close(mixed.logits[0, : a + 7], with_audio.logits[0], atol=1e-5, rtol=1e-5)
    out = gen(model, torch.zeros(2, 0), torch.tensor([0, 0]), [[5, 6], [7]], max_new_tokens=3)
    assert [len(o) for o in out] == [3, 3]


def test_manifest_rows_without_audio_only_for_text_only_tasks(tmp_path):
    p = tmp_path / "m.jsonl"
    t2m = {"task": "text_to_midi", "question": "a cello", "notes": [[0.0, 0.5, 60, 80]], "program": 42}
    p.write_text(json.dumps(t2m) + "\n")
    (row,) = read_manifest(p)
    assert "audio" not in row
    p.write_text(json.dumps({"task": "tagging", "answer": "piano"}) + "\n")
    with pytest.raises(ManifestError, match="missing key\\(s\\) audio"):
        read_manifest(p)
    with pytest.raises(ManifestError, match="needs the labels"):
        TASK.validate({"task": "text_to_midi", "notes": [[0.0, 0.5, 60, 80]]})


def test_training_example_caption_target_and_condition_dropout(tok):
    (row,) = derive_rows([clip_row(seconds=8.0)])  # longer than the 4 s window: a random window
    assert row["task"] == "text_to_midi" and "audio" not in row and row["question"]
    sizes = set()
    for dropout, expect_uncond in ((0.0, False), (1.0, True)):
        build = ExampleBuilder([row], tok, seed=0, task_options={"text_to_midi": TextToMidiOptions(cond_dropout=min(dropout, 0.9999))})
        for draw in range(6):
            ex = build(0, draw)
            assert ex["audio"].numel() == 0
            n_prompt = sum(1 for lab in ex["labels"] if lab == IGNORE_INDEX)
            prompt = ex["input_ids"][:n_prompt]
            assert (prompt == tok.prompt_ids("")) == expect_uncond
            answer = tok.decode_events(ex["input_ids"][n_prompt:-1])
            assert TIE in answer and ex["input_ids"][-1] == tok.eos_id
            sizes.add(len(answer))
    assert len(sizes) > 1  # different windows of the 8 s clip
    batch = collate([ExampleBuilder([row], tok)(0, d) for d in range(3)], tok.pad_id)
    assert batch["audio"].shape == (3, 0) and batch["audio_lengths"].tolist() == [0, 0, 0]


def test_condition_dropout_is_an_option_of_the_guided_task_only():
    data = {"train": "t.jsonl", "tasks": {"text_to_midi": {"cond_dropout": 0.1, "variants": 0.5}}}
    cfg = from_dict(ExperimentConfig, {"data": data})
    assert cfg.data.tasks["text_to_midi"] == TextToMidiOptions(cond_dropout=0.1, variants=0.5)
    with pytest.raises(ConfigError, match="unknown config key 'data.tasks.caption.cond_dropout'; valid keys under "
                                          "'data.tasks.caption': weight"):
        from_dict(ExperimentConfig, {"data": {"tasks": {"caption": {"cond_dropout": 0.5}}}})
    with pytest.raises(ConfigError, match="cond_dropout must be in"):
        TextToMidiOptions(cond_dropout=1.0)


# ------------------------------------------------------------------ captions and requests


def test_captions_parse_back_to_the_labels():
    row = clip_row(program=42, bpm=72, key="F# minor", composer="Bach")
    seen = set()
    for seed in range(40):
        text = caption(row, random.Random(seed))
        req = parse_request(text)
        assert req.program == 42, text
        assert req.bpm in (None, 72.0) and req.tempo_class in (None, "slow")
        assert req.mode in (None, "minor") and req.tonic in (None, 6)
        assert req.style in (None, "baroque")
        seen.add((req.bpm is not None, req.tonic is not None))
    assert len(seen) >= 3  # attributes are sometimes left out
    assert parse_request("Electric Bass (finger), Bb major").program == 33
    assert parse_request("a fingered electric bass in bb major").tonic == 10
    assert parse_request("something calm").is_empty()


def test_requested_instrument_must_be_in_the_vocabulary(tok):
    assert check_request("a slow cello", PROGRAMS).program == 42
    with pytest.raises(AudioLLMError, match="lacks; valid instruments: acoustic grand piano, violin, cello"):
        check_request("a trumpet in C major", PROGRAMS)
    with pytest.raises(AudioLLMError, match="beyond the 4 s window"):
        check_generation(tok, "a cello", 10.0, 4.0)
    assert check_generation(tok, "a cello", 1.234, 4.0) == pytest.approx(1.23)
    with pytest.raises(AudioLLMError, match="no MIDI vocabulary"):
        check_generation(TextTokenizer.train(["a b c"] * 3, vocab_size=300), "a cello", 1.0, 4.0)


# ------------------------------------------------------------------ grammar and guidance


def test_100_untrained_samples_all_decode_to_valid_midi(model, tok, tmp_path):
    gen = torch.Generator().manual_seed(0)
    events = sample(model, tok, ["a cello in D minor"] * 50 + ["piano"] * 50, seconds=2.0, guidance=2.0,
                           temperature=1.5, generator=gen, max_new_tokens=120)
    assert len(events) == 100
    for k, ev in enumerate(events):
        dec = tok.midi.decode_window(ev, tok.midi.steps(2.0))
        assert dec.n_invalid == 0, ev  # the mask never lets a repairable token through
        notes, bad = tok.midi.decode_windows([ev], 2.0, total_seconds=2.0)
        assert bad == 0 and notes and midi_round_trip(notes)
        if k % 25 == 0:  # a real file on disk, read back by our reader too
            back = read_midi(write_midi(notes, tmp_path / f"{k}.mid"))
            assert len(back) == len(notes)


def test_without_the_mask_untrained_samples_need_repairs(model, tok):
    gen = torch.Generator().manual_seed(0)
    events = sample(model, tok, ["a cello"] * 20, seconds=2.0, temperature=1.5, generator=gen,
                           max_new_tokens=60, constrained=False)
    assert sum(tok.midi.decode_window(ev, 200).n_invalid for ev in events) > 0  # what the mask prevents


def test_grammar_mask_follows_the_state():
    tok = TextTokenizer.train(["x y"] * 3, vocab_size=300).with_midi(MidiVocab(programs=(0,)))
    g = MidiGrammar(tok, 1, length_steps=3, held=False)
    ids = lambda *names: tok.encode_events(list(names))  # noqa: E731
    m = g.mask([0])[0]
    assert not m[ids("<|on_60|>")[0]] and m[ids("<|vel_5|>")[0]]  # a note-on needs a velocity first
    assert not m[tok.eos_id]  # no empty piece
    assert m[ids("<|shift_2|>")[0]] and not m[ids("<|shift_3|>")[0]]  # keep room for a note
    g.advance([0], ids("<|vel_5|>"))
    m = g.mask([0])[0]
    assert m.sum() == 128 and m[ids("<|on_60|>")[0]]  # only note-ons after a velocity
    g.advance([0], ids("<|on_60|>"))
    m = g.mask([0])[0]
    assert not m[ids("<|off_60|>")[0]] and not m[ids("<|on_60|>")[0]]  # no zero-length note, no re-strike
    assert m[tok.eos_id] and m[ids("<|shift_3|>")[0]]
    g.advance([0], ids("<|shift_3|>"))
    m = g.mask([0])[0]
    assert m[ids("<|off_60|>")[0]] and not m[ids("<|off_61|>")[0]] and not m[ids("<|shift_1|>")[0]]
    assert not m[ids("<|vel_5|>")[0]] and not m[ids(TIE)[0]] and not m[5]  # window full; no text tokens


def test_guidance_combines_cond_and_uncond_and_cache_matches_recompute(model, tok):
    q = "a cello in D minor"
    tie = tok.encode_events([TIE])
    lm = model.lm

    def next_logp(prompt):
        ids = torch.tensor([prompt])
        return torch.log_softmax(lm(inputs_embeds=lm.embed_tokens(ids))[:, -1].float(), -1)[0]

    cond, uncond = next_logp(tok.prompt_ids(q) + tie), next_logp(tok.prompt_ids("") + tie)
    g = MidiGrammar(tok, 1, 200, held=False)
    allowed = g.mask([0])[0]
    for s in (1.0, 3.0):
        want = int((uncond + s * (cond - uncond)).masked_fill(~allowed, float("-inf")).argmax())
        first = tok.encode_events(sample(model, tok, [q], seconds=2.0, guidance=s, temperature=0.0,
                                                max_new_tokens=1)[0][1:])[0]
        assert first == want
    cached = sample(model, tok, [q, "piano"], seconds=2.0, guidance=3.0, temperature=0.0, max_new_tokens=40)
    plain = sample(model, tok, [q, "piano"], seconds=2.0, guidance=3.0, temperature=0.0, max_new_tokens=40,
                          use_cache=False)
    assert cached == plain


# ------------------------------------------------------------------ attribute tokens


@pytest.fixture(scope="module")
def atok():
    """A tokenizer whose MIDI vocabulary has attribute tokens (tempo bin, key)."""
    texts = ["a cello in D minor at 72 bpm", "a slow baroque piece for violin", "piano, fast, C major"] * 3
    return TextTokenizer.train(texts, vocab_size=300).with_midi(MidiVocab(programs=PROGRAMS, attributes=True))


def test_tempo_bins_cover_the_range_within_two_percent():
    for bpm in np.arange(40.0, 240.0, 0.5):
        assert abs(bin_tempo(tempo_bin(bpm)) / bpm - 1) <= 0.0201
    assert tempo_bin(10) == 0 and tempo_bin(1000) == TEMPO_BINS - 1
    assert [tempo_bin(b) for b in (60, 61, 63, 72)] == sorted(tempo_bin(b) for b in (60, 61, 63, 72))
    vocab = MidiVocab(programs=PROGRAMS, attributes=True)
    assert MidiVocab.from_dict(vocab.to_dict()) == vocab and vocab.tokens[-24:] == tuple(f"<|key_{k}|>" for k in range(24))
    old = {k: v for k, v in vocab.to_dict().items() if k != "attributes"}  # a model saved before attributes
    assert not MidiVocab.from_dict(old).attributes and "<|bpm_0|>" not in MidiVocab.from_dict(old).tokens


def test_attribute_tokens_open_the_answer_from_the_labels(tok, atok):
    """With attribute tokens the answer opens with the row's tempo bin and key, then the same
    events as without them; a variant's answer carries the variant's labels; a row without
    labels gets its notes' tempo and key."""
    row = derive_rows([clip_row(program=42, bpm=100, key="D minor")])[0]
    plain = tok.decode_events(TASK.target_ids(row, tok, 0.0, 4.0))
    with_attrs = atok.decode_events(TASK.target_ids(row, atok, 0.0, 4.0))
    assert with_attrs == [f"<|bpm_{tempo_bin(100)}|>", "<|key_14|>"] + plain and plain[0] == TIE
    assert MidiVocab.read_attributes(with_attrs) == {"bpm": pytest.approx(100, rel=0.02), "tonic": 2, "mode": "minor"}
    rng = random.Random(0)
    for _ in range(5):
        v = TASK.variant(row, rng, atok)
        req = parse_request(v["key"])
        first = atok.decode_events(TASK.target_ids(v, atok, 0.0, 4.0))[:2]
        assert first == [f"<|bpm_{tempo_bin(v['tempo_bpm'])}|>", f"<|key_{req.tonic + 12 * (req.mode == 'minor')}|>"]
    unlabelled = {k: v for k, v in row.items() if k not in ("tempo_bpm", "key")}
    bpm, tonic, mode = TASK.attributes(unlabelled)
    assert (tonic, mode) == (2, "minor") and tempo_matches(bpm, 100)
    # decoding: attribute tokens are no notes and no repairs
    dec = atok.midi.decode_window(with_attrs, atok.midi.steps(4.0))
    assert dec.n_invalid == 0 and len(dec.notes) == len(TASK.notes(row))


def test_sampling_with_attributes_writes_tempo_key_tie_then_valid_events(atok):
    torch.manual_seed(0)
    cfg = to_dict(AudioLLMConfig.tiny())
    cfg["lm_config"]["vocab_size"] = atok.vocab_size
    model = AudioLLM(from_dict(AudioLLMConfig, cfg)).eval()
    gen = torch.Generator().manual_seed(0)
    events = sample(model, atok, ["a cello in D minor"] * 10 + [""] * 10, seconds=2.0, guidance=2.0,
                           temperature=1.5, generator=gen, max_new_tokens=80)
    for ev in events:
        assert ev[0].startswith("<|bpm_") and ev[1].startswith("<|key_") and ev[2] == TIE
        assert not any(t.startswith(("<|bpm_", "<|key_")) for t in ev[3:])
        assert atok.midi.decode_window(ev, atok.midi.steps(2.0)).n_invalid == 0
        notes, bad = atok.midi.decode_windows([ev], 2.0, total_seconds=2.0)
        assert bad == 0 and notes and midi_round_trip(notes)
    assert len({tuple(ev[:2]) for ev in events}) > 1  # the attributes are sampled, not fixed
    g = MidiGrammar(atok, 1, 200, held=False, attributes=True)
    m = g.mask([0])[0]
    assert int(m.sum()) == len(g.ids.bpm) and not m[atok.eos_id]  # a tempo bin first, nothing else
    with pytest.raises(ValueError, match="no attribute tokens"):
        MidiGrammar(TextTokenizer.train(["x"] * 3, vocab_size=300).with_midi(MidiVocab(programs=(0,))), 1, 10,
                    attributes=True)


def test_plans_follow_the_caption_unless_told_not_to(atok):
    """With attribute tokens the grammar narrows the plan to what the caption asks for (a bpm's
    bin, a tempo word's bins, the key or the mode's 12 keys); what it leaves open, or every
    attribute with follow_caption=False, the model picks."""
    vocab = atok.midi
    assert plan_choices(vocab, parse_request("a cello in D minor at 72 bpm")) == {"bpm": [tempo_bin(72)], "key": [14]}
    slow = plan_choices(vocab, parse_request("slow, major"))
    assert slow["key"] == list(range(12)) and slow["bpm"]
    assert all(TEMPO_RANGES["slow"][0] <= bin_tempo(b) <= TEMPO_RANGES["slow"][1] for b in slow["bpm"])
    assert plan_choices(vocab, parse_request("violin")) == {}

    torch.manual_seed(0)
    cfg = to_dict(AudioLLMConfig.tiny())
    cfg["lm_config"]["vocab_size"] = atok.vocab_size
    model = AudioLLM(from_dict(AudioLLMConfig, cfg)).eval()
    questions = ["a cello in D minor at 72 bpm", "slow, major", "violin"] * 4
    gen = torch.Generator().manual_seed(0)
    events = sample(model, atok, questions, seconds=1.0, temperature=1.5, generator=gen, max_new_tokens=12)
    for q, ev in zip(questions, events):
        choices = plan_choices(vocab, parse_request(q))
        bpm, key = (int(t[2:-2].split("_")[1]) for t in ev[:2])
        assert bpm in choices.get("bpm", range(len(atok.midi.tokens))) and key in choices.get("key", range(24))
    free = sample(model, atok, questions[:1] * 12, seconds=1.0, temperature=1.5, generator=gen,
                         max_new_tokens=3, follow_caption=False)
    assert {ev[0] for ev in free} != {f"<|bpm_{tempo_bin(72)}|>"}  # left to the (untrained) model


# ------------------------------------------------------------------ adherence and evaluation


def test_attribute_adherence_on_known_notes():
    beat = 0.5  # 120 bpm quarter notes, a C major scale and back
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60, 67, 60]
    piece = [Note(p, i * beat, (i + 1) * beat, 80, 40) for i, p in enumerate(scale)]
    good = MusicRequest(program=40, bpm=120.0, tonic=0, mode="major")
    bad = MusicRequest(program=42, bpm=95.0, tonic=9, mode="minor")
    assert attribute_adherence([good], [piece]) == {"valid_rate": 1.0, "instrument_adherence": 1.0,
                                                            "tempo_adherence": 1.0, "tempo_bpm_adherence": 1.0,
                                                            "key_adherence": 1.0}
    assert attribute_adherence([bad], [piece]) == {"valid_rate": 1.0, "instrument_adherence": 0.0,
                                                           "tempo_adherence": 0.0, "tempo_bpm_adherence": 0.0,
                                                           "key_adherence": 0.0}
    out = attribute_adherence([good, MusicRequest(tempo_class="medium")], [[], piece])
    assert out == {"valid_rate": 0.5, "instrument_adherence": 0.0, "tempo_adherence": 0.5, "tempo_bpm_adherence": 0.0,
                   "tempo_class_adherence": 1.0, "key_adherence": 0.0}


def test_variants_keep_caption_and_notes_in_agreement(tok):
    """data.variants: a variant's caption asks for what its notes are — the new instrument on
    every note, the tempo the notes were stretched to, the key the notes were moved to — and
    the ExampleBuilder trains on it with the configured probability."""
    row = derive_rows([clip_row(program=42, bpm=100, key="D minor")])[0]
    notes = TASK.notes(row)
    old_key = key_of(np.array([[n.start, n.end, n.pitch] for n in notes]))
    assert key_name(*old_key) == "D minor"  # the fixture's label is its notes' analysis
    rng = random.Random(3)
    seen = set()
    for _ in range(30):
        v = TASK.variant(row, rng, tok)
        new = TASK.notes(v)
        stretch = v["tempo_bpm"] and 100 / v["tempo_bpm"]
        assert len(new) == len(notes) and {n.program for n in new} == {v["program"]} and v["program"] in PROGRAMS
        assert 0.8 - 1e-9 <= stretch <= 2.0 + 1e-9 and 50 <= v["tempo_bpm"] <= 190
        for a, b in zip(notes, new):  # same rhythm at the new tempo, same intervals in the new key
            assert b.start == pytest.approx(a.start * stretch) and b.end == pytest.approx(a.end * stretch)
            assert b.pitch - a.pitch == new[0].pitch - notes[0].pitch
        assert v["duration"] == pytest.approx(row["duration"] * stretch)
        assert key_name(*key_of(np.array([[n.start, n.end, n.pitch] for n in new]))) == v["key"]
        req = parse_request(v["question"])
        assert req.program == v["program"]
        assert req.bpm in (None, v["tempo_bpm"]) and req.tempo_class in (None, v["tempo_class"])
        assert req.mode in (None, "minor")
        seen.add((v["program"], v["tempo_bpm"], v["key"]))
    assert len(seen) > 20  # variants differ
    assert TASK.variant({**row, "key": None}, rng, tok)["key"] is None  # no labels: the row as is

    rows = [row]
    never = ExampleBuilder(rows, tok, seed=0, task_options={"text_to_midi": TextToMidiOptions(variants=0.0)})
    always = ExampleBuilder(rows, tok, seed=0, task_options={"text_to_midi": TextToMidiOptions(variants=1.0)})
    plain = [never(0, d)["input_ids"] for d in range(8)]
    varied = [always(0, d)["input_ids"] for d in range(8)]
    assert plain != varied and len({tuple(v) for v in varied}) == 8


@pytest.mark.parametrize("bpm", [56.0, 84.0, 111.0, 150.0])
def test_estimate_tempo_finds_the_struck_beat(bpm):
    """Chorale-like texture: a 4-note chord on every beat, a passing eighth note on some off-beats,
    starting after a rest of 0.3 s. The chords' beat rate is found (not the eighth-note rate
    that every onset also fits), where an inter-onset-interval histogram goes astray."""
    beat = 60.0 / bpm
    notes = []
    for k in range(int(4.0 / beat)):
        t = 0.3 + k * beat
        notes += [Note(p, t, t + beat, 80, 0) for p in (48, 55, 64, 72)]
        if k % 3 == 1:
            notes.append(Note(74, t + beat / 2, t + beat, 70, 0))
    est = estimate_tempo(notes)
    assert est is not None and abs(est - bpm) <= TEMPO_TOLERANCE * bpm
    assert estimate_tempo(notes[:4]) is None  # one onset: no tempo


def test_evaluate_reports_adherence_for_rows_without_audio(model, tok):
    rows = derive_rows([clip_row(clip=f"m{i}", program=PROGRAMS[i % 3], seconds=2.0) for i in range(4)])
    result = evaluate(AudioLanguageModel(model, tok), rows, batch_size=4, max_new_tokens=100, progress=False)
    scores = result.results["text_to_midi"]
    assert scores["n"] == 4 and scores["valid_rate"] == 1.0
    assert {"instrument_adherence", "valid_rate"} <= set(scores)
    assert all(json.loads(p) for p in result.predictions)


def test_references_score_as_adherent():
    """The metric's ceiling: a clip's own notes follow its own labels (instrument always)."""
    rows = derive_rows([clip_row(clip=f"m{i}") for i in range(3)])
    scores = TASK.score([json.dumps([[n.pitch, n.start, n.end, n.velocity, n.program] for n in TASK.notes(r)])
                         for r in rows], rows)
    assert scores["valid_rate"] == 1.0 and scores["instrument_adherence"] == 1.0


# ------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, model, tok):
    d = tmp_path_factory.mktemp("t2m") / "model"
    hub.save_model(d, model, tok)
    return d


def _one_line_error(capsys, argv, fragment):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("audiollm: error:") and fragment in err[0], err


def need_renderer():
    """Skip unless FluidSynth and a General MIDI soundfont are installed."""
    pytest.importorskip("fluidsynth")
    try:
        find_soundfont()
    except AudioLLMError:
        pytest.skip("no General MIDI soundfont")


def test_generate_cli_writes_wav_and_midi(model_dir, tmp_path, capsys):
    need_renderer()
    import soundfile as sf

    out = tmp_path / "piece.wav"
    assert main(["generate", str(model_dir), "--text", "a cello in D minor", "--out", str(out), "--num-samples", "2",
                 "--seconds", "1.5", "--max-new-tokens", "80", "--seed", "3"]) == 0
    for i in (0, 1):
        info = sf.info(str(tmp_path / f"piece_{i}.wav"))
        assert (info.samplerate, info.frames) == (16000, 24000)
        assert read_midi(tmp_path / f"piece_{i}.mid")
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind
    _one_line_error(capsys, ["generate", model_dir, "--text", "a trumpet", "--out", out], "valid instruments:")
    _one_line_error(capsys, ["generate", model_dir, "--text", "a cello", "--out", out, "--seconds", "30"],
                    "beyond the 4 s window")
    _one_line_error(capsys, ["generate", model_dir, "--text", "a cello", "--out", tmp_path / "p.mp3"], "must end in .wav")


def test_generate_cli_plays_the_pieces_at_the_requested_tempo(model_dir, model, tok, tmp_path, capsys):
    """By default each sampled piece is the model's notes after fit_tempo; --no-tempo-fit writes
    the model's notes as sampled (same seed, same samples)."""
    need_renderer()
    text = "a slow cello in D minor"
    argv = ["generate", str(model_dir), "--text", text, "--num-samples", "3", "--seconds", "2", "--max-new-tokens",
            "120", "--seed", "5"]
    assert main(argv + ["--out", str(tmp_path / "fit.wav")]) == 0
    assert main(argv + ["--out", str(tmp_path / "raw.wav"), "--no-tempo-fit"]) == 0
    printed = capsys.readouterr().out
    raw = generate_midi(model, tok, [text] * 3, seconds=2.0,
                        options=DecodingOptions(guidance=3.0, temperature=1.0, top_p=0.95, seed=5, max_new_tokens=120))
    factors = []
    for i, notes in enumerate(raw):
        fit = fit_tempo(notes, parse_request(text), 2.0)
        for name, expected in (("raw", notes), ("fit", fit.notes)):
            written = read_midi(tmp_path / f"{name}_{i}.mid")
            assert [(n.pitch, n.program) for n in written] == [(n.pitch, n.program) for n in expected]
            assert [n.start for n in written] == pytest.approx([n.start for n in expected], abs=2e-3)
        assert (f"times × {fit.factor:.3f}" in printed) == (fit.factor != 1.0)
        factors.append(fit.factor)
    assert any(f != 1.0 for f in factors)  # the untrained model's pieces did need fitting


def test_generate_cli_reranks_samples_with_mulan(model_dir, tmp_path, capsys):
    need_renderer()
    mtok = TextTokenizer.train(["a cello in D minor", "a slow violin", "fast piano"] * 5, vocab_size=300)
    cfg = MuLaNConfig.tiny()
    cfg.text_tower_config.vocab_size = mtok.vocab_size
    torch.manual_seed(0)
    mulan_dir = hub.save_model(tmp_path / "mulan", MuLaN(cfg).eval(), mtok, card={})
    out = tmp_path / "piece.wav"
    argv = ["generate", str(model_dir), "--text", "a cello in D minor", "--out", str(out), "--num-samples", "3",
            "--seconds", "1.5", "--max-new-tokens", "60", "--seed", "3", "--rerank", str(mulan_dir)]
    assert main(argv + ["--keep", "2"]) == 0
    printed = [float(l.split("similarity ")[1].split(":")[0]) for l in capsys.readouterr().out.splitlines()]
    assert len(printed) == 2 and printed[0] >= printed[1]
    assert (tmp_path / "piece_0.wav").exists() and (tmp_path / "piece_1.wav").exists()
    assert not (tmp_path / "piece_2.wav").exists()
    # the two kept are the best two of all three samples, as MuLaN scores the written audio
    assert main(argv) == 0  # all three, best first
    capsys.readouterr()
    mulan, mt = hub.load(mulan_dir)
    sims = score(mulan, mt, [load_audio(tmp_path / f"piece_{k}.wav") for k in range(3)], ["a cello in D minor"])[:, 0]
    assert sims.tolist() == sorted(sims.tolist(), reverse=True)
    assert sims[:2].tolist() == pytest.approx(printed, abs=1e-3)
    _one_line_error(capsys, argv[:-2] + ["--keep", "1"], "--keep needs --rerank")
    _one_line_error(capsys, argv + ["--keep", "4"], "--keep must be between 1 and --num-samples (3)")


def test_generate_cli_refuses_a_model_without_midi_vocabulary(tmp_path, capsys):
    tok = TextTokenizer.train(["a b c"] * 3, vocab_size=300)
    cfg = to_dict(AudioLLMConfig.tiny())
    cfg["lm_config"]["vocab_size"] = tok.vocab_size
    hub.save_model(tmp_path / "m", AudioLLM(from_dict(AudioLLMConfig, cfg)), tok)
    _one_line_error(capsys, ["generate", tmp_path / "m", "--text", "a cello", "--out", tmp_path / "p.wav"],
                    "no MIDI vocabulary")
    # evaluate on a corpus that mixes text rows and text_to_midi rows: the latter are skipped, said once
    import soundfile as sf
    from helpers import tone

    sf.write(tmp_path / "a.wav", tone(0.5), 16000)
    manifest = tmp_path / "mixed.jsonl"
    rows = [{"audio": "a.wav", "task": "tagging", "answer": "piano"}, *derive_rows([clip_row()])]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(manifest), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "tagging" in out and "text_to_midi" not in out
    assert "skipped 1 row(s) of text_to_midi: the model has no MIDI vocabulary" in err


def test_data_text_to_midi_derives_one_row_per_clip(tmp_path, capsys):
    src = tmp_path / "music.jsonl"
    rows = [clip_row(clip="m1"), {**clip_row(clip="m1"), "task": "tagging"}, clip_row(clip="m2", program=40)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["data", "text-to-midi", "--from", str(src), "--out", str(tmp_path / "t2m.jsonl")]) == 0
    out = read_manifest(tmp_path / "t2m.jsonl")
    assert [r["clip"] for r in out] == ["m1", "m2"] and all(r["task"] == "text_to_midi" for r in out)
    assert out == read_manifest(tmp_path / "t2m.jsonl")  # deterministic captions
    for r in out:
        TASK.validate(r)
        assert parse_request(r["question"]).program == r["program"]


def test_text_to_midi_benchmark_scores_model_and_reference(model_dir, tmp_path):
    """benchmarks/text_to_midi.py end to end at toy size: one JSON line with the model's and
    the reference notes' adherence; the reference notes follow their own labels."""
    import os
    import subprocess
    import sys

    rows = derive_rows([clip_row(clip=f"m{i}", program=p, bpm=72) for i, p in enumerate((42, 40, 0))])
    for row, q in zip(rows, ["a cello at 72 bpm", "violin, D minor", "a slow piece for piano"]):
        row["question"] = q
    manifest = tmp_path / "t2m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = REPO / "benchmarks" / "text_to_midi.py"
    proc = subprocess.run([sys.executable, str(script), str(model_dir), "--manifest", str(manifest)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CI": "1"})  # pyfluidsynth prints at import under $CI
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [x for x in proc.stdout.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stdout  # stdout holds the JSON object only
    out = json.loads(lines[0])
    assert out["captions"] == 3 and out["model"]["valid_rate"] == 1.0
    assert out["reference"]["instrument_adherence"] == 1.0 and out["reference"]["tempo_bpm_adherence"] == 1.0
    assert set(out["ratio_to_reference"]) <= set(out["model"]) and out["pieces_per_s"] > 0


def test_text_to_audio_rows_pair_a_label_caption_with_the_clips_audio():
    rows = derive_rows([clip_row(), {**clip_row(clip="m00002"), "audio": None}], task="text_to_audio")
    assert len(rows) == 1  # a clip without audio has no codes to answer with
    (row,) = rows
    assert row["task"] == "text_to_audio" and row["audio"] == "x.wav" and row["id"] == "m00001-t2a"
    assert "cello" in row["caption"].lower() and row["program"] == 42  # labels kept for judging
    TASKS["text_to_audio"].validate(row)
