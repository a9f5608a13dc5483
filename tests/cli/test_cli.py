"""The CLI as a user meets it: every bad input is one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import REPO, tone, write_config

from audiollm.cli.parser import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code != 0
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("audiollm: error:"), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


def test_ask_and_evaluate_work(trained_model_dir, toy_corpus_shared, capsys, tmp_path):
    model_dir, corpus = trained_model_dir, toy_corpus_shared
    clip = next(corpus.glob("audio/test_m*.wav"))
    code, out, _ = run_cli(capsys, "ask", model_dir, clip, "--question", "Which instrument family is playing?", "--json")
    assert code == 0 and json.loads(out)["question"] == "Which instrument family is playing?"
    code, out, _ = run_cli(capsys, "evaluate", model_dir, "--data", corpus / "test.jsonl", "--json", tmp_path / "m.json", "--no-progress")
    assert code == 0 and "tagging" in out and "asr" in out
    saved = json.loads((tmp_path / "m.json").read_text())
    assert {"tagging", "asr", "caption", "qa"} <= set(saved["metrics"])


def test_wrong_rate_and_channels_are_fixed_not_refused(trained_model_dir, toy_corpus_shared, capsys, tmp_path):
    model_dir = trained_model_dir
    p = tmp_path / "stereo44k.wav"
    sf.write(p, np.stack([tone(0.5, 440, 44100)] * 2, axis=1), 44100)
    code, _, err = run_cli(capsys, "ask", model_dir, p)
    assert code == 0, err


def _bad_audio(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"{kind}.wav"
    if kind == "missing":
        return p
    if kind == "directory":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "corrupt":
        p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(200)))
    elif kind == "unsupported":
        p = tmp_path / "notes.txt"
        p.write_text("not audio at all\n" * 40)
    elif kind == "zero_samples":
        sf.write(p, np.zeros(0, dtype=np.float32), 16000)
    elif kind == "silent":
        sf.write(p, np.zeros(16000, dtype=np.float32), 16000)
    elif kind == "nan":
        x = tone(0.5)
        x[10] = np.inf
        sf.write(p, x, 16000, subtype="FLOAT")
    elif kind == "too_long":
        sf.write(p, tone(3.0), 16000)
    return p


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", "file is empty"),
        ("corrupt", "cannot read audio"),
        ("unsupported", "cannot read audio"),
        ("zero_samples", "0 samples"),
        ("silent", "silent"),
        ("nan", "NaN or infinite"),
        ("too_long", "the limit is 2.0 s"),
    ],
)
def test_ask_bad_audio(trained_model_dir, toy_corpus_shared, capsys, tmp_path, kind, fragment):
    model_dir = trained_model_dir
    code, _, err = run_cli(capsys, "ask", model_dir, _bad_audio(tmp_path, kind), "--max-seconds", "2")
    assert_one_line_error(code, err, fragment)


def test_model_dir_problems(trained_model_dir, toy_corpus_shared, capsys, tmp_path):
    model_dir, corpus = trained_model_dir, toy_corpus_shared
    clip = next(corpus.glob("audio/test_m*.wav"))
    code, _, err = run_cli(capsys, "ask", tmp_path / "nowhere", clip)
    assert_one_line_error(code, err, "no such model directory")
    broken = tmp_path / "no_weights"
    shutil.copytree(model_dir, broken)
    (broken / "model.safetensors").unlink()
    code, _, err = run_cli(capsys, "ask", broken, clip)
    assert_one_line_error(code, err, "model.safetensors")


@pytest.mark.parametrize("command", ["ask", "evaluate", "transcribe", "generate", "embed", "features"])
def test_device_and_dtype_problems_are_one_line(trained_model_dir, toy_corpus_shared, capsys, command):
    """Every command that runs a model takes --device and --dtype and refuses bad ones in one line."""
    clip = next(toy_corpus_shared.glob("audio/test_m*.wav"))
    args = {"ask": [trained_model_dir, clip], "evaluate": [trained_model_dir, "--data", toy_corpus_shared / "test.jsonl"],
            "transcribe": [trained_model_dir, clip, "--out", "x.mid"],
            "generate": [trained_model_dir, "--text", "a slow cello", "--out", "x.wav"],
            "embed": [trained_model_dir, clip, "--out", "x.npy"],
            "features": [REPO / "configs" / "fsdd_digits.yaml", toy_corpus_shared / "test.jsonl", "--out", "x"]}
    code, _, err = run_cli(capsys, command, *args[command], "--dtype", "float8")
    assert code == 2 and "float8" in err and err.count("\n") == 1, err
    if not torch.cuda.is_available():
        code, _, err = run_cli(capsys, command, *args[command], "--device", "cuda")
        assert_one_line_error(code, err, "no CUDA GPU is available here")


def test_bad_manifest_lines(trained_model_dir, toy_corpus_shared, capsys, tmp_path):
    model_dir, corpus = trained_model_dir, toy_corpus_shared
    lines = (corpus / "test.jsonl").read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", bad)
    assert_one_line_error(code, err, "bad.jsonl:2: not valid JSON")
    bad.write_text(lines[0] + "\n" + json.dumps({"audio": "x.wav", "answer": "y"}) + "\n")
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", bad)
    assert_one_line_error(code, err, "bad.jsonl:2: missing key(s) task")
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", next(corpus.glob("audio/*.wav")))
    assert_one_line_error(code, err, "not a text file")


def test_bad_config(capsys, tmp_path, toy_corpus):
    cfg = write_config(tmp_path, toy_corpus)
    code, _, err = run_cli(capsys, "train", cfg, "train.learning_rate=1")
    assert_one_line_error(code, err, "unknown config key 'train.learning_rate'")
    code, _, err = run_cli(capsys, "train", tmp_path / "missing.yaml")
    assert_one_line_error(code, err, "no such config file")


def test_data_manifest_unknown_format(capsys, tmp_path):
    code, _, err = run_cli(capsys, "data", "manifest", tmp_path, "--format", "nosuch", "--out", tmp_path / "x.jsonl")
    assert_one_line_error(code, err, "fsdd")


@pytest.mark.parametrize("entry", [["-m", "audiollm"], ["console"]])
def test_entry_points_and_help(entry, tmp_path):
    exe = [str(Path(sys.executable).parent / "audiollm")] if entry == ["console"] else [sys.executable, *entry]
    for sub in (["--help"], ["train", "--help"], ["ask", "--help"], ["evaluate", "--help"], ["data", "synth", "--help"], ["data", "manifest", "--help"]):
        out = subprocess.run(exe + sub, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "usage:" in out.stdout
    out = subprocess.run(exe + ["ask", str(tmp_path / "m"), str(tmp_path / "a.wav")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("audiollm: error:") and "Traceback" not in out.stderr


def test_help_loads_no_torch():
    """`audiollm --help` and every subcommand's help import no torch (the CLI stays fast)."""
    code = ("import sys\nfrom audiollm.cli import main\n"
            "for argv in (['--help'], ['ask', '--help'], ['train', '--help'], ['data', 'manifest', '--help'],"
            " ['generate', '--help'], ['tag', '--help']):\n"
            "    assert main(argv) == 0\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
