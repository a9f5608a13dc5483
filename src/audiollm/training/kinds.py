"""Model kinds: what differs between training a generative AudioLLM and a contrastive MuLaN
(rows, tokenizer, example building, the loss normaliser's count, validation), behind one
interface the training loop calls. ``model.type`` picks one from `MODEL_KINDS`; saving is
`models.hub` for both.

For MuLaN a row is a caption row (audio ↔ its caption), the count is the number of pairs, and
the model's contrastive loss gathers the whole global batch from every process with gradients
(`models.contrastive`), so N processes train exactly like 1. Gradient accumulation would
shrink the set of negatives to a micro-batch and change the loss, so a MuLaN run refuses
``train.grad_accum > 1``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from audiollm.data.augment import AudioAugment
from audiollm.data.batching import ExampleBuilder, collate
from audiollm.data.clips import ClipBuilder, clip_rows, collate_clips
from audiollm.data.contrastive import PairBuilder, collate_pairs
from audiollm.data.feature_cache import FeatureCache, check_cacheable
from audiollm.decoding.codec_pattern import make_pattern
from audiollm.errors import AudioLLMError, ConfigError
from audiollm.inference.api import AudioLanguageModel
from audiollm.inference.codec import check_same_codec
from audiollm.inference.embedding import zero_shot_accuracy
from audiollm.metrics.retrieval import retrieval_metrics
from audiollm.models.audiollm import AudioLLM
from audiollm.models.codec import AudioCodec
from audiollm.models.codecs import load_codec
from audiollm.models.mulan import MuLaN
from audiollm.models.registry import get_entry
from audiollm.tokenizers.hf import HFTokenizer
from audiollm.tokenizers.text import TextTokenizer
from audiollm.training.config import ExperimentConfig
from audiollm.training.tokenizer import make_tokenizer
from audiollm.training.validation import validate_generation

PAIR_TASKS = ("caption",)  # manifest tasks whose answer describes the whole clip


def with_vocab(config: Any, section: str, vocab_size: int) -> Any:
    """A copy of a model config whose ``section`` config has the tokenizer's vocabulary size."""
    sub = getattr(config, section)
    if not hasattr(sub, "vocab_size"):
        return config
    return dataclasses.replace(config, **{section: dataclasses.replace(sub, vocab_size=vocab_size)})


class MuLaNKind:
    """Model type "mulan" (``model.type: mulan`` in a config): audio ↔ caption pairs, a
    contrastive loss over the global batch."""

    name = "mulan"
    throughput_name = "text_tokens_per_s"

    @staticmethod
    def throughput(batch: dict[str, torch.Tensor]) -> float:
        return float(batch["text_lengths"].sum())

    @classmethod
    def check(cls, cfg: ExperimentConfig) -> None:
        if cfg.train.grad_accum != 1:
            raise ConfigError("train.grad_accum must be 1 for a contrastive model: every pair needs the whole batch as negatives")
        if cfg.train.length_groups != 1:
            raise ConfigError("train.length_groups must be 1 for a contrastive model: every pair needs the whole batch as negatives")

    @staticmethod
    def prepare_rows(rows: list[dict], path: str) -> list[dict]:
        pairs = [r for r in rows if r["task"] in PAIR_TASKS and str(r.get("answer", "")).strip()]
        if not pairs:
            raise ConfigError(f"{path}: no caption rows (task {', '.join(PAIR_TASKS)}) to pair audio with text")
        return pairs

    @staticmethod
    def make_tokenizer(rows: list[dict], cfg: ExperimentConfig):
        mc = cfg.model
        tower = get_entry("text_tower", mc.text_tower).module_cls
        return tower.make_tokenizer(mc.text_tower_config, [r["answer"] for r in rows],
                                    cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)

    @staticmethod
    def build(cfg: ExperimentConfig, tokenizer) -> MuLaN:
        return MuLaN(with_vocab(cfg.model, "text_tower_config", tokenizer.vocab_size))

    @staticmethod
    def example_builder(rows: list[dict], tokenizer, cfg: ExperimentConfig, *, train: bool) -> PairBuilder:
        mc = cfg.model
        augment = cfg.data.contrastive.augment if train and cfg.data.augment else None
        return PairBuilder(rows, tokenizer, max_text_tokens=mc.text_tower_config.max_len, n_mels=mc.frontend.n_mels,
                           hop_length=mc.frontend.hop_length, seed=cfg.train.seed,
                           max_audio_seconds=cfg.data.max_audio_seconds, augment=augment)

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
        device = next(net.parameters()).device
        for start in range(0, len(subset), bs):
            batch = collate_pairs([build(i, i) for i in range(start, min(start + bs, len(subset)))], tokenizer.pad_id)
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


