"""What the one training loop (`train.py`) needs to train a MuLaN contrastive model.

The loop is model-agnostic: per step it builds the global batch from draw positions, splits it
over processes, calls ``model(**batch)`` and divides the returned ``loss_sum`` by the global
count of ``count(batch)`` times the world size. For MuLaN a row is a caption row (audio ↔ its
caption), the count is the number of pairs, and the model's contrastive loss gathers the whole
global batch from every process with gradients (`models.contrastive`), so N processes train
exactly like 1. Gradient accumulation would shrink the set of negatives to a micro-batch and
change the loss, so a MuLaN run refuses ``train.grad_accum > 1``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from .config import ExperimentConfig
from .data.contrastive import PairAugment, PairBuilder, collate_pairs
from .errors import ConfigError
from .models.audiollm import _config_from_dict
from .models.mulan import MuLaN, MuLaNConfig
from .models.registry import get_entry
from .mulan import retrieval_metrics, save_mulan_dir, zero_shot_accuracy

PAIR_TASKS = ("caption",)  # manifest tasks whose answer describes the whole clip


class MuLaNKind:
    """Model kind "mulan" (``model.kind: mulan`` in a config)."""

    name = "mulan"

    @staticmethod
    def model_config(section: dict[str, Any]) -> MuLaNConfig:
        return MuLaNConfig.from_dict(copy.deepcopy(section))

    @classmethod
    def check(cls, cfg: ExperimentConfig) -> None:
        if cfg.train.grad_accum != 1:
            raise ConfigError("train.grad_accum must be 1 for a contrastive model: every pair needs the whole batch as negatives")
        if cfg.train.length_groups != 1:
            raise ConfigError("train.length_groups must be 1 for a contrastive model: every pair needs the whole batch as negatives")
        cls.model_config(cfg.model)
        cls.augment(cfg)

    @staticmethod
    def prepare_rows(rows: list[dict], path: str) -> list[dict]:
        pairs = [r for r in rows if r["task"] in PAIR_TASKS and str(r.get("answer", "")).strip()]
        if not pairs:
            raise ConfigError(f"{path}: no caption rows (task {', '.join(PAIR_TASKS)}) to pair audio with text")
        return pairs

    @staticmethod
    def configure(cfg: ExperimentConfig, rows: list[dict]) -> None:
        """Nothing of a MuLaN run's settings comes from its rows."""

    @classmethod
    def make_tokenizer(cls, rows: list[dict], cfg: ExperimentConfig):
        mc = cls.model_config(cfg.model)
        tower = get_entry("text_tower", mc.text_tower).module_cls
        return tower.make_tokenizer(mc.text_tower_config, [r["answer"] for r in rows],
                                    cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)

    @classmethod
    def load_tokenizer(cls, directory: Path, cfg: ExperimentConfig):
        mc = cls.model_config(cfg.model)
        return get_entry("text_tower", mc.text_tower).module_cls.load_tokenizer(mc.text_tower_config, directory)

    @classmethod
    def build(cls, cfg: ExperimentConfig, tokenizer) -> MuLaN:
        mc = cls.model_config(cfg.model)
        if hasattr(mc.text_tower_config, "vocab_size"):
            mc.text_tower_config.vocab_size = tokenizer.vocab_size
        return MuLaN(mc)

    @staticmethod
    def augment(cfg: ExperimentConfig) -> PairAugment | None:
        if not cfg.data.augment:
            return None
        return _config_from_dict(PairAugment, dict(cfg.data.pair_augment), "data.pair_augment")

    @classmethod
    def example_builder(cls, rows: list[dict], tokenizer, cfg: ExperimentConfig, *, train: bool) -> PairBuilder:
        mc = cls.model_config(cfg.model)
        max_len = getattr(mc.text_tower_config, "max_len")
        return PairBuilder(rows, tokenizer, max_text_tokens=max_len, n_mels=mc.frontend.n_mels,
                           hop_length=mc.frontend.hop_length, seed=cfg.train.seed,
                           max_audio_seconds=cfg.data.max_audio_seconds, augment=cls.augment(cfg) if train else None)

    @staticmethod
    def collate(examples: list[dict], tokenizer) -> dict[str, torch.Tensor]:
        return collate_pairs(examples, tokenizer.pad_id)

    @staticmethod
    def count(batch: dict[str, torch.Tensor]) -> int:
        return int(batch["audio"].shape[0])

    @classmethod
    @torch.no_grad()
    def validate(cls, net: MuLaN, tokenizer, rows: list[dict], cfg: ExperimentConfig, autocast) -> dict[str, float]:
        """Loss per pair over the whole validation subset as ONE batch of negatives, retrieval
        Recall@k / median rank, and zero-shot accuracy on the rows' ``family`` labels."""
        subset = rows[: cfg.train.eval_examples]
        build = cls.example_builder(subset, tokenizer, cfg, train=False)
        audio_e, text_e = [], []
        bs = cfg.train.eval_batch_size
        for start in range(0, len(subset), bs):
            batch = collate_pairs([build(i, i) for i in range(start, min(start + bs, len(subset)))], tokenizer.pad_id)
            device = next(net.parameters()).device
            with autocast():
                audio_e.append(net.embed_audio(batch["audio"].to(device), batch["audio_lengths"].to(device)).float())
                text_e.append(net.embed_text(batch["input_ids"].to(device), batch["text_lengths"].to(device)).float())
        a, t = torch.cat(audio_e), torch.cat(text_e)
        metrics = {"loss": float(net.loss_fn(a, t, gather=False)) / len(subset)}
        metrics.update({f"retrieval/{k}": v for k, v in retrieval_metrics(a.cpu(), t.cpu()).items() if k != "n"})
        families = [r.get("family") for r in subset]
        if all(isinstance(f, str) for f in families) and len(set(families)) > 1:
            metrics["zeroshot/family_accuracy"] = zero_shot_accuracy(net, tokenizer, a.cpu(), families)
        return metrics

    @staticmethod
    def save(directory: Path, model: MuLaN, tokenizer, card: dict, config: ExperimentConfig) -> Path:
        return save_mulan_dir(directory, model, tokenizer, card=card, config=config)
