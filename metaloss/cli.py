"""The ``metaloss`` command line (typer + rich).

Every error a user can cause (missing data, bad option values, corrupt artifacts) is
printed as one line and exits with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from metaloss.errors import ConfigError, MetalossError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Meta-learn loss functions: ML3, AdaLFL, EvoMAL, GP-LFL, MLN, TaylorGLO.",
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _global(
    threads: Annotated[
        str,
        typer.Option(
            help="torch CPU threads: a count, 0 for torch's default, or auto (1 thread for "
            "models of at most 1M parameters, see metaloss.threads)"
        ),
    ] = "auto",
) -> None:
    """Meta-learn loss functions: ML3, AdaLFL, EvoMAL, GP-LFL, MLN, TaylorGLO."""
    from metaloss.threads import set_threads

    try:
        set_threads(threads)
    except ConfigError:
        raise ConfigError(f"--threads: expected a count >= 0 or auto, got {threads!r}") from None


RL_TASKS = {
    "rl-mountaincar": "differentiable Mountain Car, shaped (intermediate goal) or plain ML3 loss",
    "rl-mountaincar-paper": "Mountain Car under the ML3 paper's protocol (fixed start and policy)",
    "rl-reacher": "2-link reacher, loss trains a policy through a learned dynamics ensemble",
    "rl-cartpole": "CartPole, learned loss replacing the REINFORCE objective",
    "rl-pendulum": "Pendulum, learned loss replacing the REINFORCE objective",
}

TaskOpt = Annotated[str, typer.Option("--task", "-t", help="task name (see `metaloss tasks`)")]
DataDirOpt = Annotated[
    str | None, typer.Option("--data-dir", "-d", help="folder or file with the task's data")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


def _task(name: str, data_dir: str | None, device: str, seed: int = 0):
    from metaloss import tasks

    return tasks.get(name, data_dir=data_dir, device=device, seed=seed)


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"option {pair!r} must look like key=value")
        key, raw = pair.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = raw
    return out


@app.command("tasks")
def tasks_cmd(as_json: JsonOpt = False) -> None:
    """List the registered tasks and their data sources."""
    from metaloss import tasks

    rows = tasks.describe()
    if as_json:
        rl = [{"name": n, "model": "policy", "description": d, "data_dir": "none"}
              for n, d in RL_TASKS.items()]  # fmt: skip
        print(json.dumps(rows + rl, indent=2))
        return
    table = Table(title="metaloss tasks")
    for col in ("name", "model", "description", "data_dir"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["model"], r["description"], r["data_dir"])
    for name, desc in RL_TASKS.items():
        table.add_row(name, "policy", desc + " (metaloss learn ml3 only)", "none")
    console.print(table)


@app.command()
def train(
    task: TaskOpt,
    loss: Annotated[str, typer.Option("--loss", "-l", help="baseline name or run dir")] = "ce",
    steps: Annotated[int | None, typer.Option(help="training steps (task default)")] = None,
    seed: int = 0,
    lr: Annotated[float | None, typer.Option(help="learning rate (task default)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="batch size (task default)")] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = "cpu",
    as_json: JsonOpt = False,
) -> None:
    """Train one model of TASK with a loss and print its validation and test metric."""
    from metaloss.api import resolve_loss
    from metaloss.training import train as run_train

    t = _task(task, data_dir, device)
    name, loss_fn = resolve_loss(loss)
    res = run_train(
        t, loss_fn, seed=seed, steps=steps, lr=lr, batch_size=batch_size, progress=not as_json
    )
    out = {"task": t.name, "loss": name, "seed": seed, **res.to_dict()}
    if as_json:
        print(json.dumps(out))
        return
    console.print(
        f"[bold]{t.name}[/] loss={name} steps={res.steps} seed={seed}: "
        f"val {res.metric} {res.val_metric:.4f}, test {res.metric} {res.test_metric:.4f} "
        f"({res.seconds:.1f} s{', DIVERGED' if res.diverged else ''})"
    )


@app.command()
def evaluate(
    losses: Annotated[list[str], typer.Argument(help="baseline names and/or run dirs")],
    task: TaskOpt,
    seeds: Annotated[int, typer.Option(help="number of seeds (0..K-1)")] = 5,
    steps: Annotated[int | None, typer.Option(help="training steps (task default)")] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = "cpu",
    out: Annotated[Path | None, typer.Option(help="write the report JSON here")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train TASK with every loss on K seeds: mean +- std of the test metric, Welch's t-test."""
    from metaloss.api import evaluate as run_eval
    from metaloss.io import write_json

    if seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    t = _task(task, data_dir, device)
    report = run_eval(losses, t, seeds=seeds, steps=steps)
    if out is not None:
        write_json(out, report.to_dict())
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    table = Table(title=f"{t.name}: test {report.metric}, {report.steps} steps, {seeds} seeds")
    for col in ("loss", "mean ± std", "Δ vs first", "p (Welch)"):
        table.add_column(col)
    for r in report.rows:
        delta = "" if r is report.rows[0] else f"{r.delta:+.4f}"
        p = "" if r is report.rows[0] else f"{r.p_value:.3f}"
        table.add_row(r.name, f"{r.mean:.4f} ± {r.std:.4f}", delta, p)
    console.print(table)


