"""Record today's decoding outputs (tokens, notes) of small deterministic models as a golden file.

Run once, before the decoding code is rewritten: ``python tests/golden/record.py``. The test
``tests/decoding/test_golden.py`` rebuilds the same models (weights set by parameter name, so
module order does not matter) and checks that the one decoding loop reproduces every output.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import torch

OUT = Path(__file__).with_name("decoding.json")


def name_init(model: torch.nn.Module, rename=lambda n: n, gain: float = 1.5) -> None:
    """Every parameter filled from a generator seeded by its (renamed) name: matrices
    N(0, gain² / fan_in), norm gains 1, other vectors N(0, 0.02²)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            g = torch.Generator().manual_seed(zlib.crc32(rename(name).encode()))
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
    audio = audio * (torch.arange(16000)[None, :] < lengths[:, None])
    return audio, lengths


def main() -> None:
    from audiollm.data.batching import prompt_ids
    from audiollm.inference.compose import sample_events
    from audiollm.models.audiollm import AudioLLM, AudioLLMConfig
    from audiollm.tokenizers.midi import MidiVocab
    from audiollm.tokenizers.text import TextTokenizer
    from audiollm.inference.transcribe import transcribe

    out: dict = {}
    audio, lengths = waveforms()
    prompts = [[4, 9, 17, 5], [4, 33, 5], [4, 9, 12, 40, 41, 5]]

    # -- our decoder, with a CTC head
    cfg = AudioLLMConfig.tiny().to_dict()
    cfg["ctc_weight"] = 1.0
    model = AudioLLM(AudioLLMConfig.from_dict(cfg)).eval()
    name_init(model)
    for use_cache in (True, False):
        out[f"llama_greedy_cache{int(use_cache)}"] = model.generate(
            audio, lengths, prompts, max_new_tokens=24, eos_id=3, use_cache=use_cache)
    gen = torch.Generator().manual_seed(0)
    out["llama_sampled"] = model.generate(audio, lengths, prompts, max_new_tokens=24, eos_id=3, temperature=0.9,
                                          top_k=20, top_p=0.9, generator=gen)
    out["llama_ctc_joint"] = model.generate(audio, lengths, prompts, max_new_tokens=24, eos_id=3, ctc_weight=0.5,
                                            ctc_rows=[True, False, True])
    contexts = [[[4, 9, 5], [4, 9, 5, 20]], [[4, 5]], [[4, 9, 5], [4, 9, 5], [4, 1]]]
    cands = [[[30, 31], [32]], [[33, 34, 35]], [[36], [37, 38], [39]]]
    out["llama_candidate_logprobs"] = model.candidate_logprobs(audio, lengths, contexts, cands)

    # -- a transformers causal LM
    cfg = AudioLLMConfig.tiny(lm="hf_causal_lm").to_dict()
    hf = AudioLLM(AudioLLMConfig.from_dict(cfg)).eval()
    name_init(hf)
    out["hf_greedy"] = hf.generate(audio, lengths, prompts, max_new_tokens=16, eos_id=3)
    out["hf_greedy_nocache"] = hf.generate(audio, lengths, prompts, max_new_tokens=16, eos_id=3, use_cache=False)
    gen = torch.Generator().manual_seed(1)
    out["hf_sampled"] = hf.generate(audio, lengths, prompts, max_new_tokens=16, eos_id=3, temperature=1.0,
                                    top_p=0.8, generator=gen)

    # -- MIDI events: text-to-MIDI with guidance and the grammar, transcription with both heads
    texts = ["a cello in D minor at 72 bpm", "a slow baroque piece for violin", "piano, fast, C major",
             "Transcribe the notes."] * 3
    tok = TextTokenizer.train(texts, vocab_size=300).with_midi(MidiVocab(programs=(0, 40, 42)))
    cfg = AudioLLMConfig.tiny().to_dict()
    cfg["lm_config"]["vocab_size"] = tok.vocab_size
    cfg["ctc_weight"], cfg["frame_weight"] = 1.0, 0.3
    midi = AudioLLM(AudioLLMConfig.from_dict(cfg)).eval()
    name_init(midi)
    questions = ["a cello in D minor at 72 bpm", "piano, fast, C major"]
    for guidance in (1.0, 3.0):
        for use_cache in (True, False):
            gen = torch.Generator().manual_seed(3)
            out[f"midi_sample_g{guidance:g}_cache{int(use_cache)}"] = sample_events(
                midi, tok, questions, seconds=1.5, guidance=guidance, temperature=1.0, top_p=0.95, generator=gen,
                max_new_tokens=120, use_cache=use_cache)
    out["midi_greedy_unconstrained"] = sample_events(midi, tok, questions, seconds=1.0, guidance=1.0,
                                                     temperature=0.0, max_new_tokens=40, constrained=False)
    wavs = [audio[0], audio[1, :9000], torch.cat([audio[2], audio[0]])]
    for onsets, offsets in (("lm", "lm"), ("ctc", "lm"), ("ctc+frames", "frames"), ("lm", "frames")):
        notes = transcribe(midi, tok, wavs, window_seconds=1.0, batch_size=2, max_new_tokens=60,
                           onsets=onsets, offsets=offsets)
        out[f"transcribe_{onsets}_{offsets}"] = [[[n.pitch, round(n.start, 6), round(n.end, 6), n.velocity, n.program]
                                                  for n in piece] for piece in notes]
    out["prompt_ids"] = [prompt_ids(tok, q) for q in questions]
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} ({len(out)} records)", file=sys.stderr)


if __name__ == "__main__":
    main()
