"""Evaluate a model on manifest rows: generate answers, score them per task, report.

``evaluate(model, tokenizer, rows)`` = ``predict`` (greedy answers, deterministic questions)
+ ``score_predictions`` (each task's metrics over its rows) + the evaluation protocols the
rows call for (:mod:`audiollm.protocols`: published benchmark scoring, e.g. MU-LLaMA's
MusicQA metrics or LibriSpeech WER per subset). ``format_table`` prints the results;
``write_json`` saves them with every example's question, answer and prediction.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from audiollm.audio import audio_info, load_audio
from audiollm.config import CTC_DECODE_WEIGHT
from audiollm.decoding.options import DecodingOptions
from audiollm.errors import AudioError, AudioLLMError, ManifestError
from audiollm.inference.answer import generate_answers
from audiollm.tasks import Task, get_task, row_label


@dataclass
class EvalResult:
    """What ``evaluate`` returns: metrics per task, and per-row predictions and questions."""

    results: dict[str, dict[str, float]]
    predictions: list[str]
    questions: list[str]
    notes: list[str] = field(default_factory=list)  # what the protocols want the reader to know


def _task_of(row: Mapping[str, Any], index: int) -> Task:
    if "task" not in row:
        raise ManifestError(f"{row_label(row, index)} has no 'task'")
    task = get_task(row["task"])
    task.validate(row, index)
    return task


def questions_for(rows: Sequence[Mapping[str, Any]], question_seed: int = 0) -> list[str]:
    """The question asked for each row: the row's own, else a paraphrase drawn with
    ``random.Random(question_seed + index)`` — the same every run, independent of batching."""
    return [
        _task_of(row, i).question(row, random.Random(question_seed + i)) for i, row in enumerate(rows)
    ]


def score_predictions(
    rows: Sequence[Mapping[str, Any]], predictions: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Group rows by task (sorted by name) and score each group with its task."""
    if len(rows) != len(predictions):
        raise AudioLLMError(f"{len(predictions)} predictions for {len(rows)} rows")
    groups: dict[str, tuple[list[str], list[Mapping[str, Any]]]] = {}
    for i, (row, pred) in enumerate(zip(rows, predictions)):
        task = _task_of(row, i)
        preds, task_rows = groups.setdefault(task.name, ([], []))
        preds.append(pred)
        task_rows.append(row)
    return {name: get_task(name).score(*groups[name]) for name in sorted(groups)}


def predict(
    model,
    tokenizer,
    rows: Sequence[Mapping[str, Any]],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    question_seed: int = 0,
    max_audio_seconds: float | None = None,
    progress: bool = True,
    load: Callable[[Mapping[str, Any]], torch.Tensor] | None = None,
    ctc_weight: float = CTC_DECODE_WEIGHT,
) -> list[str]:
    """Greedy answers for ``rows``, returned in input order.

    Rows are batched by task, then by audio duration (read from file headers) so each batch
    pads little (text tasks share batches; a windowed task's rows go to its ``generate``); questions come from
    :func:`questions_for`, so the prediction for a row does not depend on the batch size or
    the other rows. ``max_audio_seconds`` refuses (before any work) a manifest with longer
    clips, naming the first one: scoring a silently truncated clip would misreport the model.
    ``None`` feeds whole clips. Tasks that cut audio into windows (transcription) take clips
    of any length. ``load(row)`` replaces reading the row's audio file for untiled tasks
    (training validation passes cached encoder states this way). Text-only tasks
    (text_to_midi) read no audio: their task's ``generate_from_text`` answers the questions.
    Rows of transcript tasks (``aligned_answer``) are decoded jointly with the model's CTC head
    when it has one, with weight ``ctc_weight`` (0 = the LM alone; :mod:`audiollm.ctc_prefix`).
    """
    if batch_size < 1:
        raise AudioLLMError(f"batch_size must be at least 1, got {batch_size}")
    questions = questions_for(rows, question_seed)  # also validates every row up front
    text_only = [not get_task(row["task"]).takes_audio for row in rows]
    durations = [0.0 if t else audio_info(row["audio"]).duration for t, row in zip(text_only, rows)]
    if max_audio_seconds is not None:
        too_long = [i for i, d in enumerate(durations)
                    if d > max_audio_seconds + 1e-6 and get_task(rows[i]["task"]).window_seconds is None]
        if too_long:
            first = too_long[0]
            raise AudioError(
                f"{rows[first]['audio']}: audio is {durations[first]:.1f} s long; the limit is "
                f"{max_audio_seconds:.1f} s ({len(too_long)} row(s) over it; raise --max-seconds or cut the clips)"
            )
    # Text answers of all tasks share batches; a windowed task's rows are batched apart and
    # answered by its own ``generate`` (window, transcribe, stitch).
    groups = [rows[i]["task"] if get_task(rows[i]["task"]).window_seconds is not None or text_only[i] else ""
              for i in range(len(rows))]
    order = sorted(range(len(rows)), key=lambda i: (groups[i], durations[i]))
    predictions: list[str | None] = [None] * len(rows)

    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.inference_mode(), tqdm(
            total=len(rows), desc="evaluate", unit="ex", disable=not progress
        ) as bar:
            start = 0
            while start < len(order):
                group = groups[order[start]]
                idx = [i for i in order[start : start + batch_size] if groups[i] == group]
                start += len(idx)
                batch_questions = [questions[i] for i in idx]
                if text_only[idx[0]]:  # no audio: the task answers from the question alone
                    outputs = get_task(group).generate_from_text(model, tokenizer, [rows[i] for i in idx],
                                                                 batch_questions, max_new_tokens=max_new_tokens,
                                                                 batch_size=batch_size)
                    for i, pred in zip(idx, outputs):
                        predictions[i] = pred
                    bar.update(len(idx))
                    continue
                wavs = [load(rows[i]) if load is not None and not group else load_audio(rows[i]["audio"])
                        for i in idx]
                if group:
                    outputs = get_task(group).generate(model, tokenizer, wavs, batch_questions,
                                                       max_new_tokens=max_new_tokens, batch_size=batch_size)
                else:
                    options = DecodingOptions(max_new_tokens=max_new_tokens, ctc_weight=ctc_weight)
                    texts = generate_answers(model, tokenizer, wavs, batch_questions, options,
                                             ctc_rows=[get_task(rows[i]["task"]).aligned_answer for i in idx])
                    outputs = [get_task(rows[i]["task"]).postprocess(t) for i, t in zip(idx, texts)]
                for i, pred in zip(idx, outputs):
                    predictions[i] = pred
                bar.update(len(idx))
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return [p if p is not None else "" for p in predictions]


