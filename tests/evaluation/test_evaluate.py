"""Evaluation plumbing with a fake model: ordering, questions, grouping, table and JSON.

The fake model "answers" with the number of real audio samples it was given for each row,
so a prediction shows which row's audio reached which output slot.
"""

from __future__ import annotations

import json

import pytest
from helpers import LengthEchoModel

from audiollm.audio import load_audio
from audiollm.data.manifest import read_manifest
from audiollm.errors import AudioError, AudioLLMError, ManifestError
from audiollm.evaluation.evaluate import (
    evaluate,
    format_table,
    predict,
    questions_for,
    score_predictions,
    write_json,
)
from audiollm.inference.api import AudioLanguageModel
from audiollm.tasks import TAGGING_QUESTIONS
from audiollm.tokenizers.text import TextTokenizer


@pytest.fixture(autouse=True)
def _needs_wordnet(wordnet):
    """Caption and QA rows are scored with METEOR, which needs WordNet (conftest installs it)."""


@pytest.fixture
def setup(toy_corpus):
    rows = read_manifest(toy_corpus / "test.jsonl")
    texts = [r["answer"] for r in rows] + list(TAGGING_QUESTIONS) + [str(n) for n in range(10)]
    tok = TextTokenizer.train(texts * 3, vocab_size=300)
    return rows, tok, LengthEchoModel(tok)


def test_predictions_come_back_in_input_order(setup):
    rows, tok, model = setup
    preds = predict(AudioLanguageModel(model, tok), rows, batch_size=3, max_new_tokens=7, progress=False)
    assert preds == [str(load_audio(r["audio"]).shape[0]) for r in rows]
    assert all(c["eos_id"] == tok.eos_id and c["max_new_tokens"] == 7 for c in model.calls)
    # Batches hold rows of similar duration: lengths are non-decreasing across calls.
    flat = [n for c in model.calls for n in c["lengths"]]
    assert flat == sorted(flat)


def test_questions_are_deterministic_and_independent_of_batching(setup):
    rows, tok, model = setup
    q0 = questions_for(rows, question_seed=0)
    assert q0 == questions_for(rows, question_seed=0)
    assert any(a != b for a, b in zip(q0, questions_for(rows, question_seed=1)))
    for r, q in zip(rows, q0):
        if r["task"] == "qa":
            assert q == r["question"]
    asked: dict[int, str] = {}
    for bs in (1, 4):
        model.calls.clear()
        predict(AudioLanguageModel(model, tok), rows, batch_size=bs, progress=False)
        prompts = [tok.decode(p) for c in model.calls for p in c["prompts"]]
        assert sorted(prompts) == sorted(q0)
        asked[bs] = prompts
    assert sorted(asked[1]) == sorted(asked[4])


def test_eval_mode_during_generation_and_restored_after(setup):
    rows, tok, model = setup
    model.train()
    predict(AudioLanguageModel(model, tok), rows[:2], progress=False)
    assert not any(c["training"] for c in model.calls)
    assert model.training


def test_max_audio_seconds_refuses_long_clips_up_front(setup):
    rows, tok, model = setup
    with pytest.raises(AudioError, match=r"the limit is 0.5 s \(\d+ row\(s\) over it"):
        predict(AudioLanguageModel(model, tok), rows, max_audio_seconds=0.5, progress=False)
    assert model.calls == []  # refused before any generation
    assert len(predict(AudioLanguageModel(model, tok), rows, max_audio_seconds=5.0, progress=False)) == len(rows)


def test_score_predictions_groups_by_task(setup):
    rows, _, _ = setup
    perfect = score_predictions(rows, [r["answer"] for r in rows])
    assert list(perfect) == sorted({r["task"] for r in rows})
    assert perfect["asr"]["wer"] == 0.0 and perfect["asr"]["n"] == sum(r["task"] == "asr" for r in rows)
    assert perfect["tagging"]["accuracy"] == 1.0 and perfect["qa"]["exact_match"] == 1.0
    wrong = score_predictions(rows, ["zzz"] * len(rows))
    assert wrong["tagging"]["accuracy"] == 0.0 and wrong["asr"]["wer"] > 0


def test_bad_rows_fail_before_generation(setup):
    rows, tok, model = setup
    with pytest.raises(AudioLLMError, match="unknown task 'nope'"):
        predict(AudioLanguageModel(model, tok), [{**rows[0], "task": "nope"}], progress=False)
    bad_qa = {k: v for k, v in rows[1].items() if k != "question"}
    with pytest.raises(ManifestError, match="question"):
        predict(AudioLanguageModel(model, tok), [bad_qa], progress=False)
    assert model.calls == []
    with pytest.raises(AudioLLMError, match="2 predictions for 1 rows"):
        score_predictions(rows[:1], ["a", "b"])


def test_evaluate_table_and_json(setup, tmp_path):
    rows, tok, model = setup
    result = evaluate(AudioLanguageModel(model, tok), rows, batch_size=2, progress=False)
    assert len(result.predictions) == len(result.questions) == len(rows)
    table = format_table(result.results)
    header, *lines = table.splitlines()
    assert header.split() == ["task", "metric", "value", "n"]
    assert any(line.split()[:2] == ["asr", "wer"] for line in lines)
    assert len({len(line) for line in table.splitlines()}) == 1  # aligned columns

    out = tmp_path / "res" / "eval.json"
    write_json(out, result.results, result.predictions, rows)
    data = json.loads(out.read_text())
    assert data["metrics"] == result.results and data["n_examples"] == len(rows)
    ex = data["examples"]
    assert [e["id"] for e in ex] == [r["id"] for r in rows]
    assert [e["prediction"] for e in ex] == result.predictions
    assert [e["question"] for e in ex] == result.questions  # same seed → same questions
    assert set(ex[0]) >= {"id", "task", "question", "answer", "prediction"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["eval.json"]  # no temp files left


def test_write_json_is_atomic(setup, tmp_path):
    rows, _, _ = setup
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "eval.json"
    out.write_text("previous\n")
    with pytest.raises(ValueError):  # NaN is not valid JSON: the write fails midway
        write_json(out, {"asr": {"wer": float("nan"), "n": 1}}, ["x"] * len(rows), rows)
    assert out.read_text() == "previous\n"
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]


def test_transcript_rows_are_decoded_jointly_with_the_ctc_head(setup):
    rows, tok, _ = setup
    model = LengthEchoModel(tok)
    asr_questions = {q for q, r in zip(questions_for(rows, 0), rows) if r["task"] == "asr"}
    other_questions = {q for q, r in zip(questions_for(rows, 0), rows) if r["task"] != "asr"}
    assert asr_questions and not asr_questions & other_questions
    predict(AudioLanguageModel(model, tok), rows, batch_size=4, progress=False, ctc_weight=0.5)
    marked = 0
    for call in model.calls:
        if call["ctc_rows"] is None:  # a batch without transcripts is decoded as before
            call["ctc_rows"] = [False] * len(call["prompts"])
        else:
            assert call["ctc_weight"] == 0.5 and len(call["ctc_rows"]) == len(call["prompts"])
        for prompt, joint in zip(call["prompts"], call["ctc_rows"]):
            assert any(q in tok.decode(prompt) for q in (asr_questions if joint else other_questions))
        marked += sum(call["ctc_rows"])
    assert marked == sum(r["task"] == "asr" for r in rows)
    model.calls.clear()
    predict(AudioLanguageModel(model, tok), rows, batch_size=4, progress=False, ctc_weight=0.0)  # off: the LM alone
    assert all(call["ctc_weight"] == 0.0 for call in model.calls)
