"""Speak and play: text → codec tokens → audio, for models with codec heads (`models.codec_answer`).

    speech = model.speak("The dog barked all night.")          # a tts model
    speech.save("dog.wav")
    clips = model.generate_audio("A jazz recording.", seconds=4, num_samples=4)   # text_to_audio

The model writes codes (K, T) through the one decoding loop (`AudioLLM.generate_codes`: KV
cache, the pattern's mask, sampling, optional classifier-free guidance against the empty
prompt); the codec the model was trained on decodes them. That codec is found where the model
config records it and must still have the weights the model learned (same fingerprint),
otherwise the error names both.

Length is tied to the request: a sentence gets between ``len(text) / MAX_CHARS_PER_SECOND`` and
``1 + len(text) / MIN_CHARS_PER_SECOND`` seconds (the TTS corpus speaks 10-25 characters a second,
median 17.6; the budget allows ~2× slower, the floor ~2× faster), so a model that never stops is cut and
one that stops at once is not allowed to. A text is spoken sentence by sentence (one batch),
joined with a short pause, so text longer than the model's context is split at sentence ends;
a single sentence too long for the context is refused, naming the limit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audiollm.audio import save_audio
from audiollm.decoding.options import DecodingOptions
from audiollm.errors import AudioLLMError
from audiollm.inference.codec import CodecModel, open_codec
from audiollm.tasks.audio_answer import speech_prompt

UNCONDITIONAL = ""  # the prompt condition dropout trains on
MIN_CHARS_PER_SECOND = 8.0  # the slowest speech the budget allows (sets the frame budget)
MAX_CHARS_PER_SECOND = 40.0  # the fastest speech accepted (sets the floor)
PAUSE_SECONDS = 0.25  # silence between sentences
WINDOW_SECONDS = 4.0  # the window text_to_audio and continuation train on: longer audio is extended
STRIDE_SECONDS = 2.0  # new audio per extension window (audiocraft's extend stride)
#: How `speak` samples by default: sampling (greedy codec decoding loops), moderate temperature, top-k.
SPEAK_OPTIONS = DecodingOptions(temperature=0.8, top_k=50)
#: How `generate_audio` samples by default (MusicGen's recipe: top-k 250, guidance 3).
MUSIC_OPTIONS = DecodingOptions(temperature=1.0, top_k=250, guidance=3.0)


@dataclass
class Sound:
    """Generated audio: samples at ``sample_rate`` and the codes they were decoded from."""

    audio: np.ndarray  # (T,) float32
    sample_rate: int
    codes: list[np.ndarray]  # one (K, F) array per generated part (sentence)
    similarity: float | None = None  # MuLaN similarity to the text when samples were reranked

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / self.sample_rate

    def save(self, path: str | os.PathLike) -> Path:
        """Write a WAV, atomically."""
        return save_audio(path, self.audio, self.sample_rate)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after . ! ? followed by a space), whitespace collapsed."""
    text = " ".join(str(text).split())
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def check_words(text: str) -> str:
    """The text, or AudioLLMError when it is empty or has no letters or digits to say."""
    text = " ".join(str(text).split())
    if not text:
        raise AudioLLMError("the text is empty: give the words to say")
    if not re.search(r"[A-Za-z0-9]", text):
        raise AudioLLMError(f"the text {text[:40]!r} has no letters or digits to say")
    return text


