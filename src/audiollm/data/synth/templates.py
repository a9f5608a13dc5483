"""Text templates for the embedded corpus: spoken sentences, music captions and QA pairs.

Everything here is pure text and a `random.Random`: no audio, no I/O. The rules:

* Spoken sentences come from a fixed small vocabulary (`VOCABULARY`, about 200 words) so a
  small model can learn ASR in minutes. The returned text is exactly what espeak-ng is
  asked to say: lowercase, no punctuation, numbers spelled out.
* Captions and answers state only facts carried by the clip's labels (instrument, family,
  tempo, key, voices, composer) — never a mood or a claim the labels cannot back.
* QA questions never reuse a paraphrase that belongs to another task (`RESERVED_QUESTIONS`):
  those tasks answer in a different format, and sharing a question would teach the model
  two answers to one prompt.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from audiollm.music.theory import TEMPO_ADJECTIVE

# --------------------------------------------------------------------------- shared facts

# The questions the tagging / asr / caption tasks ask (audiollm.tasks.*_QUESTIONS). Kept as a
# literal here so the data layer does not import the task layer; a test checks they agree.
RESERVED_QUESTIONS: frozenset[str] = frozenset({
    "Which instrument family is playing?",
    "What family of instrument is this?",
    "Name the instrument family you hear.",
    "Which kind of instrument plays in this clip?",
    "Tag the instrument family.",
    "Transcribe the speech.",
    "What does the speaker say?",
    "Write down the spoken words.",
    "Transcribe this recording.",
    "What is being said?",
    "Describe this audio.",
    "Write a caption for this clip.",
    "Describe what you hear.",
    "Give a short description of this recording.",
    "Caption this audio.",
})


TRADITIONAL = "traditional"


# --------------------------------------------------------------------------- numbers

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_to_words(n: int) -> str:
    """0..9999 in British English words: 312 → "three hundred and twelve",
    2005 → "two thousand and five", 40 → "forty"."""
    if not 0 <= n <= 9999:
        raise ValueError(f"number_to_words covers 0..9999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    parts: list[str] = []
    thousands, rest = divmod(n, 1000)
    if thousands:
        parts.append(f"{_ONES[thousands]} thousand")
    hundreds, rest = divmod(rest, 100)
    if hundreds:
        parts.append(f"{_ONES[hundreds]} hundred")
    if rest:
        # British usage: "and" before the last two digits whenever something precedes them.
        parts.append(f"and {number_to_words(rest)}")
    return " ".join(parts)


def count_word(n: int) -> str:
    """A small count as a word ("four"), used in captions and answers."""
    return number_to_words(n)


# --------------------------------------------------------------------------- sentences

HOURS = _ONES[1:13]
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PARTS_OF_DAY = ("morning", "afternoon", "evening")
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "brown", "orange")
# (singular, plural)
OBJECTS = (("cup", "cups"), ("book", "books"), ("box", "boxes"), ("chair", "chairs"),
           ("lamp", "lamps"), ("key", "keys"), ("phone", "phones"), ("bag", "bags"),
           ("hat", "hats"), ("ball", "balls"), ("clock", "clocks"), ("plate", "plates"),
           ("bottle", "bottles"), ("pen", "pens"), ("coat", "coats"), ("shoe", "shoes"))
ANIMALS = (("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("horse", "horses"),
           ("cow", "cows"), ("duck", "ducks"))
FURNITURE = ("table", "bed", "sofa", "door", "window", "desk", "shelf", "floor")
PREPOSITIONS = ("on", "under", "near", "behind", "next to", "by")
ROOMS = ("kitchen", "garden", "hall", "office")
PLACES = ("park", "station", "shop", "school", "river", "market", "library", "bridge")
OPENING_PLACES = ("shop", "school", "market", "library", "station")
TRANSPORT = ("train", "bus", "boat", "plane")
PEOPLE = ("my brother", "my sister", "my mother", "my father", "my friend", "the teacher",
          "our neighbour", "the doctor", "the driver", "the baby")
FOODS = ("apples", "bread", "soup", "rice", "tea", "coffee", "milk", "cheese", "eggs")
PAST_VERBS = ("found", "bought", "lost", "sold", "painted", "carried", "washed", "moved")
PRESENT_LIKES = ("likes", "wants", "needs", "makes")
WEATHER = ("it is cold today", "it is warm today", "it is raining again", "the sun is out",
           "it is very windy", "the sky is grey")
PHRASES = ("good morning", "good evening", "thank you very much", "see you soon",
           "please open the window", "please close the door", "turn left at the bridge",
           "turn right at the shop", "wait for me here", "where is my phone",
           "how are you today", "i am ready now")


def time_phrase(rng: random.Random) -> str:
    """A clock time as speech: "a quarter past seven", "ten to nine", "six forty five"."""
    hour = rng.choice(HOURS)
    form = rng.randrange(6)
    if form == 0:
        return f"half past {hour}"
    if form == 1:
        return f"a quarter {rng.choice(('past', 'to'))} {hour}"
    if form == 2:
        minutes = rng.choice(("five", "ten", "twenty", "twenty five"))
        return f"{minutes} {rng.choice(('past', 'to'))} {hour}"
    if form == 3:
        return f"{hour} {rng.choice(('fifteen', 'thirty', 'forty five', 'twenty', 'fifty'))}"
    if form == 4:
        return f"{hour} in the {rng.choice(PARTS_OF_DAY)}"
    return rng.choice(("noon", "midnight"))


def _number(rng: random.Random) -> int:
    """Mostly small numbers, some hundreds, a few thousands (keeps sentences short)."""
    scale = rng.random()
    if scale < 0.4:
        return rng.randrange(0, 100)
    if scale < 0.85:
        return rng.randrange(100, 1000)
    return rng.randrange(1000, 10000)


def _count_phrase(rng: random.Random, pair: tuple[str, str]) -> str:
    n = rng.randrange(2, 13)
    return f"{number_to_words(n)} {pair[1]}"


def _sentence_number(rng: random.Random) -> str:
    n = number_to_words(_number(rng))
    form = rng.randrange(5)
    if form == 0:
        return n
    if form == 1:
        return f"the number is {n}"
    if form == 2:
        return f"room {n}"
    if form == 3:
        return f"i counted {_count_phrase(rng, rng.choice(ANIMALS))}"
    return f"the answer is {n}"


def _sentence_time(rng: random.Random) -> str:
    t = time_phrase(rng)
    form = rng.randrange(5)
    if form == 0:
        return f"it is {t}"
    if form == 1:
        return f"the {rng.choice(TRANSPORT)} leaves at {t}"
    if form == 2:
        return f"we meet at {t} on {rng.choice(DAYS)}"
    if form == 3:
        return f"the {rng.choice(OPENING_PLACES)} opens at {t}"
    return f"see you on {rng.choice(DAYS)} {rng.choice(PARTS_OF_DAY)}"


def _sentence_everyday(rng: random.Random) -> str:
    form = rng.randrange(9)
    colour = rng.choice(COLOURS)
    obj = rng.choice(OBJECTS)
    if form == 0:
        return f"the {colour} {obj[0]} is {rng.choice(PREPOSITIONS)} the {rng.choice(FURNITURE)}"
    if form == 1:
        return f"please put the {colour} {obj[0]} {rng.choice(PREPOSITIONS)} the {rng.choice(FURNITURE)}"
    if form == 2:
        n = rng.randrange(2, 13)
        return f"{rng.choice(PEOPLE)} {rng.choice(PAST_VERBS)} {number_to_words(n)} {colour} {obj[1]}"
    if form == 3:
        return f"{rng.choice(PEOPLE)} {rng.choice(PRESENT_LIKES)} {rng.choice(FOODS)}"
    if form == 4:
        return f"the {rng.choice(ANIMALS)[0]} is in the {rng.choice(ROOMS)}"
    if form == 5:
        return f"{rng.choice(PEOPLE)} is at the {rng.choice(PLACES)}"
    if form == 6:
        return rng.choice(WEATHER)
    if form == 7:
        return rng.choice(PHRASES)
    return f"{rng.choice(PEOPLE)} has a {colour} {obj[0]}"


SENTENCE_KINDS: dict[str, Any] = {
    "number": _sentence_number,
    "time": _sentence_time,
    "everyday": _sentence_everyday,
}


def sentence(rng: random.Random) -> tuple[str, str]:
    """A random spoken sentence and its kind ("number" | "time" | "everyday").

    Numbers and times are a quarter each, everyday sentences half: numbers and times
    exercise the hard part of ASR (many similar words), everyday ones the vocabulary.
    """
    r = rng.random()
    kind = "number" if r < 0.25 else "time" if r < 0.5 else "everyday"
    return SENTENCE_KINDS[kind](rng), kind


def _vocabulary() -> frozenset[str]:
    words: set[str] = set(_ONES) | {w for w in _TENS if w} | {"hundred", "thousand", "and"}
    groups: list[tuple[str, ...]] = [DAYS, PARTS_OF_DAY, COLOURS, FURNITURE, PREPOSITIONS, ROOMS,
                                     PLACES, TRANSPORT, PEOPLE, FOODS, PAST_VERBS, PRESENT_LIKES,
                                     WEATHER, PHRASES]
    groups += [tuple(w for pair in OBJECTS for w in pair), tuple(w for pair in ANIMALS for w in pair)]
    for group in groups:
        for phrase in group:
            words.update(phrase.split())
    # The fixed words of the templates above.
    words.update("a half past quarter to in the noon midnight fifty forty five fifteen thirty twenty "
                 "it is leaves at we meet on opens see you number room i counted answer please put "
                 "has".split())
    return frozenset(words)


VOCABULARY: frozenset[str] = _vocabulary()

# --------------------------------------------------------------------------- music text

def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def voices_phrase(n: int) -> str:
    """"a single voice" / "four voices"."""
    return "a single voice" if n == 1 else f"{count_word(n)} voices"


def composer_phrase(composer: str) -> str:
    """"by Bach", or "from the traditional repertoire" for the folk-tune collection."""
    return "from the traditional repertoire" if composer == TRADITIONAL else f"by {composer}"


def _facts(labels: Mapping[str, Any]) -> dict[str, str]:
    """The label values as the phrases the templates use."""
    return {
        "tempo": TEMPO_ADJECTIVE[labels["tempo_class"]],
        "bpm": str(labels["tempo_bpm"]),
        "family": labels["family"],
        "instrument": labels["instrument_phrase"],      # with its article: "a church organ"
        "key": labels["key"],
        "voices": voices_phrase(labels["voices"]),
        "composer": composer_phrase(labels["composer"]),
    }


CAPTION_TEMPLATES: tuple[str, ...] = (
    "A {tempo} {family} piece in {key} with {voices}, {composer}.",
    "{Instrument} plays a {tempo} passage in {key}.",
    "{Voices} on {instrument}, {tempo} at about {bpm} beats per minute, in {key}.",
    "Music {composer} played on {instrument} in {key}.",
    "A {tempo} {family} excerpt in {key}, {voices} at {bpm} beats per minute.",
    "{Instrument} in {key}: {voices}, {tempo}, {composer}.",
)


def caption(labels: Mapping[str, Any], rng: random.Random) -> str:
    """One caption for a music clip, from a randomly chosen template; only labelled facts."""
    facts = _facts(labels)
    facts.update({k.capitalize(): _cap(v) for k, v in facts.items()})
    return rng.choice(CAPTION_TEMPLATES).format(**facts)


def _tempo_answer(labels: Mapping[str, Any]) -> str:
    # Round to 5 bpm: "about 150" is what a listener could say; the exact value is a label.
    bpm = int(5 * round(labels["tempo_bpm"] / 5))
    lead = {"slow": "It is slow", "medium": "It is at a medium tempo", "fast": "It is fast"}
    return f"{lead[labels['tempo_class']]}, about {bpm} beats per minute."


def _composer_answer(labels: Mapping[str, Any]) -> str:
    c = labels["composer"]
    return "It is a traditional tune." if c == TRADITIONAL else f"{c}."


def _detail_answer(labels: Mapping[str, Any]) -> str:
    f = _facts(labels)
    return (f"{_cap(f['instrument'])} plays {f['voices']} in {f['key']} at a {labels['tempo_class']} "
            f"tempo of about {f['bpm']} beats per minute. The music is {f['composer']}.")


# question type → (paraphrases, answer builder). Every answer is a pure function of labels.
MUSIC_QA: dict[str, tuple[tuple[str, ...], Any]] = {
    "tempo": (("How fast is this piece?", "What is the tempo of this music?",
               "At what tempo is this played?", "How quick is the beat here?"), _tempo_answer),
    "tempo_class": (("Is this music slow, medium or fast?", "Would you call the tempo slow, medium or fast?",
                     "Is the pace slow, medium or fast?"),
                    lambda lab: f"{_cap(lab['tempo_class'])}."),
    "key": (("What key is this in?", "What key is this music in?", "Which key is the piece in?",
             "Name the key of this excerpt."), lambda lab: f"{lab['key']}."),
    "mode": (("Is this in a major or a minor key?", "Major or minor?", "Is the tonality major or minor?"),
             lambda lab: f"{_cap(lab['mode'])}."),
    "instrument": (("Which instrument is playing?", "What instrument plays this music?",
                    "Name the instrument you hear.", "What instrument is this?"),
                   lambda lab: f"{_cap(lab['instrument_phrase'])}."),
    "voices": (("How many voices can you hear?", "How many parts are playing?",
                "How many melodic lines are there?"), lambda lab: f"{_cap(count_word(lab['voices']))}."),
    "composer": (("Whose music is this?", "Who composed this piece?", "Which composer wrote this music?"),
                 _composer_answer),
    "detail": (("Describe the music in detail.", "Give a detailed description of this music.",
                "Tell me everything you can about this piece."), _detail_answer),
}

_GENDER_ANSWER = {"female": "Female.", "male": "Male."}

SPEECH_QA: dict[str, tuple[tuple[str, ...], Any]] = {
    "gender": (("Is the voice male or female?", "Is this a man or a woman speaking?",
                "Does a male or a female voice speak here?"), lambda lab: _GENDER_ANSWER[lab["gender"]]),
    "word_count": (("How many words are spoken?", "How many words does the speaker say?",
                    "Count the spoken words."), lambda lab: f"{_cap(count_word(len(lab['text'].split())))}."),
}


def qa_pairs(table: Mapping[str, tuple[tuple[str, ...], Any]], labels: Mapping[str, Any],
             rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    """``n`` distinct question types from ``table`` as (type, question, answer) triples."""
    kinds = rng.sample(sorted(table), n)
    out = []
    for kind in kinds:
        questions, answer = table[kind]
        out.append((kind, rng.choice(questions), answer(labels)))
    return out
