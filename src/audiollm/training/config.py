"""The experiment config: one YAML per experiment, typed sections, dotted overrides.

``load_config("configs/quickstart.yaml", ["train.lr=3e-4", "output_dir=runs/x"])`` reads the
YAML, applies the overrides and builds an `ExperimentConfig` with `audiollm.config.from_dict`:
an unknown key names its section and lists the valid keys; a bad value names the key and the
allowed values. ``model.type`` picks the model type (`registry.MODELS`: audiollm, mulan) and
so the class of the whole ``model`` section; each task under ``data.tasks`` has its own
options class (`Task.options_class`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from audiollm.config import from_dict, load_yaml, mapping_of, to_dict, type_name, typed
from audiollm.data.augment import PairAugment
from audiollm.decoding.options import CTC_DECODE_WEIGHT
from audiollm.errors import AudioLLMError, ConfigError
from audiollm.files import atomic_write_text
from audiollm.models import MODELS
from audiollm.tasks import TaskOptions, get_task
from audiollm.tokenizers.midi import MidiVocab

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
TRACKERS = ("none", "tensorboard", "wandb")


def task_options_class(name: str) -> type:
    return get_task(name).options_class


@dataclass
class ContrastiveDataConfig:
    """How a contrastive model (``model.type: mulan``) draws and augments its audio-caption pairs."""

    group_by: str = ""  # a row label (e.g. "instrument"): draw training rows in runs of group_size rows
    #   sharing its value, so a batch holds hard negatives (data.batching.GroupedSampler); "" = off
    group_size: int = 8  # rows per run with group_by (a divisor of the per-process batch)
    augment: PairAugment = field(default_factory=PairAugment)  # crops, gain, noise and spectrogram
    #   masks of the training pairs (when data.augment is on)

    def __post_init__(self) -> None:
        if not isinstance(self.group_size, int) or isinstance(self.group_size, bool) or self.group_size < 1:
            raise ConfigError(f"data.contrastive.group_size must be an integer ≥ 1, got {self.group_size!r}")


@dataclass
class DataConfig:
    train: str | list[str] = "data/corpus/train.jsonl"  # training manifest (JSONL; paths relative to it),
    #   or a list of manifests whose rows are trained on together
    valid: str = "data/corpus/valid.jsonl"  # validation manifest: task metrics during training ("" = none)
    split: str = ""  # if set, keep only rows whose "split" field equals this (train manifest)
    valid_split: str = ""  # likewise for the validation manifest (e.g. FSDD: one file, 3 splits)
    tasks: dict[str, TaskOptions] = mapping_of(task_options_class)  # tasks to train on, each with its
    #   options (weight: its share of draws; a task's own options, e.g. text_to_midi's cond_dropout);
    #   {} = every task of the manifests, drawn by row count
    max_audio_seconds: float = 10.0  # longer training clips are randomly cropped to this
    augment: bool = True  # random gain + speed perturbation on training audio (pairs: data.contrastive)
    speed_perturb: float = 0.1  # ± relative speed change when augmenting (0 disables)
    tilt: float = 0.0  # max spectral-tilt filter coefficient when augmenting (0 disables, < 1)
    noise_snr_db: float = 0.0  # lowest SNR (dB) of white noise added to half the clips (0 disables)
    cache_audio: bool = False  # keep decoded training clips in memory (small corpora: faster steps)
    feature_cache: str = ""  # directory from `audiollm features`: a frozen pretrained encoder's states
    #   are read from it instead of recomputed each step (train and valid clips; needs augment: false)
    codes_cache: str = ""  # directory from `audiollm codec cache`: the codec codes that audio answers
    #   (tts, text_to_audio) train on, made by model.audio_answer.codec
    contrastive: ContrastiveDataConfig = field(default_factory=ContrastiveDataConfig)  # model.type mulan only

    def __post_init__(self) -> None:
        if self.max_audio_seconds <= 0:
            raise ConfigError(f"data.max_audio_seconds must be > 0, got {self.max_audio_seconds}")
        if not 0 <= self.speed_perturb < 0.5:
            raise ConfigError(f"data.speed_perturb must be in [0, 0.5), got {self.speed_perturb}")
        if not 0 <= self.tilt < 1:
            raise ConfigError(f"data.tilt must be in [0, 1), got {self.tilt}")
        if self.noise_snr_db < 0:
            raise ConfigError(f"data.noise_snr_db must be ≥ 0, got {self.noise_snr_db}")
        if self.contrastive.group_by and any(o.weight is not None for o in self.tasks.values()):
            raise ConfigError("data.contrastive.group_by and task weights cannot both be set: grouped draws ignore "
                              "task weights")

    def task_weights(self) -> dict[str, float]:
        """Sampling weight per task: {} when no task sets one (draws follow row counts), else
        each listed task's weight (1.0 where unset)."""
        if all(o.weight is None for o in self.tasks.values()):
            return {}
        return {name: 1.0 if o.weight is None else o.weight for name, o in self.tasks.items()}


