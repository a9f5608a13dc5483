"""Text → MIDI: sample event tokens for captions, with classifier-free guidance and the
MIDI grammar mask, and decode them into notes.

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

from collections.abc import Sequence

import torch

from audiollm.decoding.loop import generate as decode
from audiollm.decoding.options import DecodingOptions
from audiollm.decoding.processors import ClassifierFreeGuidance, LogProbabilities, StateMask
from audiollm.errors import AudioLLMError
from audiollm.music.grammar import MidiGrammar, plan_choices
from audiollm.music.prompt import check_request, parse_request
from audiollm.tokenizers.midi import TIE
from audiollm.music.notes import Note

UNCONDITIONAL = ""  # the prompt text condition dropout trains on


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
    from audiollm.music.prompt import check_request

    vocab = getattr(tokenizer, "midi", None)
    if vocab is None:
        raise AudioLLMError("the model's tokenizer has no MIDI vocabulary: it was not trained on text_to_midi")
    if not text.strip():
        raise AudioLLMError("--text is empty: describe the music (e.g. \"a cello in D minor at 72 bpm\")")
    check_request(text, vocab.programs)
    if not seconds > 0:
        raise AudioLLMError(f"--seconds must be > 0, got {seconds:g}")
    if seconds > window_seconds + 1e-9:
        raise AudioLLMError(f"--seconds {seconds:g} is beyond the {window_seconds:g} s window text_to_midi is trained "
                            f"on; ask for at most {window_seconds:g} s")
    return max(1, round(seconds / vocab.time_step)) * vocab.time_step
