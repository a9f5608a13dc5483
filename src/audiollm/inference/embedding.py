"""Using a MuLaN model: embedding audio and text, zero-shot tagging, scoring and reranking.

All embeddings are L2-normalised, so a dot product is a cosine similarity. Input problems are
one-line `AudioLLMError`s: empty text, audio shorter than one patch; text longer than the
text tower's context is truncated with a `data.contrastive.TextTruncatedWarning` (the CLI prints it).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from audiollm.audio import SAMPLE_RATE, load_audio, pad_batch
from audiollm.data.contrastive import encode_text, pad_ids
from audiollm.errors import AudioLLMError
from audiollm.models.mulan import MuLaN


@torch.no_grad()
def embed_texts(model: MuLaN, tokenizer, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """(N, embed_dim) embeddings of ``texts``."""
    if not texts:
        raise AudioLLMError("no text given")
    ids = [encode_text(tokenizer, t, model.text_max_len) for t in texts]
    out = []
    for s in range(0, len(ids), batch_size):
        x, lengths = pad_ids(ids[s : s + batch_size], tokenizer.pad_id)
        out.append(model.embed_text(x, lengths).float())
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def embed_audio_batch(model: MuLaN, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return model.embed_audio(audio, lengths).float()


def check_audio_length(model: MuLaN, wav: torch.Tensor, name: str = "audio") -> None:
    need = model.min_audio_samples
    if wav.shape[-1] < need:
        raise AudioLLMError(
            f"{name}: audio is {wav.shape[-1] / SAMPLE_RATE:.3f} s, shorter than one patch "
            f"({need / SAMPLE_RATE:.3f} s); give a longer clip"
        )


@torch.no_grad()
def embed_waveforms(model: MuLaN, wavs: Sequence[torch.Tensor], batch_size: int = 16,
                    max_seconds: float | None = 30.0, names: Sequence[str] | None = None) -> torch.Tensor:
    """(N, embed_dim) embeddings of 16 kHz waveforms. Clips longer than ``max_seconds`` are
    embedded as the mean of their ``max_seconds`` windows (re-normalised), so memory stays bounded."""
    out = []
    for i, w in enumerate(wavs):
        check_audio_length(model, w, names[i] if names else f"clip {i}")
    windows: list[torch.Tensor] = []
    owner: list[int] = []
    step = int(max_seconds * SAMPLE_RATE) if max_seconds else None
    for i, w in enumerate(wavs):
        parts = [w] if step is None or w.shape[0] <= step else [w[s : s + step] for s in range(0, w.shape[0], step)]
        parts = [p for p in parts if p.shape[0] >= model.min_audio_samples] or [w[:step]]
        windows += parts
        owner += [i] * len(parts)
    for s in range(0, len(windows), batch_size):
        audio, lengths = pad_batch(windows[s : s + batch_size])
        out.append(embed_audio_batch(model, audio, lengths))
    per_window = torch.cat(out)
    owner_t = torch.tensor(owner)
    pooled = torch.zeros(len(wavs), per_window.shape[1]).index_add_(0, owner_t, per_window)
    return torch.nn.functional.normalize(pooled, dim=-1)


def embed_files(model: MuLaN, paths: Sequence[str | os.PathLike], batch_size: int = 16,
                max_seconds: float | None = 30.0, progress: bool = False) -> torch.Tensor:
    """(N, embed_dim) embeddings of audio files, loaded and embedded ``batch_size`` at a time."""
    out = []
    with tqdm(total=len(paths), desc="embed", disable=not progress, dynamic_ncols=True) as bar:
        for s in range(0, len(paths), batch_size):
            chunk = [str(p) for p in paths[s : s + batch_size]]
            wavs = [load_audio(p) for p in chunk]
            out.append(embed_waveforms(model, wavs, batch_size, max_seconds, names=chunk))
            bar.update(len(chunk))
    return torch.cat(out) if out else torch.zeros(0, model.config.embed_dim)


# ---------------------------------------------------------------------------------------------
# Zero-shot tagging, scoring, reranking
# ---------------------------------------------------------------------------------------------


def zero_shot_probs(model: MuLaN, audio_embeds: torch.Tensor, label_embeds: torch.Tensor) -> torch.Tensor:
    """(Na, L) probabilities over labels: softmax of the model's scaled similarities."""
    with torch.no_grad():
        return model.logits(audio_embeds, label_embeds).softmax(dim=-1)


