"""Evaluate a model on manifest rows: generate answers, score them per task, report.

``evaluate(model, rows)`` = ``predict`` (greedy answers, deterministic questions)
+ ``score_predictions`` (each task's metrics over its rows) + the evaluation protocols the
rows call for (:mod:`audiollm.evaluation.protocols`: published benchmark scoring, e.g. MU-LLaMA's
MusicQA metrics or LibriSpeech WER per subset). ``format_table`` prints the results;
``write_json`` saves them with every example's question, answer and prediction.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from audiollm.audio import audio_info
from audiollm.data.manifest import load_rows
from audiollm.decoding.options import CTC_DECODE_WEIGHT, DecodingOptions
from audiollm.errors import AudioError, AudioLLMError, ManifestError
from audiollm.evaluation.protocols import ProtocolContext, run_protocols, select
from audiollm.files import atomic_write_text
from audiollm.metrics.asr_judge import normalize_asr
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


def rows_to_evaluate(manifest: str | os.PathLike, model, *, split: str = "", tasks: str = "",
                     limit: int = 0) -> tuple[list[dict], str]:
    """The usable rows of ``manifest`` for ``model`` (of ``split``, of the comma-separated
    ``tasks``, the first ``limit``), and a note when some were left out: rows answered in MIDI
    events when the model has no MIDI vocabulary (a corpus holds text_to_midi rows next to the
    text tasks)."""
    rows = load_rows(str(manifest), split, [t for t in tasks.split(",") if t] if tasks else ())
    note = ""
    if not model.writes_midi:
        events = sorted({r["task"] for r in rows if get_task(r["task"]).answers_are_events})
        if events:
            n = len(rows)
            rows = [r for r in rows if r["task"] not in events]
            note = f"skipped {n - len(rows)} row(s) of {', '.join(events)}: the model has no MIDI vocabulary"
    if not getattr(model, "writes_audio", False):
        audio = sorted({r["task"] for r in rows if get_task(r["task"]).answers_audio})
        if audio:
            n = len(rows)
            rows = [r for r in rows if r["task"] not in audio]
            note = "; ".join(filter(None, [note, f"skipped {n - len(rows)} row(s) of {', '.join(audio)}: the model "
                                                 "has no codec heads"]))
    if limit:
        rows = rows[:limit]
    if not rows:
        raise AudioLLMError(f"{manifest}: no rows left to evaluate")
    return rows, note


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
    rows: Sequence[Mapping[str, Any]],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    question_seed: int = 0,
    max_audio_seconds: float | None = None,
    progress: bool = True,
    load: Callable[[Mapping[str, Any]], Any] | None = None,
    ctc_weight: float = CTC_DECODE_WEIGHT,
    judge=None,
) -> list[str]:
    """Each row's prediction from ``model`` (an `inference.api.AudioLanguageModel`), in input order.

    Each row is answered by the pipeline its task names (``Task.pipeline``): ``ask`` rows of
    every task share batches, sorted by audio duration (read from file headers) so each batch
    pads little, decoded greedily; ``transcribe`` rows are cut into their task's windows and
    stitched; ``compose`` rows (text only, no audio) are sampled with their task's
    ``eval_options``. Questions come from :func:`questions_for`, so the prediction for a row
    does not depend on the batch size or the other rows (sampled ones, on the batch size). A
    manifest with an ``ask`` clip longer than ``max_audio_seconds`` is refused before any work,
    naming the first: scoring a silently truncated clip would misreport the model (``None``:
    whole clips). ``load(row)`` replaces reading the audio of ``ask`` rows (training
    validation passes cached encoder states this way). Transcript rows (``aligned_answer``)
    are decoded jointly with the model's CTC head when it has one, with weight ``ctc_weight``.
    ``speak`` rows (tts) are spoken by the model (seeded by row) and their prediction is what
    ``judge`` (`metrics.asr_judge.WhisperJudge`) hears.
    """
    if batch_size < 1:
        raise AudioLLMError(f"batch_size must be at least 1, got {batch_size}")
    questions = questions_for(rows, question_seed)  # also validates every row up front
    tasks = [get_task(row["task"]) for row in rows]
    durations = [audio_info(row["audio"]).duration if t.takes_audio else 0.0 for t, row in zip(tasks, rows)]
    if max_audio_seconds is not None:
        too_long = [i for i, d in enumerate(durations) if d > max_audio_seconds + 1e-6 and tasks[i].pipeline == "ask"]
        if too_long:
            first = too_long[0]
            raise AudioError(
                f"{rows[first]['audio']}: audio is {durations[first]:.1f} s long; the limit is "
                f"{max_audio_seconds:.1f} s ({len(too_long)} row(s) over it; raise --max-seconds or cut the clips)"
            )
    # Text answers of every task share batches; the other pipelines batch each task's rows apart.
    groups = ["" if t.pipeline == "ask" else t.name for t in tasks]
    order = sorted(range(len(rows)), key=lambda i: (groups[i], durations[i]))
    predictions: list[str | None] = [None] * len(rows)
    net = model.model
    was_training = net.training
    net.eval()
    options = DecodingOptions(max_new_tokens=max_new_tokens, ctc_weight=ctc_weight)
    try:
        with torch.inference_mode(), tqdm(total=len(rows), desc="evaluate", unit="ex", disable=not progress) as bar:
            start = 0
            while start < len(order):
                group = groups[order[start]]
                idx = [i for i in order[start : start + batch_size] if groups[i] == group]
                start += len(idx)
                task = tasks[idx[0]]
                qs = [questions[i] for i in idx]
                if task.pipeline == "compose":
                    results = compose_notes(model, task, [rows[i] for i in idx], qs, max_new_tokens=max_new_tokens,
                                            batch_size=batch_size)
                elif task.pipeline == "speak":
                    results = speak_and_hear(model, task, [rows[i] for i in idx], judge, first_seed=start - len(idx))
                elif task.pipeline == "transcribe":
                    results = [t.notes for t in model.transcribe_many(
                        [rows[i]["audio"] for i in idx], qs, window_seconds=task.window_seconds,
                        batch_size=batch_size, max_new_tokens=max(max_new_tokens, task.max_new_tokens))]
                else:
                    clips = [load(rows[i]) if load is not None else rows[i]["audio"] for i in idx]
                    results = model.ask_many(clips, qs, options=options, batch_size=len(idx),
                                             transcripts=[tasks[i].aligned_answer for i in idx])
                for i, result in zip(idx, results):
                    predictions[i] = tasks[i].prediction(result)
                bar.update(len(idx))
    finally:
        net.train(was_training)
    return [p if p is not None else "" for p in predictions]


def speak_and_hear(model, task: Task, rows: Sequence[Mapping[str, Any]], judge, first_seed: int = 0) -> list[str]:
    """What ``judge`` hears in the model's speech for each tts row (sampled, seed = position)."""
    if task.name != "tts":
        raise AudioLLMError(f"evaluate does not score {task.name} rows yet (no judge of generated music here); "
                            "leave them out with --tasks")
    if judge is None:
        raise AudioLLMError("tts rows are scored by what Whisper hears in the speech: pass --whisper DIR "
                            "(`make fsdd` installs models/whisper-tiny.en)")
    sounds = [model.speak(r["text"], voice=r.get("voice"), seed=first_seed + k) for k, r in enumerate(rows)]
    heard = judge.transcribe([s.audio if s.audio.size else np.zeros(160, np.float32) for s in sounds],
                             sounds[0].sample_rate)
    return [normalize_asr(h) for h in heard]  # numerals spelled out, as the sentences are written