class AudioAnswers:
    """The codec-token side of a loaded model: its codec, and sampling codes for prompts."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        answer = getattr(model, "audio_answer", None)
        if answer is None:
            raise AudioLLMError("this model answers in text, not audio: it was not trained with model.audio_answer")
        self.config = answer.config
        self._codec: CodecModel | None = None

    @property
    def codec(self) -> CodecModel:
        """The codec the model was trained on (loaded once), checked against its fingerprint."""
        if self._codec is None:
            cfg = self.config
            try:
                codec = open_codec(cfg.codec, device=str(next(self.model.parameters()).device))
            except AudioLLMError as e:
                raise AudioLLMError(f"the codec this model writes for ({cfg.codec}) cannot be loaded: {e}") from None
            found = codec.codec.identity()
            if found.get("fingerprint") != cfg.fingerprint:
                raise AudioLLMError(f"the model was trained on codec {cfg.codec} with weights {cfg.fingerprint}, but "
                                    f"{cfg.codec} now holds weights {found.get('fingerprint')}: restore that codec")
            self._codec = codec
        return self._codec

    def frames(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.config.frame_rate)))

    def sample(self, prompts: list[str], max_seconds: list[float], min_seconds: list[float],
               options: DecodingOptions, generator: torch.Generator | None = None,
               prompt_codes: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Codes (K, F) per prompt, each between its ``min_seconds`` and ``max_seconds`` (after
        ``prompt_codes``, an audio prompt of one length for all, when given)."""
        ids = [self.tokenizer.prompt_ids(p) for p in prompts]
        uncond = self.tokenizer.prompt_ids(UNCONDITIONAL)
        max_frames = [self.frames(s) for s in max_seconds]
        pattern = self.model.audio_answer.pattern
        P = 0 if prompt_codes is None else int(prompt_codes[0].shape[1])
        steps = pattern.max_steps(P + max(max_frames))
        limit = int(getattr(self.model.lm, "max_seq_len", 0) or 0)
        longest = max(len(i) for i in ids + ([uncond] if options.guidance != 1.0 else []))
        if limit and longest + steps > limit:
            raise AudioLLMError(f"a prompt of {longest} tokens and up to {max(max_seconds):.1f} s of audio "
                                f"({steps} steps) exceed the model's context of {limit} positions")
        was_training = self.model.training
        self.model.eval()
        try:
            codes = self.model.generate_codes(ids, max_frames=max_frames,
                                              min_frames=[min(self.frames(s), m) for s, m in zip(min_seconds, max_frames)],
                                              options=options, unconditional_ids=uncond, generator=generator,
                                              prompt_codes=None if prompt_codes is None else
                                              [torch.as_tensor(c) for c in prompt_codes])
        finally:
            self.model.train(was_training)
        return [c.cpu().numpy() for c in codes]

    def speak(self, text: str, *, voice: str | None = None, options: DecodingOptions = SPEAK_OPTIONS,
              generator: torch.Generator | None = None) -> Sound:
        sentences = split_sentences(check_words(text))
        prompts = [speech_prompt(s, voice) for s in sentences]
        codes = self.sample(prompts, [1.0 + len(s) / MIN_CHARS_PER_SECOND for s in sentences],
                            [len(s) / MAX_CHARS_PER_SECOND for s in sentences], options, generator)
        return self.decode(codes)

    def generate(self, text: str, *, seconds: float, options: DecodingOptions = MUSIC_OPTIONS, num_samples: int = 1,
                 generator: torch.Generator | None = None, prompt_audio=None, prompt_sample_rate: int | None = None,
                 window_seconds: float = WINDOW_SECONDS, stride_seconds: float = STRIDE_SECONDS) -> list[Sound]:
        """``num_samples`` clips of ``seconds`` new audio for ``text``, after ``prompt_audio``
        (a path or samples, encoded by the model's codec) when given — the prompt is then kept
        at the start of each clip. Past ``window_seconds`` (the training window) the audio is
        extended window by window: each new window continues the last ``window_seconds -
        stride_seconds`` of what came before and adds ``stride_seconds``."""
        text = check_words(text)
        if not seconds > 0:
            raise AudioLLMError(f"seconds must be > 0, got {seconds:g}")
        if num_samples < 1:
            raise AudioLLMError(f"num_samples must be at least 1, got {num_samples}")
        if not 0 < stride_seconds <= window_seconds:
            raise AudioLLMError(f"the extension stride must be in (0, window] = (0, {window_seconds:g}] s, "
                                f"got {stride_seconds:g}")
        K = self.config.num_codebooks
        context = np.zeros((K, 0), dtype=np.int64)
        if prompt_audio is not None:
            prompt = self.codec.encode(prompt_audio, num_codebooks=K, sample_rate=prompt_sample_rate)
            context = prompt.codes
        window = self.frames(window_seconds)
        keep = min(window - 1, int(round((window_seconds - stride_seconds) * self.config.frame_rate)))
        total, made, new = self.frames(seconds), [context] * num_samples, 0
        while new < total:
            # A prompt shorter than a window is continued whole; after that, the last `keep` frames.
            whole = new == 0 and made[0].shape[1] < window
            ctx = [m if whole else m[:, m.shape[1] - min(keep, m.shape[1]):] for m in made]
            n = min(window - ctx[0].shape[1], total - new)
            step_seconds = n / self.config.frame_rate
            codes = self.sample([text] * num_samples, [step_seconds] * num_samples, [step_seconds] * num_samples,
                                options, generator, prompt_codes=ctx if ctx[0].shape[1] else None)
            made = [np.concatenate([m, c], axis=1) for m, c in zip(made, codes)]
            new += n
        return [self.decode([m]) for m in made]

    def decode(self, parts: list[np.ndarray]) -> Sound:
        codec = self.codec
        pause = np.zeros(int(PAUSE_SECONDS * codec.sample_rate), dtype=np.float32)
        audio: list[np.ndarray] = []
        for i, c in enumerate(parts):
            if i:
                audio.append(pause)
            if c.shape[1]:
                audio.append(codec.decode(c).astype(np.float32))
        wav = np.concatenate(audio) if audio else np.zeros(0, dtype=np.float32)
        return Sound(wav, codec.sample_rate, parts)
