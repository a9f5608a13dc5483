"""Validation of a generative model during training: teacher-forced loss and task metrics on
a fixed, task-stratified subset of the validation rows."""

from __future__ import annotations

import contextlib

from audiollm.data.batching import ExampleBuilder, collate, to_device
from audiollm.data.feature_cache import FeatureCache
from audiollm.evaluation.evaluate import predict, score_predictions
from audiollm.tasks import get_task
from audiollm.training.config import ExperimentConfig


def validate_generation(model, rows: list[dict], cfg: ExperimentConfig, features: FeatureCache | None,
                        autocast=contextlib.nullcontext, codes: FeatureCache | None = None,
                        pattern=None) -> dict[str, float]:
    """Teacher-forced loss plus task metrics of ``model`` (an `inference.api.AudioLanguageModel`
    over the network being trained) on a fixed, task-stratified validation subset; ``features``
    stand in for the audio when the run trains from a feature cache. Rows with audio answers
    (``codes``, laid out by ``pattern``) count in the loss (and ``codec_loss``); their audio is
    judged by `audiollm evaluate`, not here."""
    metrics: dict[str, float] = {}
    net, tokenizer = model.model, model.tokenizer
    device = next(net.parameters()).device
    subset = stratified(rows, cfg.train.eval_examples)
    build = ExampleBuilder(subset, tokenizer, seed=cfg.train.seed, max_audio_seconds=cfg.data.max_audio_seconds,
                           features=features, codes=codes, pattern=pattern)
    loss_sum, n, codec_sum, codec_n = 0.0, 0, 0.0, 0
    bs = cfg.train.eval_batch_size
    for start in range(0, len(subset), bs):
        batch = collate([build(i, i) for i in range(start, min(start + bs, len(subset)))], tokenizer.pad_id)
        with autocast():
            out = net(**to_device(batch, device))
        loss_sum += float(out.loss_sum)
        n += int(out.n_targets)
        if "codec_loss" in out.aux_stats:
            codec_sum += float(out.aux_stats["codec_loss"][0])
            codec_n += int(out.aux_stats["codec_loss"][1])
    metrics["loss"] = loss_sum / max(n, 1)
    if codec_n:
        metrics["codec_loss"] = codec_sum / codec_n
    subset = [r for r in subset if not get_task(r["task"]).answers_audio]
    if not subset:
        return metrics
    preds = predict(model, subset, batch_size=bs, max_new_tokens=cfg.train.max_new_tokens,
                    question_seed=cfg.train.seed, progress=False, ctc_weight=cfg.train.ctc_decode_weight,
                    load=(lambda row: features.load(row["audio"])) if features is not None else None)
    for task, values in score_predictions(subset, preds).items():
        for name, value in values.items():
            metrics[f"{task}/{name}"] = float(value)
    return metrics


def stratified(rows: list[dict], n: int) -> list[dict]:
    """Up to ``n`` rows spread evenly over tasks, in manifest order (deterministic)."""
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r)
    per = max(1, n // max(1, len(by_task)))
    return [r for t in sorted(by_task) for r in by_task[t][:per]]

