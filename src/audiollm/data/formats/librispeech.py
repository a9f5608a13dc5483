"""LibriSpeech → ASR rows.

Layout: ``ROOT/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` next
to ``<speaker>-<chapter>-<utterance>.flac``; each transcript line is ``<utterance id> <TEXT>``
in upper case. ROOT may also be the ``LibriSpeech`` folder or one subset folder. The optional
``LibriSpeech/SPEAKERS.TXT`` (``ID | SEX | SUBSET | MINUTES | NAME``, ``;`` comments) adds
each speaker's ``gender``; one reader's name contains the separator (``|CBW|Simon``), so a
line is split at its first four ``|`` only.
Upstream: https://www.openslr.org/12 (Panayotov et al. 2015), CC BY 4.0; 16 kHz FLAC.

Splits come from the subset name: ``train-*`` (train-clean-100, train-clean-360,
train-other-500) → train, ``dev-*`` → valid, ``test-*`` → test. Each row keeps ``subset``,
because test-clean and test-other are reported separately. The ``subsets`` option keeps
only the named subsets (comma-separated).

``answer`` is the transcript in lower case (what the model learns to write); ``text`` keeps
the original. Utterances listed in a transcript whose FLAC is missing are skipped with one
warning that counts them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from audiollm.data.formats.base import register_format
from audiollm.data.formats.common import (
    as_list,
    dataset_dir,
    read_text,
    report_skipped,
    require_rows,
)
from audiollm.errors import AudioLLMError

LAYOUT = "ROOT/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt + <speaker>-<chapter>-<utt>.flac"
SUBSET_PATTERN = re.compile(r"^(train|dev|test)-[A-Za-z0-9-]+$")
SPLIT_OF_PREFIX = {"train": "train", "dev": "valid", "test": "test"}
UTTERANCE_PATTERN = re.compile(r"^(?P<speaker>[0-9]+)-(?P<chapter>[0-9]+)-(?P<utt>[0-9]+)$")


def subset_dirs(root: Path) -> list[Path]:
    """The subset folders under ``root``: itself if it is one, else those in ``root`` or
    ``root/LibriSpeech``."""
    if SUBSET_PATTERN.match(root.name):
        return [root]
    for base in (root / "LibriSpeech", root):
        found = sorted(p for p in base.iterdir() if p.is_dir() and SUBSET_PATTERN.match(p.name)) if base.is_dir() else []
        if found:
            return found
    raise AudioLLMError(f"{root}: no LibriSpeech subset folders (train-clean-100/, dev-clean/, test-other/, ...) "
                        f"found; expected the layout {LAYOUT}")


def read_speakers(path: Path) -> dict[str, str]:
    """Speaker id → ``"F"``/``"M"`` from SPEAKERS.TXT (empty when the file is absent)."""
    genders: dict[str, str] = {}
    if not path.is_file():
        return genders
    for line in read_text(path).splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|", 4)]  # the NAME field may contain "|"
        if len(fields) == 5 and fields[0].isdigit() and fields[1] in ("F", "M"):
            genders[fields[0]] = fields[1]
    return genders


@register_format("librispeech")
def librispeech_rows(root: Path, *, subsets: str = "") -> list[dict[str, Any]]:
    """One ``asr`` row per utterance, with ``text`` (original case), ``speaker``,
    ``chapter``, ``subset`` and, when SPEAKERS.TXT is present, ``gender``."""
    root = dataset_dir(root, "LibriSpeech", LAYOUT)
    found = subset_dirs(root)
    wanted = as_list(subsets)
    if wanted:
        names = {p.name for p in found}
        unknown = [s for s in wanted if s not in names]
        if unknown:
            raise AudioLLMError(f"librispeech option subsets: {', '.join(unknown)} not found under {root}; "
                                f"present: {', '.join(sorted(names))}")
        found = [p for p in found if p.name in wanted]
    genders = read_speakers(found[0].parent / "SPEAKERS.TXT")

    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    malformed: list[str] = []
    for subset_dir in found:
        subset = subset_dir.name
        split = SPLIT_OF_PREFIX[subset.split("-", 1)[0]]
        for trans in sorted(subset_dir.glob("*/*/*.trans.txt")):
            chapter_dir = trans.parent
            for lineno, line in enumerate(read_text(trans).splitlines(), 1):
                if not line.strip():
                    continue
                utt_id, _, text = line.strip().partition(" ")
                m = UTTERANCE_PATTERN.match(utt_id)
                if m is None or not text.strip():
                    malformed.append(f"{trans.name}:{lineno}")
                    continue
                audio = chapter_dir / f"{utt_id}.flac"
                if not audio.is_file():
                    missing.append(str(audio.relative_to(subset_dir.parent)))
                    continue
                text = " ".join(text.split())
                row: dict[str, Any] = {
                    "id": f"librispeech-{utt_id}",
                    "task": "asr",
                    "split": split,
                    "subset": subset,
                    "audio": str(audio),
                    "answer": text.lower(),
                    "text": text,
                    "speaker": m["speaker"],
                    "chapter": m["chapter"],
                }
                if m["speaker"] in genders:
                    row["gender"] = genders[m["speaker"]]
                rows.append(row)
    where = found[0].parent
    report_skipped(where, "transcript line(s) that are not '<speaker>-<chapter>-<utt> TEXT'", malformed)
    report_skipped(where, "utterance(s) whose .flac file is missing", missing)
    return require_rows(rows, "LibriSpeech", where, LAYOUT)
