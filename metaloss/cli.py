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
    if threads == "auto":  # the library's default: nothing to set (and no torch import)
        return
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
RunTaskOpt = Annotated[
    str | None,
    typer.Option(
        "--task", "-t", help="task name (default: the task recorded in the run directories given)"
    ),
]
DataDirOpt = Annotated[
    str | None, typer.Option("--data-dir", "-d", help="folder or file with the task's data")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
OptimizerOpt = Annotated[str | None, typer.Option("--optimizer", help="sgd or adam (task default)")]
MomentumOpt = Annotated[float | None, typer.Option(help="SGD momentum (task default)")]
NesterovOpt = Annotated[
    bool | None, typer.Option("--nesterov/--no-nesterov", help="Nesterov momentum (task default)")
]
WeightDecayOpt = Annotated[float | None, typer.Option(help="weight decay (task default)")]
FrozenOpt = Annotated[
    bool,
    typer.Option(
        "--frozen",
        help="train with an AdaLFL run's loss as saved (default: it keeps adapting online)",
    ),
]


def _train_overrides(
    optimizer: str | None, momentum: float | None, nesterov: bool | None, wd: float | None
) -> dict[str, Any]:
    """The optimiser options given on the command line (None: the task's default)."""
    if optimizer is not None and optimizer not in ("sgd", "adam"):
        raise ConfigError(f"--optimizer must be sgd or adam, got {optimizer!r}")
    return {"optimizer": optimizer, "momentum": momentum, "nesterov": nesterov,
            "weight_decay": wd}  # fmt: skip


# Task variants (metaloss.tasks.variants): the same options on train, evaluate and learn.
_VARIANT = "Task variant"
LabelNoiseOpt = Annotated[
    float | None,
    typer.Option(help="flip this fraction of train/val labels", rich_help_panel=_VARIANT),
]
NoiseKindOpt = Annotated[
    str | None, typer.Option(help="symmetric or pairflip", rich_help_panel=_VARIANT)
]
ImbalanceOpt = Annotated[
    float | None,
    typer.Option(help="long-tailed training set, largest/smallest class", rich_help_panel=_VARIANT),
]
TrainFractionOpt = Annotated[
    float | None,
    typer.Option(help="keep this stratified fraction of training", rich_help_panel=_VARIANT),
]
VariantSeedOpt = Annotated[
    int | None, typer.Option(help="seed of the noise / subset draws", rich_help_panel=_VARIANT)
]


def _task(
    name: str,
    data_dir: str | None,
    device: str,
    seed: int = 0,
    *,
    label_noise: float | None = None,
    noise_kind: str | None = None,
    imbalance: float | None = None,
    train_fraction: float | None = None,
    variant_seed: int | None = None,
):
    from metaloss import tasks

    return tasks.get(
        name, data_dir=data_dir, device=device, seed=seed,
        label_noise=label_noise, noise_kind=noise_kind, imbalance=imbalance,
        train_fraction=train_fraction, variant_seed=variant_seed,
    )  # fmt: skip


def _recorded_task(
    task: str | None, losses: list[str], data_dir: str | None
) -> tuple[str, str | None]:
    """The task and data dir to use, filled in from the runs' recorded data when not given.

    Without ``--task``: the task recorded by the run directories among ``losses`` (all must
    agree; baseline names may sit beside them). Without ``--data-dir``: the data path a run
    of that task recorded, after checking it is there with the recorded sha256.
    """
    from metaloss.tasks.provenance import check_record, read_record, recorded_data_dir

    records = {}
    for loss in losses:
        if (Path(loss) / "spec.json").is_file():
            rec = read_record(loss)
            if rec is not None:
                records[loss] = rec
    if task is None:
        names = sorted({rec["task"] for rec in records.values()})
        if not names:
            raise ConfigError(
                "--task is required (no run directory given records its task; runs saved "
                "before data records were added need --task and --data-dir)"
            )
        if len(names) > 1:
            raise ConfigError(f"the runs were learned on different tasks ({', '.join(names)}); "
                              "pass --task")  # fmt: skip
        task = names[0]
    if data_dir is None:
        base = task.split("+", 1)[0]
        for run, rec in records.items():
            if rec.get("base") == base and recorded_data_dir(rec) is not None:
                check_record(rec, run)
                return task, recorded_data_dir(rec)
    return task, data_dir


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
    name, loss_fn = resolve_loss(loss)
    online = _online_source(loss, frozen)
    if online is not None:  # AdaLFL: the loss keeps adapting while it trains the model
        from metaloss.meta.online import continue_online

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
        **extra,
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


_RUN_FILES = ("spec.json", "loss.safetensors", "history.jsonl", "extra.safetensors",
              "checkpoint.json", "generations.jsonl", "evals.safetensors")  # fmt: skip


def _nonempty(path: Path) -> bool:
    """A file that exists and holds something (a 0-byte file from a full disk is no run)."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _prepare_out(out: Path, resume: bool, force: bool) -> bool:
    """Check ``learn --out``: a folder we can write, not a finished run unless ``--force``
    (its run files are then removed) or ``--resume`` (a no-op: returns True)."""
    import os
    import tempfile

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    try:  # create it and write a probe file: refused now rather than after a long run
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"--out {out}: not a writable directory ({e.strerror or e})") from None
    if not _nonempty(out / "spec.json"):
        if force:
            _remove_run_files(out)
        return False
    if resume:
        console.print(f"{out} holds a finished run; nothing to resume", soft_wrap=True)
        return True
    if not force:
        raise ConfigError(
            f"--out {out}: holds a finished run; pass --force to replace it or choose another --out"
        )
    _remove_run_files(out)
    return False


def _remove_run_files(out: Path) -> None:
    """Remove the files of a previous run (``--force``); other files in ``out`` stay."""
    for name in _RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for old in out.glob("checkpoint-*.safetensors"):
        old.unlink(missing_ok=True)


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
    evaluator: Annotated[str | None, typer.Option(help="serial, batched, pool or ray")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the run dir's checkpoint")] = False,
    label_noise: LabelNoiseOpt = None,
    noise_kind: NoiseKindOpt = None,
    imbalance: ImbalanceOpt = None,
    train_fraction: TrainFractionOpt = None,
    variant_seed: VariantSeedOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="replace an existing run in --out (start afresh)")
    ] = False,
    keep_checkpoints: Annotated[
        bool, typer.Option("--keep-checkpoints", help="keep checkpoint files of a finished run")
    ] = False,
    sanity: Annotated[
        bool,
        typer.Option(help="compare the learned loss with a tuned task loss on a short val run"),
    ] = True,
) -> None:
    """Meta-learn a loss for TASK with METHOD and save it as a run directory.

    At the end: the step diagnostic (gradient ratio and cosine vs cross-entropy) and a
    short sanity run against a tuned cross-entropy, with a warning when the learned loss is
    worse; both are saved in the run's spec.json (info)."""
    from metaloss.api import method_fn
    from metaloss.seeds import check_seed
    from metaloss.tasks.registry import check_device

    check_seed(seed, "--seed")
    fn = method_fn(method)
    variant = dict(
        label_noise=label_noise, noise_kind=noise_kind, imbalance=imbalance,
        train_fraction=train_fraction, variant_seed=variant_seed,
    )  # fmt: skip
    if (task.startswith("rl-") or method.lower() == "mln") and any(
        v is not None for v in variant.values()
    ):
        raise ConfigError(f"learn {method} --task {task}: task variant options need a data task")
    check_device(device)
    if resume and force:
        raise ConfigError("--resume and --force exclude each other")
    if out is not None and _prepare_out(out, resume, force):
        return
    options = _parse_options(option or [])
    if evaluator is not None:
        options["evaluator"] = evaluator
    if task.startswith("rl-"):
        if method.lower() != "ml3":
            raise ConfigError(f"RL tasks ({task}) are meta-learned with ml3, not {method}")
        from metaloss.rl import learn_rl

        if out is None:
            out = Path("runs") / f"{task}-ml3"
            if _prepare_out(out, resume, force):
                return
        try:
            result = learn_rl(task, seed=seed, progress=True, **options)
        except TypeError as exc:
            raise ConfigError(f"learn ml3 --task {task}: {exc}") from None
        result.save(out)
        console.print(str(result))
        console.print(f"[green]saved[/] {out}")
        return
    if method.lower() != "mln":
        t = _task(task, data_dir, device, seed, **variant)
    else:
        t = None
        options["device"] = device
    if out is None:
        out = Path("runs") / f"{t.name if t is not None else 'generated'}-{method.lower()}"
        if _prepare_out(out, resume, force):
            return
    options.setdefault("run_dir", str(out))
    partial = any(_nonempty(out / f) for f in ("checkpoint.json", "generations.jsonl"))
    if not resume and partial:
        raise ConfigError(
            f"{out} holds a previous run: pass --resume to continue it or choose another --out"
        )
    try:
        result = fn(t, seed=seed, progress=True, **options)
    except TypeError as exc:
        raise ConfigError(f"learn {method}: {exc}") from None
    result.record_data(t)  # runs remember their data (tasks.provenance)
    if t is not None:
        from metaloss.diagnostics import step_diagnostic

        diag = step_diagnostic(result.loss, t)
        result.info["step_diagnostic"] = diag.to_dict()
        if sanity:
            from metaloss.sanity import sanity_check

            result.info["sanity"] = sanity_check(result.loss, t)
    result.save(out)
    if not keep_checkpoints:  # the run is finished: its intermediate checkpoints are not needed
        for name in ["checkpoint.json", *(p.name for p in out.glob("checkpoint-*.safetensors"))]:
            (out / name).unlink(missing_ok=True)
    console.print(str(result), soft_wrap=True)
    sane = result.info.get("sanity") or {}
    if sane.get("worse"):
        err_console.print(f"[bold yellow]warning:[/] {sane['message']}", soft_wrap=True)
    console.print(f"[green]saved[/] {out}")


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
    tune: Annotated[
        bool, typer.Option(help="tune every row's learning rate on validation (fair protocol)")
    ] = True,
    tune_seeds: Annotated[int, typer.Option(min=1, help="tuning seeds")] = 2,
) -> None:
    """Run a benchmark suite (resumable): JSON cells, summary and a markdown table.

    Transfer to your own idx data set: ``metaloss bench transfer -t fashion-lenet5
    --data-dir DIR`` (losses learned on MNIST / LeNet-5)."""
    from metaloss.suite import run_suite

    out = out or Path("runs") / f"bench-{suite}"
    summary = run_suite(
        suite, out, seeds=seeds, tasks=task, methods=method, budget=budget, steps=steps,
        data_dir=data_dir, device=device, log=console.print, learn_on=learn_on,
        first_seed=first_seed, tune=tune, tune_seeds=tune_seeds, progress=True,
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
    ex = _click_exceptions()
    try:
        code = app(standalone_mode=False)
    except ex.NoArgsIsHelpError as exc:  # bare `metaloss`: the help, as typer shows it
        try:
            from typer import rich_utils

            rich_utils.rich_format_error(exc)
        except ImportError:  # pragma: no cover
            exc.show()
        sys.exit(exc.exit_code)
    except ex.ClickException as exc:  # usage errors: one line too
        _print_error(f"error: {exc.format_message()}")
        sys.exit(exc.exit_code)
    except typer.Abort:
        _print_error("aborted")
        sys.exit(1)
    except MetalossError as exc:
        if debug:
            raise
        _print_error(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence, never a bare traceback
        if debug:
            raise
        _print_error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)")
        sys.exit(1)
    if isinstance(code, int) and code:  # an explicit exit status (e.g. typer.Exit(1))
        sys.exit(code)


def _click_exceptions() -> Any:
    """The click exception classes typer raises (recent typer vendors click)."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions
    return exceptions


def _print_error(message: str) -> None:
    """One line on stderr, never wrapped (rich would wrap at 80 columns off a terminal)."""
    line = " ".join(message.split())
    if sys.stderr.isatty():
        err_console.print(line, style="red", soft_wrap=True, markup=False, highlight=False)
    else:
        print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":  # pragma: no cover
    main()
