"""`audiollm` — one console script with subcommands, thin argument parsing over the Python API.

Every user-fixable problem surfaces as one line, ``audiollm: error: …``, and a non-zero exit
(2, or 130 after Ctrl-C). Handlers import what they run inside themselves, so ``--help`` is
fast. The subcommands live beside this file: `data`, `train` (train, features, convert),
`infer` (ask, evaluate, transcribe, generate, speak), `mulan` (embed, index, search, tag, score) and
`codec` (codec encode, codec decode).
"""

from __future__ import annotations

import argparse
import sys

from audiollm import __version__
from audiollm.cli import codec, data, infer, mulan, train
from audiollm.errors import AudioLLMError


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one ``audiollm: error:`` line, like every other error
    (subcommand parsers are made of this class too)."""

    def error(self, message: str):
        self.exit(2, f"audiollm: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="audiollm", description="Audio-language models: train, ask, evaluate, "
                                "transcribe, generate, speak; MuLaN embed, index, search, tag, score.")
    p.add_argument("--version", action="version", version=f"audiollm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in (data, train, infer, mulan, codec):
        module.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        (parser if args.command is None else parser._subparsers._group_actions[0].choices[args.command]).print_help()
        return 2
    try:
        args.func(args)
    except AudioLLMError as e:
        print(f"audiollm: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("audiollm: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