class AudioLLMKind:
    """Model type "audiollm" (the default): audio → text (or MIDI events), token-level loss."""

    name = "audiollm"
    throughput_name = "text_tokens_per_s"
    throughput = MuLaNKind.throughput

    @staticmethod
    def check(cfg: ExperimentConfig) -> None:
        feature_cache(cfg)  # a cache must match the model's encoder: fail before any work
        resolve_audio_answer(cfg)

    @staticmethod
    def prepare_rows(rows: list[dict], path: str) -> list[dict]:
        return rows

    @staticmethod
    def make_tokenizer(rows: list[dict], cfg: ExperimentConfig) -> TextTokenizer | HFTokenizer:
        return make_tokenizer(rows, cfg)

    @staticmethod
    def build(cfg: ExperimentConfig, tokenizer) -> AudioLLM:
        return AudioLLM(with_vocab(cfg.model, "lm_config", tokenizer.vocab_size))

    @staticmethod
    def example_builder(rows: list[dict], tokenizer, cfg: ExperimentConfig, *, train: bool) -> ExampleBuilder:
        augment = None
        if train and cfg.data.augment:
            augment = AudioAugment(speed_perturb=cfg.data.speed_perturb, tilt=cfg.data.tilt, noise_snr_db=cfg.data.noise_snr_db)
        return ExampleBuilder(rows, tokenizer, seed=cfg.train.seed, max_audio_seconds=cfg.data.max_audio_seconds,
                              augment=augment, cache_audio=cfg.data.cache_audio and train, features=feature_cache(cfg),
                              task_options=cfg.data.tasks if train else None, **answer_codes(cfg))

    @staticmethod
    def collate(examples: list[dict], tokenizer) -> dict[str, Any]:
        return collate(examples, tokenizer.pad_id)

    @staticmethod
    def count(batch: dict[str, Any]) -> int:
        return int((batch["labels"] != -100).sum()) + int(batch.get("n_code_targets", 0))

    @staticmethod
    def validate(net, tokenizer, rows: list[dict], cfg: ExperimentConfig, autocast) -> dict[str, float]:
        return validate_generation(AudioLanguageModel(net, tokenizer), rows, cfg, feature_cache(cfg), autocast,
                                   **answer_codes(cfg))


