"""Free Spoken Digit Dataset (FSDD) → ASR rows.

Layout: ``ROOT/recordings/{digit}_{speaker}_{index}.wav`` (ROOT may also be the recordings
folder itself), e.g. ``7_jackson_32.wav``: speaker "jackson" saying "seven", take 32.
Upstream: https://github.com/Jakobovski/free-spoken-digit-dataset (CC BY-SA 4.0); 8 kHz mono.

Splits (every row carries ``split``; the ``split`` option keeps one of them):

* ``test``: every recording of ``test_speaker`` (default ``"yweweler"``), so the test set
  measures a voice the model never heard — the hard, honest number for ASR.
* ``valid``: takes 0-4 of every other speaker (FSDD's own "first 10%" test rule).
* ``train``: everything else.

``test_speaker="none"`` keeps all speakers in training and uses the upstream split instead:
takes 0-4 → test, 5-9 → valid, the rest → train.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import soundfile as sf

from audiollm.data.formats.base import register_format
from audiollm.errors import AudioLLMError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NAME_PATTERN = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[A-Za-z][A-Za-z0-9-]*)_(?P<index>[0-9]+)\.wav$")
LAYOUT = "ROOT/recordings/{digit}_{speaker}_{index}.wav (e.g. 7_jackson_32.wav)"
DEFAULT_TEST_SPEAKER = "yweweler"
SPLITS = ("train", "valid", "test")


def recordings_dir(root: Path) -> Path:
    """``root/recordings`` when it exists, else ``root`` (pointing at the folder directly)."""
    if not root.exists():
        raise AudioLLMError(f"{root}: no such folder (expected the FSDD layout {LAYOUT})")
    if not root.is_dir():
        raise AudioLLMError(f"{root}: is a file, expected a folder in the FSDD layout {LAYOUT}")
    sub = root / "recordings"
    return sub if sub.is_dir() else root


def assign_split(speaker: str, index: int, test_speaker: str | None) -> str:
    """The split of one recording (see the module docstring for the rule)."""
    if test_speaker is None:
        return "test" if index < 5 else "valid" if index < 10 else "train"
    if speaker == test_speaker:
        return "test"
    return "valid" if index < 5 else "train"


@register_format("fsdd")
def fsdd_rows(root: Path, *, test_speaker: str = DEFAULT_TEST_SPEAKER, split: str = "") -> list[dict[str, Any]]:
    """One ``asr`` row per recording: answer = the digit as a word ("seven"), labels
    ``digit``, ``speaker``, ``index``, ``duration``, ``sample_rate``; absolute audio paths;
    sorted by speaker, digit, take. Files whose names do not follow the pattern, and files
    that cannot be read, are skipped with one warning that counts them."""
    folder = recordings_dir(Path(root))
    if split not in ("",) + SPLITS:
        raise AudioLLMError(f"fsdd option split={split!r}; valid: {', '.join(SPLITS)} (or empty for all)")
    held_out = None if test_speaker.strip().lower() in ("", "none") else test_speaker.strip()

    parsed: list[tuple[str, int, int, Path]] = []
    bad_names: list[str] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() != ".wav":
            continue
        m = NAME_PATTERN.match(path.name)
        if m is None:
            bad_names.append(path.name)
            continue
        parsed.append((m["speaker"], int(m["digit"]), int(m["index"]), path.resolve()))
    if not parsed:
        raise AudioLLMError(f"{folder}: no FSDD recordings found; expected the layout {LAYOUT}")
    speakers = sorted({p[0] for p in parsed})
    if held_out is not None and held_out not in speakers:
        raise AudioLLMError(f"fsdd test_speaker={held_out!r} is not in {folder}; speakers: {', '.join(speakers)} "
                            "(or test_speaker=none for the upstream split)")

    rows: list[dict[str, Any]] = []
    unreadable: list[str] = []
    for speaker, digit, index, path in sorted(parsed):
        row_split = assign_split(speaker, index, held_out)
        if split and row_split != split:
            continue
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError):
            unreadable.append(path.name)
            continue
        rows.append({
            "id": f"fsdd-{path.stem}",
            "task": "asr",
            "split": row_split,
            "audio": str(path),
            "answer": DIGIT_WORDS[digit],
            "text": DIGIT_WORDS[digit],
            "digit": digit,
            "speaker": speaker,
            "index": index,
            "duration": round(info.frames / info.samplerate, 4),
            "sample_rate": info.samplerate,
        })
    for what, names in (("do not match {digit}_{speaker}_{index}.wav", bad_names),
                        ("could not be read as audio", unreadable)):
        if names:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            warnings.warn(f"{folder}: skipped {len(names)} file(s) that {what}: {shown}", stacklevel=2)
    return rows
