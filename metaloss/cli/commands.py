"""The commands of ``metaloss`` other than ``learn``: tasks, train, evaluate, show, bench,
report, demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from metaloss import rundir
from metaloss.cli.common import (
    DataDirOpt,
    DeviceOpt,
    FrozenOpt,
    ImbalanceOpt,
    JsonOpt,
    LabelNoiseOpt,
    MomentumOpt,
    NesterovOpt,
    NoiseKindOpt,
    OptimizerOpt,
    RunTaskOpt,
    TrainFractionOpt,
    TuneWorkersOpt,
    VariantSeedOpt,
    WeightDecayOpt,
    _recorded_task,
    _task,
    _train_overrides,
    app,
    console,
)
from metaloss.errors import ConfigError, MetalossError


@app.command("tasks")
def tasks_cmd(as_json: JsonOpt = False) -> None:
    """List the registered tasks and their data sources."""
    from metaloss import tasks

    rows = tasks.describe()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(
        title="metaloss tasks",
        caption="default lr: tuned = best for CE / MSE under the fair protocol "
        "(docs/fair-comparisons.md); not tuned = compare losses with --tune lr",
    )
    for col in ("name", "model", "description", "data_dir", "default lr"):
        table.add_column(col)
    for r in rows:
        lr = f"{r['lr']} ({r['lr_status']})" if r["lr"] else ""
        table.add_row(r["name"], r["model"], r["description"], r["data_dir"], lr)
    console.print(table)


@app.command()
def train(
    task: RunTaskOpt = None,
    loss: Annotated[str, typer.Option("--loss", "-l", help="baseline name or run dir")] = "ce",
    steps: Annotated[int | None, typer.Option(help="training steps (task default)")] = None,
    seed: int = 0,
    lr: Annotated[float | None, typer.Option(help="learning rate (task default)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="batch size (task default)")] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = "cpu",
    as_json: JsonOpt = False,
    optimizer: OptimizerOpt = None,
    momentum: MomentumOpt = None,
    nesterov: NesterovOpt = None,
    weight_decay: WeightDecayOpt = None,
    frozen: FrozenOpt = False,
    label_noise: LabelNoiseOpt = None,
    noise_kind: NoiseKindOpt = None,
    imbalance: ImbalanceOpt = None,
    train_fraction: TrainFractionOpt = None,
    variant_seed: VariantSeedOpt = None,
) -> None:
    """Train one model of TASK with a loss and print its validation and test metric."""
    from metaloss.api import _online_source, resolve_loss
    from metaloss.seeds import check_seed
    from metaloss.training import train as run_train

    check_seed(seed, "--seed")
    extra = _train_overrides(optimizer, momentum, nesterov, weight_decay)
    task, data_dir = _recorded_task(task, [loss], data_dir)
    t = _task(
        task, data_dir, device,
        label_noise=label_noise, noise_kind=noise_kind, imbalance=imbalance,
        train_fraction=train_fraction, variant_seed=variant_seed,
    )  # fmt: skip
    name, loss_fn = resolve_loss(loss, t)
    online = _online_source(loss, frozen)
    if online is not None:  # AdaLFL: the loss keeps adapting while it trains the model
        from metaloss.meta.online_eval import continue_online

        config = t.defaults.with_(steps=steps, lr=lr, batch_size=batch_size, **extra)
        res = continue_online(online, t, seed=seed, config=config, progress=not as_json)
        name = f"{name} (online)"
    else:
        res = run_train(
            t, loss_fn, seed=seed, steps=steps, lr=lr, batch_size=batch_size,
            progress=not as_json, **extra,
        )  # fmt: skip
    out = {"task": t.name, "loss": name, "seed": seed, **res.to_dict()}
    if as_json:
        print(json.dumps(out))
        return
    console.print(
        f"[bold]{t.name}[/] loss={name} steps={res.steps} seed={seed}: "
        f"val {res.metric} {res.val_metric:.4f}, test {res.metric} {res.test_metric:.4f} "
        f"({res.seconds:.1f} s{', DIVERGED' if res.diverged else ''}"
        f"{', COLLAPSED to chance level' if res.collapsed else ''})"
    )


@app.command()
def evaluate(
    losses: Annotated[list[str], typer.Argument(help="baseline names and/or run dirs")],
    task: RunTaskOpt = None,
    seeds: Annotated[int, typer.Option(help="number of reporting seeds (0..K-1)")] = 5,
    steps: Annotated[int | None, typer.Option(help="training steps (task default)")] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = "cpu",
    out: Annotated[Path | None, typer.Option(help="write the report JSON here")] = None,
    as_json: JsonOpt = False,
    tune: Annotated[
        str, typer.Option(help="lr: tune every loss's learning rate on validation; none: don't")
    ] = "lr",
    tune_seeds: Annotated[int, typer.Option(help="tuning seeds (disjoint from --seeds)")] = 2,
    tune_workers: TuneWorkersOpt = 1,
    baseline: Annotated[
        bool,
        typer.Option(help="put the task loss (CE, or MSE for regression) first as the baseline"),
    ] = True,
    lr: Annotated[float | None, typer.Option(help="learning rate / grid centre")] = None,
    optimizer: OptimizerOpt = None,
    momentum: MomentumOpt = None,
    nesterov: NesterovOpt = None,
    weight_decay: WeightDecayOpt = None,
    frozen: FrozenOpt = False,
    label_noise: LabelNoiseOpt = None,
    noise_kind: NoiseKindOpt = None,
    imbalance: ImbalanceOpt = None,
    train_fraction: TrainFractionOpt = None,
    variant_seed: VariantSeedOpt = None,
) -> None:
    """Train TASK with every loss on K seeds, each at its tuned learning rate.

    Every loss (the task-loss baseline included) gets the same learning-rate grid, chosen
    by mean validation metric over tuning seeds; the table shows the chosen lr, mean ± std
    of the test metric, Welch's t-test, Holm-corrected p and a 95 % CI vs the baseline."""
    from metaloss.api import evaluate as run_eval
    from metaloss.io import write_json
    from metaloss.tuning import TuneConfig

    if seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    if tune not in ("lr", "none"):
        raise ConfigError(f"--tune must be lr or none, got {tune!r}")
    if tune_seeds < 1:
        raise ConfigError("--tune-seeds must be >= 1")
    extra = _train_overrides(optimizer, momentum, nesterov, weight_decay)
    task, data_dir = _recorded_task(task, losses, data_dir)
    t = _task(
        task, data_dir, device,
        label_noise=label_noise, noise_kind=noise_kind, imbalance=imbalance,
        train_fraction=train_fraction, variant_seed=variant_seed,
    )  # fmt: skip
    names = list(losses)
    base = "ce" if t.classification else "mse"
    aliases = {"ce", "cross_entropy", "cross-entropy"} if base == "ce" else {"mse"}
    baselines = [base] if baseline and not aliases & {n.lower() for n in names} else []
    report = run_eval(
        names, t, seeds=seeds, steps=steps, baselines=baselines, tune=tune,
        tune_config=TuneConfig(seeds=tune_seeds), progress=not as_json, lr=lr, frozen=frozen,
        tune_workers=tune_workers, data_dir=data_dir, **extra,
    )  # fmt: skip
    if out is not None:
        write_json(out, report.to_dict())
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    tuned = "lr tuned on validation" if report.tuned else "UNTUNED lr"
    table = Table(
        title=f"{t.name}: test {report.metric}, {report.steps} steps, {seeds} seeds, {tuned}"
    )
    for col in ("loss", "lr", "mean ± std", "Δ vs first [95% CI]", "p (Welch)", "p (Holm)",
                "step vs task loss"):  # fmt: skip
        table.add_column(col)
    for r in report.rows:
        first = r is report.rows[0]
        delta = "" if first else f"{r.delta:+.4f} [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]"
        p = "" if first else f"{r.p_value:.3f}"
        ph = "" if first else f"{r.p_holm:.3f}"
        cell = f"{r.mean:.4f} ± {r.std:.4f}"
        cell = f"[bold]{cell}[/]" if r.verdict == "better" else cell
        cell = f"{cell} (worse)" if r.verdict == "worse" else cell
        diag = r.diagnostic or {}
        step = f"x{diag['grad_norm_ratio']:.3g}, cos {diag['cosine']:.3f}" if diag else ""
        table.add_row(r.name, f"{r.lr:g}", cell, delta, p, ph, step)
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True)
    if report.best_baseline_note:
        console.print(report.best_baseline_note, soft_wrap=True)


