"""Task registry, question sampling, validation and scoring."""

from __future__ import annotations

import random

import pytest

from audiollm.errors import AudioLLMError, ManifestError
from audiollm.tasks import (
    ASR_QUESTIONS,
    CAPTION_QUESTIONS,
    TAGGING_QUESTIONS,
    TASKS,
    get_task,
    split_labels,
)


def test_registry_lists_every_task():
    assert set(TASKS) == {"tagging", "asr", "caption", "qa", "transcription", "text_to_midi", "tts", "text_to_audio",
                          "continuation"}
    for name, task in TASKS.items():
        assert task.name == name and get_task(name) is task


def test_unknown_task_names_valid_ones():
    with pytest.raises(AudioLLMError, match="unknown task 'music'.*asr, caption, continuation, qa, tagging, text_to_audio, text_to_midi, transcription, tts"):
        get_task("music")


@pytest.mark.parametrize(
    "name, paraphrases",
    [("tagging", TAGGING_QUESTIONS), ("asr", ASR_QUESTIONS), ("caption", CAPTION_QUESTIONS)],
)
def test_question_sampling_covers_paraphrases_deterministically(name, paraphrases):
    task = get_task(name)
    assert task.questions == paraphrases and len(paraphrases) == 5
    row = {"audio": "x.wav", "answer": "a"}
    rng = random.Random(0)
    drawn = [task.question(row, rng) for _ in range(200)]
    assert set(drawn) == set(paraphrases)
    rng2 = random.Random(0)
    assert [task.question(row, rng2) for _ in range(200)] == drawn


def test_row_question_wins():
    row = {"audio": "x.wav", "answer": "piano", "question": "  What plays here? "}
    for name in ("tagging", "asr", "caption", "qa"):
        assert get_task(name).question(row, random.Random(0)) == "What plays here?"


def test_qa_without_question_is_manifest_error():
    qa = get_task("qa")
    row = {"audio": "clip.wav", "answer": "120 bpm", "id": "q7"}
    with pytest.raises(ManifestError, match="id=q7.*question"):
        qa.question(row, random.Random(0))
    with pytest.raises(ManifestError, match="lacks required key 'question'"):
        qa.validate(row)


def test_validate_names_missing_key():
    with pytest.raises(ManifestError, match="asr row 3 lacks required key 'answer'"):
        get_task("asr").validate({"audio": "a.wav", "answer": "  "}, 3)
    get_task("tagging").validate({"audio": "a.wav", "answer": "piano"})


def test_answer_and_postprocess():
    task = get_task("asr")
    assert task.answer({"answer": " seven "}) == "seven"
    assert task.postprocess("  seven \n") == "seven"


def test_split_labels():
    assert split_labels("Piano, strings; brass, piano") == ["piano", "strings", "brass"]


def test_tagging_scores():
    task = get_task("tagging")
    rows = [{"audio": "a", "answer": "piano"}, {"audio": "b", "answer": "brass"}]
    assert task.score(["Piano.", "brass"], rows) == {"n": 2, "accuracy": 1.0}
    assert task.score(["guitar", "brass"], rows)["accuracy"] == 0.5


def test_tagging_multilabel_adds_f1():
    task = get_task("tagging")
    rows = [
        {"audio": "a", "answer": "piano, strings"},
        {"audio": "b", "answer": "brass", "labels": ["brass", "guitar"]},
    ]
    perfect = task.score(["strings, piano", "guitar, brass"], rows)
    assert perfect["accuracy"] == 1.0 and perfect["micro_f1"] == 1.0 and perfect["macro_f1"] == 1.0
    assert {k for k in perfect if k.startswith("f1/")} == {"f1/piano", "f1/strings", "f1/brass", "f1/guitar"}
    partial = task.score(["piano", "brass"], rows)
    assert partial["accuracy"] == 0.0
    assert partial["micro_recall"] == 0.5 and partial["micro_precision"] == 1.0
    assert partial["f1/strings"] == 0.0


def test_asr_scores():
    task = get_task("asr")
    rows = [{"audio": "a", "answer": "seven"}, {"audio": "b", "answer": "the cat sat down"}]
    perfect = task.score(["Seven.", "the cat sat down"], rows)
    assert perfect == {"n": 2, "wer": 0.0, "cer": 0.0, "exact_match": 1.0}
    wrong = task.score(["eight", "the cat sat"], rows)
    assert wrong["wer"] == pytest.approx(2 / 5) and wrong["exact_match"] == 0.0 and wrong["cer"] > 0


def test_caption_scores_use_all_references(wordnet):
    task = get_task("caption")
    rows = [
        {"audio": "a", "answer": "a dog barks in a quiet park", "answers": ["a loud dog barks twice at night"]},
        {"audio": "b", "answer": "rain falls on a tin roof"},
    ]
    perfect = task.score(["a loud dog barks twice at night", "rain falls on a tin roof"], rows)
    assert perfect["n"] == 2
    assert perfect["bleu"] == pytest.approx(1.0) and perfect["rouge_l"] == pytest.approx(1.0)
    assert perfect["meteor"] > 0.98
    wrong = task.score(["a violin plays a melody", "someone types on a keyboard"], rows)
    assert wrong["bleu"] < 0.3 and wrong["rouge_l"] < 0.5 and wrong["meteor"] < 0.5


def test_qa_scores(wordnet):
    task = get_task("qa")
    rows = [
        {"audio": "a", "question": "What is the tempo?", "answer": "120 bpm"},
        {"audio": "b", "question": "Which key?", "answer": "C# minor", "answers": ["c sharp minor"]},
    ]
    perfect = task.score(["120 BPM", "c sharp minor"], rows)
    assert perfect["exact_match"] == 1.0 and perfect["bleu"] == pytest.approx(1.0)
    assert perfect["rouge_l"] == pytest.approx(1.0) and perfect["meteor"] > 0.9
    wrong = task.score(["90 bpm", "C minor"], rows)
    assert wrong["exact_match"] == 0.0 and wrong["bleu"] < 1.0 and wrong["meteor"] < 0.9


def test_empty_and_mismatched_scoring():
    assert get_task("asr").score([], []) == {"n": 0}
    with pytest.raises(AudioLLMError, match="1 predictions for 2 rows"):
        get_task("asr").score(["a"], [{"answer": "a"}, {"answer": "b"}])