class CodecKind:
    """Model type "codec": random crops of any manifest's audio (``data.max_audio_seconds`` long),
    no tokenizer; the loss is per example; validation decodes whole clips at every bitrate."""

    name = "codec"
    throughput_name = "audio_samples_per_s"

    @staticmethod
    def check(cfg: ExperimentConfig) -> None:
        if cfg.data.feature_cache:
            raise ConfigError("data.feature_cache is for frozen encoders; a codec trains on the waveform (set it to \"\")")

    @staticmethod
    def prepare_rows(rows: list[dict], path: str) -> list[dict]:
        return clip_rows(rows, path)

    @staticmethod
    def make_tokenizer(rows: list[dict], cfg: ExperimentConfig) -> None:
        return None

    @staticmethod
    def build(cfg: ExperimentConfig, tokenizer) -> AudioCodec:
        return AudioCodec(cfg.model)

    @staticmethod
    def example_builder(rows: list[dict], tokenizer, cfg: ExperimentConfig, *, train: bool) -> ClipBuilder:
        return ClipBuilder(rows, sample_rate=cfg.model.sample_rate, seconds=cfg.data.max_audio_seconds,
                           seed=cfg.train.seed, gain_db=12.0 if train and cfg.data.augment else 0.0)

    @staticmethod
    def collate(examples: list[dict], tokenizer) -> dict[str, torch.Tensor]:
        return collate_clips(examples)

    @staticmethod
    def count(batch: dict[str, torch.Tensor]) -> int:
        return int(batch["audio"].shape[0])

    @staticmethod
    def throughput(batch: dict[str, torch.Tensor]) -> float:
        return float(batch["audio_lengths"].sum())

    @staticmethod
    @torch.no_grad()
    def validate(net: AudioCodec, tokenizer, rows: list[dict], cfg: ExperimentConfig, autocast) -> dict[str, float]:
        """Multi-scale log-mel distance of validation clips (one ``data.max_audio_seconds`` crop each,
        the same every time) decoded from 1…K codebooks, and how many codes of each level they use.
        The ``train.eval_examples`` clips are spread evenly over the manifest (speech and music alike)."""
        step = max(1, len(rows) // cfg.train.eval_examples)
        subset = rows[::step][: cfg.train.eval_examples]
        build = CodecKind.example_builder(subset, None, cfg, train=False)
        device = next(net.parameters()).device
        totals = {k: 0.0 for k in range(1, net.num_codebooks + 1)}
        codes_used: list[set] = [set() for _ in range(net.num_codebooks)]
        bs = cfg.train.eval_batch_size
        for start in range(0, len(subset), bs):
            batch = collate_clips([build(i, 0) for i in range(start, min(start + bs, len(subset)))])
            wav, lengths = batch["audio"].to(device), batch["audio_lengths"].to(device)
            codes, frames = net.encode(wav, lengths)
            for level in range(net.num_codebooks):
                codes_used[level].update(codes[:, level][torch.arange(codes.shape[2], device=device)[None] < frames[:, None]].tolist())
            for k in totals:
                recon, _ = net.decode(codes[:, :k], frames)
                totals[k] += float(net.mel_loss(wav, recon[:, : wav.shape[1]], lengths).sum())
        metrics = {"mel_distance": totals[net.num_codebooks] / len(subset)}
        metrics.update({f"mel_distance_{k}cb": v / len(subset) for k, v in totals.items()})
        metrics.update({f"codes_used/{k}": float(len(u)) for k, u in enumerate(codes_used)})
        return metrics


# How the one loop builds, feeds and scores each model type (``model.type``).
MODEL_KINDS = {"audiollm": AudioLLMKind, "mulan": MuLaNKind, "codec": CodecKind}


def feature_cache(cfg: ExperimentConfig) -> FeatureCache | None:
    """The configured frozen-encoder feature cache, checked against the model's encoder."""
    if not cfg.data.feature_cache:
        return None
    check_cacheable(cfg.model)
    cache = FeatureCache(cfg.data.feature_cache)
    cache.check_matches(cfg.model)
    return cache


def resolve_audio_answer(cfg: ExperimentConfig) -> None:
    """Fill ``model.audio_answer`` from its codec (codebook size, rates, the weights' fingerprint;
    the codebook count from the codes cache when unset) and check that ``data.codes_cache`` was
    made by that codec, naming both when not. Nothing to do for a text-only model."""
    answer = cfg.model.audio_answer
    if not answer.enabled:
        if cfg.data.codes_cache:
            raise ConfigError("data.codes_cache is set but model.audio_answer.codec is not: name the codec whose "
                              "codes the model should write")
        return
    identity = load_codec(answer.codec).identity()
    cache = FeatureCache(cfg.data.codes_cache) if cfg.data.codes_cache else None
    if cache is not None:
        made_by = cache.signature.get("codec", {})
        try:
            check_same_codec(made_by, identity)
        except AudioLLMError as e:
            raise ConfigError(f"data.codes_cache {cache.directory}: {e}") from None
        if not answer.num_codebooks:
            answer.num_codebooks = int(cache.signature["num_codebooks"])
        if answer.num_codebooks > int(cache.signature["num_codebooks"]):
            raise ConfigError(f"model.audio_answer.num_codebooks={answer.num_codebooks}, but data.codes_cache holds "
                              f"{cache.signature['num_codebooks']} codebooks per frame")
    if not answer.num_codebooks:
        answer.num_codebooks = int(identity["num_codebooks"])
    if answer.num_codebooks > int(identity["num_codebooks"]):
        raise ConfigError(f"model.audio_answer.num_codebooks={answer.num_codebooks}: the codec has "
                          f"{identity['num_codebooks']}")
    if answer.codebook_size and answer.codebook_size != int(identity["codebook_size"]):
        raise ConfigError(f"model.audio_answer.codebook_size={answer.codebook_size}, but codec {answer.codec} has "
                          f"{identity['codebook_size']} codes per codebook")
    answer.codebook_size = int(identity["codebook_size"])
    answer.frame_rate = float(identity["frame_rate"])
    answer.sample_rate = int(identity["sample_rate"])
    answer.fingerprint = str(identity["fingerprint"])


def answer_codes(cfg: ExperimentConfig) -> dict[str, Any]:
    """The codes cache and pattern an example builder needs for audio answers ({} for a text model)."""
    answer = cfg.model.audio_answer
    if not answer.resolved or not cfg.data.codes_cache:
        return {}
    return {"codes": FeatureCache(cfg.data.codes_cache),
            "pattern": make_pattern(answer.pattern, answer.num_codebooks, answer.codebook_size)}


def get_kind(cfg: ExperimentConfig):
    kind = MODEL_KINDS[cfg.model_type]
    kind.check(cfg)
    return kind