@app.command()
def learn(
    method: Annotated[str, typer.Argument(help="ml3, adalfl, taylorglo, mln, evomal, gplfl")],
    task: Annotated[str, typer.Option("--task", "-t", help="task name")] = "digits-mlp",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory")] = None,
    seed: int = 0,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = "cpu",
    option: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="method option key=value (repeatable)"),
    ] = None,
    evaluator: Annotated[str | None, typer.Option(help="serial, batched or ray")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the run dir's checkpoint")] = False,
) -> None:
    """Meta-learn a loss for TASK with METHOD and save it as a run directory."""
    from metaloss.api import method_fn

    fn = method_fn(method)
    options = _parse_options(option or [])
    if evaluator is not None:
        options["evaluator"] = evaluator
    if task.startswith("rl-"):
        if method.lower() != "ml3":
            raise ConfigError(f"RL tasks ({task}) are meta-learned with ml3, not {method}")
        from metaloss.rl import learn_rl

        out = out or Path("runs") / f"{task}-ml3"
        try:
            result = learn_rl(task, seed=seed, progress=True, **options)
        except TypeError as exc:
            raise ConfigError(f"learn ml3 --task {task}: {exc}") from None
        result.save(out)
        console.print(str(result))
        console.print(f"[green]saved[/] {out}")
        return
    if method.lower() != "mln":
        t = _task(task, data_dir, device, seed)
    else:
        t = None
        options["device"] = device
    out = out or Path("runs") / f"{task if t is not None else 'generated'}-{method.lower()}"
    options.setdefault("run_dir", str(out))
    partial = any((out / f).exists() for f in ("checkpoint.json", "generations.jsonl"))
    if not resume and partial:
        raise ConfigError(
            f"{out} holds a previous run: pass --resume to continue it or choose another --out"
        )
    try:
        result = fn(t, seed=seed, progress=True, **options)
    except TypeError as exc:
        raise ConfigError(f"learn {method}: {exc}") from None
    result.save(out)
    console.print(str(result))
    console.print(f"[green]saved[/] {out}")


@app.command()
def show(
    run: Annotated[Path, typer.Argument(help="run directory")],
    plot: Annotated[Path | None, typer.Option(help="PNG path (default RUN/loss.png)")] = None,
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
    for k, v in (spec.get("info") or {}).items():
        console.print(f"[bold]{k}[/] {v}")
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
    path = plot or run_dir / "loss.png"
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
        search = path.with_name(f"{path.stem}-search.png")
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
) -> None:
    """Run a benchmark suite (resumable): JSON cells, summary and a markdown table.

    Transfer to your own idx data set: ``metaloss bench transfer -t fashion-lenet5
    --data-dir DIR`` (losses learned on MNIST / LeNet-5)."""
    from metaloss.suite import run_suite

    out = out or Path("runs") / f"bench-{suite}"
    summary = run_suite(
        suite, out, seeds=seeds, tasks=task, methods=method, budget=budget, steps=steps,
        data_dir=data_dir, device=device, log=console.print, learn_on=learn_on,
        first_seed=first_seed,
    )  # fmt: skip
    from metaloss.suite import markdown

    console.print(markdown(summary))
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
    print(html.with_suffix(".md"))


@app.command()
def demo(
    quick: Annotated[bool, typer.Option(help="a smaller budget (for tests)")] = False,
) -> None:
    """Meta-learn a loss on an offline task and compare it with cross-entropy."""
    from metaloss.demo import run_demo

    run_demo(quick=quick, console=console)


def main() -> None:
    """Entry point: user errors become one line and exit code 2."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except MetalossError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence, never a bare traceback
        if debug:
            raise
        err_console.print(
            f"[red]internal error:[/] {type(exc).__name__}: {exc} (rerun with --debug)"
        )
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
