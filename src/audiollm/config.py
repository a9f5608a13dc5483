"""Experiment configs: typed dataclasses, one flat YAML per experiment, dotted overrides.

``load_config("configs/quickstart.yaml", ["train.lr=3e-4", "output_dir=runs/x"])`` reads the
YAML, applies the overrides, and validates: an unknown key names the section and lists the
valid keys; a bad value names the key and the allowed values. The ``model`` section is a
plain mapping handed to `AudioLLMConfig.from_dict`, which validates it against the
registered components (so new encoders/LMs add keys without touching this file).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from audiollm.errors import ConfigError

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
TRACKERS = ("none", "tensorboard", "wandb")


@dataclass
class DataConfig:
    train: str = "data/corpus/train.jsonl"  # training manifest (JSONL; paths relative to it)
    valid: str = "data/corpus/valid.jsonl"  # validation manifest: task metrics during training
    test: str = "data/corpus/test.jsonl"  # held-out manifest used by `make demo` / evaluate
    split: str = ""  # if set, keep only rows whose "split" field equals this (train manifest)
    valid_split: str = ""  # likewise for the validation manifest (e.g. FSDD: one file, 3 splits)
    tasks: str = ""  # comma-separated tasks to keep from the manifests (e.g. "text_to_midi"); "" = all
    task_weights: dict[str, float] = field(default_factory=dict)  # task → sampling weight; {} = by row count
    max_audio_seconds: float = 10.0  # longer training clips are randomly cropped to this
    augment: bool = True  # random gain + speed perturbation on training audio
    speed_perturb: float = 0.1  # ± relative speed change when augmenting (0 disables)
    tilt: float = 0.0  # max spectral-tilt filter coefficient when augmenting (0 disables, < 1)
    noise_snr_db: float = 0.0  # lowest SNR (dB) of white noise added to half the clips (0 disables)
    cache_audio: bool = False  # keep decoded training clips in memory (small corpora: faster steps)
    cond_dropout: float = 0.0  # probability that a guidance task (text_to_midi) is trained on the empty
    #   prompt instead of its caption: the unconditional model classifier-free guidance needs (0.1-0.2)
    variants: float = 0.0  # probability that a training example is a label-consistent variant of its row
    #   (Task.variant; text_to_midi: notes stretched to another tempo, transposed to another key, given to
    #   another instrument, and captioned from those labels), so every attribute is seen with many pieces
    feature_cache: str = ""  # directory from `audiollm features`: a frozen pretrained encoder's states
    #   are read from it instead of recomputed each step (train and valid clips; needs augment: false)
    group_by: str = ""  # a row label (e.g. "instrument"): draw training rows in runs of group_size rows
    #   sharing its value, so a contrastive batch holds hard negatives (data.batching.GroupedSampler); "" = off
    group_size: int = 8  # rows per run with data.group_by (a divisor of the per-process batch)
    pair_augment: dict[str, Any] = field(default_factory=dict)  # model.kind mulan: data.contrastive.PairAugment
    #   settings (crop_seconds, gain_db, noise_snr_db, freq_masks, freq_mask_width, time_masks, time_mask_width)

    def __post_init__(self) -> None:
        if self.max_audio_seconds <= 0:
            raise ConfigError(f"data.max_audio_seconds must be > 0, got {self.max_audio_seconds}")
        if not 0 <= self.speed_perturb < 0.5:
            raise ConfigError(f"data.speed_perturb must be in [0, 0.5), got {self.speed_perturb}")
        if not 0 <= self.tilt < 1:
            raise ConfigError(f"data.tilt must be in [0, 1), got {self.tilt}")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ConfigError(f"data.cond_dropout must be in [0, 1), got {self.cond_dropout}")
        if not 0.0 <= self.variants <= 1.0:
            raise ConfigError(f"data.variants must be in [0, 1], got {self.variants}")
        if self.noise_snr_db < 0:
            raise ConfigError(f"data.noise_snr_db must be ≥ 0, got {self.noise_snr_db}")
        if not isinstance(self.group_size, int) or isinstance(self.group_size, bool) or self.group_size < 1:
            raise ConfigError(f"data.group_size must be an integer ≥ 1, got {self.group_size!r}")
        if self.group_by and self.task_weights:
            raise ConfigError("data.group_by and data.task_weights cannot both be set: grouped draws ignore task weights")
        for task, w in self.task_weights.items():
            if not isinstance(w, (int, float)) or w < 0:
                raise ConfigError(f"data.task_weights.{task} must be a number ≥ 0, got {w!r}")


@dataclass
class TokenizerConfig:
    vocab_size: int = 2000  # BPE vocabulary learned from the training text
    min_frequency: int = 2  # a merge must occur this often to be learned
    # MIDI event tokens, appended only when a task answers in events (transcription):
    midi_time_step: float = 0.01  # seconds per time step (onset/offset resolution)
    midi_max_shift_steps: int = 100  # longest single time-shift token, in steps (100 × 10 ms = 1 s)
    midi_velocity_bins: int = 32  # velocity resolution
    midi_programs: str = ""  # GM programs the vocabulary names, e.g. "0" (piano only) or "0,24-27"; "" = all 128
    midi_attributes: bool = False  # tempo-bin and key tokens that open a text_to_midi answer (a plan
    #   the model writes first, then follows; see MidiVocab.attribute_tokens)
    pretrained: str = ""  # a transformers tokenizer directory to use instead of training BPE ("" = train
    #   BPE, or the LM checkpoint's own tokenizer when model.lm is a pretrained LM like hf_causal_lm)

    def __post_init__(self) -> None:
        if self.vocab_size < 300:
            raise ConfigError(f"tokenizer.vocab_size must be ≥ 300 (256 bytes + specials), got {self.vocab_size}")
        self.midi_vocab()  # validate now, naming the key

    def midi_vocab(self):
        """The :class:`MidiVocab` these settings describe."""
        from audiollm.errors import AudioLLMError
        from audiollm.tokenizers.midi import MidiVocab

        programs: list[int] = []
        for part in filter(None, (p.strip(" []") for p in str(self.midi_programs).split(","))):
            lo, _, hi = part.partition("-")
            try:
                programs += range(int(lo), int(hi or lo) + 1)
            except ValueError:
                raise ConfigError(f"tokenizer.midi_programs: {part!r} is not a program or range like 24-27") from None
        try:
            return MidiVocab(time_step=self.midi_time_step, max_shift_steps=self.midi_max_shift_steps,
                             velocity_bins=self.midi_velocity_bins, programs=tuple(programs or range(128)),
                             attributes=bool(self.midi_attributes))
        except AudioLLMError as e:
            raise ConfigError(f"tokenizer.midi_*: {e}") from None


#: Weight of the CTC head in joint CTC/attention decoding of transcripts (`audiollm.ctc_prefix`),
#: the default of `audiollm evaluate --ctc-weight` and `train.ctc_decode_weight`. Chosen on the
#: embedded corpus's valid split (README, "Joint CTC/attention decoding").
CTC_DECODE_WEIGHT = 0.5


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
    mixed_precision: str = "auto"  # auto (bf16 on a bf16 GPU, else fp32) | no | bf16 | fp16
    eval_every: int = 500  # steps between validations with task metrics (0 = only at the end)
    eval_examples: int = 200  # validation rows scored per evaluation (spread over tasks)
    eval_batch_size: int = 32
    max_new_tokens: int = 48  # generation budget when scoring
    ctc_decode_weight: float = CTC_DECODE_WEIGHT  # validation: transcript rows of a model with a CTC head
    #   (model.ctc_weight > 0) are decoded jointly with it at this weight (0 = the LM alone)
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


@dataclass
class ExperimentConfig:
    output_dir: str = "runs/quickstart"  # run folder: checkpoints/, best/, final/, log.jsonl
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: dict[str, Any] = field(default_factory=dict)  # model.kind (audiollm | mulan; default audiollm)
    #   + that kind's config: AudioLLMConfig.from_dict or MuLaNConfig.from_dict input
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """YAML file (or defaults when ``path`` is None) + ``key.sub=value`` overrides → config."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: no such config file")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        _set_dotted(raw, key.strip(), _parse_value(value))
    return from_dict(ExperimentConfig, raw)


def from_dict(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, recursing into dataclass fields; strict keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"under '{prefix.rstrip('.')}'" if prefix else "at the top level"
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}'; valid keys {where}: {', '.join(fields)}")
    kwargs = {}
    for name, value in raw.items():
        f = fields[name]
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            kwargs[name] = from_dict(f.default_factory, value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, f, f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{prefix or 'config'}: {e}") from None


def save_config(config: ExperimentConfig, path: str | os.PathLike) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _coerce(value: Any, f: dataclasses.Field, key: str) -> Any:
    """Light type check so that `train.lr=abc` fails here, naming the key."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, str):  # PyYAML reads `3e-4` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if value is None:
            value = ""
        if not isinstance(value, str):
            value = str(value)
    elif f.default_factory is dict and not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping, got {value!r}")
    return value


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: '{part}' is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def _parse_value(text: str) -> Any:
    """YAML scalar parsing, so `3e-4`, `true`, `[1, 2]` and `{a: 1}` work on the command line."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
