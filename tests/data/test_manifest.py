"""Manifests: relative paths resolve against the manifest; bad lines name their line number."""

import pytest

from audiollm.data.manifest import read_manifest, write_manifest
from audiollm.errors import ManifestError


def test_relative_paths_resolve(tmp_path):
    (tmp_path / "sub").mkdir()
    p = write_manifest(tmp_path / "sub" / "m.jsonl", [{"audio": "a.wav", "task": "asr", "answer": "x"}])
    rows = read_manifest(p)
    assert rows[0]["audio"] == str((tmp_path / "sub" / "a.wav").resolve())


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"audio": "a.wav", "task": "asr", "answer": "x"}', "{not json"], r"m.jsonl:2: not valid JSON"),
        (['{"audio": "a.wav", "answer": "x"}'], r"m.jsonl:1: missing key\(s\) task"),
        (['["a list"]'], r"m.jsonl:1: expected a JSON object"),
        ([""], r"has no examples"),
    ],
)
def test_bad_lines(tmp_path, lines, message):
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=message):
        read_manifest(p)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "none.jsonl")
