"""Shared fixtures (helpers live in helpers.py) and the markers that skip by name.

Markers: ``shared_data`` — needs the real recordings in ../shared/data (skipped, saying so,
where they are absent, as in a user's clone); ``gpu`` — needs a CUDA GPU; ``slow`` — minutes
of CPU (``make test-fast`` leaves these out; ``make test`` runs everything).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch
from helpers import SHARED_DATA, build_toy_corpus, tone, write_config

from audiollm.cli.parser import main
from audiollm.metrics import wordnet as wordnet_files
from audiollm.models import hub
from audiollm.models.mulan import MuLaN, MuLaNConfig
from audiollm.tokenizers.text import TextTokenizer


def pytest_collection_modifyitems(config, items):
    no_data = pytest.mark.skip(reason=f"needs the real recordings in {SHARED_DATA} (absent here)")
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
    for item in items:
        if "shared_data" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(no_data)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)


@pytest.fixture
def wav_file(tmp_path: Path) -> Path:
    p = tmp_path / "tone.wav"
    sf.write(p, tone(), 16000)
    return p


@pytest.fixture
def toy_corpus(tmp_path: Path) -> Path:
    return build_toy_corpus(tmp_path)


@pytest.fixture(scope="session")
def toy_corpus_shared(tmp_path_factory) -> Path:
    """The same corpus, built once per session, for tests that only read it."""
    return build_toy_corpus(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, toy_corpus_shared) -> Path:
    """A tiny model trained for 6 steps on the toy corpus by `audiollm train`; its final folder."""
    tmp = tmp_path_factory.mktemp("trained")
    assert main(["train", str(write_config(tmp, toy_corpus_shared, max_steps=6)), "--no-progress"]) == 0
    return tmp / "run" / "final"


@pytest.fixture(scope="session")
def wordnet():
    """Install Debian's WordNet for NLTK (idempotent); skip only when Debian's files are absent."""
    missing = [f for f in wordnet_files.REQUIRED_FILES if not (wordnet_files.DEBIAN_WORDNET_DIR / f).is_file()]
    if missing:
        pytest.skip("Debian WordNet not installed (apt-get install wordnet-base wordnet-sense-index)")
    wordnet_files.install_wordnet()


@pytest.fixture(scope="session")
def mulan_dirs(tmp_path_factory):
    """Two tiny random MuLaN models (seeds 0 and 1), saved as model folders."""
    d = tmp_path_factory.mktemp("mulan")
    tok = TextTokenizer.train(["warm jazz trumpet", "bright piano", "slow organ", "a low tone"] * 5, vocab_size=300)
    out = []
    for seed in (0, 1):
        cfg = MuLaNConfig.tiny()
        cfg.text_tower_config.vocab_size = tok.vocab_size
        torch.manual_seed(seed)
        out.append(hub.save_model(d / f"m{seed}", MuLaN(cfg).eval(), tok, card={}))
    return out


@pytest.fixture
def music_dir(tmp_path: Path) -> Path:
    """Three short tones as a folder of clips."""
    d = tmp_path / "music"
    d.mkdir()
    for i, f in enumerate((220.0, 440.0, 880.0)):
        sf.write(d / f"c{i}.wav", tone(0.5, f), 16000)
    return d