@dataclass
class MidiTokensConfig:
    """The MIDI event vocabulary, appended to the tokenizer when a task answers in events."""

    time_step: float = 0.01  # seconds per time step (onset/offset resolution)
    max_shift_steps: int = 100  # longest single time-shift token, in steps (100 × 10 ms = 1 s)
    velocity_bins: int = 32  # velocity resolution
    programs: str = ""  # GM programs the vocabulary names, e.g. "0" (piano only) or "0,24-27"; "" = all 128
    attributes: bool = False  # tempo-bin and key tokens that open a text_to_midi answer (a plan the
    #   model writes first, then follows; see MidiVocab.attribute_tokens)

    def __post_init__(self) -> None:
        self.vocab()  # validate now, naming the key

    def vocab(self) -> MidiVocab:
        """The :class:`MidiVocab` these settings describe."""
        programs: list[int] = []
        for part in filter(None, (p.strip(" []") for p in str(self.programs).split(","))):
            lo, _, hi = part.partition("-")
            try:
                programs += range(int(lo), int(hi or lo) + 1)
            except ValueError:
                raise ConfigError(f"tokenizer.midi.programs: {part!r} is not a program or range like 24-27") from None
        try:
            return MidiVocab(time_step=self.time_step, max_shift_steps=self.max_shift_steps,
                             velocity_bins=self.velocity_bins, programs=tuple(programs or range(128)),
                             attributes=bool(self.attributes))
        except AudioLLMError as e:
            raise ConfigError(f"tokenizer.midi: {e}") from None


@dataclass
class TokenizerConfig:
    vocab_size: int = 2000  # BPE vocabulary learned from the training text
    min_frequency: int = 2  # a merge must occur this often to be learned
    pretrained: str = ""  # a transformers tokenizer directory to use instead of training BPE ("" = train
    #   BPE, or the LM checkpoint's own tokenizer when model.lm is a pretrained LM like hf_causal_lm)
    midi: MidiTokensConfig = field(default_factory=MidiTokensConfig)  # event tokens (transcription, text_to_midi)

    def __post_init__(self) -> None:
        if self.vocab_size < 300:
            raise ConfigError(f"tokenizer.vocab_size must be ≥ 300 (256 bytes + specials), got {self.vocab_size}")


@dataclass
class TrainConfig:
    max_steps: int = 2000  # optimizer steps
    batch_size: int = 32  # GLOBAL batch: all processes × all accumulation micro-steps
    grad_accum: int = 1  # micro-steps per optimizer step (per process)
    lr: float = 1e-3  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # cosine decays to lr × this
    warmup_steps: int = 100  # linear warmup from 0
    weight_decay: float = 0.05  # applied to matrices only, not norms/biases
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 1.0  # max global grad norm (0 disables)
    seed: int = 0  # one seed for init, data order, augmentation and question paraphrases
    mixed_precision: str = "auto"  # auto (bf16 on a bf16 GPU or CPU, else fp32) | no | bf16 | fp16
    init_from: str = ""  # a saved model directory whose weights the run starts from, with a fresh
    #   optimizer and schedule (multi-stage recipes: pretrain → finetune); its tokenizer is reused
    init_parts: list[str] = field(default_factory=list)  # which top-level parts to take from init_from
    #   (e.g. [audio_encoder, projector]); [] = all of them
    eval_every: int = 500  # steps between validations with task metrics (0 = only at the end)
    eval_examples: int = 200  # validation rows scored per evaluation (spread over tasks)
    eval_batch_size: int = 32
    max_new_tokens: int = 48  # generation budget when scoring
    ctc_decode_weight: float = CTC_DECODE_WEIGHT  # validation: transcript rows of a model with a CTC head
    #   are decoded jointly with it at this weight (0 = the LM alone)
    save_every: int = 500  # steps between resumable checkpoints (0 = only at the end)
    keep_checkpoints: int = 2  # most recent checkpoints kept on disk
    best_metric: str = "loss"  # "loss" or "task/metric", e.g. "tagging/accuracy", "asr/wer"
    log_every: int = 25  # steps between log lines (log.jsonl; tracker if enabled)
    log_with: str = "none"  # none | tensorboard | wandb (optional extras)
    num_threads: int = 0  # torch intra-op threads (0 = library default)
    length_groups: int = 1  # split each micro-batch into this many groups of similar length
    #   (sorted by audio then text length): far less padding when short speech and long music
    #   share a batch; the loss is summed then divided by the global target count, so the
    #   gradient is the same as one padded batch

    def __post_init__(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"train.mixed_precision={self.mixed_precision!r}; allowed: {', '.join(MIXED_PRECISION)}")
        if self.log_with not in TRACKERS:
            raise ConfigError(f"train.log_with={self.log_with!r}; allowed: {', '.join(TRACKERS)}")
        for name in ("max_steps", "batch_size", "grad_accum", "length_groups"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.ctc_decode_weight <= 1.0:
            raise ConfigError(f"train.ctc_decode_weight must be in [0, 1], got {self.ctc_decode_weight}")
        if not all(isinstance(p, str) and p for p in self.init_parts):
            raise ConfigError(f"train.init_parts must be a list of part names, got {self.init_parts!r}")
        if self.init_parts and not self.init_from:
            raise ConfigError("train.init_parts needs train.init_from (the model directory to take them from)")


@dataclass
class ExperimentConfig:
    output_dir: str = "runs/quickstart"  # run folder: checkpoints/, best/, final/, log.jsonl
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: Any = typed(MODELS, default="audiollm")  # model.type (audiollm | mulan) + that type's config
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def model_type(self) -> str:
        return type_name(MODELS, self.model)


def load_config(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """YAML file (or defaults when ``path`` is None) + ``key.sub=value`` overrides → config."""
    return from_dict(ExperimentConfig, load_yaml(path, overrides))


def save_config(config: ExperimentConfig, path: str | os.PathLike) -> None:
    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
