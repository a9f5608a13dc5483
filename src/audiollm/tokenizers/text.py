"""The text tokenizer: byte-level BPE trained on the corpus text, saved beside the model.

Byte-level means no input is ever out of vocabulary. Special tokens frame each turn:
``<|user|> question <|assistant|> answer <|eos|>``. The file format is the `tokenizers`
library's ``tokenizer.json`` plus a ``tokenizer_config.json``, so
``transformers.PreTrainedTokenizerFast.from_pretrained(dir)`` can read it too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from ..errors import ModelDirError

PAD, UNK, BOS, EOS, USER, ASSISTANT = "<|pad|>", "<|unk|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, USER, ASSISTANT)  # ids 0..5 in this order
TOKENIZER_FILE = "tokenizer.json"


class TextTokenizer:
    """Thin typed wrapper over a `tokenizers.Tokenizer` with our special tokens."""

    def __init__(self, tokenizer: Tokenizer):
        self._tok = tokenizer
        ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if any(i is None for i in ids):
            missing = [t for t, i in zip(SPECIAL_TOKENS, ids) if i is None]
            raise ModelDirError(f"tokenizer lacks special token(s) {', '.join(missing)}")
        self.pad_id, self.unk_id, self.bos_id, self.eos_id, self.user_id, self.assistant_id = ids

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 2000, min_frequency: int = 2) -> "TextTokenizer":
        """Learn a byte-level BPE vocabulary from ``texts`` (deterministic for a fixed input order)."""
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True).strip()

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(d / TOKENIZER_FILE))
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "pad_token": PAD, "unk_token": UNK, "bos_token": BOS, "eos_token": EOS,
            "additional_special_tokens": [USER, ASSISTANT],
        }
        (d / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "TextTokenizer":
        path = Path(directory) / TOKENIZER_FILE
        if not path.is_file():
            raise ModelDirError(f"{directory}: missing {TOKENIZER_FILE}")
        return cls(Tokenizer.from_file(str(path)))
