"""The batched evaluator: train a population's base models together with ``torch.func.vmap``.

Every member of a population is trained from the *same* seeded initial model on the *same*
batch sequence (that is what makes fitness comparable), so the members differ only in
their loss. :class:`BatchedEvaluator` trains the members of a chunk as one vmapped model
(:func:`metaloss.evaluators.stacked.train_stack`): stacked parameters, one
``vmap(functional_call)`` forward on the shared batch, the losses of every group of
same-structure losses (TaylorGLO polynomials, neural losses of one architecture, symbolic
losses of one tree, ...) as one ``vmap(functional_call)`` over their stacked loss
tensors, other losses one by one, and one ``torch.autograd.grad`` of the sum. Members are
independent inside ``vmap``: the gradient of the sum w.r.t. member ``i``'s parameters is
the gradient of member ``i``'s loss alone, so a member that goes NaN cannot change another
member's numbers. The optimiser is the trainer's own (:func:`metaloss.functional.sgd` /
:func:`~metaloss.functional.adam`: ``torch.optim`` math, milestone learning rates) on the
stacked tensors.

Agreement with :class:`~metaloss.evaluators.serial.SerialEvaluator`:
    Same seeds, same initial model, same batches (``Batcher(len(task.train), batch_size,
    seed, device)``), same augmentation stream, same optimiser math, same failure rule (a
    member fails when its weights, or - with ``eval_every > 0`` - its training loss, become
    non-finite; a classification member whose weights are finite but whose outputs are not
    gets error 1.0, as in :func:`metaloss.training.evaluate_model`). The only difference is
    float summation order inside batched matrix products (about 1e-8 relative per step on
    CPU). Tolerance: ``ok`` flags are equal, and ``|value_batched - value_serial| <=
    2 / len(task.val)`` for error rates (two validation samples may flip their argmax after a
    few hundred steps), ``<= 1e-3 * max(1, |value|)`` for MSE. The test split is never read
    (selection uses validation only). On digits-mlp with 100-500 SGD steps the errors are
    identical in practice. Caveat (measured): losses that make training chaotic amplify the
    summation-order difference; on mnist1d-mlp, 12 random CMA-ES Taylor losses x 300 steps,
    three members differed by 0.008-0.035 (tolerance 0.005). Early-stopping decisions
    (``Candidate.early_stop``) follow the members' own checkpoint metrics, so a member
    within that difference of a threshold may stop in one evaluator and not the other.

Learning-rate grids: :func:`~metaloss.evaluators.stacked.train_lr_grid` trains one loss at
several learning rates as one vmapped population (same initial model and batches, a
per-member learning rate), the batched form of the learning-rate tuning in
:mod:`metaloss.tuning`.

Failure handling: loss exceptions mark only the member that raised; non-finite weights are
detected every ``check_every`` steps (one host sync) and at the end, and such members are
dropped from the stack (their updates stop), so the survivors never pay for them.

Chunking: ``chunk_size=None`` picks the largest chunk that fits a memory estimate
(:func:`~metaloss.evaluators.memory.auto_chunk_size`).

Unsupported (falls back to the serial evaluator, with the reason in
:attr:`BatchedEvaluator.fallback_reason` and a warning): models with active dropout
(per-member randomness cannot reproduce the serial run), fitness functions without a
training stage (see :mod:`metaloss.evaluators.fitness`), and models that ``vmap`` cannot
trace. BatchNorm works (its running statistics are stacked buffers, updated per member).

Staged fitness functions (:mod:`metaloss.evaluators.fitness`: an optional ``prepare``
stage - e.g. a rejection filter and a local search of the loss's weights - then
``train_fitness()``): the prepare stage runs per candidate, serially, in this process; only
the training runs of the prepared candidates are batched. ``Fitness.tensors`` carries the
prepared tensors as in the serial path.

Example:
    >>> import metaloss as ml
    >>> from metaloss.evaluators import Candidate, TrainFitness
    >>> from metaloss.evaluators.batched import BatchedEvaluator
    >>> task = ml.tasks.get("iris-linear")
    >>> ev = BatchedEvaluator(TrainFitness(task, steps=50))
    >>> cands = [Candidate(i, {"kind": k}) for i, k in enumerate(["cross_entropy", "mse"])]
    >>> [f.ok for f in ev.evaluate(cands)]
    [True, True]
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence

from torch import Tensor

from metaloss.errors import ConfigError
from metaloss.evaluators import fitness as fitness_kinds
from metaloss.evaluators.base import (
    Candidate,
    Fitness,
    FitnessFunction,
    failure_reason,
    stop_steps,
)
from metaloss.evaluators.memory import auto_chunk_size, available_memory, member_bytes
from metaloss.evaluators.serial import SerialEvaluator, TrainFitness
from metaloss.evaluators.stacked import (
    VmapError,
    has_dropout,
    train_lr_grid,
    train_stack,
)
from metaloss.losses.base import Loss

__all__ = [
    "BatchedEvaluator",
    "auto_chunk_size",
    "available_memory",
    "member_bytes",
    "train_lr_grid",
]

# former private names, still imported by metaloss.tuning
_VmapError = VmapError
_has_dropout = has_dropout


class BatchedEvaluator:
    """Evaluate a population by training all members' base models as one vmapped model.

    Args:
        fitness: a fitness with a training stage (a :class:`TrainFitness`, or a staged
            fitness: its prepare stage runs per candidate, its training runs are batched;
            see :mod:`metaloss.evaluators.fitness`). Anything else is evaluated serially
            (see :attr:`fallback_reason`).
        chunk_size: members trained together; ``None`` chooses it from a memory estimate
            (:func:`auto_chunk_size`).
        check_every: steps between checks for non-finite weights (each check syncs).

    Fitness equals the serial evaluator's within the tolerance stated in the module
    docstring (error rates within ``2 / len(task.val)``; ``ok`` flags equal).
    ``Fitness.seconds`` is the chunk's training time divided by its size.

    >>> import metaloss as ml
    >>> from metaloss.evaluators import Candidate, TrainFitness
    >>> ev = BatchedEvaluator(TrainFitness(ml.tasks.get("iris-linear"), steps=20))
    >>> ev.fallback_reason is None, ev.evaluate([Candidate(0, {"kind": "cross_entropy"})])[0].ok
    (True, True)
    """

    def __init__(
        self, fitness: FitnessFunction, chunk_size: int | None = None, check_every: int = 50
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"batched evaluator: chunk_size must be >= 1, got {chunk_size}")
        self.fitness = fitness
        self.chunk_size = chunk_size
        self.check_every = max(1, int(check_every))
        self.fallback_reason: str | None = None
        self.train_fitness: TrainFitness | None = fitness_kinds.training_stage(fitness)
        if self.train_fitness is None:
            self._fall_back(f"fitness {type(fitness).__name__} has no training stage")
        else:
            model = self.train_fitness.task.make_model(self.train_fitness.seed)
            if has_dropout(model):
                self._fall_back("the model has dropout (per-member randomness)")

    def _fall_back(self, reason: str) -> None:
        self.fallback_reason = reason
        warnings.warn(f"batched evaluator: {reason}; evaluating serially", stacklevel=3)

    # -- public ----------------------------------------------------------------------------
    def evaluate(self, candidates: Sequence[Candidate]) -> list[Fitness]:
        """Fitness of every candidate, in order (failures are records, never exceptions)."""
        if self.fallback_reason is not None or self.train_fitness is None:
            return SerialEvaluator(self.fitness).evaluate(candidates)
        out: list[Fitness | None] = [None] * len(candidates)
        todo: list[tuple[int, Candidate, dict[str, Tensor], float]] = []
        for i, cand in enumerate(candidates):
            start = time.perf_counter()
            prepared = self._prepare(cand)
            if isinstance(prepared, Fitness):
                out[i] = prepared
                continue
            todo.append((i, prepared[0], prepared[1], time.perf_counter() - start))
        if todo:
            config = self.train_fitness.train_config()
            size = self.chunk_size or auto_chunk_size(self.train_fitness.task, config, len(todo))
            for lo in range(0, len(todo), size):
                chunk = todo[lo : lo + size]
                fits = self._train_chunk([c for _, c, _, _ in chunk])
                for (i, _, tensors, extra), fit in zip(chunk, fits):
                    fit.seconds += extra
                    fit.tensors = tensors or fit.tensors
                    out[i] = fit
        return [f if f is not None else Fitness.failure("not evaluated") for f in out]

    def _prepare(self, cand: Candidate) -> tuple[Candidate, dict[str, Tensor]] | Fitness:
        """The fitness's prepare stage (if any) for one candidate, failures as records."""
        try:
            return fitness_kinds.prepare(self.fitness, cand)
        except Exception as exc:  # noqa: BLE001 - invalid candidates are data, not crashes
            return Fitness.failure(failure_reason(exc))

    # -- one chunk of members trained together ---------------------------------------------
    def _train_chunk(self, cands: Sequence[Candidate]) -> list[Fitness]:
        assert self.train_fitness is not None
        tf = self.train_fitness
        task, config, seed = tf.task, tf.train_config(), tf.seed
        results: list[Fitness | None] = [None] * len(cands)
        losses: list[Loss] = []
        members: list[int] = []  # candidate index of each stack row
        for i, cand in enumerate(cands):
            try:
                loss = cand.build().to(task.device)
            except Exception as exc:  # noqa: BLE001
                results[i] = Fitness.failure(failure_reason(exc))
                continue
            for p in loss.parameters():
                p.requires_grad_(False)
            losses.append(loss)
            members.append(i)
        if not members:
            return [r or Fitness.failure("not evaluated") for r in results]
        try:
            if self.fallback_reason is not None:  # an earlier chunk found vmap unusable
                raise VmapError(self.fallback_reason)
            marks = [stop_steps(cands[i], config.steps) for i in members]
            examples = {cands[i].early_stop_examples for i in members}
            if len(examples) > 1:  # one generation shares one rule
                raise ValueError(f"candidates differ in early_stop_examples: {examples}")
            trained = train_stack(
                task,
                config,
                seed,
                losses,
                self.check_every,
                marks=marks,
                stop_examples=examples.pop(),
            )
        except VmapError as exc:
            if self.fallback_reason is None:
                self._fall_back(f"vmap cannot run this model ({exc})")
            serial = SerialEvaluator(tf).evaluate([cands[i] for i in members])
            for i, fit in zip(members, serial):
                results[i] = fit
            return [r or Fitness.failure("not evaluated") for r in results]
        for row, i in enumerate(members):
            results[i] = trained[row]
        return [r or Fitness.failure("not evaluated") for r in results]
