"""Tokenizer: trained offline, round-trips text, saves and loads with its special tokens."""

import pytest

from audiollm.errors import AudioLLMError, ModelDirError
from audiollm.music.notes import Note
from audiollm.tokenizers.midi import MidiVocab, tokens_to_text
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


def test_midi_events_join_the_text_vocabulary(tmp_path):
    text = TextTokenizer.train(["transcribe the notes please"] * 5, vocab_size=300)
    assert text.midi is None
    vocab = MidiVocab(programs=(0, 40))
    tok = text.with_midi(vocab)
    n_text = text.vocab_size
    assert tok.vocab_size == n_text + len(vocab.tokens) and len(vocab.tokens) < 400
    events = vocab.encode_windows([Note(60, 0.0, 0.5, 90, 40), Note(64, 0.2, 1.4, 50)], 1.0)
    flat = [t for w in events for t in w]
    ids = tok.encode_events(flat)
    assert min(ids) >= n_text  # event ids come after every text id...
    assert sorted(tok.encode_events(vocab.tokens)) == list(range(n_text, tok.vocab_size))  # ...contiguously
    assert tok.encode(tokens_to_text(flat)) == ids  # an answer string encodes to the same ids
    assert tok.decode(ids) == tokens_to_text(flat)  # and decode keeps them (only specials are skipped)
    assert tok.decode_events([tok.user_id, *tok.encode("notes"), *ids, tok.eos_id]) == flat
    assert tok.encode("transcribe the notes") == text.encode("transcribe the notes")  # text is unchanged
    tok.save_pretrained(tmp_path)
    again = TextTokenizer.from_pretrained(tmp_path)
    assert again.midi == vocab and again.encode_events(flat) == ids and again.vocab_size == tok.vocab_size
    with pytest.raises(AudioLLMError, match="already has a MIDI vocabulary"):
        tok.with_midi(vocab)
    with pytest.raises(AudioLLMError, match="no MIDI vocabulary"):
        text.encode_events(flat)
    with pytest.raises(AudioLLMError, match="<|prog_3|> is not a MIDI event token"):
        tok.encode_events(["<|prog_3|>"])
    (tmp_path / "midi_vocab.json").write_text('{"velocity_bins": 7}')  # tokens no longer match the file
    with pytest.raises(ModelDirError, match="lacks .* MIDI event token"):
        TextTokenizer.from_pretrained(tmp_path)
    text.save_pretrained(tmp_path)  # a text-only save replaces the MIDI description
    assert TextTokenizer.from_pretrained(tmp_path).midi is None