def _show_diagnostic(loss: Any, spec: dict[str, Any]) -> None:
    """Print the step diagnostic of a loss on its run's task (when the task loads here)."""
    from metaloss.diagnostics import step_diagnostic

    name = spec.get("task")
    if not isinstance(name, str):
        return
    try:
        t = _task(name, None, "cpu")
    except MetalossError as exc:
        console.print(f"[bold]step[/] not measured: task {name!r} does not load here ({exc})",
                      soft_wrap=True)  # fmt: skip
        return
    console.print(f"[bold]step[/] {step_diagnostic(loss, t)}", soft_wrap=True)


@app.command()
def show(
    run: Annotated[Path, typer.Argument(help="run directory")],
    plot: Annotated[Path | None, typer.Option(help=f"PNG path (default RUN/{rundir.PLOT})")] = None,
) -> None:
    """Print a run's loss (formula, LaTeX, hall of fame) and plot it against cross-entropy
    (MSE for regression tasks); a search also gets its best-so-far curve."""
    from metaloss import io
    from metaloss.plots import baseline_for, plot_losses, plot_search, run_task_shape
    from metaloss.report import _generation_rows

    spec, run_dir = io.read_spec(run)
    loss = io.load(run_dir)
    console.print(f"[bold]method[/] {spec.get('method', '?')}   [bold]task[/] {spec.get('task')}")
    console.print(f"[bold]loss[/]   {loss.describe()}")
    if hasattr(loss, "to_latex"):
        console.print(f"[bold]LaTeX[/]  {loss.to_latex()}")
    info = spec.get("info") if isinstance(spec.get("info"), dict) else {}
    for k, v in info.items():
        if k == "step_diagnostic" and isinstance(v, dict):
            from metaloss.diagnostics import describe

            k, v = "step", describe(v)
        elif k == "sanity" and isinstance(v, dict):
            v = v.get("message", "")
        console.print(f"[bold]{k}[/] {v}", soft_wrap=True)
    if "step_diagnostic" not in info and getattr(loss, "kind", "") != "rl_step":
        _show_diagnostic(loss, spec)
    hof = spec.get("hall_of_fame") or []
    if hof:
        table = Table(title="hall of fame")
        for col in ("#", "fitness", "complexity", "formula"):
            table.add_column(col)
        for i, row in enumerate(hof):
            table.add_row(
                str(i), f"{row.get('fitness')}", str(row.get("complexity", "")), row["formula"]
            )
        console.print(table)
    if getattr(loss, "kind", "") == "rl_step":
        console.print("no plot: a per-step policy loss has no (prediction, target) curve")
        return
    path = plot or run_dir / rundir.PLOT
    title = f"{spec.get('method', '?')} · {spec.get('task', '?')}"
    regression, classes = run_task_shape(spec)
    if not regression and classes is None:
        console.print("[yellow]note[/] the run's class count is unknown: the plot assumes 10")
    ref, base = baseline_for(regression)
    curves = {"learned": loss, ref: base}
    plot_losses(curves, path, num_classes=classes or 10, title=title, regression=regression)
    console.print(f"[green]plot[/] {path}")
    gens = _generation_rows(run_dir, io.read_jsonl(run_dir / io.HISTORY_FILE))
    if gens:
        search = path.with_name(rundir.search_plot(path.name))
        g = [r.get("generation", i) for i, r in enumerate(gens)]
        plot_search(g, [r.get("best") for r in gens], search, title=title)
        console.print(f"[green]search curve[/] {search}")


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help="quick, paper-mnist, paper-cifar10, transfer")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="output folder")] = None,
    seeds: Annotated[int | None, typer.Option(help="seeds per cell (suite default)")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="restrict tasks")] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", "-m", help="restrict methods")
    ] = None,
    budget: Annotated[str, typer.Option(help="suite, quick or reference")] = "suite",
    steps: Annotated[int | None, typer.Option(help="meta-test steps (task default)")] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = "cpu",
    learn_on: Annotated[
        str | None,
        typer.Option(help="learn every loss on this task and evaluate it on the suite's tasks"),
    ] = None,
    first_seed: Annotated[
        int, typer.Option(min=0, help="first seed (shard a suite over processes)")
    ] = 0,
    tune: Annotated[
        bool, typer.Option(help="tune every row's learning rate on validation (fair protocol)")
    ] = True,
    tune_seeds: Annotated[int, typer.Option(min=1, help="tuning seeds")] = 2,
    tune_workers: TuneWorkersOpt = 1,
    preset: Annotated[
        str,
        typer.Option(
            help="each learned method's preset (paper: its non-budget options at "
            "the suite's budgets)"
        ),
    ] = "default",  # fmt: skip
    reuse_tunings: Annotated[
        Path | None,
        typer.Option(
            help="reuse the lr tunings recorded in this bench folder (same context only; "
            "replicate on new seeds with --first-seed)"
        ),
    ] = None,
) -> None:
    """Run a benchmark suite (resumable): JSON cells, summary and a markdown table.

    Transfer to your own idx data set: ``metaloss bench transfer -t fashion-lenet5
    --data-dir DIR`` (losses learned on MNIST / LeNet-5)."""
    from metaloss.suite import run_suite

    out = out or Path("runs") / f"bench-{suite}"
    summary = run_suite(
        suite, out, seeds=seeds, tasks=task, methods=method, budget=budget, steps=steps,
        data_dir=data_dir, device=device, log=console.print, learn_on=learn_on,
        first_seed=first_seed, tune=tune, tune_seeds=tune_seeds, progress=True, preset=preset,
        reuse_tunings=reuse_tunings, tune_workers=tune_workers,
    )  # fmt: skip
    from metaloss.suite import markdown

    console.print(markdown(summary), soft_wrap=True, markup=False)
    console.print(f"[green]wrote[/] {out}/summary.json, {out}/table.md")


@app.command()
def report(
    path: Annotated[Path, typer.Argument(help="run directory or bench folder")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="output folder (default: PATH)")
    ] = None,
) -> None:
    """Write a self-contained HTML (and markdown) report of a run or a bench folder."""
    from metaloss.report import write_report

    html = write_report(path, out)
    print(html)
    print(html.with_name(rundir.REPORT_MD))


@app.command()
def demo(
    quick: Annotated[bool, typer.Option(help="a smaller budget (for tests)")] = False,
) -> None:
    """Meta-learn a loss on an offline task and compare it with cross-entropy."""
    from metaloss.demo import run_demo

    run_demo(quick=quick, console=console)
