"""How to decode: one frozen set of options, passed whole from the CLI through the API to the loop.

Whisper's pattern: a single dataclass instead of loose keyword arguments, validated once, where
a bad value is a one-line `ConfigError` naming it (these come straight from CLI flags).
``options.replace(temperature=1.0)`` gives a changed copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from audiollm.errors import ConfigError

#: Weight of the CTC head in joint CTC/attention decoding of transcripts, the default of
#: `audiollm evaluate --ctc-weight` and `train.ctc_decode_weight`. Chosen on the embedded
#: corpus's valid split (docs/experiments/2026-11-24-joint-ctc-attention-decoding-weight.md).
CTC_DECODE_WEIGHT = 0.5


@dataclass(frozen=True)
class DecodingOptions:
    max_new_tokens: int = 64  # answer budget in tokens (the LM's context limit also applies)
    temperature: float = 0.0  # 0 = greedy; > 0 samples from softmax(logits / temperature)
    top_k: int = 0  # sample only from the k most likely tokens (0 = off)
    top_p: float = 1.0  # nucleus sampling: the smallest set of tokens holding this mass (1 = off)
    seed: int = 0  # seed of the sampling generator a call makes when it is not given one
    guidance: float = 1.0  # classifier-free guidance scale for tasks trained with condition dropout
    #   (text_to_midi): uncond + s · (cond − uncond) on log-probabilities; 1 = off
    ctc_weight: float = 0.0  # joint CTC/attention decoding of transcript answers with the model's
    #   CTC head (0 = the LM alone; see decoding.ctc_prefix)
    use_cache: bool = True  # KV cache; False recomputes the whole prefix every step (the reference)

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 0:
            raise ConfigError(f"max_new_tokens must be an integer >= 0, got {self.max_new_tokens!r}")
        if not self.temperature >= 0.0:  # also rejects NaN
            raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if int(self.top_k) != self.top_k or self.top_k < 0:
            raise ConfigError(f"top_k must be an integer >= 0 (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if not self.guidance >= 0.0:
            raise ConfigError(f"guidance must be >= 0 (1 = off), got {self.guidance}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ConfigError(f"ctc_weight must be in [0, 1] (0 = the LM alone), got {self.ctc_weight}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def replace(self, **changes) -> "DecodingOptions":
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)
