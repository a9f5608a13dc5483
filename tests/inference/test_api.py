"""The Python API (`audiollm.load`): what each model type offers, audio as paths or samples,
the same answers as the CLI, and every user mistake an `AudioLLMError`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import tone

import audiollm
from audiollm.audio import load_audio, resample
from audiollm.cli.parser import main
from audiollm.decoding.options import DecodingOptions
from audiollm.errors import AudioError, AudioLLMError, ModelDirError
from audiollm.inference.answer import generate_answers
from audiollm.inference.api import AudioLanguageModel, EmbeddingModel
from audiollm.inference.compose import COMPOSE_OPTIONS, generate_midi
from audiollm.inference.embedding import embed_texts
from audiollm.inference.index import search_index
from audiollm.models import hub
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig
from audiollm.tokenizers.midi import MidiVocab
from audiollm.tokenizers.text import TextTokenizer

QUESTION = "Is it high or low?"


@pytest.fixture(scope="module")
def midi_model_dir(tmp_path_factory):
    """A tiny untrained model whose tokenizer has MIDI events: transcribes and composes."""
    tok = TextTokenizer.train(["transcribe the notes", "a slow cello in D minor"] * 3, vocab_size=300)
    tok = tok.with_midi(MidiVocab(programs=(0, 42)))
    cfg = AudioLLMConfig.tiny()
    cfg.lm_config.vocab_size = tok.vocab_size
    torch.manual_seed(0)
    return hub.save_model(tmp_path_factory.mktemp("midi") / "model", AudioLLM(cfg).eval(), tok)


def test_load_returns_the_object_of_the_directory_type(trained_model_dir, mulan_dirs):
    assert isinstance(audiollm.load(trained_model_dir), AudioLanguageModel)
    assert isinstance(audiollm.load(mulan_dirs[0]), EmbeddingModel)


def test_ask_takes_paths_or_samples_and_answers_like_the_cli(trained_model_dir, toy_corpus_shared, capsys):
    model = audiollm.load(trained_model_dir)
    path = toy_corpus_shared / "audio" / "test_m1.wav"
    answer = model.ask(path, QUESTION)
    assert isinstance(answer, str) and answer
    # the library call underneath, by hand
    by_hand = generate_answers(model.model, model.tokenizer, [load_audio(path)], [QUESTION], DecodingOptions())[0]
    assert answer == by_hand
    # samples: numpy at 16 kHz, a tensor, and 44.1 kHz stereo numpy (resampled, downmixed)
    wav = load_audio(path)
    assert model.ask(wav.numpy(), QUESTION) == answer and model.ask(wav, QUESTION) == answer
    stereo = np.stack([resample(wav, 16000, 44100).numpy()] * 2)
    assert isinstance(model.ask(stereo, QUESTION, sample_rate=44100), str)
    # the CLI prints the same answer
    assert main(["ask", str(trained_model_dir), str(path), "-q", QUESTION, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == answer


def test_ask_many_batches_give_the_one_by_one_answers(trained_model_dir, toy_corpus_shared):
    model = audiollm.load(trained_model_dir)
    paths = sorted((toy_corpus_shared / "audio").glob("test_*.wav"))
    questions = [QUESTION, "Describe this audio.", QUESTION, "Transcribe the speech."]
    one_by_one = [model.ask(p, q) for p, q in zip(paths, questions)]
    assert model.ask_many(paths, questions, batch_size=3) == one_by_one
    # sampling is seeded: the same seed draws the same answers
    sampled = model.ask_many(paths, questions, options=DecodingOptions(temperature=1.0, seed=3))
    assert model.ask_many(paths, questions, options=DecodingOptions(temperature=1.0, seed=3)) == sampled


@pytest.mark.parametrize("audio, error", [
    ("/nonexistent/clip.wav", "no such file"),
    (np.zeros(0, dtype=np.float32), "0 samples"),
    (np.full(1600, np.nan, dtype=np.float32), "NaN"),
    (np.zeros((2, 3, 4), dtype=np.float32), "expected 1-D samples"),
    ([0.1, 0.2], "expected a file path, a numpy array or a torch tensor"),
])
def test_bad_audio_is_an_audio_error(trained_model_dir, audio, error):
    model = audiollm.load(trained_model_dir)
    with pytest.raises(AudioError, match=error):
        model.ask(audio, QUESTION)


def test_bad_calls_are_audiollm_errors(trained_model_dir, toy_corpus_shared, tmp_path):
    model = audiollm.load(trained_model_dir)
    clip = toy_corpus_shared / "audio" / "test_m0.wav"
    with pytest.raises(AudioLLMError, match="2 questions for 1 clips"):
        model.ask_many([clip], [QUESTION, QUESTION])
    with pytest.raises(AudioLLMError, match="batch_size must be at least 1"):
        model.ask_many([clip], [QUESTION], batch_size=0)
    with pytest.raises(AudioLLMError, match="MIDI"):  # a text-only tokenizer cannot transcribe
        model.transcribe(clip)
    with pytest.raises(ModelDirError):
        audiollm.load(tmp_path / "no-such-model")


def test_transcribe_writes_midi_and_a_plot(midi_model_dir, tmp_path):
    model = audiollm.load(midi_model_dir)
    wav = tmp_path / "in.wav"
    sf.write(wav, tone(1.5), 16000)
    result = model.transcribe(wav, max_new_tokens=24)
    assert result.seconds == pytest.approx(1.5)
    assert all(0 <= n.start < n.end <= 1.5 + 1e-6 for n in result.notes)
    assert result.write_midi(tmp_path / "out.mid").read_bytes()[:4] == b"MThd"
    assert result.plot(tmp_path / "roll.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(AudioLLMError, match=r"\.mid"):
        result.write_midi(tmp_path / "out.wav")
    # a batch of recordings gives each one's notes
    assert [t.notes for t in model.transcribe_many([wav, wav], max_new_tokens=24)] == [result.notes] * 2


def test_compose_samples_what_the_library_samples(midi_model_dir):
    model = audiollm.load(midi_model_dir)
    text = "a slow cello in D minor"
    pieces = model.compose(text, seconds=1.0, num_samples=2, tempo_fit=False, render=False, max_new_tokens=40)
    assert [p.sample for p in pieces] == [0, 1] and all(p.audio is None for p in pieces)
    by_hand = generate_midi(model.model, model.tokenizer, [text] * 2, seconds=1.0,
                            options=COMPOSE_OPTIONS.replace(max_new_tokens=40))
    assert [p.notes for p in pieces] == by_hand
    with pytest.raises(AudioLLMError, match="num_samples must be at least 1"):
        model.compose(text, num_samples=0)
    with pytest.raises(AudioLLMError, match="needs a reranker"):
        model.compose(text, num_samples=2, keep=1, render=False)


def test_embedding_model_embeds_tags_scores_reranks_and_indexes(mulan_dirs, music_dir, tmp_path):
    mulan = audiollm.load(mulan_dirs[0])
    clips = sorted(music_dir.iterdir())
    by_path = mulan.embed_audio(clips)
    by_samples = mulan.embed_audio([load_audio(c).numpy() for c in clips])
    assert by_path.shape == (3, 16) and by_path.dtype == np.float32
    np.testing.assert_allclose(by_path, by_samples, atol=1e-5)
    texts = mulan.embed_text(["bright piano", "slow organ"])
    np.testing.assert_allclose(texts, embed_texts(mulan.model, mulan.tokenizer, ["bright piano", "slow organ"]).numpy(),
                               atol=1e-6)
    sims = mulan.score(clips[0], ["bright piano", "slow organ"])
    np.testing.assert_allclose(sims, texts @ by_path[0], atol=1e-5)
    tags = mulan.tag(clips[0], ["piano", "organ", "trumpet"])
    assert sorted(l for l, _ in tags) == ["organ", "piano", "trumpet"] and sum(p for _, p in tags) == pytest.approx(1)
    best = mulan.rerank("bright piano", clips, keep=2)
    order = np.argsort(-(by_path @ mulan.embed_text(["bright piano"])[0]))
    assert [i for i, _ in best] == order[:2].tolist()
    report = mulan.index(music_dir, tmp_path / "music.index")
    assert report["embedded"] == 3
    hits = search_index(tmp_path / "music.index", text="bright piano", k=1)
    assert Path(hits[0][0]).name == clips[order[0]].name
    with pytest.raises(AudioLLMError, match="empty text"):
        mulan.embed_text(["  "])


def test_device_and_dtype_choices(trained_model_dir):
    model = audiollm.load(trained_model_dir, device="auto", dtype="bfloat16")
    assert next(model.model.parameters()).dtype == torch.bfloat16
    assert isinstance(model.ask(tone(0.5), QUESTION), str)
    with pytest.raises(AudioLLMError, match="dtype 'float8'; allowed: float32"):
        audiollm.load(trained_model_dir, dtype="float8")
    with pytest.raises(AudioLLMError, match="device 'tpu'"):
        audiollm.load(trained_model_dir, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(AudioLLMError, match="no CUDA GPU is available here"):
            audiollm.load(trained_model_dir, device="cuda")
