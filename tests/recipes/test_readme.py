"""The README as a user reads it: its Python examples run (on tiny models saved where the
examples look), its command table names every subcommand once and each line parses."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest
import soundfile as sf
import torch
from helpers import REPO, tone

from audiollm.cli.parser import build_parser
from audiollm.errors import AudioLLMError
from audiollm.models import hub
from audiollm.models.audiollm import AudioLLM, AudioLLMConfig
from audiollm.models.codec import AudioCodec, CodecConfig
from audiollm.music.render import find_soundfont
from audiollm.tokenizers.midi import MidiVocab
from audiollm.tokenizers.text import TextTokenizer

README = (REPO / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def table_commands() -> list[str]:
    return re.findall(r"^\| `(audiollm [^`]+)` \|", README, re.M)


def subcommands() -> set[str]:
    """Every leaf subcommand of the CLI: "ask", "data synth", …"""
    def leaves(parser, prefix: str) -> set[str]:
        actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not actions:
            return {prefix.strip()}
        return set().union(*(leaves(p, f"{prefix} {name}") for name, p in actions[0].choices.items()))
    return leaves(build_parser(), "")


def test_the_command_table_has_one_line_per_subcommand_and_each_parses():
    commands = table_commands()
    named = []
    for line in commands:
        argv = shlex.split(line)[1:]
        build_parser().parse_args(argv)  # exits (SystemExit) on a line the CLI would refuse
        named.append(" ".join(argv[:2]) if argv[0] in ("data", "codec") else argv[0])
    assert sorted(named) == sorted(set(named)), "a subcommand is listed twice"
    beside = {"data text-to-midi", "data text-to-audio"}  # named beside `data transcription` in its line
    listed = set(named) | beside
    assert all(f"`{name}`" in README for name in beside)
    assert listed >= subcommands(), f"subcommands missing from the README: {subcommands() - listed}"


def test_the_two_commands_open_the_readme():
    first = blocks("bash")[0]
    assert first.splitlines()[0].startswith("make demo") and first.splitlines()[1].startswith("make test")
    assert README.index("make demo") < README.index("## Install")
    assert len(README.splitlines()) <= 250


@pytest.fixture
def readme_world(tmp_path, monkeypatch, trained_model_dir, mulan_dirs):
    """The folders and files the README's Python examples name, with tiny models in them."""
    shutil.copytree(trained_model_dir, tmp_path / "runs" / "quickstart" / "final")
    tok = TextTokenizer.train(["transcribe the notes", "a slow cello piece in D minor"] * 3, vocab_size=300)
    tok = tok.with_midi(MidiVocab(programs=(0, 42)))
    cfg = AudioLLMConfig.tiny()
    cfg.lm_config.vocab_size = tok.vocab_size
    torch.manual_seed(0)
    midi_model = AudioLLM(cfg).eval()
    for name in ("transcription", "text_to_midi"):
        hub.save_model(tmp_path / "runs" / name / "final", midi_model, tok)
    shutil.copytree(mulan_dirs[0], tmp_path / "runs" / "mulan_quickstart" / "final")
    codec = AudioCodec(CodecConfig.tiny()).train()
    codec(torch.from_numpy(tone(1.0))[None], torch.tensor([16000]))  # initialise the codebooks
    hub.save_model(tmp_path / "runs" / "codec_quickstart" / "final", codec.eval())
    clips = tmp_path / "data" / "corpus_quickstart" / "audio" / "test"
    clips.mkdir(parents=True)
    for name in ("m02880.wav", "s05760.wav"):
        sf.write(clips / name, tone(0.8), 16000)
    sf.write(tmp_path / "piano.wav", tone(1.5, 261.6), 16000)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_python_examples_run(readme_world, capsys):
    try:
        find_soundfont()
    except AudioLLMError:
        pytest.skip("composing renders through a General MIDI soundfont, which is not installed")
    examples = blocks("python")
    assert len(examples) >= 2 and "audiollm.load" in examples[0]
    namespace: dict = {}
    for code in examples:
        exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) >= 5 and all(isinstance(line, str) for line in printed)
    for name in ("piano.mid", "piano.png", "cello.wav", "cello.mid", "piano.codes.safetensors"):
        assert (readme_world / name).stat().st_size > 0, name
