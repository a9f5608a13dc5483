"""Long audio → one note list: cut into windows, transcribe each, stitch the windows.

Window k covers ``[k·W, (k+1)·W)`` seconds (the last one is shorter). Each window's answer is
its MIDI event tokens, with a held section naming the notes still sounding from the window
before; :meth:`MidiVocab.decode_windows` joins those into single notes, so a note crossing a
boundary comes out once, with the onset and velocity of the window it started in.

Where the onsets come from (``onsets``): ``"lm"`` — the decoder writes every token itself,
greedily; ``"ctc"`` — a model trained with a CTC head (``model.heads: {ctc: …}``) has it on its
encoder that emits each note-on at the frame it sounds (:func:`ctc_onsets`); those become
anchors of the decoding (:class:`audiollm.music.grammar.AnchoredGrammar`): each note starts
exactly there, and the decoder writes the rest of the answer around them (held notes,
velocities, note-offs — so each note's length). ``"ctc+frames"`` adds the onsets of a
note-activity head (below) that the CTC head missed (:func:`frame_onsets`, :func:`merge_onsets`).
``"auto"`` picks ``"ctc+frames"`` when the model has both heads, ``"ctc"`` with the CTC head
alone. This is the hybrid CTC/attention decoding of speech recognition, applied to the one part
of an event answer that is aligned with the audio.

Where note ends come from (``offsets``): ``"lm"`` — the decoder's note-offs; ``"frames"`` — a
model trained with a note-activity head (``model.heads: {note_activity: …}``) has it on its encoder (per
frame, which pitches sound); each note then lasts while its pitch stays active from its onset
frame on (:func:`frame_offsets`), the decoder's note-off kept where the head does not hear the
note at its onset. ``"auto"`` picks ``"frames"`` when the model has the head.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from audiollm.audio import SAMPLE_RATE, pad_batch
from audiollm.decoding.loop import generate as decode
from audiollm.decoding.options import DecodingOptions
from audiollm.decoding.processors import LogProbabilities, StateMask
from audiollm.errors import AudioLLMError
from audiollm.music.grammar import AnchoredGrammar, EventIds
from audiollm.music.notes import Note
from audiollm.tokenizers.text import TextTokenizer

DEFAULT_QUESTION = "Transcribe the notes."
ONSET_SOURCES = ("auto", "ctc", "ctc+frames", "lm")
OFFSET_SOURCES = ("auto", "frames", "lm")
ACTIVE = 0.5  # a pitch sounds in a frame where the note-activity head's probability is at least this
ONSET_FRAMES = 2  # ``ctc+frames``: a frame-head onset is a pitch active for this many frames in a row
ONSET_TOLERANCE = 0.1  # seconds: a frame-head onset this close to a CTC onset of its pitch is that one


class WindowActivity:
    """One window's note-activity probabilities (F, 128) and the seconds each frame spans."""

    def __init__(self, probs: torch.Tensor, seconds_per_frame: float):
        self.probs = probs
        self.seconds_per_frame = seconds_per_frame


def seconds_per_frame(n_samples: int, n_frames: int) -> float:
    """Seconds each encoder frame of a window spans: its audio's length over its frame count."""
    return n_samples / SAMPLE_RATE / max(int(n_frames), 1)


def split_windows(wav: torch.Tensor, window_samples: int) -> list[torch.Tensor]:
    """Consecutive windows of ``window_samples`` (the last may be shorter; at least one)."""
    if wav.shape[0] == 0:
        raise AudioLLMError("cannot transcribe empty audio")
    return [wav[s : s + window_samples] for s in range(0, wav.shape[0], window_samples)]


def _answer_budget(model, tokenizer: TextTokenizer, window_samples: int, question: str, wanted: int) -> int:
    """Largest answer length that fits the decoder's context after a full window's prompt."""
    with torch.no_grad():
        device = next(model.parameters()).device
        _, n_audio = model.encode_audio(torch.zeros(1, window_samples, device=device),
                                        torch.tensor([window_samples], device=device))
    room = model.config.lm_config.max_seq_len - int(n_audio[0]) - len(tokenizer.prompt_ids(question))
    if room < 1:
        raise AudioLLMError(
            f"a {window_samples / SAMPLE_RATE:g} s window leaves no room for an answer in the decoder's "
            f"{model.config.lm_config.max_seq_len} positions; use a shorter window"
        )
    return min(wanted, room)


