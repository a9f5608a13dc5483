"""The one decoding loop reproduces, token for token, what the three loops it replaced produced.

``golden/decoding.json`` was recorded (``tests/golden/record.py`` at commit 59116fd)
from `Decoder.generate`, `HFCausalLM.generate` and `midi_generate.decode_events` before they
were merged into `audiollm.decoding.loop`: greedy and sampled text answers with and without
the KV cache, joint CTC/attention decoding, teacher-forced candidate scores, guided and
grammar-constrained MIDI sampling, and transcription with every onset/offset source. Weights
are set from each parameter's name, so the models do not depend on construction order.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
import torch

from audiollm.config import from_dict, to_dict
from audiollm.decoding.options import DecodingOptions
from audiollm.inference.compose import sample_events
from audiollm.inference.transcribe import transcribe
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig
from audiollm.tokenizers.midi import MidiVocab
from audiollm.tokenizers.text import TextTokenizer

GOLDEN = json.loads((Path(__file__).parent / "golden" / "decoding.json").read_text())
PROMPTS = [[4, 9, 17, 5], [4, 33, 5], [4, 9, 12, 40, 41, 5]]


def recorded_name(name: str) -> str:
    """A parameter's name in the model the golden file was recorded from (before heads were
    plug-ins: ``ctc_head`` / ``frame_head``)."""
    for new, old in (("heads.ctc.proj.", "ctc_head."), ("heads.note_activity.proj.", "frame_head.")):
        if name.startswith(new):
            return old + name[len(new):]
    return name


def name_init(model: torch.nn.Module, gain: float = 1.5) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            g = torch.Generator().manual_seed(zlib.crc32(recorded_name(name).encode()))
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * gain / p[0].numel() ** 0.5)
            elif "norm" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def waveforms() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    lengths = torch.tensor([16000, 9000, 12500])
    audio = torch.randn(3, 16000, generator=g) * 0.3
    return audio * (torch.arange(16000)[None, :] < lengths[:, None]), lengths


def build(lm: str = "llama", vocab_size: int | None = None, **heads: float) -> AudioLLM:
    cfg = to_dict(AudioLLMConfig.tiny(lm=lm, **heads))
    if vocab_size:
        cfg["lm_config"]["vocab_size"] = vocab_size
    model = AudioLLM(from_dict(AudioLLMConfig, cfg)).eval()
    name_init(model)
    return model


@pytest.fixture(scope="module")
def llama():
    return build(ctc=1.0)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_answers(llama, use_cache):
    audio, lengths = waveforms()
    out = llama.generate(audio, lengths, PROMPTS, DecodingOptions(max_new_tokens=24, use_cache=use_cache), eos_id=3)
    assert out == GOLDEN[f"llama_greedy_cache{int(use_cache)}"]


def test_sampled_answers_and_joint_ctc(llama):
    audio, lengths = waveforms()
    sampled = DecodingOptions(max_new_tokens=24, temperature=0.9, top_k=20, top_p=0.9, seed=0)
    assert llama.generate(audio, lengths, PROMPTS, sampled, eos_id=3) == GOLDEN["llama_sampled"]
    joint = DecodingOptions(max_new_tokens=24, ctc_weight=0.5)
    assert llama.generate(audio, lengths, PROMPTS, joint, eos_id=3, ctc_rows=[True, False, True]) \
        == GOLDEN["llama_ctc_joint"]
    contexts = [[[4, 9, 5], [4, 9, 5, 20]], [[4, 5]], [[4, 9, 5], [4, 9, 5], [4, 1]]]
    cands = [[[30, 31], [32]], [[33, 34, 35]], [[36], [37, 38], [39]]]
    got = llama.candidate_logprobs(audio, lengths, contexts, cands)
    for row, want in zip(got, GOLDEN["llama_candidate_logprobs"]):
        assert row == pytest.approx(want, abs=1e-4)


def test_transformers_lm_answers():
    hf = build(lm="hf_causal_lm")
    audio, lengths = waveforms()
    assert hf.generate(audio, lengths, PROMPTS, DecodingOptions(max_new_tokens=16), eos_id=3) == GOLDEN["hf_greedy"]
    assert hf.generate(audio, lengths, PROMPTS, DecodingOptions(max_new_tokens=16, use_cache=False), eos_id=3) \
        == GOLDEN["hf_greedy_nocache"]
    sampled = DecodingOptions(max_new_tokens=16, temperature=1.0, top_p=0.8, seed=1)
    assert hf.generate(audio, lengths, PROMPTS, sampled, eos_id=3) == GOLDEN["hf_sampled"]


@pytest.fixture(scope="module")
def midi():
    texts = ["a cello in D minor at 72 bpm", "a slow baroque piece for violin", "piano, fast, C major",
             "Transcribe the notes."] * 3
    tok = TextTokenizer.train(texts, vocab_size=300).with_midi(MidiVocab(programs=(0, 40, 42)))
    return build(vocab_size=tok.vocab_size, ctc=1.0, note_activity=0.3), tok


@pytest.mark.parametrize("guidance", [1.0, 3.0])
@pytest.mark.parametrize("use_cache", [True, False])
def test_guided_grammar_sampling(midi, guidance, use_cache):
    model, tok = midi
    questions = ["a cello in D minor at 72 bpm", "piano, fast, C major"]
    options = DecodingOptions(max_new_tokens=120, temperature=1.0, top_p=0.95, guidance=guidance, seed=3,
                              use_cache=use_cache)
    out = sample_events(model, tok, questions, seconds=1.5, options=options)
    assert out == GOLDEN[f"midi_sample_g{guidance:g}_cache{int(use_cache)}"]


def test_unconstrained_events_and_prompts(midi):
    model, tok = midi
    questions = ["a cello in D minor at 72 bpm", "piano, fast, C major"]
    out = sample_events(model, tok, questions, seconds=1.0, options=DecodingOptions(max_new_tokens=40),
                        constrained=False)
    assert out == GOLDEN["midi_greedy_unconstrained"]
    assert [tok.prompt_ids(q) for q in questions] == GOLDEN["prompt_ids"]


@pytest.mark.parametrize("onsets,offsets", [("lm", "lm"), ("ctc", "lm"), ("ctc+frames", "frames"), ("lm", "frames")])
def test_transcription(midi, onsets, offsets):
    model, tok = midi
    audio, _ = waveforms()
    wavs = [audio[0], audio[1, :9000], torch.cat([audio[2], audio[0]])]
    notes = transcribe(model, tok, wavs, window_seconds=1.0, batch_size=2, max_new_tokens=60, onsets=onsets,
                       offsets=offsets)
    got = [[[n.pitch, round(n.start, 6), round(n.end, 6), n.velocity, n.program] for n in piece] for piece in notes]
    assert got == GOLDEN[f"transcribe_{onsets}_{offsets}"]
