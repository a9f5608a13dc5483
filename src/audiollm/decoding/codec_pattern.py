"""How K codebooks of codec frames are laid out as decoding steps, for training and decoding alike.

A codec answer is codes (K, T): K codebooks per frame (`models.codecs`), then an end-of-audio
(EOA) frame. Each codebook has ``V = C + 2`` ids: its C codes, PAD (pattern padding, never a
target) and EOA. Two layouts, one interface (`PATTERNS`):

    delay    MusicGen's: one step per frame, all K codebooks at once, codebook k delayed by k
             steps, so the finer codebooks of a frame are predicted after its coarser ones
             were fed back. T + K steps for T frames (the last K - 1 are partly PAD).
    flatten  music_llm's / VALL-E-style: one codebook per step, frame by frame (K·T + 1 steps;
             no PAD). Simplest, K times as many steps.

Training: `training_steps` turns a batch of codes into the step inputs the LM reads (ids in
the flat id space ``k·V + id`` of the per-codebook embedding tables, PAD included) and the
targets (B, S, K) the per-codebook heads are scored on, -100 wherever nothing real is predicted
(pattern PAD, the other codebooks of a flattened step): the loss never sees padding.
Decoding: `processor` is a logits processor of the one loop (`decoding.loop`) that allows only
the ids the layout permits at each step, ends the answer between ``min_frames`` and
``max_frames`` frames, and `codes_from_steps` reads the codes back from the steps decoded.

Continuation: an audio prompt's P frames fill the first `steps_before(P)` steps (the steps
they determine entirely), which are fed as part of the prefix; decoding then starts at that
step, and the mask forces the prompt's codes wherever a delayed codebook still writes a
prompt frame. Training needs nothing special: a causal LM trained on whole windows has always
predicted each frame from the frames before it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from audiollm.decoding.processors import Processor
from audiollm.errors import ConfigError

IGNORE = -100


class CodecPattern(ABC):
    """Base class: K codebooks of C codes each; ids per codebook are C codes, PAD = C, EOA = C + 1."""

    name = ""
    width = 1  # tokens per decoding step

    def __init__(self, num_codebooks: int, codebook_size: int):
        if num_codebooks < 1 or codebook_size < 1:
            raise ConfigError(f"a codec pattern needs ≥ 1 codebook of ≥ 1 code, got {num_codebooks} × {codebook_size}")
        self.K, self.C = int(num_codebooks), int(codebook_size)
        self.pad, self.eoa, self.V = self.C, self.C + 1, self.C + 2

    # -- layout --------------------------------------------------------------------------------

    @abstractmethod
    def num_steps(self, frames: int) -> int:
        """Decoding steps that hold ``frames`` frames and the EOA."""

    @abstractmethod
    def steps(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One answer's codes (K, T) → its steps' flat ids (S, width) and targets (S, K)."""

    @abstractmethod
    def num_targets(self, frames: int) -> int:
        """Real targets (codes and EOA) of an answer of ``frames`` frames: the loss normaliser's count."""

    def training_steps(self, codes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded codes (B, K, T) with real frame counts (B,) (0: no audio answer) → the inputs
        (B, S - 1, width) fed after the prompt, targets (B, S, K), and steps per row (B,).

        Row i's prompt's last position predicts step 0 and input step s predicts step s + 1,
        so a row with S_i steps has S_i - 1 inputs; rows without an answer have none."""
        B = codes.shape[0]
        rows = [self.steps(codes[i, :, : int(lengths[i])]) if int(lengths[i]) > 0 else None for i in range(B)]
        n_steps = torch.tensor([0 if r is None else r[0].shape[0] for r in rows], dtype=torch.long)
        S = max(1, int(n_steps.max()))
        inputs = torch.full((B, max(1, S - 1), self.width), 0, dtype=torch.long)
        targets = torch.full((B, S, self.K), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            if r is not None:
                ids, tgt = r
                inputs[i, : ids.shape[0] - 1] = ids[:-1]
                targets[i, : tgt.shape[0]] = tgt
        return inputs.to(codes.device), targets.to(codes.device), n_steps.to(codes.device)

    @abstractmethod
    def to_flat(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens as the decoding loop picks them → flat ids (..., width) of the embedding tables."""

    @abstractmethod
    def step_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The heads' (R, K·V) scores of one step → what the loop samples from."""

    # -- decoding ------------------------------------------------------------------------------

    @property
    def eos_id(self) -> int:
        """The token that ends a sequence in the loop (on the last column of a wide step)."""
        return self.eoa

    def max_steps(self, max_frames: int) -> int:
        return self.num_steps(max_frames)

    @abstractmethod
    def steps_before(self, prompt_frames: int) -> int:
        """Steps entirely determined by the first ``prompt_frames`` frames (fed, not decoded)."""

    def prompt_steps(self, codes: torch.Tensor) -> torch.Tensor:
        """A prompt's codes (K, P) → the flat ids (steps_before(P), width) of its steps."""
        return self.steps(codes)[0][: self.steps_before(codes.shape[1])]

    def processor(self, max_frames: Sequence[int], min_frames: Sequence[int] | int = 1,
                  prompts: Sequence[torch.Tensor] | None = None) -> "PatternMask":
        return PatternMask(self, max_frames, min_frames, prompts)

    @abstractmethod
    def allowed(self, step: int, end: int | None, max_frames: int, min_frames: int, device,
                prompt: torch.Tensor | None = None) -> torch.Tensor:
        """(width, V) or (K·V,) bool: the ids allowed at ``step`` for a row whose codebook 0
        ended at frame ``end`` (None: not yet) and whose first frames are ``prompt`` (K, P)."""

    @abstractmethod
    def ended_at(self, step: int, token: torch.Tensor) -> int | None:
        """The frame at which this step's token put codebook 0's EOA (None if it did not)."""

    @abstractmethod
    def codes_from_steps(self, steps: Sequence, prompt: torch.Tensor | None = None) -> torch.Tensor:
        """The steps one sequence decoded (eos step excluded) → its codes (K, T): the frames
        after ``prompt`` (K, P) when decoding continued one."""


class DelayPattern(CodecPattern):
    """Step s holds codebook k's code of frame s - k (PAD where that frame is < 0 or past the EOA)."""

    name = "delay"

    def __init__(self, num_codebooks: int, codebook_size: int):
        super().__init__(num_codebooks, codebook_size)
        self.width = self.K
        self.offsets = torch.arange(self.K) * self.V  # (K,) start of each codebook's ids

    def num_steps(self, frames: int) -> int:
        return frames + self.K  # T frames + EOA, the last codebook K - 1 steps late

    def num_targets(self, frames: int) -> int:
        return (frames + 1) * self.K

    def steps_before(self, prompt_frames: int) -> int:
        return prompt_frames  # step s < P holds frames s - k < P only

    def steps(self, codes):
        K, T = codes.shape
        S = self.num_steps(T)
        frames = torch.cat([codes.long().cpu(), torch.full((K, 1), self.eoa)], dim=1)  # (K, T + 1)
        grid = torch.full((S, K), self.pad, dtype=torch.long)
        for k in range(K):
            grid[k : k + T + 1, k] = frames[k]
        targets = grid.masked_fill(grid == self.pad, IGNORE)  # (S, K)
        return grid + self.offsets, targets

    def to_flat(self, tokens):
        return tokens + self.offsets.to(tokens.device)  # (..., K) local ids → flat

    def step_logits(self, logits):
        return logits.view(*logits.shape[:-1], self.K, self.V)  # (R, K, V)

    def allowed(self, step, end, max_frames, min_frames, device, prompt=None):
        ok = torch.zeros(self.K, self.V, dtype=torch.bool, device=device)
        for k in range(self.K):
            f = step - k  # the frame codebook k writes at this step
            if prompt is not None and 0 <= f < prompt.shape[1]:
                ok[k, int(prompt[k, f])] = True  # a prompt frame a delayed codebook still writes
            elif f < 0 or (end is not None and f > end):
                ok[k, self.pad] = True
            elif end is not None and f == end:
                ok[k, self.eoa] = True
            elif k == 0 and f >= max_frames:
                ok[k, self.eoa] = True  # the budget: end here
            else:
                ok[k, : self.C] = True
                if k == 0 and f >= min_frames:
                    ok[k, self.eoa] = True
        return ok

    def ended_at(self, step, token):
        return step if int(token[0]) == self.eoa else None

    def codes_from_steps(self, steps, prompt=None):
        grid = torch.as_tensor([list(s) for s in steps], dtype=torch.long).view(-1, self.K)  # (S', K)
        if prompt is not None:  # the prompt's own steps come first
            grid = torch.cat([self.prompt_steps(prompt) - self.offsets, grid])
        first = grid[:, 0]
        ends = (first == self.eoa).nonzero()
        T = int(ends[0]) if len(ends) else max(0, grid.shape[0] - (self.K - 1))
        T = min(T, max(0, grid.shape[0] - (self.K - 1)))  # every codebook has written frame T - 1
        codes = torch.stack([grid[k : k + T, k] for k in range(self.K)]) if T else torch.zeros(self.K, 0, dtype=torch.long)
        codes = codes.clamp(max=self.C - 1)  # a stray special id in a cut-off row becomes a code
        return codes if prompt is None else codes[:, prompt.shape[1]:]


class FlattenPattern(CodecPattern):
    """Step t·K + k holds codebook k's code of frame t; step T·K is codebook 0's EOA."""

    name = "flatten"
    width = 1

    def num_steps(self, frames: int) -> int:
        return frames * self.K + 1

    def num_targets(self, frames: int) -> int:
        return frames * self.K + 1

    def steps_before(self, prompt_frames: int) -> int:
        return prompt_frames * self.K

    def steps(self, codes):
        K, T = codes.shape
        flat = (codes.long().cpu().T + torch.arange(K) * self.V).reshape(-1)  # (T·K,) frame-major
        ids = torch.cat([flat, torch.tensor([self.eoa])])[:, None]  # (S, 1)
        targets = torch.full((T * K + 1, K), IGNORE, dtype=torch.long)
        s = torch.arange(T * K)
        targets[s, s % K] = codes.long().cpu().T.reshape(-1)
        targets[T * K, 0] = self.eoa
        return ids, targets

    def to_flat(self, tokens):
        return tokens[..., None]  # (..., 1): the loop already picks flat ids

    def step_logits(self, logits):
        return logits  # (R, K·V): the mask keeps the one codebook of the step

    def allowed(self, step, end, max_frames, min_frames, device, prompt=None):
        ok = torch.zeros(self.K * self.V, dtype=torch.bool, device=device)
        k, f = step % self.K, step // self.K
        base = k * self.V
        if k == 0 and f >= max_frames:
            ok[self.eoa] = True
        else:
            ok[base : base + self.C] = True
            if k == 0 and f >= min_frames:
                ok[self.eoa] = True
        return ok

    def ended_at(self, step, token):
        return step // self.K if int(token) == self.eoa else None

    def codes_from_steps(self, steps, prompt=None):
        flat = torch.as_tensor([int(s) for s in steps], dtype=torch.long)  # decoding starts on a frame
        T = len(flat) // self.K
        grid = flat[: T * self.K].view(T, self.K) - torch.arange(self.K) * self.V  # (T, K)
        return grid.T.clamp(0, self.C - 1).contiguous()


PATTERNS: dict[str, type[CodecPattern]] = {"delay": DelayPattern, "flatten": FlattenPattern}


def make_pattern(name: str, num_codebooks: int, codebook_size: int) -> CodecPattern:
    if name not in PATTERNS:
        raise ConfigError(f"unknown codec pattern {name!r}; patterns: {', '.join(PATTERNS)}")
    return PATTERNS[name](num_codebooks, codebook_size)


class PatternMask(Processor):
    """The layout's rule as a decoding processor: each step, rule out every id the pattern does
    not allow for each row (its frame budget ``max_frames[row]`` included), and remember when a
    row's codebook 0 wrote the EOA so the later codebooks end on the same frame."""

    def __init__(self, pattern: CodecPattern, max_frames: Sequence[int], min_frames: Sequence[int] | int = 1,
                 prompts: Sequence[torch.Tensor] | None = None):
        """Frame counts are of the whole answer, ``prompts`` (K, P) included (one P for all rows)."""
        self.pattern = pattern
        self.max_frames = [int(m) for m in max_frames]
        n = len(self.max_frames)
        self.min_frames = [int(min_frames)] * n if isinstance(min_frames, int) else [int(m) for m in min_frames]
        self.prompts = list(prompts) if prompts is not None else [None] * n
        self.ends: list[int | None] = [None] * n
        P = {0 if p is None else int(p.shape[1]) for p in self.prompts}
        if len(P) != 1:
            raise ValueError(f"audio prompts of one batch must have the same length, got {sorted(P)} frames")
        self.step = pattern.steps_before(P.pop())  # the prompt's steps are fed, not decoded

    def __call__(self, rows, scores):
        masks = torch.stack([self.pattern.allowed(self.step, self.ends[r], self.max_frames[r], self.min_frames[r],
                                                  scores.device, self.prompts[r]) for r in rows])
        return scores.masked_fill(~masks.view(scores.shape), float("-inf"))

    def advance(self, rows, tokens):
        for r, tok in zip(rows, tokens):
            if self.ends[r] is None:
                self.ends[r] = self.pattern.ended_at(self.step, tok)
        self.step += 1
