"""An English text normaliser for WER, after the rules Whisper's ``EnglishTextNormalizer``
publishes (Radford et al. 2022, appendix C), reimplemented here without its number and
spelling-variant tables.

What it does, in this order:

1. Lowercase.
2. Remove text in square brackets (``[laughter]``) and in parentheses (``(inaudible)``).
3. Remove the hesitation words ``hmm``, ``mm``, ``mhm``, ``mmm``, ``uh``, ``um``.
4. Join a space before an apostrophe (``john 's`` → ``john's``), then expand contractions:
   ``won't`` → ``will not``, ``can't`` → ``can not``, ``ain't`` → ``is not``, then the
   suffixes ``n't`` → `` not``, ``'re`` → `` are``, ``'ll`` → `` will``, ``'ve`` → `` have``,
   ``'m`` → `` am``, ``'d`` → `` would``. (``'s`` is ambiguous — is/has/possessive — and is
   left alone, as Whisper does.)
5. Remove thousands separators between digits (``1,000`` → ``1000``) and periods that are not
   decimal points.
6. Strip diacritics (NFKD; combining marks dropped: ``café`` → ``cafe``) and turn every other
   punctuation or symbol character into a space (so ``john's`` → ``john s`` on both sides;
   ``%`` and currency signs are kept next to numbers as in Whisper).
7. British → American spelling for a small table (:data:`BRITISH_TO_AMERICAN`).
8. Collapse whitespace.

What it does *not* do (Whisper does): spell numbers as digits ("twenty one" → "21"), the
full 1,700-word spelling table. LibriSpeech references already write numbers as words,
so step 7's table and the number rules matter little there.
"""

from __future__ import annotations

import re
import unicodedata

FILLERS = ("hmm", "mm", "mhm", "mmm", "uh", "um")

#: A small British → American table (the frequent words; Whisper ships a full one).
BRITISH_TO_AMERICAN: dict[str, str] = {
    "colour": "color", "colours": "colors", "coloured": "colored", "favourite": "favorite",
    "favour": "favor", "honour": "honor", "honoured": "honored", "neighbour": "neighbor",
    "neighbours": "neighbors", "labour": "labor", "behaviour": "behavior", "humour": "humor",
    "harbour": "harbor", "centre": "center", "centres": "centers", "theatre": "theater",
    "metre": "meter", "metres": "meters", "grey": "gray", "travelled": "traveled",
    "travelling": "traveling", "jewellery": "jewelry", "realise": "realize", "realised": "realized",
    "recognise": "recognize", "recognised": "recognized", "organise": "organize", "apologise": "apologize",
    "defence": "defense", "offence": "offense", "programme": "program", "cheque": "check",
}

_WHOLE_WORD = [
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"\bcan't\b"), "can not"),
    (re.compile(r"\bain't\b"), "is not"),
]
_SUFFIXES = [
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'m\b"), " am"),
    (re.compile(r"'d\b"), " would"),
]
_BRACKETS = re.compile(r"[<\[][^\]>]*[\]>]")
_PARENS = re.compile(r"\([^)]*\)")
_FILLER = re.compile(r"\b(" + "|".join(FILLERS) + r")\b")
_KEEP_SYMBOLS = set(".%$¢€£")
_APOSTROPHES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'"})


def _symbols_to_space(s: str) -> str:
    out = []
    for c in unicodedata.normalize("NFKD", s):
        cat = unicodedata.category(c)
        if cat.startswith("M"):
            continue  # a combining mark: the diacritic of the previous letter
        out.append(c if c in _KEEP_SYMBOLS or not (cat.startswith("P") or cat.startswith("S")) else " ")
    return "".join(out)


def normalize_english(text: str) -> str:
    """Normalise one English transcript for WER (see the module docstring for the rules).

    >>> normalize_english("Mr. Brown [NOISE] won't   go to the THEATRE, um, today!")
    'mr brown will not go to the theater today'
    """
    s = text.lower().translate(_APOSTROPHES)
    s = _BRACKETS.sub(" ", s)
    s = _PARENS.sub(" ", s)
    s = _FILLER.sub(" ", s)
    s = re.sub(r"\s+'", "'", s)
    for pattern, repl in _WHOLE_WORD + _SUFFIXES:
        s = pattern.sub(repl, s)
    s = re.sub(r"(\d),(\d)", r"\1\2", s)
    s = re.sub(r"\.([^0-9]|$)", r" \1", s)
    s = _symbols_to_space(s)
    s = re.sub(r"\.(?!\d)", " ", s)  # a period left over that is not before a digit
    words = [BRITISH_TO_AMERICAN.get(w, w) for w in s.split()]
    return " ".join(words)
