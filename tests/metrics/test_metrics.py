"""Metric wrappers against hand-computed values, and the offline WordNet setup."""

from __future__ import annotations

import pytest

from audiollm.errors import AudioLLMError
from audiollm.metrics import wordnet as metrics_setup
from audiollm.metrics.labels import multilabel_f1
from audiollm.metrics.text import (
    WordNetMissingError,
    accuracy,
    bleu,
    exact_match,
    meteor,
    normalize_text,
    rouge_l,
    wer_cer,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  Don't STOP—it's 3.5 kHz, in C#!  ", "don't stop it's 3.5 khz in c#"),
        ("Hello,world.", "hello world"),
        ("ＦＵＬＬ－ｗｉｄｔｈ", "full width"),  # NFKC folds full-width letters and hyphen
        ("rock’n’roll 'quoted' dogs'", "rock'n'roll quoted dogs"),  # curly → ', edges stripped
        ("#1 hit, 1,000 fans", "1 hit 1 000 fans"),
        ("tab\tand\nnewline", "tab and newline"),
        ("Seven.", "seven"),
        ("", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_accuracy_and_exact_match():
    assert accuracy(["Piano.", "brass"], ["piano", "strings"]) == 0.5
    assert exact_match(["The cat", "a dog!", "x"], ["the cat.", "A dog", "y"]) == pytest.approx(2 / 3)
    # Several references: any of them counts.
    assert exact_match(["120 bpm"], [["about 120", "120 BPM"]]) == 1.0


def test_wer_cer_known_pair():
    # "the cat sat down" → "the cat sit": 1 substitution + 1 deletion over 4 words.
    out = wer_cer(["The cat sit"], ["the cat sat down"])
    assert out["wer"] == pytest.approx(2 / 4)
    # Characters: "the cat sat down" (16) → "the cat sit": a→i plus " down" deleted = 6 edits.
    assert out["cer"] == pytest.approx(6 / 16)
    assert wer_cer(["Hello, world!"], ["hello world"]) == {"wer": 0.0, "cer": 0.0}


def test_wer_is_corpus_level_and_handles_empty_references():
    # Corpus level: (0 + 2 errors) / (1 + 5 words) = 1/3, not the mean of 0 and 2/5.
    assert wer_cer(["yes", "a b c"], ["yes", "a b c d e"])["wer"] == pytest.approx(2 / 6)
    # An empty reference adds its prediction's words as insertions and nothing to the denominator.
    assert wer_cer(["the cat sat", "hello"], ["the cat sat down", ""])["wer"] == pytest.approx(2 / 4)
    assert wer_cer([""], [""]) == {"wer": 0.0, "cer": 0.0}
    assert wer_cer(["one two"], ["?!"])["wer"] == 2.0


def test_bleu_scale_and_short_answers():
    assert bleu(["a dog barks in the park"], ["A dog barks in the park."]) == pytest.approx(1.0)
    # effective order: identical one-word answers are perfect, not 0 for lacking 4-grams.
    assert bleu(["piano"], ["piano"]) == pytest.approx(1.0)
    assert bleu(["a cat meows loudly"], ["a dog barks in the park"]) < 0.2
    # Multiple references, uneven counts per row.
    assert bleu(["x y z w", "b c d e"], [["a b", "x y z w"], "b c d e"]) == pytest.approx(1.0)


def test_rouge_l():
    assert rouge_l(["a dog barks"], ["a dog barks"]) == pytest.approx(1.0)
    # Stemmer: "dogs bark" matches "dog barks".
    assert rouge_l(["the dogs bark"], ["the dog barks"]) == pytest.approx(1.0)
    # LCS "a b" of 3-token pred and 4-token ref: P=2/3, R=2/4, F=4/7.
    assert rouge_l(["a x b"], ["a b y z"]) == pytest.approx(4 / 7)
    assert rouge_l(["nothing here"], [["a dog", "nothing here"]]) == pytest.approx(1.0)


def test_meteor(wordnet):
    assert meteor(["a dog barks loudly now"], ["A dog barks loudly, now."]) == pytest.approx(1.0, abs=0.01)
    # WordNet synonyms ("sofa" and "couch" share a synset) match; unrelated words do not.
    assert meteor(["the sofa is red"], ["the couch is red"]) == pytest.approx(1.0, abs=0.01)
    assert meteor(["the table is red"], ["the couch is red"]) < 0.7
    assert meteor(["completely unrelated words"], ["a dog barks"]) == 0.0


def test_meteor_without_wordnet_names_setup(monkeypatch):
    import nltk.translate.meteor_score as ms

    def missing(*a, **k):
        raise LookupError("Resource wordnet not found.")

    monkeypatch.setattr(ms, "meteor_score", missing)
    with pytest.raises(WordNetMissingError, match="python -m audiollm.metrics.wordnet"):
        meteor(["a"], ["a"])


def test_multilabel_f1_hand_computed():
    preds = [["piano"], ["Piano", "strings"], ["brass"]]
    refs = [["piano"], ["strings"], ["brass", "guitar"]]
    out = multilabel_f1(preds, refs)
    # piano: tp1 fp1 → 2/3; strings 1; brass 1; guitar: fn1 → 0. micro: tp3 fp1 fn1.
    assert out["f1/piano"] == pytest.approx(2 / 3)
    assert out["f1/guitar"] == 0.0
    assert out["macro_f1"] == pytest.approx((2 / 3 + 1 + 1 + 0) / 4)
    assert out["micro_f1"] == pytest.approx(6 / 8)
    assert out["micro_precision"] == out["micro_recall"] == pytest.approx(3 / 4)


def test_length_mismatch_and_empty_input_are_clear_errors():
    with pytest.raises(AudioLLMError, match="2 predictions but 1 references"):
        wer_cer(["a", "b"], ["a"])
    with pytest.raises(AudioLLMError, match="nothing to score"):
        bleu([], [])


def test_lexnames_file_is_the_standard_45():
    lines = metrics_setup.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[5] == "05\tnoun.animal\t1" and lines[44] == "44\tadj.ppl\t3"


def test_setup_is_idempotent_copies_and_loads(tmp_path, wordnet, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))  # install_wordnet adds the target
    corpus = metrics_setup.install_wordnet(tmp_path / "nltk_data")
    first = {p.name: p.stat().st_mtime_ns for p in corpus.iterdir()}
    assert not any(p.is_symlink() for p in corpus.iterdir())
    assert (corpus / "lexnames").read_text() == metrics_setup.lexnames_text()
    metrics_setup.install_wordnet(tmp_path / "nltk_data")  # second run changes nothing
    assert {p.name: p.stat().st_mtime_ns for p in corpus.iterdir()} == first


def test_setup_missing_debian_files_is_one_line_error(tmp_path, capsys):
    with pytest.raises(AudioLLMError, match="apt-get install wordnet-base wordnet-sense-index"):
        metrics_setup.install_wordnet(tmp_path / "out", source=tmp_path / "nowhere")
    assert metrics_setup.main(["--target", str(tmp_path / "out"), "--source", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
