"""Meta-learning methods, and the pieces to run your own population search.

The driver and the ask/tell searches are exported here (imported on first use, so that
``import metaloss.meta.x`` stays light):

* :func:`run`, :class:`Budget`, :class:`Outcome`, :class:`Search` - the one driver of
  population searches (:mod:`metaloss.meta.driver`) and the ask/tell protocol;
  :func:`run_search` the resumable loop under it; :class:`EarlyStop` the early-stopping
  rule (:mod:`metaloss.meta.early_stop`).
* :class:`CMAES`, :class:`OpenAIES` over a :class:`VectorFamily` (the flattened tensors of
  a loss; TaylorGLO is ``CMAES(VectorFamily(TaylorLoss()))``, see :func:`taylorglo_search`),
  and :class:`GPSearch` (GP-LFL / EvoMAL trees).
* Candidates, fitness records and evaluators: :mod:`metaloss.evaluators`.

Example:
    >>> import metaloss as ml
    >>> from metaloss.evaluators import SerialEvaluator, TrainFitness
    >>> from metaloss.meta import Budget, run, taylorglo_search
    >>> ev = SerialEvaluator(TrainFitness(ml.tasks.get("iris-linear"), steps=20))
    >>> res = run(taylorglo_search(popsize=4, seed=0), ev, Budget(2), method="mine")
    >>> len(res.history), res.loss.kind, "best_fitness" in res.info
    (2, 'taylor', True)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Budget": "metaloss.meta.driver",
    "Callback": "metaloss.meta.driver",
    "Outcome": "metaloss.meta.driver",
    "run": "metaloss.meta.driver",
    "Search": "metaloss.meta.search",
    "run_search": "metaloss.meta.search",
    "EarlyStop": "metaloss.meta.early_stop",
    "CMAES": "metaloss.meta.evolution",
    "OpenAIES": "metaloss.meta.evolution",
    "VectorFamily": "metaloss.meta.evolution",
    "taylorglo_search": "metaloss.meta.evolution",
    "GPSearch": "metaloss.meta.gp",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'metaloss.meta' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