@torch.no_grad()
def ctc_onsets(model, tokenizer: TextTokenizer, frames: torch.Tensor, frame_lengths: torch.Tensor,
               sample_lengths: torch.Tensor) -> list[list[tuple[int, int]]]:
    """The note-ons of each window's greedy CTC path, as ``(step, pitch)``.

    ``frames`` (B, F, d_enc) are the encoder's output for windows of ``sample_lengths``
    samples. Per frame the head's best label is taken; a note-on is read where that label
    changes to it (repeats collapse, a blank separates two of the same pitch), at the frame's
    start time in vocabulary steps. CTC emits one label per frame, so a chord comes out as a
    run of note-ons on consecutive frames with no blank between: a note-on right after another
    takes that one's time. Labels other than note-ons are passed over.
    """
    vocab = tokenizer.midi
    pitch_of = {i: p for p, i in enumerate(EventIds.of(tokenizer).on.tolist())}
    best = model.heads["ctc"](frames).argmax(dim=-1).tolist()  # (B, F)
    out = []
    for row, n_frames, n_samples in zip(best, frame_lengths.tolist(), sample_lengths.tolist()):
        spf = seconds_per_frame(n_samples, n_frames)
        onsets, prev = [], None
        for t, label in enumerate(row[: int(n_frames)]):
            if label != prev and label in pitch_of:
                chord = prev in pitch_of and onsets  # the run of a chord goes on
                onsets.append((onsets[-1][0] if chord else vocab.steps(t * spf), pitch_of[label]))
            prev = label
        out.append(onsets)
    return out


def frame_offsets(notes: Sequence[Note], windows: Sequence[WindowActivity], window_seconds: float,
                  threshold: float = ACTIVE) -> list[Note]:
    """``notes`` of one clip with each end read off the note-activity of its windows (window k
    starts at ``k · window_seconds``): from the first frame whose centre is at or after the
    note's start, the note lasts while its pitch's probability stays at least ``threshold`` and
    ends where that frame run ends — never past the next onset of the same pitch and program.
    A note whose pitch is not active at that first frame keeps its end."""
    centres, ends, probs = [], [], []
    for k, w in enumerate(windows):
        n = w.probs.shape[0]
        c = k * window_seconds + (torch.arange(n, dtype=torch.float64) + 0.5) * w.seconds_per_frame
        centres.append(c)
        ends.append(c + 0.5 * w.seconds_per_frame)
        probs.append(w.probs.float())
    if not notes or not centres:
        return list(notes)
    centre, end_of, active = torch.cat(centres), torch.cat(ends).tolist(), (torch.cat(probs) >= threshold)
    active_t = active.T.tolist()  # per pitch, per frame
    first = torch.searchsorted(centre, torch.tensor([n.start for n in notes], dtype=torch.float64)).tolist()
    next_onset: dict[tuple[int, int], float] = {}
    out: list[Note] = [None] * len(notes)  # type: ignore[list-item]
    for i in sorted(range(len(notes)), key=lambda i: -notes[i].start):  # latest first: next onsets known
        n, j = notes[i], first[i]
        row = active_t[n.pitch]
        if j < len(row) and row[j]:
            while j + 1 < len(row) and row[j + 1]:
                j += 1
            end = min(end_of[j], next_onset.get((n.pitch, n.program), float("inf")))
            n = Note(n.pitch, n.start, end if end > n.start else n.end, n.velocity, n.program)
        out[i] = n
        next_onset[(n.pitch, n.program)] = n.start
    return out


def note_activity(model, frames: torch.Tensor, frame_lengths: torch.Tensor,
                  sample_lengths: torch.Tensor) -> list[WindowActivity]:
    """Each window's note-activity probabilities from the model's head, on the CPU."""
    probs = model.heads["note_activity"].probabilities(frames).cpu()  # (B, F, 128)
    return [WindowActivity(p[: int(n)], seconds_per_frame(s, n))
            for p, n, s in zip(probs, frame_lengths.tolist(), sample_lengths.tolist())]


def frame_onsets(activity: WindowActivity, vocab, threshold: float = ACTIVE,
                 min_frames: int = ONSET_FRAMES) -> list[tuple[int, int]]:
    """Note starts read off one window's note activity, as ``(step, pitch)``: a pitch off in one
    frame and on (probability ≥ ``threshold``) for ``min_frames`` frames from the next. The
    window's first frame never counts: a pitch already on there may be a note held over from the
    window before, which the decoder writes in its held section."""
    on = activity.probs >= threshold  # (F, 128)
    start = on.clone()
    start[0] = False
    start[1:] &= ~on[:-1]
    for d in range(1, min_frames):  # … and still on d frames later
        start[: on.shape[0] - d] &= on[d:]
        start[on.shape[0] - d :] = False
    return [(vocab.steps(f * activity.seconds_per_frame), p) for f, p in start.nonzero().tolist()]


