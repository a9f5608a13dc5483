"""Everything about a run short of training it: parameters, a memory estimate, tokens per
example and the first batch decoded (``audiollm train --dry-run``).
"""

from __future__ import annotations

import torch
from accelerate.utils import set_seed

from audiollm.data.batching import make_sampler
from audiollm.data.manifest import load_rows
from audiollm.training.config import ExperimentConfig
from audiollm.training.init_from import init_tokenizer
from audiollm.training.kinds import get_kind


def dry_run(cfg: ExperimentConfig) -> dict:
    """Everything about a run short of training it: parameter counts (total / trainable), a
    memory estimate, tokens per example and the first batch decoded, as a JSON-able dict.

    The memory estimate is weights + gradients and AdamW state of the trainable parameters
    (fp32) + the activations autograd keeps for one micro-batch, measured by running that
    micro-batch's forward pass with a hook on every tensor saved for backward. Works for every
    model type (``model.type``), through the same hooks the training loop uses.
    """
    tc = cfg.train
    kind = get_kind(cfg)
    rows = kind.prepare_rows(load_rows(cfg.data.train, cfg.data.split, list(cfg.data.tasks)), cfg.data.train)
    tokenizer = init_tokenizer(tc.init_from, cfg.model_type) if tc.init_from else kind.make_tokenizer(rows, cfg)
    set_seed(tc.seed)
    model = kind.build(cfg, tokenizer)
    model.train()
    micro = tc.batch_size // tc.grad_accum
    sampler = make_sampler(rows, cfg.data, tc.seed)
    build = kind.example_builder(rows, tokenizer, cfg, train=False)
    examples = [build(i, d) for d, i in enumerate(sampler.indices(0, micro))]
    batch = kind.collate(examples, tokenizer)

    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(**batch)
    audio_lengths = getattr(out, "audio_token_lengths", None)
    audio_tokens = audio_lengths.tolist() if audio_lengths is not None else [0] * len(examples)
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    weight_bytes = sum(p.numel() * p.element_size() for p in params)
    train_bytes = sum(p.numel() for p in trainable) * (4 + 8)  # gradient + AdamW's two moments, fp32
    if tokenizer is None:  # a codec: examples are crops, its "tokens" are frames of codes
        rate, hop = cfg.model.sample_rate, cfg.model.hop_length
        examples = [{"seconds": e["length"] / rate, "input_ids": []} for e in examples]
        audio_tokens = [-(-int(e["seconds"] * rate) // hop) for e in examples]
    first = []
    for e, a in zip(examples, audio_tokens):
        ids = list(e["input_ids"])
        answer = [t for t, lab in zip(ids, e["labels"]) if lab != -100] if "labels" in e else []
        prompt = ids[: len(ids) - len(answer)]
        entry = {"seconds": round(e["seconds"], 2), "audio_tokens": int(a), "text_tokens": len(ids)}
        if tokenizer is not None:
            entry["prompt" if answer else "text"] = tokenizer.decode(prompt)
        if answer:
            entry["answer"] = tokenizer.decode(answer)
        first.append(entry)
    per_example = [int(a) + len(e["input_ids"]) for e, a in zip(examples, audio_tokens)]
    gib = 2**30
    return {
        "model_type": kind.name,
        "parameters": {"total": sum(p.numel() for p in params), "trainable": sum(p.numel() for p in trainable)},
        "memory_gib": {
            "weights": round(weight_bytes / gib, 4),
            "gradients_and_optimizer": round(train_bytes / gib, 4),
            "activations_per_micro_batch": round(saved[0] / gib, 4),
            "total_estimate": round((weight_bytes + train_bytes + saved[0]) / gib, 4),
        },
        "tokens_per_example": {"mean": round(sum(per_example) / len(per_example), 1), "max": max(per_example),
                               "audio_mean": round(sum(audio_tokens) / len(audio_tokens), 1),
                               "text_mean": round(sum(len(e["input_ids"]) for e in examples) / len(examples), 1)},
        "tokenizer": {"kind": type(tokenizer).__name__ if tokenizer is not None else "none",
                      "vocab_size": tokenizer.vocab_size if tokenizer is not None else 0},
        "micro_batch": micro,
        "first_batch": first,
    }

