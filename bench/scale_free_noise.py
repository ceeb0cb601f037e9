"""Do the scale-free options help a search find a shape under label noise? (issue 19)

Runs the quick suite's methods with one scale-free option added to each method's quick budget
(``normalize=init``, ``normalize=running``, ``learn_lr=true``, ``fitness_lrs=0.25,1,4``),
under the suite's fair protocol (every loss lr-tuned on validation, tuning seeds apart from
the reporting seeds, test read once per cell), writing an ordinary suite folder:

    python bench/scale_free_noise.py -t digits-mlp+noise0.4sym -m ce -m ml3 -m evomal \\
        -m taylorglo --option normalize=init --seeds 5 -o runs/sf-digits-n40-init

A method the option does not apply to (``learn_lr`` for a search, ``fitness_lrs`` for ML3) is
skipped, with a line saying so; ``ce`` runs as the suite's own baseline
(compare its cells with the suite run of the baselines: equal cells mean the same protocol).
Merge with that run (``merge_tables.py A B::@init``) for the Holm-corrected table.

``--suite paper-mnist`` takes that suite's budgets instead of the quick suite's (MNIST tasks),
and any method option works, e.g. AdaLFL with a robust meta-objective:

    python bench/scale_free_noise.py --suite paper-mnist -t mnist-mlp+noise0.2sym -m adalfl \
        --option meta_objective=sce --seeds 10 -o runs/noisy-mlp20-adalfl-sce

or AdaLFL learning a correction on top of symmetric CE, and its learned-step control (SCE with
the lr adapted online):

    python bench/scale_free_noise.py --suite paper-mnist -t mnist-mlp+noise0.4sym -m adalfl \
        -m ce-step-adalfl --option residual=sce --seeds 5 -o runs/noisy-mlp40-adalfl-res-sce

(for the control ``residual=sce`` becomes ``base=sce``: the same loss under the learned scale).
``--option`` repeats: ``--option residual=sce --option residual_ce=1`` puts SCE under ML³'s
network too (ML³'s residual weight is 0 by default); each method takes the options it has.
"""

from __future__ import annotations

import argparse
import json

from common import add_suite_args, run_custom_suite

from metaloss.cli.learn import method_overrides
from metaloss.errors import ConfigError
from metaloss.suite import SUITES, Suite
from metaloss.suite_table import CONTROLS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-t", "--task", default="digits-mlp+noise0.4sym")
    ap.add_argument("-m", "--method", action="append", default=None)
    ap.add_argument("--option", required=True, action="append",
                    help="KEY=VALUE added to each method's budget (repeat for several; a "
                    "method takes those it has, and is skipped when it has none)")  # fmt: skip
    ap.add_argument("--suite", default="quick", choices=sorted(SUITES), help="budgets from")
    add_suite_args(ap)
    args = ap.parse_args()
    base = SUITES[args.suite]
    methods = args.method or ["ce", "ml3", "evomal", "taylorglo"]
    budgets, kept = dict(base.budgets), []
    for method in methods:
        if method == "ce":
            kept.append(method)
            continue
        taken = {}
        for given in args.option:
            pair = given
            if method in CONTROLS and pair.startswith("residual="):
                pair = "base=" + pair.split("=", 1)[1]  # the control: the same loss, scaled
                print(f"{method}: {given} is the control's {pair}")
            try:
                option, _ = method_overrides("ce-step" if method in CONTROLS else method, [pair])
            except ConfigError:
                print(f"{method}: no option {given.split('=')[0]!r}; not applied")
                continue
            taken.update(option)
        if not taken:
            print(f"{method}: none of the options applies; skipped")
            continue
        budgets[method] = {**budgets.get(method, {}), **taken}
        kept.append(method)
    # the options are in the suite's name (and its budgets, which run_suite checks on resume)
    name = "+".join([args.suite, *args.option])
    suite = Suite(name, tasks=[args.task], methods=kept, budgets=budgets)
    run_custom_suite(suite, args)
    shown = {m: budgets[m] for m in kept if m in budgets}
    print(json.dumps({"suite": name, "budgets": shown, "summary": f"{args.out}/summary.json"}))


if __name__ == "__main__":
    main()
