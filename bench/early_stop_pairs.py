"""Early stopping off vs on, compared on the found losses' fair test errors.

Each ``--pair SEED OFF ON`` names the two searches of one search seed by their fair-protocol
test errors: a JSON written by ``bench/early_stop.py`` (its run's ``test_errors``) or a report
written by ``metaloss evaluate ... --out`` (its first row's ``values``). Printed and written:
per seed, the two losses' mean test errors, the difference (on - off), Welch's p over their
reporting runs; over all seeds, the pooled reporting runs of the off losses against those of
the on losses (difference, 95 % CI, Welch p), and whether the pre-registered cost threshold
(``--margin``: on worse by more than it with p < 0.05) is crossed.

    python bench/early_stop_pairs.py \\
        --pair 0 runs/s0-off.json runs/s0-on.json --pair 1 ... --out pairs.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from common import write_result  # noqa: I001

from metaloss.results import welch_ci, welch_p


def arm_errors(path: str) -> list[float]:
    """The reporting runs' test errors of the one loss a JSON file describes."""
    d = json.loads(Path(path).read_text())
    if "runs" in d:  # bench/early_stop.py, one arm, one seed
        (run,) = d["runs"]
        return [float(v) for v in run["test_errors"]]
    if "rows" in d:  # metaloss evaluate --out, --no-baseline, one loss
        (row,) = d["rows"]
        return [float(v) for v in row["values"]]
    raise SystemExit(f"error: {path}: neither an early_stop.py result nor an evaluate report")


def compare(pairs: list[tuple[int, list[float], list[float]]], margin: float) -> dict:
    """Per-seed and pooled comparisons of the off and on losses' test errors."""
    rows = []
    for seed, off, on in pairs:
        rows.append({
            "seed": seed, "off": off, "on": on,
            "off_mean": statistics.mean(off), "on_mean": statistics.mean(on),
            "diff": statistics.mean(on) - statistics.mean(off), "p": welch_p(on, off),
        })  # fmt: skip
    off_all = [v for _, off, _ in pairs for v in off]
    on_all = [v for _, _, on in pairs for v in on]
    diff = statistics.mean(on_all) - statistics.mean(off_all)
    p = welch_p(on_all, off_all)
    return {
        "per_seed": rows,
        "pooled": {
            "off_mean": statistics.mean(off_all),
            "on_mean": statistics.mean(on_all),
            "diff": diff,
            "ci": list(welch_ci(on_all, off_all)),
            "p": p,
            "n": [len(off_all), len(on_all)],
        },
        "margin": margin,
        "costs_quality": bool(diff > margin and p < 0.05),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--pair", nargs=3, action="append", metavar=("SEED", "OFF", "ON"), required=True,
        help="a search seed and its two test-error JSON files",
    )  # fmt: skip
    ap.add_argument("--margin", type=float, default=0.001, help="cost threshold (on - off)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    pairs = [(int(s), arm_errors(off), arm_errors(on)) for s, off, on in args.pair]
    res = compare(pairs, args.margin)
    for r in res["per_seed"]:
        print(f"seed {r['seed']}: off {r['off_mean']:.4f}, on {r['on_mean']:.4f}, "
              f"diff {r['diff']:+.4f}, Welch p {r['p']:.3f}")  # fmt: skip
    pl = res["pooled"]
    print(f"pooled: off {pl['off_mean']:.4f}, on {pl['on_mean']:.4f}, diff {pl['diff']:+.4f} "
          f"[{pl['ci'][0]:+.4f}, {pl['ci'][1]:+.4f}], p {pl['p']:.3f}; "
          f"costs quality: {res['costs_quality']}")  # fmt: skip
    write_result("early_stop_pairs", {"pairs": [p[0] for p in pairs], **res}, args.out)


if __name__ == "__main__":
    main()