def compose_notes(model, task: Task, rows: Sequence[Mapping[str, Any]], questions: Sequence[str], *,
                  max_new_tokens: int = 64, batch_size: int = 16, follow_caption: bool = True) -> list[list]:
    """Sampled notes for text-only rows (one evaluation batch), each piece as long as its row
    (at most the task's window), with the task's ``eval_options`` (seeded: repeatable for the
    same rows and batch size); ``follow_caption=False`` lets a model with attribute tokens
    write its own tempo/key plan."""
    if not model.writes_midi:
        raise AudioLLMError(f"{task.name} rows need a model whose tokenizer has a MIDI vocabulary; "
                            "leave them out (evaluate --tasks) for a text-only model")
    options = task.eval_options.replace(max_new_tokens=max(max_new_tokens, task.eval_options.max_new_tokens))
    generator = torch.Generator().manual_seed(options.seed)
    time_step = model.tokenizer.midi.time_step
    out: list[list] = [[] for _ in rows]
    by_len: dict[float, list[int]] = {}
    for i, row in enumerate(rows):
        by_len.setdefault(round(task.generation_seconds(row, time_step), 6), []).append(i)
    for seconds, idx in sorted(by_len.items()):
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            notes = model.compose_notes([questions[i] for i in part], seconds=seconds, options=options,
                                        generator=generator, follow_caption=follow_caption)
            for i, n in zip(part, notes):
                out[i] = n
    return out


def evaluate(model, rows: Sequence[Mapping[str, Any]], *, protocol: str = "auto",
             protocol_options: Mapping[str, Any] | None = None, **kw) -> EvalResult:
    """Predict every row with ``model`` (an `inference.api.AudioLanguageModel`; keyword
    arguments go to :func:`predict`), score per task, then apply the evaluation protocols
    selected by ``protocol`` (``auto``, ``default`` or names, see
    :mod:`audiollm.evaluation.protocols`); ``protocol_options`` fill
    :class:`~audiollm.evaluation.protocols.ProtocolContext` (e.g. ``bertscore_model``, ``tag_scores``).
    """
    select(rows, protocol)  # a bad protocol name fails before any generation
    ctx = ProtocolContext(**dict(protocol_options or {}))
    if ctx.bertscore_model and not (Path(ctx.bertscore_model).expanduser() / "config.json").is_file():
        raise AudioLLMError(f"BERTScore model {ctx.bertscore_model}: not a transformers model folder (no config.json)")
    predictions = predict(model, rows, **kw)
    questions = questions_for(rows, kw.get("question_seed", 0))
    results = score_predictions(rows, predictions)
    ctx.model, ctx.questions = model, questions
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
    text = json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"  # NaN: an error, no file
    return atomic_write_text(path, text)
