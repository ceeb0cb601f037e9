"""Does a longer fitness horizon let a search find a noise-robust loss? (issue 19)

Under label noise a robust loss helps late in training, when cross-entropy starts to fit the
wrong labels; a search whose fitness runs stop at 300-500 steps never sees that phase. This
runs a population search on a noisy task with fitness runs as long as the meta-test run, under
the suite's fair protocol (every loss lr-tuned on validation, tuning seeds apart from the
reporting seeds, test read once per cell), writing an ordinary suite folder:

    python bench/noise_horizon.py -t mnist1d-mlp+noise0.2sym --fitness-steps 2000 \\
        --generations 20 --popsize 16 --seeds 5 -o runs/horizon-noise0.2

Merge it with a suite run of the baselines (``merge_tables.py A B::@h2000`` tags this
folder's methods) for the Holm-corrected table. Early stopping is off by default here: its
checkpoints compare early validation errors, which penalises exactly the slow, robust losses
this experiment looks for.
"""

from __future__ import annotations

import argparse
import json

from common import add_suite_args, run_custom_suite

from metaloss.suite import Suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-t", "--task", default="mnist1d-mlp+noise0.2sym")
    ap.add_argument("-m", "--method", default="taylorglo", choices=["taylorglo", "evomal", "gplfl"])
    ap.add_argument("--fitness-steps", type=int, default=2000)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--popsize", type=int, default=16, help="popsize / population")
    ap.add_argument("--early-stop", action="store_true", help="turn early stopping on")
    add_suite_args(ap)
    args = ap.parse_args()
    size = "popsize" if args.method == "taylorglo" else "population"
    budget = {
        "generations": args.generations,
        size: args.popsize,
        "fitness_steps": args.fitness_steps,
        "early_stop": args.early_stop,
    }
    # The budget is in the suite's name: run_suite refuses to resume a folder under another
    # suite name, so cells of two budgets never mix in one folder.
    name = f"noise-horizon-g{args.generations}-p{args.popsize}-f{args.fitness_steps}"
    name += "-es" if args.early_stop else ""
    suite = Suite(name, tasks=[args.task], methods=[args.method], budgets={args.method: budget})
    run_custom_suite(suite, args)
    print(json.dumps({"suite": name, "budget": budget, "summary": f"{args.out}/summary.json"}))


if __name__ == "__main__":
    main()
