"""Start-up time of the CLI: ``metaloss --help`` and a no-op ``metaloss train``, wall clock.

Each command runs ``--repeats`` times in fresh processes; with ``--before DIR`` (a copy of
an older ``metaloss`` package's parent folder, e.g. ``git archive <commit> metaloss | tar
-x -C DIR``) the old and the current code alternate back to back, so that both see the
same machine load and their ratio stays meaningful on a busy machine. Also reports which
heavy libraries each command imported.

    python bench/startup.py --repeats 5
    python bench/startup.py --before /tmp/before --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_result  # noqa: I001

COMMANDS = {
    "help": ["--help"],
    "train_noop": ["train", "-t", "iris-linear", "--steps", "0", "--json"],
}
HEAVY = ("torch", "sympy", "sklearn", "scipy", "matplotlib", "ray", "torch._dynamo")
PROBE = (
    "import runpy, sys, json, atexit\n"
    "sys.argv = ['metaloss', *sys.argv[1:]]\n"
    "atexit.register(lambda: sys.stderr.write('HEAVY=' + json.dumps("
    "[m for m in {heavy!r} if m in sys.modules]) + '\\n'))\n"
    "runpy.run_module('metaloss.cli', run_name='__main__')\n"
)


def run_once(code_root: Path, args: list[str]) -> tuple[float, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    cmd = [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args]
    t0 = time.perf_counter()  # cwd: not the repository, whose metaloss/ `-c` would import
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed: {proc.stderr[-2000:]}")
    heavy = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert proc.stdout.strip() and heavy, proc.stderr[-2000:]
    return secs, json.loads(heavy[-1][6:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", type=Path, default=None, help="folder with the old package")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    roots = {"after": ROOT} if args.before is None else {"before": args.before, "after": ROOT}
    for version, root in roots.items():
        code = "import metaloss; print(metaloss.__file__)"
        where = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(root)},
                               cwd=tempfile.gettempdir()).stdout.strip()  # fmt: skip
        if not where.startswith(str(Path(root).resolve())):
            raise SystemExit(f"{version}: {root} is not the imported package ({where})")
    for root in roots.values():  # warm the file cache and the data caches once
        for argv in COMMANDS.values():
            run_once(root, argv)
    times: dict[str, dict[str, list[float]]] = {c: {v: [] for v in roots} for c in COMMANDS}
    imported: dict[str, dict[str, list[str]]] = {c: {} for c in COMMANDS}
    for _ in range(args.repeats):
        for cmd, argv in COMMANDS.items():
            for version, root in roots.items():  # alternate: same load for both
                secs, heavy = run_once(root, argv)
                times[cmd][version].append(round(secs, 3))
                imported[cmd][version] = heavy
    rows = {}
    for cmd in COMMANDS:
        row = {
            v: {"median_s": statistics.median(t), "all_s": t, "heavy_imports": imported[cmd][v]}
            for v, t in times[cmd].items()
        }
        if "before" in row:
            row["after_over_before"] = round(
                row["after"]["median_s"] / row["before"]["median_s"], 3
            )
        rows[cmd] = row
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    payload = {"loadavg_at_end": load, "commands": COMMANDS, "results": rows}
    write_result("startup", {"args": {k: str(v) for k, v in vars(args).items()}, **payload})


if __name__ == "__main__":
    main()
