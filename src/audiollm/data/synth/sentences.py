"""Open-vocabulary English sentences for the TTS corpus, from WordNet 3.0, read offline.

Two kinds of sentence come out of WordNet's ``data.{noun,verb,adj,adv}`` files:

* ``example``: the usage examples quoted in the glosses (``"the pilot reported two kills
  during the mission"``), about 48,000 of them, written by the WordNet lexicographers;
* ``definition``: a common noun and its gloss as one sentence (``A gneiss is a laminated
  metamorphic rock similar to granite.``), for nouns whose gloss is an "a/an ..." phrase. They
  bring the rare, technical words that make the vocabulary open.

`clean_sentence` turns an example into text a synthesiser reads exactly as written, or
rejects it: printable ASCII letters and ``.,;:!?'"()-`` only (no digits, which each engine
reads its own way, no symbols, no abbreviations with internal dots, no ellipses), 3-20 words,
balanced double quotes and parentheses, apostrophes only inside words or after a plural -s,
WordNet's `` `quoted' `` words as ``"quoted"``, ``--`` as a comma, a capital first letter and
final punctuation.

`split_sentences` assigns each distinct sentence (compared by its words, lowercased) to
exactly one split, from stable hashes independent of any seed, so every build holds out the
same sentences:

1. Held-out words: a rare word (in at most `HELD_OUT_MAX_DF` sentences) whose hash falls in
   the first `HELD_OUT_PERCENT` buckets is a *test word* (the next as many: a *valid word*).
   A sentence with a test word is a test sentence, else one with a valid word is a valid
   sentence. So no training sentence, of any build, contains a held-out word: a test set drawn
   partly from these sentences always holds words the training text never has.
2. Every other sentence: a hash of its text → 80 % train, 10 % valid, 10 % test.

Where the files are: Debian's ``wordnet-base`` (``/usr/share/wordnet``), else the copy
``python -m audiollm.metrics.wordnet`` made for NLTK (``<venv>/nltk_data/corpora/wordnet``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from audiollm.errors import AudioLLMError
from audiollm.metrics.wordnet import APT_HINT, DEBIAN_WORDNET_DIR, default_target

POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
MIN_WORDS = 3
MAX_WORDS = 20
HELD_OUT_MAX_DF = 2        # a word in at most this many sentences may be held out
HELD_OUT_PERCENT = 8       # % of those rare words held out for test (and as many for valid)
SOURCE = "Princeton WordNet 3.0"

_ALLOWED = re.compile(r"[A-Za-z .,;:!?'\"()\-]+")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_BACKQUOTED = re.compile(r"`([^`'\"]+(?:'[a-z][^`'\"]*)*)'(?![a-z])")
_GOOD_APOSTROPHE = re.compile(r"(?<=[A-Za-z])'(?=[A-Za-z])|(?<=[sS])'(?=[\s.,;:!?)\"]|$)")
_ENDS = ".!?"


@dataclass(frozen=True)
class Sentence:
    """One cleaned sentence: the text to speak, its kind (example | definition) and the
    WordNet synset it came from (``n:02108254``: part of speech and offset)."""

    text: str
    kind: str
    synset: str


def words(text: str) -> list[str]:
    """The lowercase words of ``text`` (letters and inner apostrophes; hyphens split words)."""
    return _WORD.findall(text.lower())


def sentence_key(text: str) -> str:
    """What makes two sentences the same sentence: their words, lowercased."""
    return " ".join(words(text))


def _balanced_parentheses(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def clean_sentence(raw: str) -> str | None:
    """``raw`` as text to speak (see the module docstring for the rules), or None if rejected."""
    text = " ".join(raw.split())
    text = _BACKQUOTED.sub(r'"\1"', text)
    text = re.sub(r"\s*--\s*", ", ", text)
    if not text or not _ALLOWED.fullmatch(text):
        return None
    if ".." in text or re.search(r"[A-Za-z]\.[A-Za-z]", text) or re.search(r"\.\s+[a-z]", text):
        return None  # ellipses, "U.S.", "Dr. smith": not read the same way by every engine
    if re.search(r"(^|\s)-|-($|[\s.,;:!?])|--", text) or re.search(r"[,;:]\s*[,;:.!?]", text):
        return None  # a dash that is not inside a word; punctuation runs
    if text.count('"') % 2 or not _balanced_parentheses(text):
        return None
    if text.count("'") != len(_GOOD_APOSTROPHE.findall(text)):
        return None  # a quote made of apostrophes, not an apostrophe
    # Final punctuation: keep . ! ? before closing quotes/parentheses, else add a full stop.
    text = text.rstrip(",;: ")
    closing = re.search(r"[\"')]*$", text).group()
    body = text[:len(text) - len(closing)].rstrip(",;: ")
    if not body:
        return None
    text = body + closing + ("" if body[-1] in _ENDS else ".")
    if text[0].islower():
        text = text[0].upper() + text[1:]
    if not text[0].isupper() and text[0] not in "\"(":
        return None
    n = len(words(text))
    if not MIN_WORDS <= n <= MAX_WORDS or len(text.split()) > MAX_WORDS:
        return None
    return text


def _article(word: str) -> str:
    """"A" or "An" before ``word``, by its spelling (with the common exceptions)."""
    if re.match(r"(hour|honest|honor|honour|heir)", word):
        return "An"
    if re.match(r"(uni|use|usu|ura|ure|uro|eu|ewe|one|once|ub[io]|uk)", word):
        return "A"
    return "An" if word[0] in "aeiou" else "A"


def definition_sentence(lemma: str, gloss: str) -> str | None:
    """``"A <lemma> is <gloss>."`` for a lowercase one-word noun (not an -ing noun) whose gloss
    (before its first ';') is an "a/an ..." phrase without parentheses; None otherwise."""
    if not re.fullmatch(r"[a-z]{2,}", lemma) or lemma.endswith("ing"):
        return None  # -ing nouns are mostly activities: "A skiing is a sport ..." is not English
    gloss = gloss.split(";")[0].strip()
    if not re.match(r"an? [a-z]", gloss) or "(" in gloss or '"' in gloss:
        return None
    return clean_sentence(f"{_article(lemma)} {lemma} is {gloss}")


def wordnet_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder with WordNet's ``data.*`` files: ``path``, else Debian's, else NLTK's copy."""
    candidates = [Path(path)] if path else [DEBIAN_WORDNET_DIR, default_target() / "corpora" / "wordnet"]
    for folder in candidates:
        if all((folder / name).is_file() for name in POS_FILES):
            return folder
    raise AudioLLMError(f"WordNet's data files ({', '.join(POS_FILES)}) not found in "
                        f"{' or '.join(str(c) for c in candidates)}: run `{APT_HINT}`")


