"""MusicQA-style QA generation: template facts only, the Q/A parser, and the LLM generator
driven by a tiny random Llama (garbage out: dropped and counted)."""

from __future__ import annotations

import json

import pytest

from audiollm.cli.parser import main
from audiollm.data.qa import (
    DESCRIBE_QUESTIONS,
    LLMCompleter,
    clip_facts,
    generate_qa,
    parse_qa_text,
    template_pairs,
)

TAG_ROW = {"audio": "/d/a.mp3", "task": "tagging", "labels": ["guitar", "rock", "fast", "male vocal", "sad"],
           "split": "test", "id": "magnatagatune-1"}
CAPTION_ROW = {"audio": "/d/b.wav", "task": "caption", "answer": "A calm piano piece.", "id": "musiccaps-1",
               "split": "train"}


def test_template_states_only_labelled_facts():
    rows, stats = generate_qa([TAG_ROW, CAPTION_ROW])
    by_clip = {a: {r["qa_type"]: r for r in rows if r["audio"] == a} for a in ("/d/a.mp3", "/d/b.wav")}
    tagged = by_clip["/d/a.mp3"]
    assert tagged["describe"]["question"] == DESCRIBE_QUESTIONS["describe"]
    assert {"hear", "infer", "tempo", "instruments", "vocals", "mood", "genre"} <= set(tagged)
    assert "key" not in tagged  # no key label, no key question
    assert tagged["tempo"]["answer"] == "The music is fast."
    assert tagged["genre"]["answer"] == "Rock." and tagged["vocals"]["answer"] == "Yes: male vocal."
    # A caption alone: described by the caption; no tempo, mood, genre or instrument facts.
    caption = by_clip["/d/b.wav"]
    assert set(caption) == {"describe"} and caption["describe"]["answer"] == "A calm piano piece."
    assert stats.clips == 2 and stats.rows == len(rows)
    assert all(r["task"] == "qa" and r["generator"] == "template" and r["split"] for r in rows)
    assert rows == generate_qa([TAG_ROW, CAPTION_ROW])[0]  # deterministic


def test_template_uses_structured_labels_and_merges_rows_of_a_clip():
    import random

    corpus = {"audio": "/d/c.wav", "task": "tagging", "answer": "keyboard", "family": "keyboard", "tempo_bpm": 92,
              "tempo_class": "medium", "key": "G major", "id": "m1-tagging"}
    cap = {"audio": "/d/c.wav", "task": "caption", "answer": "A medium-tempo keyboard piece in G major.", "id": "m1-caption"}
    (facts,) = clip_facts([corpus, cap])
    assert facts.source_ids == ["m1-tagging", "m1-caption"] and facts.tags == []
    pairs = {k: a for k, _, a in template_pairs(facts, random.Random(0))}
    assert pairs["tempo"] == "The tempo is about 92 beats per minute (medium)."
    assert pairs["key"] == "It is in G major." and "mood" not in pairs and "genre" not in pairs


def test_parser_reads_well_formed_text():
    text = ("Here are the pairs:\n"
            "1. Q: What is the tempo of the song? A: It is fast, around 140 bpm.\n"
            "Q:Which instruments are played?\tA:Electric guitar and drums.\n"
            "Question: What mood does the music convey?\n"
            "Answer: An energetic, rebellious mood.\n"
            "- Q: What is the tempo of the song? A: duplicate question, dropped\n")
    assert parse_qa_text(text) == [
        ("What is the tempo of the song?", "It is fast, around 140 bpm."),
        ("Which instruments are played?", "Electric guitar and drums."),
        ("What mood does the music convey?", "An energetic, rebellious mood."),
    ]


@pytest.mark.parametrize("text", ["", "no pairs at all here", "Q: ## A: ok", "Q: what is it? A: ", "Q: Is it fast?\n",
                                  "A: orphan answer", "Q: \u0000\u0001 ÿÿÿ ??? A: \u0002\u0003"])
def test_parser_rejects_malformed_text(text):
    assert parse_qa_text(text) == []


def test_llm_generator_counts_and_drops_malformed_generations():
    answers = iter(["Q: Describe the audio A: Loud rock with guitar.\nQ: Is there singing? A: Yes, a male voice.",
                    "ĠĠ zzz qq"])
    seen_prompts = []

    def complete(prompts):
        seen_prompts.extend(prompts)
        return [next(answers) for _ in prompts]

    rows, stats = generate_qa([TAG_ROW, CAPTION_ROW], generator="llm", complete=complete)
    assert stats.generations == 2 and stats.malformed == 1 and stats.rows == 2
    assert [r["qa_type"] for r in rows] == ["describe", "open"] and rows[0]["generator"] == "llm"
    assert "Tags: guitar, rock, fast, male vocal, sad" in seen_prompts[0]
    assert "Captions: A calm piano piece." in seen_prompts[1]
    assert "1 of 2 generations malformed and dropped" in stats.summary("llm")


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    d = tmp_path_factory.mktemp("llm")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = ["Q: What is the tempo? A: It is fast.", "Describe the audio", "Tags: guitar, rock, piano, calm"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>", "</s>", "<pad>"]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                                eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(d)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=fast.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                                   bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                                   pad_token_id=fast.pad_token_id)
    transformers.LlamaForCausalLM(cfg).eval().save_pretrained(d)
    return d


def test_llm_generator_with_a_tiny_random_llama(tiny_llm, tmp_path, capsys):
    complete = LLMCompleter(tiny_llm, max_new_tokens=24)
    texts = complete(["Tags: guitar, rock"])
    assert isinstance(texts[0], str)
    rows, stats = generate_qa([TAG_ROW, CAPTION_ROW], generator="llm", complete=complete)
    # A random model writes garbage: every generation is malformed, dropped and counted.
    assert stats.generations == 2 and stats.malformed == 2 and rows == []

    manifest = tmp_path / "src.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in (TAG_ROW, CAPTION_ROW)) + "\n")
    code = main(["data", "qa", "--from", str(manifest), "--out", str(tmp_path / "qa.jsonl"), "--generator", "llm",
                 "--llm", str(tiny_llm), "--max-new-tokens", "16"])
    err = capsys.readouterr().err
    assert code == 2 and "audiollm: error: nothing written" in err and "2 of 2 generations malformed" in err


def test_data_qa_cli(tmp_path, capsys):
    manifest = tmp_path / "src.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in (TAG_ROW, CAPTION_ROW)) + "\n")
    out = tmp_path / "qa.jsonl"
    assert main(["data", "qa", "--from", str(manifest), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert f"wrote {len(rows)} QA pairs for 2 clip(s) (template generator) to {out}" in printed
    for argv, fragment in ((["--generator", "llm"], "needs --llm"),
                           (["--llm", str(tmp_path)], "only used with --generator llm"),
                           (["--generator", "llm", "--llm", str(tmp_path)], "no config.json")):
        code = main(["data", "qa", "--from", str(manifest), "--out", str(out), *argv])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("audiollm: error:") and fragment in err and "Traceback" not in err
    empty = tmp_path / "asr.jsonl"
    empty.write_text(json.dumps({"audio": "/d/x.wav", "task": "asr", "answer": "hello"}) + "\n")
    assert main(["data", "qa", "--from", str(empty), "--out", str(out)]) == 2
    assert "no caption or tag rows" in capsys.readouterr().err
