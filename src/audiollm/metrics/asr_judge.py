"""An ASR judge: Whisper transcribes generated or reconstructed speech, WER scores it.

A TTS model or a speech codec is judged by whether a recogniser still understands it: the WER
of Whisper's transcript of the *output* against the text it should say, reported beside the
WER of the *original* recording (Whisper's own error floor on that data). The two only mean
something side by side.

``WhisperJudge(model_dir)`` loads a transformers Whisper checkpoint from a local directory
(config.json, model.safetensors, the preprocessor config and a tokenizer — what
``audiollm convert ct2-whisper`` writes for Whisper tiny.en) and decodes greedily, in English,
in batches. ``wer(refs, hyps)`` is the project's corpus WER (`metrics.text.wer_cer`, with its
`normalize_text`) after `normalize_asr`, which drops Whisper's annotations ("[BLANK_AUDIO]",
">>" turn markers) and spells out numerals: Whisper writes a spoken "seven" as "7." while FSDD's references are words, so without
it every correctly heard digit would count as a substitution (Whisper tiny.en writes about half
of FSDD's digits as numerals).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from audiollm.audio import resample
from audiollm.errors import AudioError, ModelDirError
from audiollm.metrics.audio import as_mono
from audiollm.metrics.text import normalize_text, wer_cer
from audiollm.models.hub import resolve_device
from audiollm.models.pretrained.hf_common import import_transformers

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMERAL = re.compile(r"\b\d{1,3}\b")
_ANNOTATION = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)")  # [BLANK_AUDIO], <|...|>, (music): not speech
MULTILINGUAL_VOCAB = 51865  # multilingual Whisper vocabularies have this many tokens or more; .en ones 51864


def number_words(n: int) -> str:
    """0–999 in English words, as spoken without "and": 7 → "seven", 105 → "one hundred five"."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_words(n % 100))


def normalize_asr(text: str) -> str:
    """Whisper's annotations in brackets dropped ("[BLANK_AUDIO]", "(music)", as Whisper's own
    English normaliser does), `normalize_text`, words made only of symbols dropped (its ">>"
    speaker-turn marker), then every standalone integer of 1–3 digits spelled out ("7." →
    "seven"). Longer numbers (years, phone numbers) are left as written: their reading is ambiguous."""
    words = [w for w in normalize_text(_ANNOTATION.sub(" ", text)).split() if any(c.isalnum() for c in w)]
    return _NUMERAL.sub(lambda m: number_words(int(m.group())), " ".join(words))


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER of transcripts ``hyps`` against ``refs`` (`metrics.text.wer_cer`, after
    `normalize_asr` on both sides: numerals spelled out, annotations dropped). Lower is better; can exceed 1."""
    return wer_cer([normalize_asr(h) for h in hyps], [normalize_asr(r) for r in refs])["wer"]


@contextlib.contextmanager
def _quiet(transformers):
    """transformers' generation warnings (no attention mask: Whisper's encoder needs none) off."""
    logging = transformers.utils.logging
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


class WhisperJudge:
    """Greedy English transcription with a local Whisper checkpoint (transformers)."""

    def __init__(self, model_dir: str | os.PathLike, device: str | torch.device = "cpu", batch_size: int = 16,
                 max_new_tokens: int = 96):
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise ModelDirError(f"{path}: not a Whisper checkpoint directory (no config.json)")
        T = import_transformers("the Whisper judge")
        self._T = T
        self.device = resolve_device(device)
        self.batch_size = batch_size
        try:
            self.model = T.WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True).eval()
            self.features = T.WhisperFeatureExtractor.from_pretrained(path, local_files_only=True)
            self.tokenizer = T.AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, TypeError) as e:
            raise ModelDirError(f"{path}: cannot load Whisper (model, preprocessor_config.json and a tokenizer "
                                f"are needed): {str(e).splitlines()[0][:200]}") from None
        if self.model.config.model_type != "whisper":
            raise ModelDirError(f"{path}: has model type {self.model.config.model_type!r}, not whisper")
        self.model.to(self.device)
        self.sample_rate = int(self.features.sampling_rate)
        self.window_samples = int(self.features.n_samples)
        self.prompt = self._prompt_ids()
        self.max_new_tokens = max(1, min(max_new_tokens, self.model.config.max_target_positions - len(self.prompt)))

    def _prompt_ids(self) -> list[int]:
        """<|startoftranscript|> [<|en|> <|transcribe|>, multilingual models only] <|notimestamps|>."""
        names = ["<|en|>", "<|transcribe|>"] if self.model.config.vocab_size >= MULTILINGUAL_VOCAB else []
        names.append("<|notimestamps|>")
        vocab = self.tokenizer.get_vocab()
        return [int(self.model.config.decoder_start_token_id)] + [vocab[n] for n in names if n in vocab]

    @torch.no_grad()
    def transcribe(self, wavs: Sequence, sr: int) -> list[str]:
        """One transcript per 1-D waveform at ``sr`` (resampled to Whisper's 16 kHz). A clip longer
        than Whisper's window (30 s for real checkpoints) is an AudioError, not silently cut."""
        clips: list[np.ndarray] = []
        for i, w in enumerate(wavs):
            x = resample(as_mono(w, f"clip {i}"), sr, self.sample_rate)
            if x.numel() > self.window_samples:
                raise AudioError(f"clip {i} is {x.numel() / self.sample_rate:.1f} s; the Whisper judge reads at most "
                                 f"{self.window_samples / self.sample_rate:.0f} s")
            clips.append(x.numpy())
        out: list[str] = []
        for start in range(0, len(clips), self.batch_size):
            batch = clips[start:start + self.batch_size]
            feats = self.features(batch, sampling_rate=self.sample_rate, return_tensors="pt").input_features
            prompt = torch.tensor([self.prompt] * len(batch), device=self.device)
            with _quiet(self._T):
                ids = self.model.generate(feats.to(self.device), decoder_input_ids=prompt, do_sample=False,
                                          num_beams=1, max_new_tokens=self.max_new_tokens)
            out += [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return out
