"""One line per noisy / imbalanced / little-data table (transfer ones included): tuned CE, the
best tuned hand-made loss, the best learned loss, and whether any learned loss beats both (the
README's "When does a learned loss help?" table, rebuilt from the stored cells).

    python bench/when_it_helps.py       # every bench/results/suites/noisy-*, little-* and transfer*
    python bench/when_it_helps.py FOLDER ... --json out.json   # default: bench/results/

Learned rows are the meta-learned losses; the learned-step controls (``ce-step-*``) and tagged
variants (``name@tag``: superseded or alternative settings) are left out of "best learned".
The verdicts are the tables' own (Welch, Holm over each table's comparisons).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from metaloss import io
from metaloss.suite import summarise
from metaloss.suite_table import BASELINES, is_control, other_hand_made

SUITES = Path(__file__).resolve().parent / "results" / "suites"


def _learned(method: str) -> bool:
    return "@" not in method and not is_control(method) and method not in BASELINES


def summary_lines(folders: list[Path]) -> list[dict[str, Any]]:
    """A line per task of each folder's table."""
    lines = []
    for folder in folders:
        cells = list(io.read_jsonl(folder / "cells.jsonl"))
        summary = summarise(cells)  # the tables' own rule
        for task, block in summary["tasks"].items():
            if "+" not in task:  # a clean task: not a noise / imbalance setting
                continue
            rows = block["rows"]
            seeds = sorted({c["seed"] for c in cells if c["task"] == task})
            best = block.get("best_baseline")
            if best is None:  # no learned row: the table names none; the same candidates
                hand = other_hand_made(rows, block["baseline"])
                best = min(hand, key=lambda m: rows[m]["mean"]) if hand else None
            learned = [m for m in rows if _learned(m)]
            top = min(learned, key=lambda m: rows[m]["mean"]) if learned else None
            line = {
                "folder": folder.name,
                "task": task,
                "seeds": f"{seeds[0]}-{seeds[-1]}",
                "n_seeds": len(seeds),
                "best_baseline_n": rows[best]["n"] if best else None,
                "best_learned_n": rows[top]["n"] if top else None,
                "ce": rows.get("ce", {}).get("mean"),
                "best_baseline": best,
                "best_baseline_mean": rows[best]["mean"] if best else None,
                "best_baseline_vs_ce": rows[best]["verdict"] if best else None,
                "best_learned": top,
                "best_learned_mean": rows[top]["mean"] if top else None,
                "best_learned_vs_ce": rows[top]["verdict"] if top else None,
                "best_learned_vs_best_baseline": (
                    (rows[top].get("vs_best_baseline") or {}).get("verdict") if top else None
                ),
                "beats_both": block.get("beats_both", []),
            }
            lines.append(line)
    return lines


def _cell(
    name: str | None, mean: float | None, verdict: str | None, n: int | None, n_seeds: int
) -> str:
    if name is None or mean is None:
        return "–"
    text = f"{name} {mean:.4f}" + (f" (n {n})" if n is not None and n != n_seeds else "")
    if verdict == "better":
        return f"**{text}**"
    return text + (" (worse)" if verdict == "worse" else "")


def markdown(lines: list[dict[str, Any]]) -> str:
    head = ["table", "task", "seeds", "tuned CE", "best hand-made (vs CE)", "best learned (vs CE)",
            "learned vs best hand-made", "beats both"]  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ln in lines:
        ce = f"{ln['ce']:.4f}" if ln["ce"] is not None else "–"
        k = ln["n_seeds"]  # a row with fewer seeds than the table's range says so
        best = _cell(*(ln[f"best_baseline{x}"] for x in ("", "_mean", "_vs_ce", "_n")), k)
        top = _cell(*(ln[f"best_learned{x}"] for x in ("", "_mean", "_vs_ce", "_n")), k)
        both = ", ".join(ln["beats_both"]) or "none"
        vs = ln["best_learned_vs_best_baseline"] or "–"
        cols = [ln["folder"], ln["task"], ln["seeds"], ce, best, top, vs, both]
        out.append("| " + " | ".join(cols) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folders", nargs="*", type=Path, help="suite folders (default: see above)")
    ap.add_argument("--json", type=Path, default=SUITES.parent / "when_it_helps.json",
                    help="write the lines as JSON here")  # fmt: skip
    args = ap.parse_args()
    folders = args.folders or sorted(
        p
        for p in SUITES.iterdir()
        if p.name.startswith(("noisy-", "transfer", "little-")) and p.is_dir()
    )
    lines = summary_lines([f for f in folders if (f / "cells.jsonl").exists()])
    print(markdown(lines))
    args.json.write_text(json.dumps(lines, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
