"""The one training loop, on `accelerate.Accelerator`: 1 process or N, same code.

Per optimizer step the GLOBAL batch is a fixed slice of the mixture stream (draws
``step·B … step·B+B-1``); process ``r`` of ``W`` takes its contiguous share, split into
``grad_accum`` micro-batches. The loss is summed over real target tokens and divided by
the target count of the whole global batch (all-reduced), times ``W`` to undo DDP's mean,
so gradients are identical for any (processes × accumulation) split of the same batch.
What differs between model types (a generative AudioLLM, a contrastive MuLaN) — rows,
tokenizer, batch building, the loss normaliser's count, validation — comes from the
``MODEL_KINDS`` entry named by ``model.type``; the loop itself is the same. A run can start
from a saved model's weights (``train.init_from``, `training.init_from`).

Checkpoints carry model, optimizer, scheduler, RNG and the step (which fixes the data
order), are written atomically, and one is saved on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
import warnings
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from audiollm.config import to_dict
from audiollm.data.batching import length_groups, make_sampler, to_device
from audiollm.data.manifest import load_rows
from audiollm.errors import AudioLLMError, ConfigError
from audiollm.files import commit_dir
from audiollm.models.hub import save_model
from audiollm.models.registry import MODELS
from audiollm.training.checkpoint import (
    checkpoint_dir,
    prune_checkpoints,
    read_state,
    resolve_resume,
    write_state,
)
from audiollm.training.config import ExperimentConfig, save_config
from audiollm.training.init_from import init_tokenizer, init_weights
from audiollm.training.kinds import get_kind

LOWER_IS_BETTER = ("loss", "wer", "cer", "t2a_median_rank", "a2t_median_rank", "mel_distance")


class TrainingInterrupted(AudioLLMError):
    """Ctrl-C during training: a checkpoint was saved; exit 130 like any interrupted tool."""

    exit_code = 130


def train(cfg: ExperimentConfig, *, resume: str | None = None, progress: bool = True) -> Path:
    """Train per ``cfg``; returns the final model directory (``output_dir/final``)."""
    tc = cfg.train
    kind = get_kind(cfg)
    run_dir = Path(cfg.output_dir)
    # accelerate keeps the mixed-precision setting process-wide: a second train() in one process
    # (a notebook, the tests) may ask for another. The distributed state (PartialState) is kept.
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # lets `accelerate launch` run N CPU processes (gloo)
        mixed_precision=_precision(tc.mixed_precision),
        log_with=None if tc.log_with == "none" else tc.log_with,
        project_dir=str(run_dir),
    )
    world = accelerator.num_processes
    if tc.batch_size % (world * tc.grad_accum):
        raise ConfigError(
            f"train.batch_size={tc.batch_size} must divide evenly into {world} process(es) × "
            f"train.grad_accum={tc.grad_accum} micro-batches"
        )
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    set_seed(tc.seed)
    main = accelerator.is_main_process

    tasks = list(cfg.data.tasks)
    train_rows = kind.prepare_rows(load_rows(cfg.data.train, cfg.data.split, tasks), cfg.data.train)
    valid_rows = kind.prepare_rows(load_rows(cfg.data.valid, cfg.data.valid_split, tasks), cfg.data.valid) if cfg.data.valid else []
    ckpt = resolve_resume(resume) if resume else None
    if ckpt is not None:
        tokenizer = MODELS[cfg.model_type].module_cls.load_tokenizer(cfg.model, run_dir_of(ckpt) / "tokenizer")
    elif tc.init_from:
        tokenizer = init_tokenizer(tc.init_from, cfg.model_type)
    else:
        tokenizer = kind.make_tokenizer(train_rows, cfg)
    if main:  # the run folder documents itself, also when resuming into a new folder
        run_dir.mkdir(parents=True, exist_ok=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(run_dir / "tokenizer")
        save_config(cfg, run_dir / "config.yaml")

    model = kind.build(cfg, tokenizer)
    init_parts: list[str] = []  # the parts copied from train.init_from (recorded in checkpoints)
    if tc.init_from and ckpt is None:
        init_parts = init_weights(model, tc.init_from, tc.init_parts, cfg.model_type)
        if main:
            print(f"initialised {', '.join(init_parts)} from {tc.init_from}")
    optimizer = torch.optim.AdamW(
        param_groups(model, tc.weight_decay), lr=tc.lr, betas=(tc.beta1, tc.beta2)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(tc))
    model, optimizer = accelerator.prepare(model, optimizer)
    # The scheduler is stepped by hand (accelerate would step it once per process) and
    # checkpointed as a registered object.
    accelerator.register_for_checkpointing(scheduler)
    if tc.log_with != "none":
        accelerator.init_trackers(run_dir.name, config=_flat(to_dict(cfg)))

    state = {"step": 0, "best_value": None, "best_step": None, "metric": tc.best_metric, "init_parts": init_parts}
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        state.update(read_state(ckpt))
        if main:
            print(f"resumed from {ckpt} at step {state['step']}")

    sampler = make_sampler(train_rows, cfg.data, tc.seed)
    build = kind.example_builder(train_rows, tokenizer, cfg, train=True)
    per_rank = tc.batch_size // world
    micro = per_rank // tc.grad_accum
    rank = accelerator.process_index

    bar = tqdm(total=tc.max_steps, initial=state["step"], disable=not (main and progress), desc="train", dynamic_ncols=True)
    log_path = run_dir / "log.jsonl"
    t_last, tokens_since = time.perf_counter(), 0
    step = state["step"]
    try:
        while step < tc.max_steps:
            model.train()
            first = step * tc.batch_size + rank * per_rank
            draws = list(range(first, first + per_rank))
            rows_idx = sampler.indices(draws[0], draws[-1] + 1)
            examples = [build(i, d) for i, d in zip(rows_idx, draws)]
            batches = [
                kind.collate(group, tokenizer)
                for k in range(tc.grad_accum)
                for group in length_groups(examples[k * micro : (k + 1) * micro], tc.length_groups)
            ]
            local_targets = sum(kind.count(b) for b in batches)
            n_targets = accelerator.reduce(torch.tensor(float(local_targets), device=accelerator.device), "sum")
            loss_total = 0.0
            aux_totals: dict[str, torch.Tensor] = {}  # name → (sum, count) over this step's micro-batches
            for k, batch in enumerate(batches):
                batch = to_device(batch, accelerator.device)
                sync = contextlib.nullcontext() if k == len(batches) - 1 else accelerator.no_sync(model)
                with sync, accelerator.autocast():
                    out = model(**batch)
                    objective = out.loss_sum if out.aux_loss_sum is None else out.loss_sum + out.aux_loss_sum
                    loss = objective / n_targets * world
                accelerator.backward(loss)
                loss_total += float(out.loss_sum.detach())
                for name, (total, count) in out.aux_stats.items():  # kept on the device: read only when logged
                    pair = torch.stack([total.float(), count.float()])
                    aux_totals[name] = pair + aux_totals[name] if name in aux_totals else pair
                tokens_since += kind.throughput(batch)
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip) if tc.grad_clip > 0 else None
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            state["step"] = step

            loss_mean = float(accelerator.reduce(torch.tensor(loss_total, device=accelerator.device), "sum") / n_targets)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_mean:.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
            if step % tc.log_every == 0 or step == tc.max_steps:
                now = time.perf_counter()
                record = {
                    "step": step,
                    "loss": round(loss_mean, 5),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": None if grad_norm is None else round(float(grad_norm), 4),
                    kind.throughput_name: round(tokens_since * world / max(now - t_last, 1e-9), 1),
                }
                for name in sorted(aux_totals):  # the same names on every process: one model
                    total, count = accelerator.reduce(aux_totals[name], "sum").tolist()
                    record[name] = round(total / count, 5) if count else None
                t_last, tokens_since = now, 0
                _log(accelerator, log_path, record)

            is_last = step == tc.max_steps
            if valid_rows and ((tc.eval_every and step % tc.eval_every == 0) or is_last):
                metrics = validate(accelerator, kind, model, tokenizer, valid_rows, cfg)
                _log(accelerator, log_path, {"step": step, **{f"valid/{k}": v for k, v in metrics.items()}})
                if main:
                    bar.write(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if not k.endswith("/n")))
                _update_best(accelerator, model, tokenizer, cfg, state, metrics)
            if (tc.save_every and step % tc.save_every == 0) or is_last:
                save_checkpoint(accelerator, run_dir, state, tc.keep_checkpoints)
    except KeyboardInterrupt:
        bar.close()
        path = save_checkpoint(accelerator, run_dir, state, tc.keep_checkpoints)
        raise TrainingInterrupted(f"interrupted at step {step}; checkpoint saved to {path} (continue with --resume {run_dir})") from None
    bar.close()

    final = run_dir / "final"
    if main:
        card = {"run": str(run_dir), "steps": step, "train": cfg.data.train, "init_from": tc.init_from,
                "init_parts": state.get("init_parts", []),
                "best": {k: state[k] for k in ("metric", "best_value", "best_step")}}
        save_model(final, accelerator.unwrap_model(model), tokenizer, card=card, train_config=cfg)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # clean gloo teardown (no abort at exit)
    return final


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (embeddings, linears); none on norms, biases and gains."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(tc):
    """Linear warmup to 1, then cosine to ``min_lr_ratio`` at ``max_steps``."""

    def f(step: int) -> float:
        if step < tc.warmup_steps:
            return (step + 1) / tc.warmup_steps
        progress = (step - tc.warmup_steps) / max(1, tc.max_steps - tc.warmup_steps)
        return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


@torch.no_grad()
def validate(accelerator: Accelerator, kind, model, tokenizer, rows: list[dict], cfg: ExperimentConfig) -> dict[str, float]:
    """The model kind's validation metrics, computed on the main process in eval mode."""
    metrics: dict[str, float] = {}
    if accelerator.is_main_process:
        net = accelerator.unwrap_model(model)
        net.eval()
        metrics = kind.validate(net, tokenizer, rows, cfg, autocast=accelerator.autocast)
        net.train()
    accelerator.wait_for_everyone()
    return metrics


