"""MusicQA (MU-LLaMA) → open question-answering rows about music clips.

Layout (the Hugging Face dataset ``mu-llama/MusicQA``): ``ROOT/PretrainMusicQA.json``,
``ROOT/FinetuneMusicQA.json``, ``ROOT/EvalMusicQA.json`` and the clips in ``ROOT/audios/``
(what ``audios.zip`` extracts to; another folder via the ``audio_dir`` option). The MU-LLaMA
generation script writes a single ``MusicQA.json`` instead, which is read when none of the
three split files is present. Each file is a JSON list of::

    {"audio_name": "012542.wav",
     "conversation": [{"from": "human", "value": "Describe the audio"},
                      {"from": "gpt", "value": "The audio is ..."}]}

Every human turn followed by a gpt turn becomes one row (questions carry a leading space
where the generator stripped a ``Q:`` prefix; whitespace is trimmed). Entries written as
``{"audio_name", "question", "answer"}`` are read too. About nine questions share each clip.
Upstream: https://github.com/shansongliu/MU-LLaMA (Liu et al. 2023), MIT licence for the
QA text; the clips come from MusicCaps, MagnaTagATune and MTG-Jamendo under their own terms.

Splits: Eval → test; Pretrain, Finetune (or MusicQA.json) → train, except the clips with a
stable hash of the audio name (CRC-32 mod 100) below 5 → valid — by clip, so all questions
about one clip land in the same split. The ``subsets`` option (comma-separated: pretrain,
finetune, eval, all) keeps only those files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audiollm.data.formats.base import register_format
from audiollm.data.formats.common import (
    as_list,
    audio_folder,
    bucket,
    dataset_dir,
    read_text,
    report_skipped,
    require_rows,
    usable_audio,
)
from audiollm.errors import AudioLLMError

LAYOUT = "ROOT/{Pretrain,Finetune,Eval}MusicQA.json (or MusicQA.json) + ROOT/audios/<audio_name>"
FILES = {"pretrain": "PretrainMusicQA.json", "finetune": "FinetuneMusicQA.json", "eval": "EvalMusicQA.json",
         "all": "MusicQA.json"}


def qa_pairs(entry: Any) -> list[tuple[str, str]] | None:
    """(question, answer) pairs of one entry; None when the entry has neither shape."""
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("conversation"), list):
        pairs: list[tuple[str, str]] = []
        turns = entry["conversation"]
        for turn, reply in zip(turns, turns[1:]):
            if not (isinstance(turn, dict) and isinstance(reply, dict)):
                return None
            if turn.get("from") == "human" and reply.get("from") == "gpt":
                pairs.append((str(turn.get("value") or "").strip(), str(reply.get("value") or "").strip()))
        return pairs
    if "question" in entry and "answer" in entry:
        return [(str(entry["question"] or "").strip(), str(entry["answer"] or "").strip())]
    return None


def load_entries(path: Path) -> list[Any]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise AudioLLMError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise AudioLLMError(f"{path}: expected a JSON list of {{audio_name, conversation}} entries, "
                            f"got {type(data).__name__}")
    return data


@register_format("musicqa")
def musicqa_rows(root: Path, *, audio_dir: str = "", subsets: str = "") -> list[dict[str, Any]]:
    """One ``qa`` row per question/answer pair, with ``question``, ``audio_name``,
    ``subset`` and ``turn`` (the pair's index within its entry)."""
    root = dataset_dir(root, "MusicQA", LAYOUT)
    present = [s for s, name in FILES.items() if (root / name).is_file()]
    if not present:
        raise AudioLLMError(f"{root}: no MusicQA JSON files found; expected the layout {LAYOUT}")
    wanted = [s.lower() for s in as_list(subsets)]
    if wanted:
        unknown = [s for s in wanted if s not in present]
        if unknown:
            raise AudioLLMError(f"musicqa option subsets: {', '.join(unknown)} not found in {root}; "
                                f"present: {', '.join(present)}")
        chosen = wanted
    else:
        chosen = [s for s in present if s != "all"] or ["all"]
    folder = audio_folder(root, audio_dir, "musicqa", defaults=("audios", "audio"))

    rows: list[dict[str, Any]] = []
    for subset in chosen:
        path = root / FILES[subset]
        malformed: list[str] = []
        missing: dict[str, None] = {}  # clip names, once each (a clip has ~9 entries)
        for i, entry in enumerate(load_entries(path)):
            pairs = qa_pairs(entry)
            name = str(entry.get("audio_name") or "").strip() if isinstance(entry, dict) else ""
            if pairs is None or not name:
                malformed.append(f"entry {i}")
                continue
            audio = folder / name
            if not usable_audio(audio):
                missing[name] = None
                continue
            split = "test" if subset == "eval" else "valid" if bucket(name) < 5 else "train"
            for turn, (question, answer) in enumerate(pairs):
                if not question or not answer:
                    malformed.append(f"entry {i} turn {turn}")
                    continue
                rows.append({
                    "id": f"musicqa-{subset}-{i}-{turn}",
                    "task": "qa",
                    "split": split,
                    "subset": subset,
                    "audio": str(audio),
                    "question": question,
                    "answer": answer,
                    "audio_name": name,
                    "turn": turn,
                })
        report_skipped(path, "entry(ies) without audio_name and a human/gpt question-answer pair", malformed)
        report_skipped(folder, f"{subset} clip(s) whose audio file is missing", list(missing))
    return require_rows(rows, "MusicQA", root, LAYOUT, hint=" with audio")
