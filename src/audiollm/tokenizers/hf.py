"""A pretrained LM's own tokenizer (transformers ``AutoTokenizer``) behind our tokenizer interface.

What the rest of the code uses of a tokenizer is small: ``encode``, ``decode``,
``prompt_ids(question)``, ``pad_id``, ``eos_id``, ``vocab_size``, ``midi`` and
``save_pretrained``. This class provides it for any transformers tokenizer, so a Qwen2 or
Llama checkpoint trains and answers with the vocabulary it was pretrained on:

- the prompt after the audio is the tokenizer's chat template with one user turn and the
  generation prompt (``<|im_start|>user … <|im_start|>assistant`` for Qwen) when the
  checkpoint has one, else ``"User: {question}\\nAssistant:"`` in plain text;
- answers end with the tokenizer's eos token; padding uses its pad token (or eos).

A model directory saves the tokenizer with transformers' ``save_pretrained`` plus
``audiollm_tokenizer.json`` ({"kind": "hf"}), which `load_tokenizer` dispatches on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from audiollm.errors import AudioLLMError, ConfigError, ModelDirError
from audiollm.tokenizers.text import TextTokenizer

MARKER_FILE = "audiollm_tokenizer.json"


class HFTokenizer:
    """Wraps a ``transformers.PreTrainedTokenizerBase``."""

    midi = None  # MIDI event vocabularies are appended only to our own BPE tokenizer

    def __init__(self, tokenizer, source: str = ""):
        self._tok = tokenizer
        self.source = source
        if tokenizer.eos_token_id is None:
            raise ConfigError(f"tokenizer {source}: has no eos token, so answers could not end")
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else self.eos_id
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "HFTokenizer":
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ConfigError("a pretrained tokenizer needs transformers: pip install 'audiollm[hf]'") from None
        try:
            tok = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"cannot load a tokenizer from {path} ({first})") from None
        return cls(tok, str(path))

    @property
    def vocab_size(self) -> int:
        return len(self._tok)  # base vocabulary + added/special tokens

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True).strip()

    def prompt_ids(self, question: str) -> list[int]:
        """The tokens after the audio, ending where the answer starts."""
        if self.has_chat_template:
            ids = self._tok.apply_chat_template([{"role": "user", "content": question}],
                                                add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):  # some versions return a BatchEncoding
                ids = ids["input_ids"]
            return list(ids)
        return self.encode(f"User: {question}\nAssistant:")

    def encode_events(self, tokens: Iterable[str]) -> list[int]:
        raise AudioLLMError("MIDI event answers need audiollm's own BPE tokenizer (not a pretrained LM's)")

    def decode_events(self, ids: Iterable[int]) -> list[str]:
        return []

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self._tok.save_pretrained(str(d))
        (d / MARKER_FILE).write_text(json.dumps({"kind": "hf", "source": self.source}, indent=2) + "\n")


def load_tokenizer(directory: str | os.PathLike):
    """The tokenizer saved in ``directory``: an `HFTokenizer` if marked so, else our BPE one."""
    d = Path(directory)
    if (d / MARKER_FILE).is_file():
        try:
            return HFTokenizer.from_pretrained(d)
        except ConfigError as e:
            raise ModelDirError(f"{d}: {e}") from None
    return TextTokenizer.from_pretrained(d)