def save_checkpoint(accelerator: Accelerator, run_dir: Path, state: dict, keep: int) -> Path:
    """Full resumable state, written under a temp name and renamed into place."""
    final = checkpoint_dir(run_dir, state["step"])
    tmp = final.parent / f".{final.name}.tmp"
    if accelerator.is_main_process and tmp.exists():  # left by a crash mid-save
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))  # every process writes its RNG state; main writes the rest
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_state(tmp, state)
        commit_dir(tmp, final)
        prune_checkpoints(run_dir, keep)
    accelerator.wait_for_everyone()
    return final


def run_dir_of(ckpt: Path) -> Path:
    return ckpt.parent.parent


def _update_best(accelerator, model, tokenizer, cfg, state: dict, metrics: dict[str, float]) -> None:
    name = cfg.train.best_metric
    if not accelerator.is_main_process:
        return
    if name not in metrics:
        raise ConfigError(f"train.best_metric={name!r} is not measured; available: {', '.join(sorted(metrics))}")
    value = metrics[name]
    lower = name.split("/")[-1] in LOWER_IS_BETTER
    best = state["best_value"]
    if best is None or (value < best if lower else value > best):
        state.update(best_value=value, best_step=state["step"])
        card = {"run": cfg.output_dir, "steps": state["step"], "train": cfg.data.train, "valid_metrics": metrics,
                "init_from": cfg.train.init_from, "init_parts": state.get("init_parts", [])}
        save_model(Path(cfg.output_dir) / "best", accelerator.unwrap_model(model), tokenizer, card=card,
                   train_config=cfg)


def _log(accelerator: Accelerator, path: Path, record: dict) -> None:
    if accelerator.is_main_process:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    if accelerator.trackers:
        accelerator.log({k: v for k, v in record.items() if k != "step" and v is not None}, step=record["step"])


def native_bf16() -> bool:
    """True where bf16 matmuls run in hardware: a bf16 CUDA GPU, or a CPU with AMX or AVX512-BF16.

    Elsewhere (e.g. an AVX2-only CPU) bf16 autocast is emulated and several times SLOWER
    than float32, so ``mixed_precision: auto`` must not pick it.
    """
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _precision(setting: str) -> str:
    if setting == "auto":
        return "bf16" if native_bf16() else "no"
    if setting == "bf16" and not native_bf16():
        warnings.warn(
            "train.mixed_precision=bf16 on hardware without native bf16 (no bf16 GPU, no AMX/AVX512-BF16 CPU): "
            "autocast is emulated and slower than float32; train.mixed_precision=auto picks the fast one",
            stacklevel=2,
        )
    return setting


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out
