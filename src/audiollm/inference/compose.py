"""Compose: text → MIDI → audio. Sample event tokens for a caption with classifier-free
guidance and the MIDI grammar mask, decode them into notes, play them at the requested tempo,
render them through a soundfont and (MusicLM's trick) rerank the samples by MuLaN.

Guidance runs the conditional prompts and the unconditional (empty) prompt as one batch of
2·B rows sharing one KV cache in the one decoding loop; each step the next-token
log-probabilities are combined as ``uncond + s · (cond − uncond)``
(`decoding.processors.ClassifierFreeGuidance`; s = 1: the conditional model alone, and no
second branch), the grammar mask (:mod:`audiollm.music.grammar`) removes every token that
would break the event grammar, and one token is drawn and fed to both branches of its row.

The answer starts with a forced ``<|tie|>``: a piece begins with nothing already sounding,
exactly as training windows that start at a clip's beginning do. With a vocabulary that has
attribute tokens, the model first writes the piece's tempo bin and key (the grammar allows
nothing else there), then the ``<|tie|>``, then the events.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audiollm.decoding.loop import generate as decode
from audiollm.decoding.options import DecodingOptions
from audiollm.decoding.processors import (
    ClassifierFreeGuidance,
    LogProbabilities,
    StateMask,
)
from audiollm.errors import AudioLLMError
from audiollm.music.grammar import MidiGrammar, plan_choices
from audiollm.music.notes import Note
from audiollm.music.prompt import check_request, parse_request
from audiollm.music.render import render_notes, write_piece
from audiollm.music.tempo_fit import MAX_STRETCH, TempoFit, fit_tempo
from audiollm.tasks.text_to_midi import TextToMidiTask
from audiollm.tokenizers.midi import TIE

UNCONDITIONAL = ""  # the prompt text condition dropout trains on
TEXT_TO_MIDI_WINDOW = TextToMidiTask.window_seconds  # longest piece the task trains on


@torch.no_grad()
def sample_events(
    model,
    tokenizer,
    questions: Sequence[str],
    *,
    seconds: float,
    options: DecodingOptions,
    generator: torch.Generator | None = None,
    constrained: bool = True,
    follow_caption: bool = True,
) -> list[list[str]]:
    """One event-token sequence (starting with ``<|tie|>``, or with the attribute tokens and
    then ``<|tie|>`` when the vocabulary has them) per question, for a window of ``seconds``,
    sampled with ``options`` (its ``guidance`` scale, temperature, top-k/top-p; the answer
    budget is ``options.max_new_tokens`` within the decoder's context).
    With attribute tokens and ``follow_caption`` the grammar lets the model write only a tempo
    and key its question asks for (:func:`audiollm.music.grammar.plan_choices` of
    :func:`audiollm.music.prompt.parse_request`); what the question leaves open, the model picks.
    ``constrained=False`` drops the grammar mask (only for comparisons: its samples may need
    repairs when decoded)."""
    vocab = tokenizer.midi
    if vocab is None:
        raise AudioLLMError("this model's tokenizer has no MIDI vocabulary: it was not trained to write MIDI")
    length = vocab.check_window(seconds)
    device = next(model.parameters()).device
    b = len(questions)
    guided = options.guidance != 1.0
    # The answer's fixed opening: <|tie|> (with attribute tokens, the model writes them and the tie).
    opening = [] if vocab.attributes else tokenizer.encode_events([TIE])
    prompts = [tokenizer.prompt_ids(q) + opening for q in questions]
    if guided:
        prompts += [tokenizer.prompt_ids(UNCONDITIONAL) + opening] * b
    P = max(len(p) for p in prompts)
    limit = model.lm.max_seq_len
    budget = min(options.max_new_tokens, limit - P) if limit else options.max_new_tokens
    if budget < 1:
        raise AudioLLMError(f"the prompt ({P} tokens) leaves no room in the decoder's context")
    no_audio = torch.zeros(len(prompts), 0, model.lm.d_model, device=device)
    embeds, mask = model.prompt_embeds(no_audio, torch.zeros(len(prompts), dtype=torch.long, device=device), prompts)
    processors = [LogProbabilities()] + ([ClassifierFreeGuidance(options.guidance)] if guided else [])
    if constrained:
        choices = [plan_choices(vocab, parse_request(q)) for q in questions] if vocab.attributes and follow_caption else None
        processors.append(StateMask(MidiGrammar(tokenizer, b, length, held=False, attributes=vocab.attributes,
                                                choices=choices)))
    out = decode(model.lm, embeds, mask, options=options.replace(max_new_tokens=budget), eos_id=tokenizer.eos_id,
                 processors=processors, generator=generator)
    return [tokenizer.decode_events(opening + o) for o in out]


def generate_midi(model, tokenizer, texts: Sequence[str], *, seconds: float, **sampling) -> list[list[Note]]:
    """Notes (seconds from the piece start) for each text; keyword arguments go to
    :func:`sample_events`. Notes still sounding when a sequence ends close at ``seconds``."""
    was_training = model.training
    model.eval()
    try:
        events = sample_events(model, tokenizer, list(texts), seconds=seconds, **sampling)
    finally:
        model.train(was_training)
    return [tokenizer.midi.decode_windows([e], seconds, total_seconds=seconds)[0] for e in events]


def check_generation(tokenizer, text: str, seconds: float, window_seconds: float) -> float:
    """Validate a text-to-MIDI request before any work; returns ``seconds`` on the time grid.

    AudioLLMError for a tokenizer without MIDI vocabulary, an empty text, an instrument the
    vocabulary lacks (listing the ones it has), or a length outside (0, ``window_seconds``]:
    a model trained on 4 s windows has never seen a piece longer than that, so longer
    requests are refused rather than continued window by window.
    """
    vocab = getattr(tokenizer, "midi", None)
    if vocab is None:
        raise AudioLLMError("the model's tokenizer has no MIDI vocabulary: it was not trained on text_to_midi")
    if not text.strip():
        raise AudioLLMError("the text is empty: describe the music (e.g. \"a cello in D minor at 72 bpm\")")
    check_request(text, vocab.programs)
    if not seconds > 0:
        raise AudioLLMError(f"seconds must be > 0, got {seconds:g}")
    if seconds > window_seconds + 1e-9:
        raise AudioLLMError(f"{seconds:g} s is beyond the {window_seconds:g} s window text_to_midi is trained "
                            f"on; ask for at most {window_seconds:g} s")
    return max(1, round(seconds / vocab.time_step)) * vocab.time_step


#: How `audiollm generate` and `AudioLanguageModel.compose` sample by default (MusicGen's recipe:
#: guidance 3 on a model trained with condition dropout; nucleus sampling at temperature 1).
COMPOSE_OPTIONS = DecodingOptions(max_new_tokens=1024, temperature=1.0, top_p=0.95, guidance=3.0)


@dataclass
class Piece:
    """One composed piece: its notes (seconds), the audio they render to (16 kHz mono), how
    the tempo was fitted, and its MuLaN similarity to the text when the samples were reranked."""

    notes: list[Note]
    seconds: float
    audio: np.ndarray | None = None
    tempo: TempoFit | None = None
    similarity: float | None = None
    sample: int = 0  # which of the drawn samples this is

    def save(self, wav_path: str | os.PathLike, soundfont: str | os.PathLike | None = None) -> tuple[Path, Path]:
        """Write the WAV and, beside it, the MIDI (``.mid``), each atomically."""
        return write_piece(self.notes, wav_path, self.seconds, soundfont=soundfont, rendered=self.audio)

    def tempo_note(self) -> str:
        """One phrase on what tempo fitting did ("" when nothing was asked or changed)."""
        f = self.tempo
        if f is None or (f.factor == 1.0 and f.fits):
            return ""
        if f.factor != 1.0:
            return f"tempo {f.before:.1f} → {f.after:.1f} bpm (times × {f.factor:.3f})"
        return (f"tempo kept as sampled (no rescaling within ×{1 / MAX_STRETCH:g}-×{MAX_STRETCH:g} gives the "
                "requested tempo)")


def compose(
    model,
    tokenizer,
    text: str,
    *,
    seconds: float = 4.0,
    num_samples: int = 1,
    options: DecodingOptions = COMPOSE_OPTIONS,
    tempo_fit: bool = True,
    render: bool = True,
    soundfont: str | os.PathLike | None = None,
    rerank: Callable[[str, list[torch.Tensor]], list[tuple[int, float]]] | None = None,
    keep: int | None = None,
) -> list[Piece]:
    """``num_samples`` pieces for ``text``: sampled, tempo-fitted to what the text asks
    (``tempo_fit``), rendered through ``soundfont`` (``render``), and — with ``rerank``
    (text, waveforms) → [(index, similarity), …] best first — the ``keep`` best, best first."""
    if num_samples < 1:
        raise AudioLLMError(f"num_samples must be at least 1, got {num_samples}")
    keep = num_samples if keep is None else keep
    if not 1 <= keep <= num_samples:
        raise AudioLLMError(f"keep must be between 1 and num_samples ({num_samples}), got {keep}")
    if keep < num_samples and rerank is None:
        raise AudioLLMError("keeping fewer samples than drawn needs a reranker (a MuLaN model) to choose them")
    seconds = check_generation(tokenizer, text, seconds, TEXT_TO_MIDI_WINDOW)
    pieces = [Piece(notes, seconds, sample=i)
              for i, notes in enumerate(generate_midi(model, tokenizer, [text] * num_samples, seconds=seconds,
                                                      options=options))]
    if tempo_fit:
        request = parse_request(text)
        for p in pieces:
            p.tempo = fit_tempo(p.notes, request, seconds)
            p.notes = p.tempo.notes
    if render or rerank is not None:
        for p in pieces:
            p.audio = render_notes(p.notes, seconds, soundfont)
    if rerank is None:
        return pieces
    chosen = rerank(text, [torch.from_numpy(p.audio).float() for p in pieces])[:keep]
    out = []
    for i, similarity in chosen:
        pieces[i].similarity = similarity
        out.append(pieces[i])
    return out
