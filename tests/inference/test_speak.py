"""Text → speech end to end at toy size: a codec, its codes cache, a tts manifest, `audiollm train`,
then `audiollm speak` and the Python API; the bad inputs of the issue, each one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from helpers import tiny_model_section, tone

import audiollm
from audiollm.cli.parser import main
from audiollm.errors import AudioLLMError
from audiollm.inference.speak import split_sentences
from audiollm.models.codec import AudioCodec, CodecConfig
from audiollm.models.hub import save_model

SENTENCES = ["A cat sat.", "The dog ran far.", "Birds sing at dawn.", "Rain fell all day.", "We walked home."]


def make_codec(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    codec = AudioCodec(CodecConfig.tiny()).train()
    wav = torch.from_numpy(np.stack([tone(1.0, f) for f in (220.0, 330.0, 440.0, 660.0)]))
    codec(wav, torch.full((4,), wav.shape[1]))
    return save_model(path, codec.eval())


@pytest.fixture(scope="module")
def tts_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tts")
    codec_dir = make_codec(root / "codec")
    (root / "audio").mkdir()
    rows = []
    for i, text in enumerate(SENTENCES * 2):
        path = root / "audio" / f"s{i}.wav"
        sf.write(path, tone(0.3 + 0.05 * len(text.split()), 200.0 + 40 * i) * 0.5, 16000)
        rows.append({"task": "tts", "id": f"s{i}", "audio": str(path), "text": text, "voice": "test tone",
                     "split": "train"})
    manifest = root / "tts.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["codec", "cache", str(manifest), "--model", str(codec_dir), "--out", str(root / "codes"),
                 "--no-progress"]) in (0, None)
    model = tiny_model_section()
    model["audio_answer"] = {"codec": str(codec_dir)}
    model["lm_config"]["max_seq_len"] = 512
    cfg = {"output_dir": str(root / "run"),
           "data": {"train": str(manifest), "valid": str(manifest), "codes_cache": str(root / "codes"),
                    "augment": False, "tasks": {"tts": {"cond_dropout": 0.2}}},
           "tokenizer": {"vocab_size": 300}, "model": model,
           "train": {"max_steps": 30, "batch_size": 4, "lr": 3e-3, "warmup_steps": 2, "eval_every": 30,
                     "save_every": 0, "log_every": 10, "eval_examples": 4, "mixed_precision": "no"}}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root / "cfg.yaml"), "--no-progress"]) in (0, None)
    return root


def test_training_writes_a_model_that_speaks_through_its_codec(tts_run, capsys):
    run = tts_run / "run" / "final"
    answer = json.loads((run / "config.json").read_text())["audio_answer"]
    # filled from the codec; every codebook the cache holds (the tiny codec's 3)
    assert answer["codebook_size"] == 16 and answer["fingerprint"] and answer["num_codebooks"] == 3
    assert answer["frame_rate"] > 0 and answer["sample_rate"] == 16000
    log = [json.loads(line) for line in (tts_run / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["codec_loss"] for r in log if r.get("codec_loss") is not None]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert any("valid/codec_loss" in r for r in log)  # validation scores the audio answers too
    out = tts_run / "said.wav"
    assert main(["speak", str(run), "--text", "A cat sat. The dog ran far.", "--out", str(out)]) in (0, None)
    wav, rate = sf.read(out)
    assert rate == 16000 and wav.ndim == 1 and 0 < len(wav) / rate < 2 * (1 + 30 / 6)
    assert "2 sentence(s)" in capsys.readouterr().out

    model = audiollm.load(run)
    assert model.writes_audio
    a = model.speak("Birds sing at dawn.", seed=4)
    b = model.speak("Birds sing at dawn.", seed=4)
    assert np.array_equal(a.audio, b.audio) and a.sample_rate == 16000 and len(a.codes) == 1
    clips = model.generate_audio("Birds sing at dawn.", seconds=0.5, num_samples=2, guidance=2.0)
    assert [c.codes[0].shape[1] for c in clips] == [model.audio_answers.frames(0.5)] * 2


def test_bad_inputs_are_one_line_errors(tts_run, tmp_path, capsys):
    run = str(tts_run / "run" / "final")
    for text, message in (("   ", "the text is empty"), ("?!... --", "no letters or digits")):
        assert main(["speak", run, "--text", text, "--out", str(tmp_path / "x.wav")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["speak", run, "--text", "Hello there.", "--out", str(tmp_path / "x.mp3")]) == 2
    assert "must end in .wav" in capsys.readouterr().err
    long_sentence = " ".join(["word"] * 300) + "."
    assert main(["speak", run, "--text", long_sentence, "--out", str(tmp_path / "x.wav")]) == 2
    assert "exceed the model's context of 512 positions" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_a_replaced_codec_is_named_with_both_fingerprints(tts_run, tmp_path):
    import shutil

    run = tmp_path / "model"
    shutil.copytree(tts_run / "run" / "final", run)
    config_path = run / "config.json"
    raw = json.loads(config_path.read_text())
    section = raw
    other = make_codec(tmp_path / "other_codec", seed=5)
    section["audio_answer"]["codec"] = str(other)
    config_path.write_text(json.dumps(raw))
    model = audiollm.load(run)
    with pytest.raises(AudioLLMError, match="trained on codec .* with weights .* now holds weights"):
        model.speak("A cat sat.")
    section["audio_answer"]["codec"] = str(tmp_path / "gone")
    config_path.write_text(json.dumps(raw))
    with pytest.raises(AudioLLMError, match="cannot be loaded"):
        audiollm.load(run).speak("A cat sat.")


def test_text_models_refuse_to_speak():
    from helpers import tiny_model

    from audiollm.inference.api import AudioLanguageModel
    from audiollm.tokenizers.text import TextTokenizer

    api = AudioLanguageModel(tiny_model(), TextTokenizer.train(["say this"] * 3, vocab_size=300))
    assert not api.writes_audio
    with pytest.raises(AudioLLMError, match="answers in text"):
        api.speak("hello")


def test_sentences_split_at_their_ends():
    assert split_sentences("  One.  Two?Three! Four ") == ["One.", "Two?Three!", "Four"]


def test_the_tts_benchmark_runs_and_reports_each_system(tts_run):
    import subprocess
    import sys

    from helpers import REPO

    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "tts.py"), "--quick", "--model",
                           str(tts_run / "run" / "final"), "--data", str(tts_run / "tts.jsonl")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["sentences"] == 4 and out["model_scores"]["n"] == 4
    assert 1.0 <= out["model_scores"]["dnsmos_ovrl"] <= 5.0 and out["model_scores"]["rtf"] > 0
    assert 0.0 <= out["model_scores"]["implausible_share"] <= 1.0
    assert out["codec_reconstruction"]["n"] == 4 and "reference_?" in out


def test_evaluate_scores_tts_rows_by_what_a_whisper_judge_hears(tts_run, tmp_path, capsys):
    from helpers import build_tiny_whisper_judge

    judge = build_tiny_whisper_judge(tmp_path / "whisper")
    run, manifest = str(tts_run / "run" / "final"), str(tts_run / "tts.jsonl")
    assert main(["evaluate", run, "--data", manifest, "--limit", "2", "--json", str(tmp_path / "m.json"),
                 "--whisper", str(judge), "--no-progress"]) in (0, None)
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["metrics"]["tts"]["n"] == 2 and "wer" in result["metrics"]["tts"]
    capsys.readouterr()
    assert main(["evaluate", run, "--data", manifest, "--limit", "2", "--no-progress"]) == 2
    assert "pass --whisper DIR" in capsys.readouterr().err


def test_continuation_keeps_the_prompt_and_extends_past_the_window(tts_run, tmp_path, capsys):
    model = audiollm.load(tts_run / "run" / "final")
    answers = model.audio_answers
    stereo_8k = tmp_path / "prompt.wav"  # another rate and channel count: resampled and downmixed
    sf.write(stereo_8k, np.stack([tone(0.3, 300.0, sr=8000)] * 2, axis=1) * 0.5, 8000)
    prompt_frames = answers.codec.encode(stereo_8k, num_codebooks=answers.config.num_codebooks).codes.shape[1]
    calls = []
    sample = answers.sample

    def spy(prompts, max_s, min_s, options, generator=None, prompt_codes=None):
        calls.append((0 if prompt_codes is None else prompt_codes[0].shape[1], answers.frames(max_s[0])))
        return sample(prompts, max_s, min_s, options, generator, prompt_codes)

    answers.sample = spy
    out = model.generate_audio(prompt_audio=stereo_8k, seconds=1.0, window_seconds=0.4, stride_seconds=0.2,
                               num_samples=2, seed=3)
    window = answers.frames(0.4)
    assert len(out) == 2 and all(s.codes[0].shape[1] == prompt_frames + answers.frames(1.0) for s in out)
    assert calls[0][0] == prompt_frames and all(p + n <= window for p, n in calls)  # never past the window
    assert len(calls) > 2 and all(p == answers.frames(0.2) for p, _ in calls[1:])  # continues the last 0.2 s
    first = out[0].codes[0][:, :prompt_frames]
    assert np.array_equal(first, answers.codec.encode(stereo_8k, num_codebooks=answers.config.num_codebooks).codes)
    answers.sample = sample
    assert main(["generate", str(tts_run / "run" / "final"), "--prompt-audio", str(stereo_8k), "--seconds", "0.3",
                 "--out", str(tmp_path / "more.wav")]) in (0, None)
    assert sf.info(tmp_path / "more.wav").samplerate == 16000
    capsys.readouterr()
    assert main(["generate", str(tts_run / "run" / "final"), "--prompt-audio", str(stereo_8k), "--stride", "9",
                 "--out", str(tmp_path / "bad.wav")]) == 2
    assert "extension stride must be in (0, window]" in capsys.readouterr().err
    assert main(["generate", str(tts_run / "run" / "final"), "--out", str(tmp_path / "bad.wav")]) == 2
    assert "give --text" in capsys.readouterr().err
