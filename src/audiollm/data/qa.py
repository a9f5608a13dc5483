"""MusicQA-style question–answer generation from caption and tag rows (``audiollm data qa``).

MU-LLaMA built MusicQA by giving an LLM each clip's caption or tags and asking it (a) to
answer four fixed description questions — :data:`DESCRIBE_QUESTIONS` — and (b) to write five
open question–answer pairs about the music. Two generators do the same here:

* ``template`` (default, offline, deterministic): sorts the clip's labels into facts
  (instruments, vocals, genre, mood, tempo, key; :func:`clip_facts`) and fills fixed
  sentences with them. It never states a fact that is not in the labels: no tempo label, no
  tempo question; no genre or mood tag, no "what can be inferred" question.
* ``llm``: drives any local causal LM folder (transformers ``AutoModelForCausalLM`` + its
  tokenizer) with :func:`llm_prompt`, parses ``Q: … A: …`` pairs out of the text
  (:func:`parse_qa_text`) and drops, and counts, generations with no well-formed pair. An
  LLM can invent facts; the prompt forbids it, and nothing here can check it.

Rows come out as ``qa`` rows with ``question``, ``answer``, ``qa_type`` (``describe``,
``describe_detail``, ``hear``, ``infer``, ``tempo``, ``instruments``, ``vocals``, ``mood``,
``genre``, ``key``; ``open`` for LLM pairs that are not one of the fixed questions),
``generator`` and the source rows' ``split`` and ids (``source_ids``).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from audiollm.errors import AudioLLMError
from audiollm.tasks import split_labels

#: MU-LLaMA's fixed description questions, by qa_type.
DESCRIBE_QUESTIONS: dict[str, str] = {
    "describe": "Describe the audio",
    "describe_detail": "Describe the audio in detail",
    "hear": "What do you hear in the audio?",
    "infer": "What can be inferred from the audio?",
}

OPEN_QUESTIONS: dict[str, tuple[str, ...]] = {
    "tempo": ("What is the tempo of the music?", "How fast is this music?", "Is the music fast or slow?"),
    "instruments": ("Which instruments can be heard?", "What instruments are played in this music?"),
    "vocals": ("Are there vocals in this music?", "Does anyone sing in this music?"),
    "mood": ("What is the mood of the music?", "How does this music feel?"),
    "genre": ("What genre is this music?", "What style of music is this?"),
    "key": ("What key is the music in?",),
}

# Tag vocabularies: a tag belongs to a kind when it is, or contains as a word, one of these.
_TEMPO = {"fast", "slow", "quick", "uptempo", "upbeat tempo", "medium tempo", "moderate tempo", "fast beat", "slow beat"}
_VOCALS = {"vocal", "vocals", "voice", "voices", "singing", "singer", "sings", "choir", "choral", "opera", "rap",
           "male", "female", "woman", "man", "chant", "chorus"}
_INSTRUMENTS = {"guitar", "piano", "drums", "drum", "violin", "viola", "cello", "strings", "string", "synth",
                "synthesizer", "bass", "flute", "harp", "harpsichord", "sitar", "organ", "trumpet", "saxophone",
                "sax", "horn", "horns", "brass", "percussion", "keyboard", "keyboards", "clarinet", "banjo",
                "ukulele", "accordion", "oboe", "bassoon", "trombone", "tabla", "bells", "xylophone", "marimba",
                "harmonica", "mandolin", "woodwind", "woodwinds", "pipe", "reed", "mallet", "beat", "beats"}
_GENRES = {"classical", "classic", "rock", "pop", "techno", "electronic", "electronica", "ambient", "jazz", "blues",
           "country", "metal", "dance", "new age", "indian", "hip hop", "hip-hop", "folk", "reggae", "funk", "soul",
           "house", "trance", "punk", "disco", "latin", "baroque", "orchestral", "world", "industrial", "edm",
           "r&b", "gospel", "medieval", "celtic", "oriental", "eastern", "experimental"}
_MOODS = {"calm", "sad", "happy", "energetic", "soft", "quiet", "loud", "weird", "dark", "upbeat", "relaxing",
          "mellow", "melancholic", "melancholy", "aggressive", "romantic", "peaceful", "emotional", "passionate",
          "cheerful", "dreamy", "epic", "joyful", "tense", "spooky", "hopeful", "uplifting", "meditative",
          "sentimental", "heavy", "light", "chill", "groovy", "intense", "playful", "serene"}


def _words(tag: str) -> set[str]:
    return set(re.findall(r"[a-z&'-]+", tag.lower()))


def _kind(tag: str) -> str:
    """The kind of one tag: novocals, tempo, vocals, instrument, genre, mood or other."""
    t = tag.lower().strip()
    w = _words(t)
    if t.startswith("no ") and w & _VOCALS:
        return "novocals"
    for kind, vocab in (("tempo", _TEMPO), ("vocals", _VOCALS), ("instrument", _INSTRUMENTS),
                        ("genre", _GENRES), ("mood", _MOODS)):
        if t in vocab or w & {v for v in vocab if " " not in v}:
            return kind
    return "other"


@dataclass
class ClipFacts:
    """What the labels of one clip say, gathered from all its rows."""

    audio: str
    split: str | None = None
    source_ids: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    tempo_bpm: float | None = None
    tempo_class: str | None = None
    key: str | None = None
    family: str | None = None

    def by_kind(self, kind: str) -> list[str]:
        return [t for t in self.tags if _kind(t) == kind]


def _add(seq: list[str], items: Sequence[Any]) -> None:
    for x in items:
        s = " ".join(str(x).split())
        if s and s.lower() not in {v.lower() for v in seq}:
            seq.append(s)


def clip_facts(rows: Sequence[Mapping[str, Any]]) -> list[ClipFacts]:
    """Group caption / tagging rows (and any row's labels) by audio file, first-seen order.

    Read: captions from ``caption`` rows (``answer`` and ``answers``); tags from ``tags``,
    ``labels``, ``aspects`` lists and from ``tagging`` answers (comma-separated); and the
    structured labels ``tempo_bpm``, ``tempo_class``, ``key``, ``family`` of the embedded
    corpus. ``qa`` and ``asr`` answers are not labels and are ignored.
    """
    clips: dict[str, ClipFacts] = {}
    for row in rows:
        audio = str(row.get("audio") or "")
        if not audio:
            continue
        f = clips.setdefault(audio, ClipFacts(audio=audio, split=row.get("split")))
        if row.get("id") is not None:
            f.source_ids.append(str(row["id"]))
        task = row.get("task")
        if task == "caption":
            _add(f.captions, [row.get("answer") or ""] + list(row.get("answers") or []))
        for key in ("tags", "labels", "aspects"):
            if isinstance(row.get(key), (list, tuple)):
                _add(f.tags, row[key])
        if task == "tagging" and not isinstance(row.get("labels"), (list, tuple)) and row.get("answer"):
            _add(f.tags, split_labels(str(row["answer"])) if not row.get("family") else [])
        if isinstance(row.get("tempo_bpm"), (int, float)):
            f.tempo_bpm = float(row["tempo_bpm"])
        for key in ("tempo_class", "key", "family"):
            if isinstance(row.get(key), str) and row[key].strip():
                setattr(f, key, row[key].strip())
    return list(clips.values())


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _tempo_answer(f: ClipFacts) -> str | None:
    if f.tempo_bpm is not None:
        cls = f" ({f.tempo_class})" if f.tempo_class else ""
        return f"The tempo is about {round(f.tempo_bpm)} beats per minute{cls}."
    if f.tempo_class:
        return f"The tempo is {f.tempo_class}."
    tempo = f.by_kind("tempo")
    return f"The music is {_join(tempo)}." if tempo else None


def _instruments(f: ClipFacts) -> list[str]:
    out = f.by_kind("instrument")
    if f.family and f.family.lower() not in {x.lower() for x in out}:
        out = [f"{f.family} instruments"] + out
    return out


def _summary(f: ClipFacts) -> str | None:
    """One sentence from the labels alone, or None when they say nothing."""
    genres, instruments, vocals, moods = f.by_kind("genre"), _instruments(f), f.by_kind("vocals"), f.by_kind("mood")
    tempo = f.tempo_class or (f.by_kind("tempo")[0] if f.by_kind("tempo") else None)
    if not (genres or instruments or vocals or moods or tempo or f.key or f.by_kind("other") or f.by_kind("novocals")):
        return None
    parts = [f"A {_join(genres)} piece" if genres else "A piece of music"]
    if instruments:
        parts.append(f"with {_join(instruments)}")
    if vocals:
        parts.append(f"{'and' if instruments else 'with'} {_join(vocals)}")
    elif f.by_kind("novocals"):
        parts.append("without vocals")
    if tempo:
        parts.append(f"at a {tempo} tempo")
    if f.key:
        parts.append(f"in {f.key}")
    text = " ".join(parts)
    if moods:
        text += f"; it sounds {_join(moods)}"
    other = f.by_kind("other")
    if other:
        text += f". It is also tagged {_join(other)}"
    return text + "."


def template_pairs(f: ClipFacts, rng: random.Random) -> list[tuple[str, str, str]]:
    """(qa_type, question, answer) triples stating only the clip's labelled facts."""
    out: list[tuple[str, str, str]] = []
    summary = _summary(f)
    describe = f.captions[0] if f.captions else summary
    if describe:
        out.append(("describe", DESCRIBE_QUESTIONS["describe"], describe))
        detail = " ".join(x for x in (f.captions[0] if f.captions else None, summary) if x)
        if len(f.captions) > 1:
            detail = " ".join([detail] + f.captions[1:2])
        if detail != describe:
            out.append(("describe_detail", DESCRIBE_QUESTIONS["describe_detail"], detail))
    instruments, vocals = _instruments(f), f.by_kind("vocals")
    if instruments or vocals:
        out.append(("hear", DESCRIBE_QUESTIONS["hear"], f"I hear {_join(instruments + vocals)}."))
    genres, moods = f.by_kind("genre"), f.by_kind("mood")
    if genres or moods:
        text = f"It is likely {_join(genres)} music" if genres else "The music"
        text += (f" with a {_join(moods)} mood." if genres else f" feels {_join(moods)}.") if moods else "."
        out.append(("infer", DESCRIBE_QUESTIONS["infer"], text))
    answers = {
        "tempo": _tempo_answer(f),
        "instruments": f"{_cap(_join(instruments))}." if instruments else None,
        "vocals": (f"Yes: {_join(vocals)}." if vocals else "No, it is instrumental." if f.by_kind("novocals") else None),
        "mood": f"The mood is {_join(moods)}." if moods else None,
        "genre": f"{_cap(_join(genres))}." if genres else None,
        "key": f"It is in {f.key}." if f.key else None,
    }
    for kind, answer in answers.items():
        if answer:
            out.append((kind, rng.choice(OPEN_QUESTIONS[kind]), answer))
    return out


# --------------------------------------------------------------------------- LLM generator

_NUMBERING = re.compile(r"^\s*(?:[-*•]\s*|\d+\s*[.)]\s*)?")
_ONE_LINE = re.compile(r"^(?:Q|Question)\s*\d*\s*[:：]\s*(?P<q>.+?)\s+(?:A|Answer)\s*\d*\s*[:：]\s*(?P<a>.+)$", re.I)
_Q_LINE = re.compile(r"^(?:Q|Question)\s*\d*\s*[:：]\s*(?P<q>.+)$", re.I)
_A_LINE = re.compile(r"^(?:A|Answer)\s*\d*\s*[:：]\s*(?P<a>.+)$", re.I)


def _well_formed(q: str, a: str) -> bool:
    """A plausible pair: real words on both sides, sane lengths, mostly ordinary characters."""
    text = q + a
    ordinary = sum(c.isalnum() or c.isspace() or c in ".,;:'\"?!()-/&%" for c in text)
    return (len(re.findall(r"[A-Za-z]{2,}", q)) >= 2 and re.search(r"[A-Za-z]", a) is not None
            and len(q) <= 300 and len(a) <= 1000 and ordinary >= 0.95 * len(text)
            and not _A_LINE.match(q) and not _Q_LINE.match(a))


def parse_qa_text(text: str) -> list[tuple[str, str]]:
    """``Q: … A: …`` pairs from LLM output, in order, duplicates (same question) dropped.

    Accepted: one pair per line (``Q: question A: answer``, also ``Question:``/``Answer:``,
    tab-separated as MU-LLaMA stored them, optionally numbered ``1.`` or bulleted), or a
    ``Q:`` line followed by an ``A:`` line. Pairs that fail :func:`_well_formed` (garbage,
    no words, runaway length) are skipped.
    """
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for raw in text.replace("\r", "\n").split("\n"):
        line = _NUMBERING.sub("", raw).strip()
        if not line:
            continue
        m = _ONE_LINE.match(line)
        if m:
            pairs.append((m["q"].strip(), m["a"].strip()))
            pending = None
            continue
        m = _Q_LINE.match(line)
        if m:
            pending = m["q"].strip()
            continue
        m = _A_LINE.match(line)
        if m and pending is not None:
            pairs.append((pending, m["a"].strip()))
        pending = None
    seen: set[str] = set()
    out = []
    for q, a in pairs:
        key = " ".join(q.lower().split())
        if _well_formed(q, a) and key not in seen:
            seen.add(key)
            out.append((q, a))
    return out


def llm_prompt(f: ClipFacts, n_open: int = 5) -> str:
    """The instruction for one clip: answer the four fixed questions, then write ``n_open``
    open question–answer pairs, from the captions and tags only, as ``Q: … A: …`` lines."""
    facts = []
    if f.captions:
        facts.append("Captions: " + " | ".join(f.captions))
    if f.tags:
        facts.append("Tags: " + ", ".join(f.tags))
    structured = [f"tempo {round(f.tempo_bpm)} bpm" if f.tempo_bpm is not None else "",
                  f"tempo {f.tempo_class}" if f.tempo_class else "", f"key {f.key}" if f.key else "",
                  f"instrument family {f.family}" if f.family else ""]
    if any(structured):
        facts.append("Labels: " + ", ".join(s for s in structured if s))
    fixed = "\n".join(f"Q: {q} A: <answer>" for q in DESCRIBE_QUESTIONS.values())
    return ("You are given the description of a music clip.\n" + "\n".join(facts) + "\n\n"
            "Answer these questions about the clip, using only facts in the description:\n" + fixed + "\n"
            f"Then write {n_open} more questions about the music (its tempo, instruments, mood, and what can be "
            "inferred) with long-form answers, using only facts in the description.\n"
            "Write every pair on one line exactly as: Q: <question> A: <answer>\n")


class LLMCompleter:
    """A local causal LM folder as a ``prompts → completions`` function (greedy by default)."""

    def __init__(self, path: str | os.PathLike, *, max_new_tokens: int = 384, temperature: float = 0.0,
                 seed: int = 0, device: str = "cpu"):
        p = Path(path).expanduser()
        if not (p / "config.json").is_file():
            raise AudioLLMError(f"--llm {p}: not a transformers model folder (no config.json)")
        try:
            import transformers
        except ImportError:
            raise AudioLLMError("the llm generator needs transformers: pip install 'audiollm[hf]'") from None
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(p))
            self.model = transformers.AutoModelForCausalLM.from_pretrained(str(p)).to(device).eval()
        except (OSError, ValueError) as e:
            raise AudioLLMError(f"--llm {p}: cannot load it ({str(e).splitlines()[0]})") from None
        self.max_new_tokens, self.temperature, self.seed, self.device = max_new_tokens, temperature, seed, device

    def _encode(self, prompt: str):
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
        return tok(prompt, return_tensors="pt")

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        out = []
        for i, prompt in enumerate(prompts):
            enc = {k: v.to(self.device) for k, v in self._encode(prompt).items()}
            torch.manual_seed(self.seed + i)  # sampling, when on, is reproducible per clip
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
            with torch.no_grad():
                ids = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=self.temperature > 0,
                                          temperature=self.temperature if self.temperature > 0 else None,
                                          pad_token_id=pad)
            out.append(self.tokenizer.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
        return out


@dataclass
class QAStats:
    clips: int = 0  # clips with something to ask about
    rows: int = 0
    generations: int = 0  # LLM generations run
    malformed: int = 0  # LLM generations with no well-formed pair (dropped)

    def summary(self, generator: str) -> str:
        text = f"{self.rows} QA pairs for {self.clips} clip(s) ({generator} generator"
        if generator == "llm":
            text += f"; {self.malformed} of {self.generations} generations malformed and dropped"
        return text + ")"


def _row(f: ClipFacts, qa_type: str, question: str, answer: str, generator: str, k: int) -> dict[str, Any]:
    base = f.source_ids[0] if f.source_ids else os.path.basename(f.audio)
    row: dict[str, Any] = {"id": f"qa-{base}-{k}", "task": "qa", "audio": f.audio, "question": question,
                           "answer": answer, "qa_type": qa_type, "generator": generator,
                           "source_ids": f.source_ids}
    if f.split:
        row["split"] = f.split
    return row


def generate_qa(rows: Sequence[Mapping[str, Any]], *, generator: str = "template", seed: int = 0,
                complete: Callable[[Sequence[str]], list[str]] | None = None,
                n_open: int = 5) -> tuple[list[dict[str, Any]], QAStats]:
    """QA rows for every clip of ``rows`` and the counts behind the summary line.

    ``generator="llm"`` needs ``complete`` (e.g. an :class:`LLMCompleter`): prompts in,
    completions out. Clips whose labels hold nothing to ask about are skipped.
    """
    if generator not in ("template", "llm"):
        raise AudioLLMError(f"unknown QA generator {generator!r}: choose template or llm")
    facts = [f for f in clip_facts(rows) if f.captions or f.tags or f.tempo_bpm is not None
             or f.tempo_class or f.key or f.family]
    if not facts:
        raise AudioLLMError("no caption or tag rows to generate questions from (need caption rows, tagging rows, "
                            "or rows with tags/labels/aspects lists)")
    stats = QAStats(clips=len(facts))
    out: list[dict[str, Any]] = []
    if generator == "template":
        for f in facts:
            for k, (kind, q, a) in enumerate(template_pairs(f, random.Random(f"{seed}:{f.audio}"))):
                out.append(_row(f, kind, q, a, "template", k))
    else:
        if complete is None:
            raise AudioLLMError("the llm generator needs a model: --llm PATH")
        texts = complete([llm_prompt(f, n_open) for f in facts])
        fixed = {" ".join(q.lower().rstrip("?").split()): kind for kind, q in DESCRIBE_QUESTIONS.items()}
        for f, text in zip(facts, texts):
            stats.generations += 1
            pairs = parse_qa_text(text)
            if not pairs:
                stats.malformed += 1
                continue
            for k, (q, a) in enumerate(pairs):
                kind = fixed.get(" ".join(q.lower().rstrip("?").split()), "open")
                out.append(_row(f, kind, q, a, "llm", k))
    stats.rows = len(out)
    return out, stats
