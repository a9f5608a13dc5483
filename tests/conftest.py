"""Shared fixtures: tiny audio files and manifests built by the tests themselves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def tone(seconds: float = 1.0, freq: float = 440.0, sr: int = 16000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


@pytest.fixture
def wav_file(tmp_path: Path) -> Path:
    p = tmp_path / "tone.wav"
    sf.write(p, tone(), 16000)
    return p


def build_toy_corpus(base: Path) -> Path:
    """A few-clip manifest per split: tones whose pitch is the 'instrument', plus 'speech'."""
    root = base / "toy"
    (root / "audio").mkdir(parents=True)
    families = {"low": 220.0, "high": 880.0}
    words = {"one": 300.0, "two": 600.0}
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("valid", 2), ("test", 2)):
        rows = []
        for i in range(n):
            fam = list(families)[i % 2]
            p = root / "audio" / f"{split}_m{i}.wav"
            sf.write(p, tone(0.5 + 0.1 * (i % 3), families[fam]) + 0.01 * rng.standard_normal(int((0.5 + 0.1 * (i % 3)) * 16000)).astype(np.float32), 16000)
            rows.append({"audio": f"audio/{p.name}", "task": "tagging", "answer": fam, "split": split, "id": f"{split}-t{i}"})
            rows.append({"audio": f"audio/{p.name}", "task": "qa", "question": "Is it high or low?", "answer": f"It is {fam}.", "split": split, "id": f"{split}-q{i}"})
            word = list(words)[i % 2]
            p = root / "audio" / f"{split}_s{i}.wav"
            sf.write(p, tone(0.4, words[word], sr=8000), 8000)  # a different rate on purpose
            rows.append({"audio": f"audio/{p.name}", "task": "asr", "answer": word, "split": split, "id": f"{split}-a{i}"})
            rows.append({"audio": f"audio/{p.name}", "task": "caption", "answer": f"a tone saying {word}", "split": split, "id": f"{split}-c{i}"})
        with open(root / f"{split}.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return root


@pytest.fixture
def toy_corpus(tmp_path: Path) -> Path:
    return build_toy_corpus(tmp_path)


@pytest.fixture(scope="session")
def toy_corpus_shared(tmp_path_factory) -> Path:
    """The same corpus, built once per session, for tests that only read it."""
    return build_toy_corpus(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="session")
def wordnet():
    """Install Debian's WordNet for NLTK (idempotent); skip only when Debian's files are absent."""
    from audiollm.metrics import wordnet as metrics_setup

    missing = [f for f in metrics_setup.REQUIRED_FILES if not (metrics_setup.DEBIAN_WORDNET_DIR / f).is_file()]
    if missing:
        pytest.skip("Debian WordNet not installed (apt-get install wordnet-base wordnet-sense-index)")
    metrics_setup.install_wordnet()


def build_tiny_bert(directory: Path, words: list[str], intermediate_size: int = 64) -> Path:
    """A random 2-layer BERT + a real WordPiece tokenizer over ``words``, saved to ``directory``.

    The tokenizer is built with `tokenizers` directly: transformers 5's
    ``BertTokenizerFast(vocab_file=...)`` ignores the file and maps every word to [UNK].
    """
    import torch
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(dict.fromkeys(words))
    wp = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]", pad_token="[PAD]",
                                               cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    assert tok(vocab[5])["input_ids"] == [2, 5, 3]  # real words get real ids
    tok.save_pretrained(directory)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=intermediate_size, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(cfg).eval().save_pretrained(directory)
    return directory


def build_tiny_whisper_ct2(directory: Path, quantization: str = "float32"):
    """A random 2+2-layer Whisper (biases made non-zero, so a misplaced slice shows), saved by
    transformers to ``directory/hf`` and written in CTranslate2's format by CTranslate2's own
    converter to ``directory/ct2_<quantization>``. Returns (the transformers model, that folder)."""
    import ctranslate2
    import torch
    import transformers

    if not (directory / "hf").is_dir():
        config = transformers.WhisperConfig(
            vocab_size=96, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=96, decoder_ffn_dim=80,
            max_source_positions=50, max_target_positions=24, pad_token_id=90, bos_token_id=91,
            eos_token_id=90, decoder_start_token_id=91, suppress_tokens=[], begin_suppress_tokens=[])
        torch.manual_seed(0)
        model = transformers.WhisperForConditionalGeneration(config)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(std=0.1)
        model.save_pretrained(directory / "hf")
    out = directory / f"ct2_{quantization}"
    if not out.exists():
        ctranslate2.converters.TransformersConverter(str(directory / "hf")).convert(str(out), quantization=quantization)
    return transformers.WhisperForConditionalGeneration.from_pretrained(directory / "hf").eval(), out
