"""Helpers shared by the benchmark scripts: machine info, JSON output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))


def machine() -> dict[str, Any]:
    """Machine, device and commit, recorded with every result."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
    except OSError:
        commit = "unknown"
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": dev,
        "commit": commit,
        "python": platform.python_version(),
    }


def write_result(name: str, payload: dict[str, Any], path: Path | None = None) -> Path:
    """Write ``bench/results/<name>.json`` (or ``path``) with the machine info and print it."""
    from metaloss.io import write_json

    path = Path(path) if path is not None else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"machine": machine(), "command": " ".join(sys.argv), **payload})
    print(json.dumps(payload, indent=1, default=str)[:4000])
    print(f"wrote {path}")
    return path


def add_suite_args(ap: Any) -> None:
    """The options of a bench script that runs a custom suite (seeds, output, threads)."""
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--threads", default="1", help="torch threads (1: side by side with others)")
    ap.add_argument("--tune-workers", type=int, default=1, help="processes for the lr grids")
    ap.add_argument("--reuse-tunings", default=None, help="a bench folder's recorded tunings")


def run_custom_suite(suite: Any, args: Any) -> None:
    """``run_suite`` under the options of :func:`add_suite_args`, with progress bars."""
    from metaloss.errors import ArtifactError, ConfigError
    from metaloss.suite import run_suite
    from metaloss.threads import set_threads

    set_threads(int(args.threads) if args.threads.isdigit() else args.threads)
    try:
        run_suite(
            suite,
            args.out,
            seeds=args.seeds,
            first_seed=args.first_seed,
            progress=True,
            tune_workers=args.tune_workers,
            reuse_tunings=args.reuse_tunings,
        )
    except (ConfigError, ArtifactError) as exc:  # one line, as the CLI does (exit status 2)
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