def merge_onsets(ctc: Sequence[tuple[int, int]], frames: Sequence[tuple[int, int]],
                 tolerance_steps: int) -> list[tuple[int, int]]:
    """The CTC onsets plus the frame-head onsets that no CTC onset of the same pitch lies
    within ``tolerance_steps`` of (the CTC head's step is kept where both heard a note)."""
    steps_of: dict[int, list[int]] = {}
    for step, pitch in ctc:
        steps_of.setdefault(pitch, []).append(step)
    extra = [(s, p) for s, p in frames if all(abs(s - q) > tolerance_steps for q in steps_of.get(p, ()))]
    return sorted(set(ctc) | set(extra))


def resolve_offsets(model, offsets: str) -> str:
    """``auto`` → ``frames`` when the model has a note-activity head, else ``lm``; a clear error
    for ``frames`` without one."""
    if offsets not in OFFSET_SOURCES:
        raise AudioLLMError(f"offsets must be one of {', '.join(OFFSET_SOURCES)}, got {offsets!r}")
    has_head = "note_activity" in model.heads
    if offsets == "frames" and not has_head:
        raise AudioLLMError("offsets 'frames' needs a model trained with a note_activity head (model.heads); "
                            "this one has no note-activity head")
    if offsets == "auto":
        return "frames" if has_head else "lm"
    return offsets


def resolve_onsets(model, onsets: str) -> str:
    """``auto`` → ``ctc+frames`` when the model has a CTC head and a note-activity head, ``ctc``
    with the CTC head alone, else ``lm``; a clear error when a named source's head is missing."""
    if onsets not in ONSET_SOURCES:
        raise AudioLLMError(f"onsets must be one of {', '.join(ONSET_SOURCES)}, got {onsets!r}")
    has_ctc = "ctc" in model.heads
    has_frames = "note_activity" in model.heads
    if onsets in ("ctc", "ctc+frames") and not has_ctc:
        raise AudioLLMError(f"onsets {onsets!r} needs a model trained with a ctc head (model.heads); "
                            "this one has no CTC head")
    if onsets == "ctc+frames" and not has_frames:
        raise AudioLLMError("onsets 'ctc+frames' needs a model trained with a note_activity head (model.heads); "
                            "this one has no note-activity head")
    if onsets == "auto":
        return ("ctc+frames" if has_frames else "ctc") if has_ctc else "lm"
    return onsets


@torch.no_grad()
def _decode_windows(model, tokenizer: TextTokenizer, audio: torch.Tensor, lengths: torch.Tensor,
                    prompts: list[list[int]], budget: int, onsets: str,
                    offsets: str) -> tuple[list[list[int]], list[WindowActivity | None]]:
    """Answer ids of one batch of windows, and each window's note activity when a source uses
    the note-activity head (see the module docstring for ``onsets`` and ``offsets``)."""
    if onsets == "lm" and offsets == "lm":  # the decoder alone
        ids = model.generate(audio, lengths, prompts, DecodingOptions(max_new_tokens=budget), eos_id=tokenizer.eos_id)
        return ids, [None] * len(prompts)
    frames, frame_lengths = model.encode_frames(audio, lengths)
    needs_activity = offsets == "frames" or onsets == "ctc+frames"
    activity = note_activity(model, frames, frame_lengths, lengths) if needs_activity else [None] * len(prompts)
    if onsets == "lm":
        ids = model.generate(audio, lengths, prompts, DecodingOptions(max_new_tokens=budget), eos_id=tokenizer.eos_id)
        return ids, activity
    anchors = ctc_onsets(model, tokenizer, frames, frame_lengths, lengths)
    if onsets == "ctc+frames":
        tolerance = tokenizer.midi.steps(ONSET_TOLERANCE)
        anchors = [merge_onsets(a, frame_onsets(act, tokenizer.midi), tolerance) for a, act in zip(anchors, activity)]
    embeds, valid = model.prompt_embeds(*model.projector(frames, frame_lengths), prompts)
    steps = [max(1, tokenizer.midi.steps(n / SAMPLE_RATE)) for n in lengths.tolist()]
    grammar = AnchoredGrammar(tokenizer, len(prompts), steps, anchors, held=True)
    ids = decode(model.lm, embeds, valid, options=DecodingOptions(max_new_tokens=budget), eos_id=tokenizer.eos_id,
                 processors=[LogProbabilities(), StateMask(grammar)])
    return ids, activity


