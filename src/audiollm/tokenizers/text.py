"""The text tokenizer: byte-level BPE trained on the corpus text, saved beside the model.

Byte-level means no input is ever out of vocabulary. Special tokens frame each turn:
``<|user|> question <|assistant|> answer <|eos|>``. The file format is the `tokenizers`
library's ``tokenizer.json`` plus a ``tokenizer_config.json``, so
``transformers.PreTrainedTokenizerFast.from_pretrained(dir)`` can read it too.

One model vocabulary for text and music: :meth:`TextTokenizer.with_midi` appends the MIDI
event tokens of a :class:`~audiollm.tokenizers.midi.MidiVocab` (a few hundred) after the BPE
vocabulary as added tokens, so their ids are contiguous and the model's vocabulary grows by
exactly that many. They are added as *non-special* tokens: ``encode`` finds them whole in an
answer string (``"<|tie|><|vel_20|><|on_60|>"``), and ``decode`` keeps them (it skips only
the six special tokens), so an event answer travels through the same encode/generate/decode
path as text. ``midi_vocab.json`` beside ``tokenizer.json`` records the event resolution.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from audiollm.errors import AudioLLMError, ModelDirError
from audiollm.tokenizers.midi import MidiVocab

PAD, UNK, BOS, EOS, USER, ASSISTANT = "<|pad|>", "<|unk|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, USER, ASSISTANT)  # ids 0..5 in this order
TOKENIZER_FILE = "tokenizer.json"
MIDI_VOCAB_FILE = "midi_vocab.json"


class TextTokenizer:
    """Thin typed wrapper over a `tokenizers.Tokenizer` with our special tokens."""

    def __init__(self, tokenizer: Tokenizer, midi: MidiVocab | None = None):
        self._tok = tokenizer
        ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if any(i is None for i in ids):
            missing = [t for t, i in zip(SPECIAL_TOKENS, ids) if i is None]
            raise ModelDirError(f"tokenizer lacks special token(s) {', '.join(missing)}")
        self.pad_id, self.unk_id, self.bos_id, self.eos_id, self.user_id, self.assistant_id = ids
        #: The MIDI event vocabulary, or None for a text-only tokenizer.
        self.midi = midi
        self._event_ids: dict[str, int] = {}
        self._event_of: dict[int, str] = {}
        if midi is not None:
            event_ids = [tokenizer.token_to_id(t) for t in midi.tokens]
            missing = [t for t, i in zip(midi.tokens, event_ids) if i is None]
            if missing:
                raise ModelDirError(f"tokenizer lacks {len(missing)} MIDI event token(s), e.g. {missing[0]}")
            self._event_ids = dict(zip(midi.tokens, event_ids))
            self._event_of = {i: t for t, i in self._event_ids.items()}

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

    def with_midi(self, midi: MidiVocab) -> "TextTokenizer":
        """A copy whose vocabulary also holds ``midi``'s event tokens, appended after the
        existing ids (ids ``vocab_size … vocab_size + len(midi.tokens) - 1``)."""
        if self.midi is not None:
            raise AudioLLMError("this tokenizer already has a MIDI vocabulary")
        tok = Tokenizer.from_str(self._tok.to_str())
        clash = [t for t in midi.tokens if tok.token_to_id(t) is not None]
        if clash:
            raise AudioLLMError(f"MIDI event token {clash[0]} is already in the text vocabulary")
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in midi.tokens])
        return TextTokenizer(tok, midi)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode_events(self, tokens: Iterable[str]) -> list[int]:
        """MIDI event token strings → ids (no text parsing); unknown tokens are an error."""
        if self.midi is None:
            raise AudioLLMError("this tokenizer has no MIDI vocabulary (train with a transcription task to add one)")
        try:
            return [self._event_ids[t] for t in tokens]
        except KeyError as e:
            raise AudioLLMError(f"{e.args[0]} is not a MIDI event token of this tokenizer") from None

    def decode_events(self, ids: Iterable[int]) -> list[str]:
        """Ids → the MIDI event tokens among them, in order (text and special ids are skipped)."""
        return [self._event_of[i] for i in ids if i in self._event_of]

    def prompt_ids(self, question: str) -> list[int]:
        """The prompt after the audio: ``<|user|> question <|assistant|>``."""
        return [self.user_id, *self.encode(question), self.assistant_id]

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
        midi_path = d / MIDI_VOCAB_FILE
        if self.midi is not None:
            midi_path.write_text(json.dumps(self.midi.to_dict(), indent=2) + "\n")
        elif midi_path.exists():
            midi_path.unlink()

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "TextTokenizer":
        path = Path(directory) / TOKENIZER_FILE
        if not path.is_file():
            raise ModelDirError(f"{directory}: missing {TOKENIZER_FILE}")
        midi = None
        midi_path = Path(directory) / MIDI_VOCAB_FILE
        if midi_path.is_file():
            try:
                midi = MidiVocab.from_dict(json.loads(midi_path.read_text()))
            except (ValueError, TypeError, AudioLLMError) as e:
                raise ModelDirError(f"{midi_path}: bad MIDI vocabulary ({e})") from None
        return cls(Tokenizer.from_file(str(path)), midi)
