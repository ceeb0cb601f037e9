"""What the ``metaloss`` commands share: the typer app, the consoles, common options, task
loading and ``--set key=value`` parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from metaloss import rundir
from metaloss.errors import ConfigError

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
TuneWorkersOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="processes for the lr grids' unbatched runs: AdaLFL's whole online runs, a conv "
        "model's grid on a CPU (results equal one process's, except conv grids: float rounding)",
    ),
]
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
        if (Path(loss) / rundir.SPEC).is_file():
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