def _synset_lines(folder: Path) -> Iterable[tuple[str, str, str]]:
    """(synset id, first lemma, gloss) for every synset line of the ``data.*`` files."""
    for name in POS_FILES:
        pos = name.split(".")[1][0]
        with open(folder / name, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):  # the licence header
                    continue
                head, sep, gloss = line.partition(" | ")
                fields = head.split()
                if not sep or len(fields) < 5:
                    continue
                yield f"{pos}:{fields[0]}", fields[4], gloss.strip()


def wordnet_sentences(path: str | os.PathLike | None = None) -> list[Sentence]:
    """Every cleaned, distinct sentence of WordNet, sorted by text (the first synset that
    gives a sentence keeps it). Read once per process and folder (about 2 s)."""
    return list(_read_sentences(str(wordnet_dir(path))))


@functools.lru_cache(maxsize=4)
def _read_sentences(folder: str) -> tuple[Sentence, ...]:
    seen: dict[str, Sentence] = {}
    for synset, lemma, gloss in _synset_lines(Path(folder)):
        found = [(clean_sentence(q), "example") for q in re.findall(r'"([^"]*)"', gloss)]
        if synset.startswith("n:"):
            found.append((definition_sentence(lemma, re.split(r';\s*"', gloss)[0]), "definition"))
        for text, kind in found:
            if text is not None:
                seen.setdefault(sentence_key(text), Sentence(text, kind, synset))
    return tuple(sorted(seen.values(), key=lambda s: s.text))


def _bucket(key: str) -> int:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 100


def held_out_words(sentences: Iterable[Sentence]) -> dict[str, str]:
    """Rare word → "test" | "valid" for the held-out words (rule 1 of the module docstring)."""
    df = Counter(w for s in sentences for w in set(words(s.text)))
    held = {}
    for word, n in df.items():
        if n <= HELD_OUT_MAX_DF:
            b = _bucket(f"tts-word:{word}")
            if b < HELD_OUT_PERCENT:
                held[word] = "test"
            elif b < 2 * HELD_OUT_PERCENT:
                held[word] = "valid"
    return held


@dataclass(frozen=True)
class SplitPools:
    """Sentences per split: ``held[split]`` those with held-out words (valid and test only),
    ``hashed[split]`` the others; ``held_words`` the held-out words."""

    held: dict[str, list[Sentence]]
    hashed: dict[str, list[Sentence]]
    held_words: dict[str, str]

    def sizes(self) -> dict[str, dict[str, int]]:
        return {s: {"held_out_words": len(self.held.get(s, [])), "other": len(self.hashed[s])}
                for s in ("train", "valid", "test")}


def split_sentences(sentences: list[Sentence]) -> SplitPools:
    """Assign every sentence to one split (see the module docstring); order is kept."""
    held_words = held_out_words(sentences)
    held: dict[str, list[Sentence]] = {"valid": [], "test": []}
    hashed: dict[str, list[Sentence]] = {"train": [], "valid": [], "test": []}
    for s in sentences:
        marks = {held_words[w] for w in words(s.text) if w in held_words}
        if marks:
            held["test" if "test" in marks else "valid"].append(s)
            continue
        b = _bucket(f"tts-text:{sentence_key(s.text)}") % 10
        hashed["train" if b < 8 else "valid" if b == 8 else "test"].append(s)
    return SplitPools(held, hashed, held_words)


def vocabulary_overlap(train_texts: Iterable[str], texts: Iterable[str]) -> dict[str, object]:
    """How much of ``texts`` the training text never has: word tokens, word types and
    sentences with at least one unseen word (shares rounded to 4 places), plus up to 20
    unseen words (sorted)."""
    vocab = {w for t in train_texts for w in words(t)}
    texts = list(texts)
    tokens = [w for t in texts for w in words(t)]
    types = set(tokens)
    unseen = sorted(types - vocab)
    with_unseen = sum(any(w not in vocab for w in words(t)) for t in texts)

    def share(a: int, b: int) -> float:
        return round(a / b, 4) if b else 0.0

    return {
        "sentences": len(texts),
        "word_tokens": len(tokens),
        "word_types": len(types),
        "unseen_token_share": share(sum(w not in vocab for w in tokens), len(tokens)),
        "unseen_type_share": share(len(unseen), len(types)),
        "sentences_with_unseen_words_share": share(with_unseen, len(texts)),
        "unseen_word_examples": unseen[:20],
    }
