"""``metaloss learn``: meta-learn a loss and save it as a run directory.

The method's options come from its config (:mod:`metaloss.meta.configs`): ``--set
key=value`` sets one (converted to the field's type), ``--preset`` picks a named budget, and
``metaloss learn METHOD --help`` lists them with their defaults and help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from metaloss import rundir
from metaloss.cli.common import (
    DataDirOpt,
    DeviceOpt,
    ImbalanceOpt,
    LabelNoiseOpt,
    NoiseKindOpt,
    TrainFractionOpt,
    VariantSeedOpt,
    _parse_options,
    _task,
    app,
    console,
    err_console,
)
from metaloss.errors import ConfigError

# --set keys that configure the evaluator rather than the method (metaloss.evaluators)
EVALUATOR_KEYS = ("address", "num_workers", "workers", "max_retries", "chunk_size",
                  "threads_per_worker", "startup_timeout")  # fmt: skip


class LearnCommand(TyperCommand):
    """``learn``'s help ends with the options of the METHOD given (from its config)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta["metaloss.raw_args"] = list(args)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        method = self._method(ctx)
        rich = getattr(self, "rich_markup_mode", None) is not None
        if method is None:
            from metaloss.meta.configs import CONFIGS

            text = (f"Methods: {', '.join(CONFIGS)}. `metaloss learn METHOD --help` lists a "
                    "method's options (--set key=value).")  # fmt: skip
            console.print(text, markup=False, soft_wrap=True) if rich else formatter.write(text)
            return
        _options_help(method, formatter if not rich else None)

    def _method(self, ctx: Any) -> str | None:
        """The METHOD among the raw arguments (values of options skipped)."""
        raw = ctx.meta.get("metaloss.raw_args") or []
        takes_value = {
            o
            for p in self.params
            if getattr(p, "param_type_name", "") == "option" and not getattr(p, "is_flag", False)
            for o in p.opts
        }
        skip = False
        for arg in raw:
            if skip:
                skip = False
            elif arg.startswith("-"):
                skip = arg in takes_value
            else:
                return arg
        return None


def _options_help(method: str, formatter: Any = None) -> None:
    """The table of a method's options: name, type, default, help (and its presets)."""
    from metaloss.meta.configs import config_class

    try:
        cls = config_class(method)
    except ConfigError as exc:
        console.print(str(exc), markup=False)
        return
    rows = cls.describe()
    presets = ", ".join(["default", *cls.PRESETS])
    if formatter is not None:  # plain click help (no rich)
        with formatter.section(f"{cls.method} options (--set key=value)"):
            formatter.write_dl([(r["name"], f"{r['help']} (default {r['default']})") for r in rows])
        formatter.write_paragraph()
        formatter.write_text(f"presets (--preset): {presets}")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{cls.method} options (--set key=value; {cls.__name__})",
                  title_justify="left")  # fmt: skip
    for col in ("option", "type", "default", "help"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(Text(r[k]) for k in ("name", "type", "default", "help")))
    console.print(table)
    console.print(f"presets (--preset): {presets}", markup=False)


def method_overrides(method: str, pairs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` pairs split into the method's config overrides and evaluator options; an
    unknown key is a ConfigError with a suggestion and the valid keys (exit status 2).

    Example:
        >>> method_overrides("taylorglo", ["generations=3", "num_workers=2"])
        ({'generations': 3}, {'num_workers': 2})
    """
    from metaloss.meta.configs import config_class

    cls = config_class(method)
    names = set(cls.option_names())
    overrides, evaluator = {}, {}
    for key, value in _parse_options(pairs).items():
        if key in names:
            overrides[key] = value
        elif key in EVALUATOR_KEYS:
            evaluator[key] = value
        else:
            raise cls.unknown(key)
    return overrides, evaluator


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
    if not _nonempty(out / rundir.SPEC):
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
    for name in rundir.RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for old in out.glob(rundir.CHECKPOINT_GLOB):
        old.unlink(missing_ok=True)


@app.command(cls=LearnCommand)
def learn(
    method: Annotated[
        str,
        typer.Argument(
            help="ml3, adalfl, taylorglo, mln, evomal, gplfl or ce-step "
            "(`metaloss learn METHOD --help` lists its options)"
        ),
    ],
    task: Annotated[str, typer.Option("--task", "-t", help="task name")] = "digits-mlp",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory")] = None,
    seed: int = 0,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = "cpu",
    option: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="method option key=value (repeatable; see below)"),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="start from this preset of the method's config (paper, fast, quick...)"),
    ] = None,
    evaluator: Annotated[
        str | None, typer.Option(help="auto (default), serial, batched, pool or ray")
    ] = None,
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
    import metaloss as ml
    from metaloss.meta.configs import config_class
    from metaloss.seeds import check_seed
    from metaloss.tasks.registry import check_device

    check_seed(seed, "--seed")
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
    if task.startswith("rl-"):  # RL: the task's own settings, not a method config (metaloss.rl)
        from metaloss.api import method_fn

        method_fn(method)  # an unknown method is refused first
        if method.lower() != "ml3":
            raise ConfigError(f"RL tasks ({task}) are meta-learned with ml3, not {method}")
        if preset is not None:
            raise ConfigError(f"--preset applies to data tasks, not {task} (use --set)")
        if evaluator is not None:
            raise ConfigError(f"--evaluator applies to population searches, not {task}")
        options = _parse_options(option or [])
        if out is None:
            out = Path("runs") / f"{task}-ml3"
        if _prepare_out(out, resume, force):
            return
        result = ml.learn("ml3", task, seed=seed, progress=True, **options)
        result.save(out)
        console.print(str(result), soft_wrap=True)
        console.print(f"[green]saved[/] {out}")
        return
    # the config is validated here, once, before anything is written or loaded
    overrides, evaluator_options = method_overrides(method, option or [])
    config_class(method).resolve(config_class(method).preset(preset) if preset else None, overrides)
    if out is not None and _prepare_out(out, resume, force):
        return
    t = None if method.lower() == "mln" else _task(task, data_dir, device, seed, **variant)
    if out is None:
        out = Path("runs") / f"{t.name if t is not None else 'generated'}-{method.lower()}"
        if _prepare_out(out, resume, force):
            return
    partial = any(_nonempty(out / f) for f in (rundir.CHECKPOINT, rundir.GENERATIONS))
    if not resume and partial:
        raise ConfigError(
            f"{out} holds a previous run: pass --resume to continue it or choose another --out"
        )
    result = ml.learn(
        method, t, preset=preset, seed=seed, progress=True, evaluator=evaluator,
        evaluator_options=evaluator_options or None, device=device, run_dir=str(out),
        **overrides,
    )  # fmt: skip
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
        for name in [rundir.CHECKPOINT, *(p.name for p in out.glob(rundir.CHECKPOINT_GLOB))]:
            (out / name).unlink(missing_ok=True)
    console.print(str(result), soft_wrap=True)
    sane = result.info.get("sanity") or {}
    if sane.get("worse"):
        err_console.print(f"[bold yellow]warning:[/] {sane['message']}", soft_wrap=True)
    console.print(f"[green]saved[/] {out}")
