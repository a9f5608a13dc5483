"""Real dataset layouts → manifest rows.

Each format is one function ``(root, **options) -> list[dict]`` registered by name::

    @register_format("fsdd")
    def fsdd_rows(root: Path, *, test_speaker: str = "yweweler", split: str = "") -> list[dict]: ...

`build_manifest("fsdd", root, test_speaker="jackson")` looks the name up in `FORMATS` and
calls it. Rows carry absolute audio paths, a ``split`` field and ``dataset`` (the format
name, which selects the dataset's evaluation protocol in `audiollm.evaluation.protocols`); the CLI
(``audiollm data manifest``) writes them as JSONL.
"""

# Importing a module registers what it defines.
from audiollm.data.formats import (  # noqa: F401
    audiocaps,
    clotho,
    fsdd,
    gtzan,
    librispeech,
    ljspeech,
    maestro,
    magnatagatune,
    musiccaps,
    musicqa,
)
from audiollm.data.formats.base import (
    FORMATS,
    build_manifest,
    describe_formats,
    register_format,
)

__all__ = [
    "FORMATS",
    "build_manifest",
    "describe_formats",
    "register_format",
]
