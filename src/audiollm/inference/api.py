"""The Python API: ``audiollm.load(model_dir)`` → an object with the methods its model type supports.

    import audiollm

    model = audiollm.load("runs/quickstart/final", device="auto")
    model.ask("clip.wav", "Which instrument family is playing?")       # → "strings"
    model.transcribe("piano.wav").write_midi("piano.mid")                # a transcription model
    model.compose("a slow cello in D minor", num_samples=4)[0].save("cello.wav")  # text → MIDI → audio

    mulan = audiollm.load("runs/mulan_quickstart/final")
    mulan.tag("clip.wav", ["piano", "organ", "guitar"])                  # → [("organ", 0.71), ...]

Audio is a file path, or samples (numpy array / torch tensor) at ``sample_rate`` (16 kHz by
default). Every method returns plain results (str, lists, numpy arrays, small dataclasses)
and raises `audiollm.errors.AudioLLMError` subclasses for anything a user can fix. The CLI,
the benchmarks and the evaluation all call these.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from audiollm.audio import SAMPLE_RATE, as_waveform, resample
from audiollm.data.feature_cache import CachedClip
from audiollm.decoding.options import DecodingOptions
from audiollm.errors import AudioLLMError
from audiollm.inference import embedding
from audiollm.inference.answer import (
    DEFAULT_QUESTION,
    candidate_logprobs,
    generate_answers,
)
from audiollm.inference.codec import CodecModel
from audiollm.inference.compose import COMPOSE_OPTIONS, Piece, compose, generate_midi
from audiollm.inference.index import build_index
from audiollm.inference.speak import (
    MUSIC_OPTIONS,
    SPEAK_OPTIONS,
    STRIDE_SECONDS,
    WINDOW_SECONDS,
    AudioAnswers,
    Sound,
)
from audiollm.inference.transcribe import DEFAULT_QUESTION as TRANSCRIBE_QUESTION
from audiollm.inference.transcribe import plot_piano_roll, transcribe
from audiollm.models.hub import load as load_dir
from audiollm.models.hub import read_model_config
from audiollm.music.midi_file import write_midi
from audiollm.music.notes import Note
from audiollm.tasks.audio_answer import ContinuationTask


@dataclass
class Transcription:
    """The notes heard in a recording (seconds from its start) and its length."""

    notes: list[Note]
    seconds: float

    def write_midi(self, path: str | os.PathLike) -> Path:
        """Write the notes as a MIDI file (atomically)."""
        if Path(path).suffix.lower() not in (".mid", ".midi"):
            raise AudioLLMError(f"{path}: a MIDI file name must end in .mid or .midi")
        return write_midi(self.notes, path)

    def plot(self, path: str | os.PathLike) -> Path:
        """Save a piano roll (time × pitch) as an image (needs matplotlib)."""
        return plot_piano_roll(self.notes, path, duration=self.seconds)


CONTINUE_QUESTION = ContinuationTask.questions[0]


def _options(options: DecodingOptions | None, default: DecodingOptions, overrides: dict[str, Any]) -> DecodingOptions:
    return (options or default).replace(**overrides) if overrides else (options or default)


class AudioLanguageModel:
    """A loaded audio-language model (``model_type: audiollm``): ask, transcribe, compose."""

    def __init__(self, model, tokenizer, directory: str | os.PathLike | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.directory = Path(directory) if directory is not None else None
        self._audio_answers: AudioAnswers | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def writes_audio(self) -> bool:
        """Whether the model answers in codec tokens (a tts or text_to_audio model)."""
        return getattr(self.model, "audio_answer", None) is not None

    @property
    def audio_answers(self) -> AudioAnswers:
        """The codec side of the model (`inference.speak.AudioAnswers`); AudioLLMError for a text model."""
        if self._audio_answers is None:
            self._audio_answers = AudioAnswers(self.model, self.tokenizer)
        return self._audio_answers

    @property
    def writes_midi(self) -> bool:
        """Whether the tokenizer has MIDI event tokens (a transcription or text-to-MIDI model)."""
        return getattr(self.tokenizer, "midi", None) is not None

    def _clip(self, audio, sample_rate: int, **load_options) -> torch.Tensor | CachedClip:
        return audio if isinstance(audio, CachedClip) else as_waveform(audio, sample_rate, **load_options)

    # -- ask ----------------------------------------------------------------------------------

    def ask(self, audio, question: str = DEFAULT_QUESTION, *, options: DecodingOptions | None = None,
            sample_rate: int = SAMPLE_RATE, transcript: bool = False, **option_overrides) -> str:
        """The model's answer to ``question`` about ``audio``. ``options`` (or keyword
        overrides such as ``temperature=0.8``) choose how to decode; ``transcript=True`` marks
        the answer as a transcript, decoded jointly with a CTC head when ``ctc_weight`` > 0."""
        return self.ask_many([audio], [question], options=_options(options, DecodingOptions(), option_overrides),
                             sample_rate=sample_rate, transcripts=[transcript])[0]

    def ask_many(self, audios: Sequence[Any], questions: Sequence[str], *, options: DecodingOptions | None = None,
                 batch_size: int = 16, sample_rate: int = SAMPLE_RATE, transcripts: Sequence[bool] | None = None,
                 generator: torch.Generator | None = None, progress: bool = False) -> list[str]:
        """Answers for pairs of audio and questions, ``batch_size`` at a time, in input order.
        Sampling draws from one generator (``generator``, else one seeded with ``options.seed``)
        across the batches."""
        if len(audios) != len(questions):
            raise AudioLLMError(f"{len(questions)} questions for {len(audios)} clips")
        if batch_size < 1:
            raise AudioLLMError(f"batch_size must be at least 1, got {batch_size}")
        options = options or DecodingOptions()
        if generator is None and not options.greedy:
            generator = torch.Generator().manual_seed(options.seed)
        answers: list[str] = []
        with tqdm(total=len(audios), desc="ask", unit="clip", disable=not progress) as bar:
            for start in range(0, len(audios), batch_size):
                part = range(start, min(start + batch_size, len(audios)))
                clips = [self._clip(audios[i], sample_rate) for i in part]
                rows = None if transcripts is None else [bool(transcripts[i]) for i in part]
                answers += generate_answers(self.model, self.tokenizer, clips, [questions[i] for i in part], options,
                                            generator=generator, ctc_rows=rows)
                bar.update(len(part))
        return answers

    def score_answers(self, audios: Sequence[Any], questions: Sequence[str],
                      candidates: Sequence[Sequence[tuple[str, str]]], *, sample_rate: int = SAMPLE_RATE
                      ) -> list[list[float]]:
        """Teacher-forced log-likelihoods of (answer prefix, candidate) pairs per clip
        (`inference.answer.candidate_logprobs`): how the model would rank answers."""
        wavs = [as_waveform(a, sample_rate) for a in audios]
        return candidate_logprobs(self.model, self.tokenizer, wavs, questions, candidates)

    # -- transcribe ---------------------------------------------------------------------------

    def transcribe(self, audio, *, window_seconds: float = 5.0, onsets: str = "auto", offsets: str = "auto",
                   batch_size: int = 8, max_new_tokens: int = 1024, sample_rate: int = SAMPLE_RATE,
                   max_seconds: float | None = None, progress: bool = False) -> Transcription:
        """The notes played in ``audio`` (any length: cut into windows, transcribed, stitched).
        ``onsets`` / ``offsets`` choose where note starts and ends come from (see
        `inference.transcribe`)."""
        return self.transcribe_many([audio], window_seconds=window_seconds, onsets=onsets, offsets=offsets,
                                    batch_size=batch_size, max_new_tokens=max_new_tokens, sample_rate=sample_rate,
                                    max_seconds=max_seconds, progress=progress)[0]

    def transcribe_many(self, audios: Sequence[Any], questions: Sequence[str] | None = None, *,
                        window_seconds: float = 5.0, onsets: str = "auto", offsets: str = "auto", batch_size: int = 8,
                        max_new_tokens: int = 1024, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None,
                        progress: bool = False) -> list[Transcription]:
        """`transcribe` for several recordings; their windows share batches."""
        wavs = [as_waveform(a, sample_rate, max_seconds=max_seconds) for a in audios]
        notes = transcribe(self.model, self.tokenizer, wavs, window_seconds=window_seconds,
                           questions=questions or [TRANSCRIBE_QUESTION] * len(wavs), batch_size=batch_size,
                           max_new_tokens=max_new_tokens, onsets=onsets, offsets=offsets, progress=progress)
        return [Transcription(n, w.shape[0] / SAMPLE_RATE) for n, w in zip(notes, wavs)]

    # -- compose ------------------------------------------------------------------------------

    def compose(self, text: str, *, seconds: float = 4.0, num_samples: int = 1,
                options: DecodingOptions | None = None, tempo_fit: bool = True, render: bool = True,
                soundfont: str | os.PathLike | None = None, rerank: "EmbeddingModel | None" = None,
                keep: int | None = None, **option_overrides) -> list[Piece]:
        """Music for ``text`` ("a slow cello in D minor at 72 bpm"): ``num_samples`` pieces of
        ``seconds``, sampled with guidance and the MIDI grammar (`inference.compose.COMPOSE_OPTIONS`
        unless ``options``), played at the requested tempo (``tempo_fit``), rendered to 16 kHz
        audio; with a MuLaN ``rerank`` model the ``keep`` best, best first."""
        return compose(self.model, self.tokenizer, text, seconds=seconds, num_samples=num_samples,
                       options=_options(options, COMPOSE_OPTIONS, option_overrides), tempo_fit=tempo_fit,
                       render=render, soundfont=soundfont, keep=keep,
                       rerank=None if rerank is None else rerank.rerank)

    # -- speak, generate audio ----------------------------------------------------------------

    def speak(self, text: str, *, voice: str | None = None, options: DecodingOptions | None = None,
              **option_overrides) -> Sound:
        """Speech for ``text`` (sentence by sentence; `inference.speak.SPEAK_OPTIONS` unless
        ``options``), in ``voice`` when the model was trained on voice descriptions."""
        return self.audio_answers.speak(text, voice=voice, options=_options(options, SPEAK_OPTIONS, option_overrides))

    def generate_audio(self, text: str = CONTINUE_QUESTION, *, seconds: float = 4.0, num_samples: int = 1,
                       options: DecodingOptions | None = None, rerank: "EmbeddingModel | None" = None,
                       keep: int | None = None, prompt_audio=None, sample_rate: int | None = None,
                       window_seconds: float = WINDOW_SECONDS, stride_seconds: float = STRIDE_SECONDS,
                       **option_overrides) -> list[Sound]:
        """``num_samples`` clips of ``seconds`` new audio for a caption (`inference.speak.MUSIC_OPTIONS`
        unless ``options``), continuing ``prompt_audio`` (a path, or samples at ``sample_rate``)
        when given; longer than ``window_seconds``, extended window by window
        (`inference.speak.AudioAnswers.generate`). With a MuLaN ``rerank`` model the ``keep``
        best, best first."""
        keep = num_samples if keep is None else keep
        if not 1 <= keep <= max(1, num_samples):
            raise AudioLLMError(f"keep must be between 1 and num_samples ({num_samples}), got {keep}")
        if keep < num_samples and rerank is None:
            raise AudioLLMError("keeping fewer samples than drawn needs a reranker (a MuLaN model) to choose them")
        sounds = self.audio_answers.generate(text, seconds=seconds, num_samples=num_samples,
                                             options=_options(options, MUSIC_OPTIONS, option_overrides),
                                             prompt_audio=prompt_audio, prompt_sample_rate=sample_rate,
                                             window_seconds=window_seconds, stride_seconds=stride_seconds)
        if rerank is None:
            return sounds
        clips = [resample(torch.from_numpy(s.audio), s.sample_rate, SAMPLE_RATE) for s in sounds]
        out = []
        for i, similarity in rerank.rerank(text, clips, keep=keep):
            sounds[i].similarity = similarity
            out.append(sounds[i])
        return out

    def compose_notes(self, texts: Sequence[str], *, seconds: float, options: DecodingOptions = COMPOSE_OPTIONS,
                      generator: torch.Generator | None = None, follow_caption: bool = True) -> list[list[Note]]:
        """The sampled notes for each text, as one batch (no tempo fitting, no rendering)."""
        return generate_midi(self.model, self.tokenizer, texts, seconds=seconds, options=options, generator=generator,
                             follow_caption=follow_caption)


class EmbeddingModel:
    """A loaded MuLaN model (``model_type: mulan``): joint audio–text embeddings, L2-normalised."""

    def __init__(self, model, tokenizer, directory: str | os.PathLike | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.directory = Path(directory) if directory is not None else None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _wav(self, audio, sample_rate: int, max_seconds: float | None = None) -> torch.Tensor:
        return as_waveform(audio, sample_rate, max_seconds=max_seconds)

    def embed_audio(self, audios: Sequence[Any], *, batch_size: int = 16, max_seconds: float | None = 30.0,
                    sample_rate: int = SAMPLE_RATE, progress: bool = False) -> np.ndarray:
        """(N, embed_dim) float32 embeddings; clips longer than ``max_seconds`` are embedded as
        the mean of their windows."""
        if all(isinstance(a, (str, os.PathLike)) for a in audios):
            emb = embedding.embed_files(self.model, list(audios), batch_size=batch_size, max_seconds=max_seconds,
                                        progress=progress)
        else:
            emb = embedding.embed_waveforms(self.model, [self._wav(a, sample_rate) for a in audios], batch_size,
                                            max_seconds)
        return embedding.embeddings_to_numpy(emb)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(N, embed_dim) float32 embeddings of texts."""
        return embedding.embeddings_to_numpy(embedding.embed_texts(self.model, self.tokenizer, list(texts)))

    def score(self, audio, texts: Sequence[str], *, sample_rate: int = SAMPLE_RATE,
              max_seconds: float | None = None) -> list[float]:
        """Cosine similarity of the clip with each text."""
        wav = self._wav(audio, sample_rate, max_seconds)
        return embedding.score(self.model, self.tokenizer, [wav], list(texts))[0].tolist()

    def tag(self, audio, labels: Sequence[str], *, templates: Sequence[str] = embedding.DEFAULT_PROMPTS,
            sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> list[tuple[str, float]]:
        """Zero-shot tags: (label, probability) over the labels you name, most likely first."""
        wav = self._wav(audio, sample_rate, max_seconds)
        return embedding.tag(self.model, self.tokenizer, wav, list(labels), templates=templates)

    def rerank(self, text: str, clips: Sequence[Any], keep: int | None = None,
               sample_rate: int = SAMPLE_RATE) -> list[tuple[int, float]]:
        """(index, similarity) of the clips that best match ``text``, best first (all by default)."""
        wavs = [self._wav(c, sample_rate) for c in clips]
        return embedding.rerank(self.model, self.tokenizer, text, wavs, keep=len(wavs) if keep is None else keep)

    def index(self, audio_dir: str | os.PathLike, out: str | os.PathLike, *, batch_size: int = 16,
              max_seconds: float = 30.0, progress: bool = False) -> dict[str, int]:
        """Build or update a search index of every audio file under ``audio_dir`` (see
        `inference.index`; search it with `audiollm.inference.index.search_index`)."""
        if self.directory is None:
            raise AudioLLMError("an index records its model directory: load the model with audiollm.load(DIR)")
        return build_index(self.directory, audio_dir, out, batch_size=batch_size, max_seconds=max_seconds,
                           progress=progress, device=str(self.device), dtype=str(self.dtype).removeprefix("torch."))


PIPELINES = {"audiollm": AudioLanguageModel, "mulan": EmbeddingModel,
             "codec": lambda model, tokenizer, directory: CodecModel(model, directory)}


def load(model_dir: str | os.PathLike, device: str = "cpu", dtype: str | None = None
         ) -> AudioLanguageModel | EmbeddingModel | CodecModel:
    """Load a saved model directory for inference on ``device`` (cpu, cuda, cuda:N or auto) in
    ``dtype`` (float32, bfloat16, float16; default as saved), as the object its type supports."""
    model_type, _, _ = read_model_config(model_dir)
    model, tokenizer = load_dir(model_dir, device=device, dtype=dtype)
    return PIPELINES[model_type](model, tokenizer, model_dir)
