"""Model kinds: what differs between training a generative AudioLLM and a contrastive MuLaN
(rows, tokenizer, example building, the loss normaliser's count, validation, saving), behind
one interface the training loop calls. ``model.kind`` picks one from `MODEL_KINDS`.

For MuLaN a row is a caption row (audio ↔ its caption), the count is the number of pairs, and
the model's contrastive loss gathers the whole global batch from every process with gradients
(`models.contrastive`), so N processes train exactly like 1. Gradient accumulation would
shrink the set of negatives to a micro-batch and change the loss, so a MuLaN run refuses
``train.grad_accum > 1``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from audiollm.config import ExperimentConfig
from audiollm.data.augment import AudioAugment, PairAugment
from audiollm.data.batching import ExampleBuilder, collate
from audiollm.data.contrastive import PairBuilder, collate_pairs
from audiollm.data.feature_cache import FeatureCache, check_cacheable
from audiollm.errors import ConfigError
from audiollm.inference.embedding import save_mulan_dir, zero_shot_accuracy
from audiollm.metrics.retrieval import retrieval_metrics
from audiollm.models.audiollm import AudioLLMConfig, _config_from_dict
from audiollm.models.hub import build_model, save_model_dir
from audiollm.models.mulan import MuLaN, MuLaNConfig
from audiollm.models.registry import get_entry
from audiollm.tokenizers.hf import HFTokenizer, load_tokenizer
from audiollm.tokenizers.text import TextTokenizer

from audiollm.training.tokenizer import make_tokenizer
from audiollm.training.validation import validate_generation


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


class AudioLLMKind:
    """Model kind "audiollm" (the default): audio → text generation, token-level loss."""

    name = "audiollm"

    @staticmethod
    def check(cfg: ExperimentConfig) -> None:
        feature_cache(cfg)  # a cache must match the model's encoder: fail before any work

    @staticmethod
    def prepare_rows(rows: list[dict], path: str) -> list[dict]:
        return rows

    @staticmethod
    def configure(cfg: ExperimentConfig, rows: list[dict]) -> None:
        """Settings that come from the training rows: the speaker adversary's speakers."""
        weight = cfg.model.get("speaker_weight", 0)  # a wrong type is reported when the model is built
        if isinstance(weight, (int, float)) and weight > 0 and not cfg.model.get("speakers"):
            speakers = sorted({str(r["speaker"]) for r in rows if r.get("speaker") not in (None, "")})
            if len(speakers) < 2:
                raise ConfigError(f"model.speaker_weight > 0 needs training rows with a \"speaker\" field naming "
                                  f"at least 2 speakers; {cfg.data.train} names {len(speakers)}")
            cfg.model["speakers"] = speakers

    @staticmethod
    def make_tokenizer(rows: list[dict], cfg: ExperimentConfig) -> TextTokenizer | HFTokenizer:
        return make_tokenizer(rows, cfg)

    @staticmethod
    def load_tokenizer(directory: Path, cfg: ExperimentConfig) -> TextTokenizer | HFTokenizer:
        return load_tokenizer(directory)

    @staticmethod
    def build(cfg: ExperimentConfig, tokenizer: TextTokenizer):
        return build_model({k: v for k, v in cfg.model.items() if k != "kind"}, tokenizer.vocab_size)

    @staticmethod
    def example_builder(rows: list[dict], tokenizer: TextTokenizer, cfg: ExperimentConfig, *, train: bool) -> ExampleBuilder:
        augment = None
        if train and cfg.data.augment:
            augment = AudioAugment(speed_perturb=cfg.data.speed_perturb, tilt=cfg.data.tilt, noise_snr_db=cfg.data.noise_snr_db)
        return ExampleBuilder(rows, tokenizer, seed=cfg.train.seed, max_audio_seconds=cfg.data.max_audio_seconds,
                              augment=augment, cache_audio=cfg.data.cache_audio and train, features=feature_cache(cfg),
                              cond_dropout=cfg.data.cond_dropout if train else 0.0,
                              variants=cfg.data.variants if train else 0.0,
                              speakers=cfg.model.get("speakers") if train else None)

    @staticmethod
    def collate(examples: list[dict], tokenizer: TextTokenizer) -> dict[str, torch.Tensor]:
        return collate(examples, tokenizer.pad_id)

    @staticmethod
    def count(batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"] != -100).sum())

    @staticmethod
    def validate(net, tokenizer: TextTokenizer, rows: list[dict], cfg: ExperimentConfig, autocast) -> dict[str, float]:
        return validate_generation(net, tokenizer, rows, cfg, feature_cache(cfg), autocast)

    @staticmethod
    def save(directory: Path, model, tokenizer: TextTokenizer, card: dict, config: ExperimentConfig) -> Path:
        return save_model_dir(directory, model, tokenizer, card=card, config=config)


# How the one loop builds, feeds, scores and saves each kind of model (``model.kind``).
MODEL_KINDS = {"audiollm": AudioLLMKind, "mulan": MuLaNKind}


def feature_cache(cfg: ExperimentConfig) -> FeatureCache | None:
    """The configured frozen-encoder feature cache, checked against the model's encoder."""
    if not cfg.data.feature_cache:
        return None
    model_config = AudioLLMConfig.from_dict({k: v for k, v in cfg.model.items() if k != "kind"})
    check_cacheable(model_config)
    cache = FeatureCache(cfg.data.feature_cache)
    cache.check_matches(model_config)
    return cache


def get_kind(cfg: ExperimentConfig):
    name = cfg.model.get("kind", "audiollm")
    if name not in MODEL_KINDS:
        raise ConfigError(f"model.kind={name!r}; allowed: {', '.join(MODEL_KINDS)}")
    kind = MODEL_KINDS[name]
    kind.check(cfg)
    return kind

