"""Shared helpers for the benchmark scripts: argument parsing, timing, JSON output.

Every benchmark prints exactly ONE JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable

import torch


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run (seconds)")
    p.add_argument("--device", default="cpu", help="torch device to run on (cpu, cuda, cuda:0, ...)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (median reported)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Use every core (the GUIDE's convention for benchmarks) and seed everything."""
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(args.seed)
    if args.quick:
        args.repeats = 1
    return torch.device(args.device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_median_seconds(
    fns: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Like `median_seconds` for several candidates, run round-robin so slow drifts of a
    shared machine hit all candidates alike (ratios measured side by side). The order is
    reversed every other round so no candidate always runs first."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats):
        order = list(fns.items()) if r % 2 == 0 else list(fns.items())[::-1]
        for name, fn in order:
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def machine(device: torch.device) -> dict[str, object]:
    info: dict[str, object] = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit(result: dict) -> None:
    print(json.dumps(result, indent=None, sort_keys=False))


def run(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``: a bad input (an ``AudioLLMError``) is one line on stderr and
    exit code 2, as in the CLI."""
    from audiollm.errors import AudioLLMError

    try:
        main()
    except AudioLLMError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
