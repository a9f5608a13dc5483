"""Make NLTK's WordNet (needed by METEOR) work offline from Debian's WordNet 3.0 files.

NLTK normally downloads ``corpora/wordnet`` from GitHub, which is not reachable here and on
many clusters. Debian ships the same Princeton WordNet 3.0 database in the packages
``wordnet-base`` and ``wordnet-sense-index`` (under ``/usr/share/wordnet``). This module
copies those files into ``<target>/corpora/wordnet/`` (default target: ``<sys.prefix>/nltk_data``,
a directory NLTK always searches) and writes the one file Debian lacks, ``lexnames``.

Files are copied, not symlinked: NLTK resolves the corpus root to a real path and a venv
copied to another machine must keep working. Re-running is cheap and changes nothing when
the files are already in place.

Run it once after installing::

    python -m audiollm.metrics.wordnet            # into <venv>/nltk_data
    python -m audiollm.metrics.wordnet --target ~/nltk_data

NLTK's METEOR only looks up English synsets, so the Open Multilingual Wordnet (``omw-2.0``
in NLTK 3.9+, ``omw-1.4`` before) is not needed: NLTK loads it lazily only for
non-English ``lang=`` arguments. :func:`install_wordnet` verifies this by scoring a METEOR
example after the copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from audiollm.errors import AudioLLMError

DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")

# The files NLTK's WordNetCorpusReader opens (its ``_FILES``), except ``lexnames``, which we write.
REQUIRED_FILES = (
    "cntlist.rev",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)

# The 45 WordNet 3.0 lexicographer files (wninput(5WN)): number, name, syntactic category
# (1 noun, 2 verb, 3 adjective, 4 adverb). The second field of each data.* line indexes this list.
LEXNAMES = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
    ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1),
    ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1),
    ("noun.food", 1), ("noun.group", 1), ("noun.location", 1), ("noun.motive", 1),
    ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1), ("noun.plant", 1),
    ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1),
    ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1),
    ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2), ("verb.communication", 2),
    ("verb.competition", 2), ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2),
    ("verb.emotion", 2), ("verb.motion", 2), ("verb.perception", 2), ("verb.possession", 2),
    ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2), ("adj.ppl", 3),
)

APT_HINT = "apt-get install wordnet-base wordnet-sense-index"


def lexnames_text() -> str:
    """The ``lexnames`` file NLTK expects: ``NN<TAB>name<TAB>category`` per line, 45 lines."""
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))


def default_target() -> Path:
    """``<sys.prefix>/nltk_data``: on NLTK's default search path for this interpreter."""
    return Path(sys.prefix) / "nltk_data"


def _atomic_write_bytes(dest: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the corpus is world-readable data
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_copy(src: Path, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)  # follows symlinks in the source: a real copy lands here
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install_wordnet(
    target: str | os.PathLike | None = None, source: str | os.PathLike = DEBIAN_WORDNET_DIR
) -> Path:
    """Copy WordNet from ``source`` into ``<target>/corpora/wordnet`` and verify NLTK loads it.

    Idempotent: files already present with the same size are left alone. Returns the corpus
    directory. Raises :class:`AudioLLMError` when the Debian files are missing or the target
    cannot be written.
    """
    source = Path(source)
    target = Path(target) if target is not None else default_target()
    missing = [f for f in REQUIRED_FILES if not (source / f).is_file()]
    if missing:
        raise AudioLLMError(
            f"WordNet files missing in {source} ({', '.join(missing[:3])}"
            f"{'...' if len(missing) > 3 else ''}): run `{APT_HINT}`"
        )
    corpus = target / "corpora" / "wordnet"
    try:
        corpus.mkdir(parents=True, exist_ok=True)
        # Everything Debian ships (incl. verb frames and cntlist) so other NLTK WordNet
        # functions work too, not just the files METEOR touches.
        for src in sorted(p for p in source.iterdir() if p.is_file()):
            dest = corpus / src.name
            if dest.is_symlink():
                dest.unlink()
            if dest.is_file() and dest.stat().st_size == src.stat().st_size:
                continue
            _atomic_copy(src, dest)
        lexnames = lexnames_text().encode()
        lex_dest = corpus / "lexnames"
        if not (lex_dest.is_file() and lex_dest.read_bytes() == lexnames):
            _atomic_write_bytes(lex_dest, lexnames)
    except PermissionError as e:
        raise AudioLLMError(
            f"cannot write WordNet into {corpus} ({e.strerror}): pass --target DIR and set NLTK_DATA=DIR"
        ) from None
    _register_path(target)
    verify_wordnet()
    return corpus


def _register_path(target: Path) -> None:
    """Make a non-default target visible to NLTK in this process (NLTK_DATA does it for others)."""
    import nltk

    if str(target) not in nltk.data.path:
        nltk.data.path.insert(0, str(target))


def verify_wordnet() -> None:
    """Load WordNet through NLTK and score one METEOR pair; AudioLLMError if it fails."""
    from nltk.corpus import wordnet
    from nltk.translate.meteor_score import meteor_score

    try:
        dog = wordnet.synsets("dog")
        score = meteor_score([["a", "dog", "barks"]], ["a", "puppy", "barks"])
    except LookupError:
        raise AudioLLMError(
            "NLTK cannot find WordNet: run `python -m audiollm.metrics.wordnet`"
        ) from None
    if not dog or dog[0].lexname() != "noun.animal" or not score > 0:
        raise AudioLLMError(
            "NLTK's WordNet looks corrupt (synsets('dog') is wrong): "
            "re-run `python -m audiollm.metrics.wordnet`"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audiollm.metrics.wordnet",
        description="Install NLTK WordNet (for METEOR) offline from Debian's wordnet packages.",
    )
    parser.add_argument(
        "--target",
        default=None,
        help="nltk_data directory to install into (default: <sys.prefix>/nltk_data, "
        "which NLTK searches; any other directory must also be put in NLTK_DATA)",
    )
    parser.add_argument(
        "--source",
        default=str(DEBIAN_WORDNET_DIR),
        help=f"directory with Debian's WordNet files (default: {DEBIAN_WORDNET_DIR})",
    )
    args = parser.parse_args(argv)
    try:
        corpus = install_wordnet(args.target, args.source)
    except AudioLLMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"WordNet ready for NLTK METEOR: {corpus}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