# Zero-shot prompts. The text tower learned captions, so a bare label ("reed") is text it never
# saw; inside a caption-shaped sentence it reads as in training. Averaging the three tempo words
# marginalises an attribute the label does not fix (CLIP's prompt ensembling). Chosen on the
# valid split: zero-shot family accuracy 0.658 with "{label}", 0.790 with "A {label} piece.",
# 0.824 with these three (docs/experiments/2026-11-24-mulan-zero-shot-prompts.md).
DEFAULT_PROMPTS: tuple[str, ...] = ("A slow {label} piece.", "A medium-tempo {label} piece.", "A fast {label} piece.")


def label_embeddings(model: MuLaN, tokenizer, labels: Sequence[str],
                     templates: Sequence[str] = DEFAULT_PROMPTS) -> torch.Tensor:
    """(L, embed_dim) unit embeddings of labels, each the mean over its prompts ``templates``."""
    templates = list(templates)
    if not templates:
        raise AudioLLMError("give at least one prompt template, e.g. --template 'a recording of {label}'")
    for t in templates:
        if "{label}" not in t:
            raise AudioLLMError(f"prompt template {t!r} must contain {{label}}, e.g. 'a recording of {{label}}'")
    per_template = [embed_texts(model, tokenizer, [t.replace("{label}", l) for l in labels]) for t in templates]
    return torch.nn.functional.normalize(torch.stack(per_template).float().mean(0), dim=-1)


def tag(model: MuLaN, tokenizer, wav: torch.Tensor, labels: Sequence[str],
        templates: Sequence[str] = DEFAULT_PROMPTS) -> list[tuple[str, float]]:
    """Zero-shot tags of one clip: (label, probability), most likely first."""
    labels = [l.strip() for l in labels if l.strip()]
    if len(labels) < 2:
        raise AudioLLMError("give at least two labels, e.g. --labels piano,organ")
    t = label_embeddings(model, tokenizer, labels, templates)
    a = embed_waveforms(model, [wav])
    probs = zero_shot_probs(model, a, t)[0].tolist()
    return sorted(zip(labels, probs), key=lambda x: -x[1])


def score(model: MuLaN, tokenizer, wavs: Sequence[torch.Tensor], texts: Sequence[str]) -> torch.Tensor:
    """(Na, Nt) cosine similarities between clips and texts."""
    return embed_waveforms(model, wavs) @ embed_texts(model, tokenizer, texts).T


def rerank(model: MuLaN, tokenizer, text: str, candidates: Sequence[torch.Tensor], keep: int = 1) -> list[tuple[int, float]]:
    """Indices and similarities of the ``keep`` candidates that best match ``text``."""
    if not candidates:
        raise AudioLLMError("no candidates to rerank")
    sims = score(model, tokenizer, candidates, [text])[:, 0]
    order = sims.argsort(descending=True)[: max(1, keep)]
    return [(int(i), float(sims[i])) for i in order]


def generate_and_rerank(model: MuLaN, tokenizer, text: str, generate: Callable[[str], torch.Tensor],
                        n: int = 4, keep: int = 1) -> list[tuple[torch.Tensor, float]]:
    """Draw ``n`` clips from ``generate(text)`` (any text-to-music sampler returning a 16 kHz
    waveform) and keep the ``keep`` that MuLaN scores highest — MusicLM's reranking step."""
    clips = [generate(text) for _ in range(n)]
    return [(clips[i], s) for i, s in rerank(model, tokenizer, text, clips, keep)]


# ---------------------------------------------------------------------------------------------
# Retrieval metrics
# ---------------------------------------------------------------------------------------------


def zero_shot_accuracy(model: MuLaN, tokenizer, audio_embeds: torch.Tensor, labels: Sequence[str],
                       classes: Sequence[str] | None = None, templates: Sequence[str] = DEFAULT_PROMPTS) -> float:
    """Share of clips whose most similar class (over its prompt ensemble) is their own label."""
    classes = sorted(set(labels)) if classes is None else list(classes)
    t = label_embeddings(model, tokenizer, classes, templates)
    pred = (audio_embeds.float() @ t.T).argmax(dim=1)
    truth = torch.tensor([classes.index(l) for l in labels])
    return float((pred == truth).float().mean())


def embeddings_to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().float().numpy().astype(np.float32)
