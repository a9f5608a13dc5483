"""Manifest rows → padded training batches, and the order rows are drawn in.

Each example is ``[audio] <|user|> question <|assistant|> answer <|eos|>``; the labels
mark only the answer and ``<|eos|>``. Everything random about an example (question
paraphrase, crop, gain, speed) is drawn from a generator seeded by (seed, draw position),
so a resumed run sees exactly the batches an uninterrupted run would have seen, and the
global batch for a step is the same whatever the number of processes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from audiollm.audio import SAMPLE_RATE, load_audio, pad_batch
from audiollm.data.augment import AudioAugment
from audiollm.data.feature_cache import CachedClip, FeatureCache, frame_window
from audiollm.decoding.codec_pattern import CodecPattern
from audiollm.errors import ConfigError
from audiollm.models.heads import collate_targets
from audiollm.tasks import TaskOptions, get_task
from audiollm.tokenizers.text import TextTokenizer

IGNORE_INDEX = -100


class ExampleBuilder:
    """Turns manifest row ``index`` at draw position ``draw`` into one tokenised example."""

    def __init__(
        self,
        rows: list[dict],
        tokenizer: TextTokenizer,
        *,
        seed: int = 0,
        max_audio_seconds: float = 10.0,
        augment: AudioAugment | None = None,
        sample_rate: int = SAMPLE_RATE,
        cache_audio: bool = False,
        features: FeatureCache | None = None,
        task_options: Mapping[str, TaskOptions] | None = None,
        codes: FeatureCache | None = None,
        pattern: CodecPattern | None = None,
    ):
        if features is not None and augment is not None:
            raise ConfigError("data.feature_cache: waveform augmentation cannot apply to cached encoder states; "
                              "set data.augment=false")
        self.rows = rows
        # Each task's config section: text_to_midi's cond_dropout (train on the empty prompt, the
        # unconditional branch of classifier-free guidance) and variants (train on
        # Task.variant(row): the same notes at another tempo, key and instrument, recaptioned).
        self.task_options = dict(task_options or {})
        self.tokenizer = tokenizer
        self.seed = seed
        self.max_samples = int(max_audio_seconds * sample_rate)
        self.augment = augment
        self.sample_rate = sample_rate
        # Decoded, resampled clips by row index: a small corpus (FSDD: 72 MB at 16 kHz) is then
        # read and resampled once instead of at every draw, which dominates a CPU training step.
        self._cache: dict[int, torch.Tensor | CachedClip] | None = {} if cache_audio else None
        # A frozen encoder's precomputed states replace the audio (see data/feature_cache.py).
        self.features = features
        # Audio answers: the codec codes of each clip (a codes cache) laid out by the model's pattern.
        self.codes, self.pattern = codes, pattern
        self._codes: dict[int, torch.Tensor] = {}

    def load(self, index: int) -> torch.Tensor | CachedClip:
        """Row ``index``'s audio at ``sample_rate``, or its cached encoder states (kept in
        memory when ``cache_audio``)."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        path = self.rows[index]["audio"]
        clip = self.features.load(path) if self.features is not None else load_audio(path, self.sample_rate)
        if self._cache is not None:
            self._cache[index] = clip
        return clip

    def option(self, task: str, name: str) -> float:
        return float(getattr(self.task_options.get(task), name, 0.0) or 0.0)

    def __call__(self, index: int, draw: int) -> dict:
        row = self.rows[index]
        rng = random.Random(f"{self.seed}:{draw}")
        task = get_task(row["task"])
        variants = self.option(task.name, "variants")
        if variants > 0 and rng.random() < variants:
            row = task.variant(row, rng, self.tokenizer)
        if task.answers_audio:
            return self._audio_answer(index, row, task, rng)
        if not task.takes_audio:
            return self._text_only(row, task, rng)
        clip = self.load(index)
        cached = isinstance(clip, CachedClip)
        total = round(clip.seconds * self.sample_rate) if cached else clip.shape[0]  # samples
        crop = self.max_samples
        if task.window_seconds is not None:
            crop = min(crop, int(round(task.window_seconds * self.sample_rate)))
        start = 0
        wav = clip.states if cached else clip  # (F', K, D) states or (S,) samples
        if total > crop and (not cached or self.features.frames_follow_time):  # random window of a long clip
            start = rng.randrange(total - crop + 1)
            if task.answers_are_events and self.tokenizer.midi is not None:
                # Event times are on the tokenizer's grid: start the window on it too.
                grid = max(1, int(round(self.tokenizer.midi.time_step * self.sample_rate)))
                start -= start % grid
            if cached:  # the frames that cover the window (the encoder saw the whole clip)
                a, b = frame_window(wav.shape[0], total, start, crop)
                wav = wav[a:b]
            else:
                wav = wav[start : start + crop]
            total = crop
        duration = total / self.sample_rate
        if self.augment is not None:
            # A speed change would move every note: event answers keep the clip's timing.
            wav = self.augment(wav, rng, speed=not task.answers_are_events)
        prompt = self.tokenizer.prompt_ids(task.question(row, rng))
        target = task.target_ids(row, self.tokenizer, start / self.sample_rate, duration)
        answer = target + [self.tokenizer.eos_id]
        return {
            **({"encoder_states": wav} if cached else {"audio": wav}),
            "samples": total,
            "seconds": duration,
            "input_ids": prompt + answer,
            "labels": [IGNORE_INDEX] * len(prompt) + answer,
            "targets": task.head_targets(row, target, self.tokenizer, start / self.sample_rate, duration),
        }

    def _text_only(self, row: dict, task, rng: random.Random) -> dict:
        """An example with no audio (zero samples → zero audio tokens): the answer is the
        task's target for a window of ``task.window_seconds`` at a random grid-aligned start
        (the whole row when it is shorter)."""
        total = task.duration(row)
        window = min(total, task.window_seconds or total)
        start = 0.0
        if total > window + 1e-9:
            step = self.tokenizer.midi.time_step if task.answers_are_events and self.tokenizer.midi else 0.01
            start = rng.randrange(int((total - window) / step) + 1) * step
        question = task.question(row, rng)
        cond_dropout = self.option(task.name, "cond_dropout")
        if cond_dropout > 0 and rng.random() < cond_dropout:
            question = ""  # the unconditional prompt that guidance contrasts with at sampling time
        prompt = self.tokenizer.prompt_ids(question)
        answer = task.target_ids(row, self.tokenizer, start, window) + [self.tokenizer.eos_id]
        return {
            "audio": torch.zeros(0),
            "samples": 0,
            "seconds": 0.0,  # of audio: none
            "input_ids": prompt + answer,
            "labels": [IGNORE_INDEX] * len(prompt) + answer,
            "targets": {},
        }


    def _audio_answer(self, index: int, row: dict, task, rng: random.Random) -> dict:
        """An example whose answer is the codes of the row's audio (no audio in): the whole clip,
        or a random window of ``task.window_seconds``; the prompt may be dropped (cond_dropout)."""
        if self.codes is None or self.pattern is None:
            raise ConfigError(f"task {task.name} answers in audio: set model.audio_answer.codec and data.codes_cache "
                              "(a codes cache of the clips: `audiollm codec cache MANIFEST --model CODEC --out DIR`)")
        if index not in self._codes:
            self._codes[index] = self.codes.load(row["audio"]).states[: self.pattern.K]  # (K, F), small: kept
        codes = self._codes[index]
        if task.window_seconds is not None:
            n = max(1, int(round(task.window_seconds * float(self.codes.signature["codec"]["frame_rate"]))))
            if codes.shape[1] > n:
                start = rng.randrange(codes.shape[1] - n + 1)
                codes = codes[:, start : start + n]
        question = task.question(row, rng)
        cond_dropout = self.option(task.name, "cond_dropout")
        if cond_dropout > 0 and rng.random() < cond_dropout:
            question = ""  # the unconditional prompt of classifier-free guidance
        prompt = self.tokenizer.prompt_ids(question)
        return {"audio": torch.zeros(0), "samples": 0, "seconds": 0.0, "input_ids": prompt,
                "labels": [IGNORE_INDEX] * len(prompt), "targets": {}, "codes": codes,
                "code_targets": self.pattern.num_targets(codes.shape[1])}


