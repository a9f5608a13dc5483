"""Helpers shared by test modules (fixtures live in conftest.py): paths, tiny audio and
corpora, tiny pretrained checkpoints, training configs, stand-in models, decoding shortcuts."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

from audiollm.config import to_dict
from audiollm.decoding.loop import generate as decode
from audiollm.decoding.options import DecodingOptions
from audiollm.inference.compose import sample_events
from audiollm.models import AudioLLM, AudioLLMConfig
from audiollm.models.pretrained.tiny_checkpoints import tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # real recordings beside the checkout (also in CI)
FSDD = SHARED_DATA / "fsdd"


def gen(model, audio, lengths, prompts, *, eos_id=None, generator=None, return_logits=False, ctc_rows=None,
        **options):
    """`AudioLLM.generate` with the decoding options as keyword arguments."""
    return model.generate(audio, lengths, prompts, DecodingOptions(**options), eos_id=eos_id, generator=generator,
                          return_logits=return_logits, ctc_rows=ctc_rows)


def decode_ids(lm, ids: torch.Tensor, mask: torch.Tensor | None = None, *, eos_id=None, processors=(),
               generator=None, return_logits=False, **options):
    """The decoding loop on a bare language model, from left-padded token ids."""
    return decode(lm, lm.embed_tokens(ids), mask, options=DecodingOptions(**options), eos_id=eos_id,
                  processors=processors, generator=generator, return_logits=return_logits)


def sample(model, tokenizer, questions, *, seconds, generator=None, constrained=True, follow_caption=True,
           temperature=1.0, max_new_tokens=1024, **options):
    """`compose.sample_events` with the decoding options as keyword arguments (sampled at
    temperature 1 by default, as `audiollm generate` does)."""
    opts = DecodingOptions(temperature=temperature, max_new_tokens=max_new_tokens, **options)
    return sample_events(model, tokenizer, questions, seconds=seconds, options=opts, generator=generator,
                         constrained=constrained, follow_caption=follow_caption)


# ---------------------------------------------------------------------------------------------
# Audio and corpora
# ---------------------------------------------------------------------------------------------


def tone(seconds: float = 1.0, freq: float = 440.0, sr: int = 16000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


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


def build_tiny_whisper_judge(directory: Path) -> Path:
    """The tiny random Whisper of ``tiny_checkpoint("whisper")`` plus a word-level tokenizer over
    its 64 ids (60-63 are its pad/bos/eos/start ids): a directory `metrics.asr_judge.WhisperJudge`
    loads, for the code path (its transcripts are random words)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    shutil.copytree(tiny_checkpoint("whisper"), directory)
    words = [f"w{i}" for i in range(60)] + ["<pad>", "<|bos|>", "<|endoftext|>", "<|startoftranscript|>"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<|bos|>", eos_token="<|endoftext|>",
        additional_special_tokens=["<|startoftranscript|>"]).save_pretrained(directory)
    return directory


# ---------------------------------------------------------------------------------------------
# Tiny models and batches
# ---------------------------------------------------------------------------------------------


def make_batch(vocab: int = 128, seed: int = 0):
    """3 rows with different audio and text lengths; labels only on the 'answer' part."""
    g = torch.Generator().manual_seed(seed)
    audio_lengths = torch.tensor([8000, 3200, 5600])
    audio = torch.randn(3, 8000, generator=g) * 0.1
    audio[1, 3200:] = 0.0
    audio[2, 5600:] = 0.0
    text_lengths = torch.tensor([9, 5, 7])
    input_ids = torch.randint(6, vocab, (3, 9), generator=g)
    labels = torch.full((3, 9), -100)
    for i, n in enumerate(text_lengths.tolist()):
        input_ids[i, n:] = 0  # pad id
        labels[i, n - 3 : n] = input_ids[i, n - 3 : n]  # last 3 real tokens are the "answer"
    return audio, audio_lengths, input_ids, text_lengths, labels


def tiny_model(seed: int = 0, **lm_overrides):
    torch.manual_seed(seed)
    cfg = AudioLLMConfig.tiny()
    for k, v in lm_overrides.items():
        setattr(cfg.lm_config, k, v)
    return AudioLLM(cfg).eval()


# ---------------------------------------------------------------------------------------------
# Training configs
# ---------------------------------------------------------------------------------------------


def tiny_model_section(audio_encoder: str = "conv_transformer", lm: str = "llama", heads: dict | None = None,
                       **encoder_options) -> dict:
    """A tiny AudioLLM as a config's ``model`` section (its vocabulary comes from the tokenizer)."""
    model = to_dict(AudioLLMConfig.tiny(audio_encoder=audio_encoder, lm=lm, **(heads or {})))
    model["audio_encoder_config"].update(encoder_options)
    model["lm_config"].pop("vocab_size")
    return model


def write_config(tmp_path: Path, corpus: Path, model: dict | None = None, data: dict | None = None,
                 **train_overrides) -> Path:
    """A small training config over ``corpus`` (the toy corpus), written to ``tmp_path/cfg.yaml``."""
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "data": {"train": str(corpus / "train.jsonl"), "valid": str(corpus / "valid.jsonl"), "max_audio_seconds": 1.0,
                 **(data or {})},
        "tokenizer": {"vocab_size": 300},
        "model": model or tiny_model_section(),
        "train": {"max_steps": 10, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2, "eval_every": 0,
                  "save_every": 0, "log_every": 1, "eval_examples": 8, "max_new_tokens": 8,
                  # float32 everywhere: "auto" would pick bf16 on AMX/AVX512-BF16 CPUs, and the
                  # equivalence tests compare weights to 1e-5
                  "mixed_precision": "no", **train_overrides},
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "cfg.yaml"
    path.write_text("# test config\n" + yaml.safe_dump(cfg))
    return path


# ---------------------------------------------------------------------------------------------
# A stand-in model for evaluation tests
# ---------------------------------------------------------------------------------------------


class LengthEchoModel(torch.nn.Module):
    """`AudioLLM.generate`'s signature; answers each row with its audio length in samples, and
    records every call (lengths, prompts, eos, budget, mode, CTC rows)."""

    def __init__(self, tokenizer):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))  # gives the model a device
        self.tok = tokenizer
        self.calls: list[dict] = []

    def generate(self, audio, audio_lengths, prompt_ids, options=DecodingOptions(), *, eos_id=None, ctc_rows=None,
                 **_):
        assert audio.dim() == 2 and audio.dtype == torch.float32 and audio.shape[0] == len(prompt_ids)
        for i, n in enumerate(audio_lengths.tolist()):
            assert (audio[i, n:] == 0).all()  # zero padding after each row's samples
        self.calls.append({"lengths": audio_lengths.tolist(), "prompts": prompt_ids, "eos_id": eos_id,
                           "max_new_tokens": options.max_new_tokens, "training": self.training,
                           "ctc_weight": options.ctc_weight, "ctc_rows": ctc_rows})
        return [self.tok.encode(f" {n} ") for n in audio_lengths.tolist()]