def evaluate(model, tokenizer, rows: Sequence[Mapping[str, Any]], *, protocol: str = "auto",
             protocol_options: Mapping[str, Any] | None = None, **kw) -> EvalResult:
    """Predict every row (keyword arguments go to :func:`predict`), score per task, then
    apply the evaluation protocols selected by ``protocol`` (``auto``, ``default`` or names,
    see :mod:`audiollm.protocols`); ``protocol_options`` fill
    :class:`~audiollm.protocols.ProtocolContext` (e.g. ``bertscore_model``, ``tag_scores``).
    """
    from audiollm.evaluation.protocols import ProtocolContext, run_protocols, select

    select(rows, protocol)  # a bad protocol name fails before any generation
    ctx = ProtocolContext(**dict(protocol_options or {}))
    if ctx.bertscore_model and not (Path(ctx.bertscore_model).expanduser() / "config.json").is_file():
        raise AudioLLMError(f"BERTScore model {ctx.bertscore_model}: not a transformers model folder (no config.json)")
    predictions = predict(model, tokenizer, rows, **kw)
    questions = questions_for(rows, kw.get("question_seed", 0))
    results = score_predictions(rows, predictions)
    ctx.model, ctx.tokenizer, ctx.questions = model, tokenizer, questions
    ctx.batch_size = kw.get("batch_size", ctx.batch_size)
    ctx.progress = kw.get("progress", ctx.progress)
    extra = run_protocols(rows, predictions, protocol, ctx)
    results.update(extra.results)
    return EvalResult(results, predictions, questions, extra.notes)


BASELINE_PREFIX = "shuffled_ref/"


def format_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """A plain aligned text table, one line per (task, metric): ``task metric value n``.

    Protocol results appear as further "tasks" (``mullama``, ``librispeech/test-clean``).
    When a group has ``shuffled_ref/<metric>`` baselines they are shown in a last
    ``shuffled_ref`` column on their metric's line, so score and baseline sit side by side.
    """
    has_baseline = any(k.startswith(BASELINE_PREFIX) for m in results.values() for k in m)
    lines = [("task", "metric", "value", "n") + (("shuffled_ref",) if has_baseline else ())]
    for task, metrics in results.items():
        n = metrics.get("n", 0)
        for metric, value in metrics.items():
            if metric == "n" or metric.startswith(BASELINE_PREFIX):
                continue
            line: tuple[str, ...] = (task, metric, f"{value:.4f}", str(int(n)))
            if has_baseline:
                base = metrics.get(BASELINE_PREFIX + metric)
                line += (f"{base:.4f}" if base is not None else "",)
            lines.append(line)
    widths = [max(len(line[c]) for line in lines) for c in range(len(lines[0]))]
    out = []
    for line in lines:
        # Text columns left-aligned, numbers right-aligned.
        cells = [f"{line[0]:<{widths[0]}}", f"{line[1]:<{widths[1]}}"]
        cells += [f"{cell:>{w}}" for cell, w in zip(line[2:], widths[2:])]
        out.append("  ".join(cells))
    return "\n".join(out)


def write_json(
    path: str | os.PathLike,
    results: Mapping[str, Mapping[str, float]],
    predictions: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    questions: Sequence[str] | None = None,
    question_seed: int = 0,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``{"metrics", "n_examples", "examples"}`` atomically (temp file + rename).

    Each example has ``id`` (the row's, else its position), ``task``, ``audio``, ``question``,
    ``answer``, ``prediction`` and, for rows with several references, ``references``.
    ``questions`` defaults to :func:`questions_for` with ``question_seed`` — the questions
    :func:`predict` asked with the same seed. ``notes`` (the protocols' remarks: which
    BERTScore model, how tags were scored) are stored under ``notes`` when there are any.
    """
    if len(predictions) != len(rows):
        raise AudioLLMError(f"{len(predictions)} predictions for {len(rows)} rows")
    if questions is None:
        questions = questions_for(rows, question_seed)
    examples = []
    for i, (row, question, pred) in enumerate(zip(rows, questions, predictions)):
        task = _task_of(row, i)
        example = {
            "id": row.get("id", i),
            "task": task.name,
            "audio": row.get("audio"),
            "question": question,
            "answer": row.get("answer"),
            "prediction": pred,
        }
        refs = task.references(row)
        if example["answer"] is None:  # e.g. transcription: the reference note list
            example["answer"] = refs[0]
        if len(refs) > 1:
            example["references"] = refs
        examples.append(example)
    payload = {
        "metrics": {t: dict(m) for t, m in results.items()},
        "n_examples": len(rows),
        **({"notes": list(notes)} if notes else {}),
        "examples": examples,
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, ensure_ascii=False, allow_nan=False)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p