def collate(examples: list[dict], pad_id: int) -> dict[str, Any]:
    """Pad a list of examples into the model's batch (see docs/DESIGN.md): waveforms (or a
    frozen encoder's cached states), tokens and labels, and every auxiliary head's targets.
    Text-only examples have no audio: length 0, which the model reads as zero audio tokens."""
    lengths = torch.tensor([len(e["input_ids"]) for e in examples], dtype=torch.long)
    L = int(lengths.max())
    input_ids = torch.full((len(examples), L), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), L), IGNORE_INDEX, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
    batch: dict[str, Any] = {
        "input_ids": input_ids,
        "text_lengths": lengths,
        "labels": labels,
        "targets": collate_targets([e.get("targets", {}) for e in examples]),
    }
    if any("encoder_states" in e for e in examples):
        states = [e.get("encoder_states") for e in examples]
        shape = next(s for s in states if s is not None).shape[1:]  # (K, D)
        states = [s if s is not None else torch.zeros(0, *shape) for s in states]  # text-only rows: no frames
        frames = torch.tensor([s.shape[0] for s in states], dtype=torch.long)
        padded = torch.zeros(len(states), int(frames.max()), *shape)
        for i, s in enumerate(states):
            padded[i, : s.shape[0]] = s
        batch.update(audio=None, encoder_states=padded, encoder_lengths=frames,
                     audio_lengths=torch.tensor([e["samples"] for e in examples], dtype=torch.long))
    else:
        batch["audio"], batch["audio_lengths"] = pad_batch([e["audio"] for e in examples])
    if any("codes" in e for e in examples):  # audio answers: codes (B, K, T), 0 frames for text answers
        K = next(e["codes"].shape[0] for e in examples if "codes" in e)
        frames = torch.tensor([e["codes"].shape[1] if "codes" in e else 0 for e in examples], dtype=torch.long)
        codes = torch.zeros(len(examples), K, max(1, int(frames.max())), dtype=torch.long)
        for i, e in enumerate(examples):
            if "codes" in e:
                codes[i, :, : e["codes"].shape[1]] = e["codes"]
        batch.update(codes=codes, code_lengths=frames,
                     n_code_targets=torch.tensor(sum(e.get("code_targets", 0) for e in examples)))
    return batch


