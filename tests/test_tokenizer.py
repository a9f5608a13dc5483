"""Tokenizer: trained offline, round-trips text, saves and loads with its special tokens."""

import pytest

from audiollm.errors import ModelDirError
from audiollm.tokenizers.text import SPECIAL_TOKENS, TextTokenizer


def test_train_roundtrip_save_load(tmp_path):
    texts = ["the red cup is on the table", "A fast organ piece in D minor.", "three hundred and twelve"] * 5
    tok = TextTokenizer.train(texts, vocab_size=320)
    for t in texts[:3] + ["unseen wörds ünïcode 42"]:
        assert tok.decode(tok.encode(t)) == t
    tok.save_pretrained(tmp_path)
    again = TextTokenizer.from_pretrained(tmp_path)
    assert again.encode(texts[1]) == tok.encode(texts[1])
    assert [again.pad_id, again.unk_id, again.bos_id, again.eos_id, again.user_id, again.assistant_id] == list(range(len(SPECIAL_TOKENS)))
    assert again.decode([again.user_id, *again.encode("hi"), again.eos_id]) == "hi"


def test_missing_tokenizer(tmp_path):
    with pytest.raises(ModelDirError, match="missing tokenizer.json"):
        TextTokenizer.from_pretrained(tmp_path)
