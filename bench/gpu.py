"""One GPU benchmark: everything a GPU run needs, in one call of at most 8 minutes, as JSON.

Parts (each records its own seconds; a part that fails records its error, a part that
would start after ``--budget-s`` is skipped, so the JSON always has every key):

- ``lenet5_ce``: cross-entropy training steps/s of LeNet-5 on MNIST (batch 128, SGD);
- ``cifar_resnet_ce``: the same for ResNet-18 on CIFAR-10 (the task's protocol: SGD with
  Nesterov momentum, weight decay, crop + flip augmentation);
- ``population_eval``: one population of Taylor losses (the reference's 25 x 500 steps) on
  LeNet-5 scored by the serial and the batched (vmap) evaluator: seconds and their ratio;
- ``ml3_meta``: ML3 meta steps/s (LeNet-5, ML3's 2-50-50-1 neural loss, one unrolled step);
- ``evomal_generation``: one EvoMAL generation at the reference budget (population 25,
  fitness 500 steps, local search 250 steps) with the serial evaluator, then the batched one;
- ``ce_10k_lenet5``: the 10,000-step cross-entropy LeNet-5 run of the MNIST protocol.

Steps/s are differences of two runs (``n`` and ``n / 5`` steps), so that model creation and
the final validation / test evaluation cancel out. MNIST and CIFAR-10 are read as usual
(``--data-dir`` / ``$METALOSS_DATA_DIR``); when a set cannot be read, random tensors of the
right shape and size stand in, and ``data`` in the JSON says so (speeds stay meaningful,
error rates do not). ``--smoke`` runs every part with tiny sizes on random tensors (8 x 8
images for the ResNet; a few seconds on a CPU; the test suite runs it).

Needs PyTorch and the project (with its light dependencies: numpy, sympy, rich,
safetensors); no scikit-learn, SciPy, matplotlib or Ray.

    python bench/gpu.py                       # --device cuda when available; writes
                                              # bench/results/gpu_<device>.json
    python bench/gpu.py --smoke --out /tmp/gpu_smoke.json
    python bench/gpu.py --parts evomal_generation,ce_10k_lenet5   # rerun some parts only
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from common import write_result  # noqa: I001

from metaloss import tasks
from metaloss.evaluators import Candidate, SerialEvaluator, TrainFitness
from metaloss.evaluators.batched import BatchedEvaluator
from metaloss.losses import get_loss
from metaloss.losses.neural import NeuralLoss
from metaloss.losses.taylor import TaylorLoss
from metaloss.tasks.base import Split, Task, TrainConfig
from metaloss.tasks.models import build_model
from metaloss.training import train

PARTS = (
    "lenet5_ce",
    "cifar_resnet_ce",
    "population_eval",
    "ml3_meta",
    "evomal_generation",
    "ce_10k_lenet5",
)

FULL = dict(
    lenet_steps=2000,
    resnet_steps=200,
    pop=25,
    pop_steps=500,
    ml3_meta_steps=200,
    evomal_pop=25,
    evomal_fitness=500,
    evomal_local=250,
    ce_steps=10_000,
    batch=128,
    resnet_batch=128,
)
SMOKE = dict(
    lenet_steps=10,
    resnet_steps=5,
    pop=3,
    pop_steps=5,
    ml3_meta_steps=3,
    evomal_pop=4,
    evomal_fitness=5,
    evomal_local=2,
    ce_steps=20,
    batch=16,
    resnet_batch=4,
)
CE_TAYLOR = [0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0]  # (y_hat - y)^2 / 2: a working loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_task(
    name: str,
    model: str,
    in_shape: tuple[int, ...],
    sizes: tuple[int, int, int],
    defaults: TrainConfig,
    device: str,
    augment: str | None = None,
) -> Task:
    """A 10-class task of random inputs and labels with the shape and size of the real one."""
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        x = torch.randn(n, *in_shape, generator=g)
        return Split(x, torch.randint(0, 10, (n,), generator=g))

    return Task(
        name=name,
        kind="classification",
        train=split(sizes[0]),
        val=split(sizes[1]),
        test=split(sizes[2]),
        in_shape=in_shape,
        num_outputs=10,
        model_factory=lambda: build_model(model, in_shape, 10),
        source="random tensors",
        model_name=model,
        defaults=defaults,
        augment=augment,
    ).to(device)


def load_task(
    name: str, model: str, in_shape: tuple[int, ...], sizes: tuple[int, int, int], args: Any
) -> tuple[Task, str]:
    """The registered task, or random tensors of its shape (and why) when it cannot be read."""
    spec = tasks.TASKS[name]
    if args.smoke:  # small images for the ResNet: it has to run in a second on a CPU
        shape = (in_shape[0], 8, 8) if model.startswith("resnet") else in_shape
        small = (256, 64, 64)
        task = random_task(name, model, shape, small, spec.defaults, args.device, spec.augment)
        return task, "random tensors (--smoke)"
    t0 = time.perf_counter()
    try:
        task = tasks.get(name, args.data_dir, args.device)
    except Exception as exc:  # noqa: BLE001 - any reason: missing files, no pillow, ...
        task = random_task(name, model, in_shape, sizes, spec.defaults, args.device, spec.augment)
        return task, f"random tensors: the real data could not be read ({exc})"
    return task, f"real: {task.source} (loaded in {time.perf_counter() - t0:.1f} s)"


def steps_per_s(task: Task, steps: int, batch: int, **cfg: Any) -> dict[str, Any]:
    """Cross-entropy steps/s from two runs of ``steps`` and ``steps // 5`` steps."""
    ce = get_loss("cross_entropy")
    short = max(1, steps // 5)
    train(task, ce, steps=min(20, short), batch_size=batch, **cfg)  # warm-up (cudnn, allocator)
    times = {}
    for n in (short, steps):
        _sync(task.device)
        t0 = time.perf_counter()
        res = train(task, ce, steps=n, batch_size=batch, seed=0, **cfg)
        _sync(task.device)
        times[n] = time.perf_counter() - t0
    rate = (steps - short) / max(times[steps] - times[short], 1e-9)
    return {
        "steps": steps,
        "batch_size": batch,
        "steps_per_s": round(rate, 2),
        "run_seconds": round(times[steps], 3),
        "val_error": res.val_metric,
    }


def taylor_population(n: int) -> list[Candidate]:
    """``n`` seeded Taylor losses around (y_hat - y)^2 / 2 (the candidates of a generation)."""
    out = []
    for i in range(n):
        g = torch.Generator().manual_seed(i)
        theta = torch.tensor(CE_TAYLOR) + 0.5 * torch.randn(8, generator=g)
        out.append(Candidate.from_loss(i, TaylorLoss(theta.tolist())))
    return out


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def population_eval(task: Task, sz: dict[str, int]) -> dict[str, Any]:
    fit = TrainFitness(task, steps=sz["pop_steps"])
    cands = taylor_population(sz["pop"])
    batched_ev = BatchedEvaluator(fit)
    batched_ev.evaluate(cands[:2])  # warm-up
    batched, t_b = timed(lambda: batched_ev.evaluate(cands), task.device)
    serial, t_s = timed(lambda: SerialEvaluator(fit).evaluate(cands), task.device)
    diffs = [abs(s.value - b.value) for s, b in zip(serial, batched) if s.ok and b.ok]
    return {
        "popsize": len(cands),
        "steps": sz["pop_steps"],
        "serial_s": round(t_s, 3),
        "batched_s": round(t_b, 3),
        "batched_over_serial_speedup": round(t_s / t_b, 3),
        "batched_fallback": batched_ev.fallback_reason,
        "ok_serial": sum(f.ok for f in serial),
        "ok_flags_equal": all(s.ok == b.ok for s, b in zip(serial, batched)),
        "max_abs_val_diff": max(diffs, default=0.0),
    }


def ml3_meta(task: Task, sz: dict[str, int]) -> dict[str, Any]:
    from metaloss.meta.unrolled import MetaStepper, ML3Config

    n = sz["ml3_meta_steps"]
    cfg = ML3Config(meta_steps=n, inner_steps=1, batch_size=sz["batch"])
    stepper = MetaStepper(NeuralLoss.ml3(seed=0), task, cfg, seed=0)
    stepper.step()  # warm-up
    values, secs = timed(lambda: [stepper.step() for _ in range(n)], task.device)
    return {
        "meta_steps": n,
        "inner_steps": 1,
        "meta_steps_per_s": round(n / secs, 2),
        "seconds": round(secs, 3),
        "last_meta_loss": values[-1],
    }


def evomal_generation(task: Task, sz: dict[str, int], budget_left: Callable[[], float]):
    from metaloss.meta.gp import EvoMALFitness, GPSearch

    search = GPSearch(population=sz["evomal_pop"], seed=0)
    cands, t_ask = timed(search.ask, task.device)
    fit = EvoMALFitness(
        task, fitness_steps=sz["evomal_fitness"], local_steps=sz["evomal_local"], seed=0
    )
    serial, t_s = timed(lambda: SerialEvaluator(fit).evaluate(cands), task.device)
    out: dict[str, Any] = {
        "population": sz["evomal_pop"],
        "fitness_steps": sz["evomal_fitness"],
        "local_steps": sz["evomal_local"],
        "candidates": len(cands),
        "ask_seconds": round(t_ask, 3),
        "serial_seconds": round(t_s, 3),
        "ok": sum(f.ok for f in serial),
        "rejected": sorted({f.reason.split(":")[0] for f in serial if not f.ok}),
        "best_val_error": min((f.value for f in serial if f.ok), default=None),
    }
    if budget_left() < 1.2 * t_s:  # the batched run would break the time budget
        out["batched_seconds"] = "skipped: time budget"
        return out
    batched, t_b = timed(lambda: BatchedEvaluator(fit).evaluate(cands), task.device)
    out["batched_seconds"] = round(t_b, 3)
    out["batched_ok_flags_equal"] = all(s.ok == b.ok for s, b in zip(serial, batched))
    return out


def ce_10k(task: Task, sz: dict[str, int]) -> dict[str, Any]:
    ce = get_loss("cross_entropy")
    res, secs = timed(
        lambda: train(task, ce, steps=sz["ce_steps"], batch_size=sz["batch"], seed=0),
        task.device,
    )
    return {
        "steps": sz["ce_steps"],
        "seconds": round(secs, 2),
        "test_error": res.test_metric,
        "val_error": res.val_metric,
        "diverged": res.diverged,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, random tensors, CPU")
    ap.add_argument("--data-dir", default=None, help="root of the data sets (mnist/, cifar10...)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="start no part after this")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset to run")
    args = ap.parse_args()
    chosen = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := sorted(set(chosen) - set(PARTS)):
        ap.error(f"--parts: unknown {unknown}; choose from {', '.join(PARTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.device = "cpu"
    sz = SMOKE if args.smoke else FULL
    start = time.perf_counter()
    budget_left = lambda: args.budget_s - (time.perf_counter() - start)  # noqa: E731
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True

    mnist, mnist_data = load_task("mnist-lenet5", "lenet5", (1, 28, 28), (54000, 6000, 10000), args)
    cifar_lazy: dict[str, Any] = {}

    def cifar() -> Task:
        if "task" not in cifar_lazy:
            cifar_lazy["task"], cifar_lazy["data"] = load_task(
                "cifar10-resnet18", "resnet18", (3, 32, 32), (45000, 5000, 10000), args
            )
        return cifar_lazy["task"]

    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "lenet5_ce": lambda: steps_per_s(mnist, sz["lenet_steps"], sz["batch"]),
        "cifar_resnet_ce": lambda: {
            "model": "resnet18",
            "in_shape": list(cifar().in_shape),
            **steps_per_s(cifar(), sz["resnet_steps"], sz["resnet_batch"]),
        },
        "population_eval": lambda: population_eval(mnist, sz),
        "ml3_meta": lambda: ml3_meta(mnist, sz),
        "evomal_generation": lambda: evomal_generation(mnist, sz, budget_left),
        "ce_10k_lenet5": lambda: ce_10k(mnist, sz),
    }
    results: dict[str, Any] = {}
    for name in PARTS:
        if name not in chosen:
            results[name] = {"skipped": "not in --parts"}
            continue
        if budget_left() <= 0:
            results[name] = {"skipped": f"time budget of {args.budget_s:g} s used up"}
            continue
        t0 = time.perf_counter()
        try:
            results[name] = runs[name]()
        except Exception as exc:  # noqa: BLE001 - one broken part must not lose the others
            results[name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "where": traceback.format_exc().splitlines()[-3:],
            }
        results[name]["part_seconds"] = round(time.perf_counter() - t0, 2)
        print(f"{name}: {results[name]}", flush=True)
    payload = {
        "smoke": args.smoke,
        "device": str(mnist.device),
        "sizes": sz,
        "data": {"mnist": mnist_data, "cifar10": cifar_lazy.get("data", "not loaded")},
        "total_seconds": round(time.perf_counter() - start, 2),
        "results": results,
    }
    dev = "smoke" if args.smoke else args.device.split(":")[0]
    write_result(f"gpu_{dev}", {"args": {k: str(v) for k, v in vars(args).items()}, **payload},
                 path=args.out)  # fmt: skip
    failed = [n for n, r in results.items() if "error" in r]
    if failed:
        raise SystemExit(f"parts failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