def to_device(batch: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
    """A batch (tensors, nested target dicts, None) moved to ``device``."""
    def move(v):
        if isinstance(v, torch.Tensor):
            return v.to(device)
        if isinstance(v, Mapping):
            return {k: move(x) for k, x in v.items()}
        return v

    return {k: move(v) for k, v in batch.items()}


def audio_length(example: dict) -> int:
    """An example's audio in samples (after augmentation), or its cached states' clip length."""
    return int(example["audio"].shape[0]) if "audio" in example else int(example["samples"])


def length_groups(examples: list[dict], n_groups: int) -> list[list[dict]]:
    """Split ``examples`` into up to ``n_groups`` near-equal groups of similar length.

    Sorted by (audio samples, text tokens), so a 1 s utterance is not padded to a 4 s music
    clip. Deterministic (a stable sort of a deterministic list), and every example lands in
    exactly one group; empty groups are dropped.
    """
    if n_groups <= 1 or len(examples) <= 1:
        return [examples]
    order = sorted(examples, key=lambda e: (audio_length(e), e["codes"].shape[1] if "codes" in e else 0,
                                            len(e["input_ids"])))
    n = min(n_groups, len(order))
    bounds = [round(i * len(order) / n) for i in range(n + 1)]
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class MixtureSampler:
    """Deterministic, resumable stream of row indices with per-task mixture weights.

    Draw ``n`` is a pure function of (seed, n): rows are shuffled without replacement within
    each task (a fresh permutation per pass), and the task of each draw is picked from the
    weights. No state beyond the draw counter is needed to resume.
    """

    BLOCK = 4096

    def __init__(self, rows: list[dict], task_weights: dict[str, float] | None = None, seed: int = 0):
        by_task: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            by_task.setdefault(row["task"], []).append(i)
        weights = dict(task_weights or {})
        self.tasks = sorted(t for t in by_task if weights.get(t, 1.0) > 0) if weights else sorted(by_task)
        if not self.tasks:
            raise ValueError("every task has weight 0")
        if weights:
            w = np.array([weights.get(t, 1.0) for t in self.tasks], dtype=np.float64)
        else:  # natural frequency
            w = np.array([len(by_task[t]) for t in self.tasks], dtype=np.float64)
        self.probs = w / w.sum()
        self.by_task = {t: np.array(by_task[t]) for t in self.tasks}
        self.seed = seed
        self._cache: dict[int, np.ndarray] = {}

    def _block(self, b: int) -> np.ndarray:
        if b not in self._cache:
            rng = np.random.default_rng([self.seed, b])
            which = rng.choice(len(self.tasks), size=self.BLOCK, p=self.probs)
            out = np.empty(self.BLOCK, dtype=np.int64)
            for k, task in enumerate(self.tasks):
                slots = np.flatnonzero(which == k)
                pool = self.by_task[task]
                # Permutations of this task's rows, continued from a task-specific stream.
                perm_rng = np.random.default_rng([self.seed, b, k])
                reps = -(-len(slots) // len(pool))
                order = np.concatenate([perm_rng.permutation(pool) for _ in range(max(reps, 1))])
                out[slots] = order[: len(slots)]
            self._cache = {b: out}  # keep one block: draws are consumed in order
        return self._cache[b]

    def indices(self, start: int, stop: int) -> list[int]:
        """Row indices for draw positions ``start .. stop-1``."""
        return [int(self._block(n // self.BLOCK)[n % self.BLOCK]) for n in range(start, stop)]


class GroupedSampler:
    """Deterministic, resumable stream of row indices in runs of ``group_size`` rows that share
    the value of one label column (``data.group_by``): hard negatives for a contrastive model.

    In a batch of random clips most negatives differ in the most salient label (the instrument),
    so the loss is already low once the model hears that, and nothing pushes it to hear the rest
    (tempo, key). A run of clips with the same instrument can only be told apart by the rest.
    Each pass shuffles every value's rows and cuts them into full runs; the rows left over
    (fewer than ``group_size`` of a value) are shuffled together into mixed runs, and all runs are
    shuffled. A pass is a whole number of runs: the last ``len(rows) % group_size`` leftover rows
    sit this pass out (a fresh draw each pass). So every run starts on a multiple of
    ``group_size``, and a batch holds ``batch / group_size`` whole runs when the per-process
    batch is a multiple of ``group_size``. Like :class:`MixtureSampler`, draw ``n`` is a pure
    function of (seed, n): resuming needs only the draw counter.
    """

    def __init__(self, rows: list[dict], column: str, group_size: int, seed: int = 0):
        if not 1 <= group_size <= len(rows):
            raise ConfigError(f"data.group_size must be between 1 and the {len(rows)} training rows, got {group_size}")
        if not any(column in row for row in rows):
            raise ConfigError(f"data.group_by={column!r}: no training row has that label")
        by_value: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            by_value.setdefault(str(row.get(column)), []).append(i)
        if len(by_value) == 1:
            raise ConfigError(
                f"data.group_by={column!r}: every training row has the same value ({next(iter(by_value))}); "
                "group by a column whose values differ"
            )
        self.values = sorted(by_value)
        self.by_value = {v: np.array(by_value[v]) for v in self.values}
        self.group_size = group_size
        self.seed = seed
        self.pass_length = len(rows) // group_size * group_size
        self._cache: dict[int, np.ndarray] = {}

    def _pass(self, p: int) -> np.ndarray:
        if p not in self._cache:
            rng = np.random.default_rng([self.seed, p, 7])
            g = self.group_size
            runs, rest = [], []
            for value in self.values:
                pool = rng.permutation(self.by_value[value])
                full = len(pool) // g * g
                runs += [pool[k : k + g] for k in range(0, full, g)]
                rest.append(pool[full:])
            rest = rng.permutation(np.concatenate(rest))
            runs += [rest[k : k + g] for k in range(0, len(rest) // g * g, g)]
            order = rng.permutation(len(runs))
            self._cache = {p: np.concatenate([runs[k] for k in order])}  # passes are consumed in order
        return self._cache[p]

    def indices(self, start: int, stop: int) -> list[int]:
        """Row indices for draw positions ``start .. stop-1``."""
        return [int(self._pass(n // self.pass_length)[n % self.pass_length]) for n in range(start, stop)]


def make_sampler(rows: list[dict], data_config, seed: int):
    """The training draw order a config asks for: label-grouped runs (``data.contrastive.group_by``)
    or the per-task mixture (the tasks' weights under ``data.tasks``)."""
    grouping = data_config.contrastive
    if grouping.group_by:
        return GroupedSampler(rows, grouping.group_by, grouping.group_size, seed=seed)
    return MixtureSampler(rows, data_config.task_weights(), seed=seed)