@torch.no_grad()
def transcribe(
    model,
    tokenizer: TextTokenizer,
    wavs: Sequence[torch.Tensor],
    *,
    window_seconds: float = 5.0,
    questions: Sequence[str] | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 1024,
    onsets: str = "auto",
    offsets: str = "auto",
    progress: bool = False,
) -> list[list[Note]]:
    """Notes (absolute seconds) for each 16 kHz waveform, decoding greedily window by window,
    with onsets from ``onsets`` (``auto``, ``ctc``, ``ctc+frames`` or ``lm``) and note ends from ``offsets``
    (``auto``, ``frames`` or ``lm``; see the module docstring).

    Windows of all waveforms are batched together; audio shorter than a window is one
    shorter window. ``max_new_tokens`` is capped so a full window's prompt plus answer fits
    the decoder's context.
    """
    vocab = tokenizer.midi
    if vocab is None:
        raise AudioLLMError("this model's tokenizer has no MIDI vocabulary: it was not trained for transcription")
    vocab.check_window(window_seconds)
    if batch_size < 1:
        raise AudioLLMError(f"batch_size must be at least 1, got {batch_size}")
    questions = list(questions) if questions is not None else [DEFAULT_QUESTION] * len(wavs)
    if len(questions) != len(wavs):
        raise AudioLLMError(f"{len(questions)} questions for {len(wavs)} waveforms")
    onsets = resolve_onsets(model, onsets)
    offsets = resolve_offsets(model, offsets)
    window_samples = int(round(window_seconds * SAMPLE_RATE))
    jobs = [(i, w) for i, wav in enumerate(wavs) for w in split_windows(wav, window_samples)]
    budget = _answer_budget(model, tokenizer, window_samples, max(questions, key=len, default=""), max_new_tokens)
    device = next(model.parameters()).device
    tokens: list[list[str]] = []
    activity: list[WindowActivity | None] = []
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(jobs), batch_size), desc="transcribe", unit="batch", disable=not progress):
            chunk = jobs[start : start + batch_size]
            audio, lengths = pad_batch([w for _, w in chunk])
            out, act = _decode_windows(model, tokenizer, audio.to(device), lengths.to(device),
                                       [tokenizer.prompt_ids(questions[i]) for i, _ in chunk], budget, onsets, offsets)
            tokens += [tokenizer.decode_events(ids) for ids in out]
            activity += act
    finally:
        model.train(was_training)
    per_wav: list[list[list[str]]] = [[] for _ in wavs]
    per_wav_activity: list[list[WindowActivity]] = [[] for _ in wavs]
    for (i, _), toks, act in zip(jobs, tokens, activity):
        per_wav[i].append(toks)
        if act is not None:
            per_wav_activity[i].append(act)
    out_notes = []
    for windows, acts, wav in zip(per_wav, per_wav_activity, wavs):
        notes = vocab.decode_windows(windows, window_seconds, total_seconds=wav.shape[0] / SAMPLE_RATE)[0]
        out_notes.append(frame_offsets(notes, acts, window_seconds) if offsets == "frames" else notes)
    return out_notes


def plot_piano_roll(notes: Sequence[Note], path, duration: float | None = None):
    """Save a piano roll (time × pitch, one colour per program, darker = louder) as an image."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise AudioLLMError("--plot needs matplotlib: pip install 'audiollm[plot]'") from None
    fig, ax = plt.subplots(figsize=(12, 4))
    programs = sorted({n.program for n in notes})
    colours = plt.get_cmap("tab10")
    for n in notes:
        c = colours(programs.index(n.program) % 10)
        ax.broken_barh([(n.start, n.end - n.start)], (n.pitch - 0.4, 0.8), facecolors=[c],
                       alpha=0.35 + 0.65 * n.velocity / 127)
    pitches = [n.pitch for n in notes] or [60]
    ax.set_ylim(min(pitches) - 2, max(pitches) + 2)
    ax.set_xlim(0, duration if duration else max((n.end for n in notes), default=1.0))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(f"{len(notes)} notes" + (f", programs {', '.join(map(str, programs))}" if len(programs) > 1 else ""))
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p
