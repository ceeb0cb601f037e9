"""Typed method configs: one frozen dataclass per method, its fields the method's options.

Every field has a default and a one-line help (``opt(default, help)``); the CLI's
``metaloss learn METHOD --help`` table and the docs are generated from them. A config is
validated when it is built (types, ranges, choices); :meth:`MethodConfig.with_options`
refuses an unknown option with a suggestion. Presets are classmethods: ``default()``,
``fast()`` (tiny budgets for tests and demos) and named budgets (``preset("quick")``) listed
in each class's ``PRESETS`` (the benchmark suites read their budgets from there).

This module imports no torch: the CLI's help stays fast.

Example:
    >>> from dataclasses import dataclass
    >>> from typing import ClassVar
    >>> @dataclass(frozen=True)
    ... class DemoConfig(MethodConfig):
    ...     method: ClassVar[str] = "demo"
    ...     PRESETS: ClassVar[dict] = {"fast": {"generations": 2}}
    ...     generations: int = opt(50, "search generations", ge=1)
    ...     mode: str = opt("a", "search mode", choices=("a", "b"))
    >>> DemoConfig.fast().generations
    2
    >>> DemoConfig().with_options(genertions=3)
    Traceback (most recent call last):
    ...
    metaloss.errors.ConfigError: demo: unknown option 'genertions' (did you mean 'generations'?); valid: generations, mode
    >>> DemoConfig(mode="c")
    Traceback (most recent call last):
    ...
    metaloss.errors.ConfigError: demo: option mode must be one of a, b, got 'c'
"""  # noqa: E501

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from metaloss.errors import ConfigError
from metaloss.validate import check_value

C = TypeVar("C", bound="MethodConfig")

_SCALARS = ("int", "float", "bool", "str")
_TUPLES = {"tuple[int, ...]": "int", "tuple[float, ...]": "float", "tuple[str, ...]": "str"}


def opt(
    default: Any,
    help: str,
    *,
    choices: Sequence[str] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    group: str | None = None,
) -> Any:
    """A config field: its default, one line of help, and optional checks.

    ``choices`` restricts a string; ``ge`` / ``gt`` bound a number (every element of a
    tuple); ``group`` tags fields that apply to one mode of a method only.
    """
    meta = {"help": help, "choices": tuple(choices) if choices else None, "ge": ge, "gt": gt,
            "group": group}  # fmt: skip
    return dataclasses.field(default=default, metadata=meta)


def _kinds(annotation: Any) -> tuple[list[str], bool]:
    """The accepted kinds of a field (``int``, ``tuple[int, ...]``...) and whether None is."""
    parts = [p.strip() for p in str(annotation).split("|")]
    return [p for p in parts if p != "None"], "None" in parts


def _convert(value: Any, kinds: list[str], optional: bool, where: str) -> Any:
    """``value`` as the field's type: ints become floats where floats are wanted, lists
    tuples, ``"50,50"`` a tuple of ints; anything else of the wrong type is refused."""
    if value is None or (isinstance(value, str) and value.lower() == "none" and optional):
        if optional:
            return None
        raise ConfigError(f"{where} must not be None")
    errors = []
    for kind in kinds:
        try:
            return _convert_one(value, kind, where)
        except ConfigError as exc:
            errors.append(exc)
    raise errors[0] if errors else ConfigError(f"{where}: unsupported value {value!r}")


def _convert_one(value: Any, kind: str, where: str) -> Any:
    if kind in _TUPLES:
        inner = _TUPLES[kind]
        if isinstance(value, str):
            items: list[Any] = [v.strip() for v in value.strip("()[] ").split(",") if v.strip()]
            if inner != "str":
                try:
                    items = [int(v) if inner == "int" else float(v) for v in items]
                except ValueError:
                    raise ConfigError(
                        f"{where} must be a list of {inner}s, got {value!r}"
                    ) from None
        elif isinstance(value, Sequence):
            items = list(value)
        elif isinstance(value, numbers.Real) and not isinstance(value, bool) and inner != "str":
            items = [value]
        else:
            raise ConfigError(f"{where} must be a list of {inner}s, got {value!r}")
        return tuple(_convert_one(v, inner, where) for v in items)
    if kind == "float" and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = float(value)
    if kind not in _SCALARS:  # pragma: no cover - a config class declared an odd type
        raise ConfigError(f"{where}: unsupported field type {kind}")
    check_value(value, kind, where)
    return value


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Base of the method configs: validation, overrides, presets, help rows."""

    method: ClassVar[str] = "method"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            where = f"{self.method}: option {f.name}"
            kinds, optional = _kinds(f.type)
            value = _convert(getattr(self, f.name), kinds, optional, where)
            object.__setattr__(self, f.name, value)
            meta = f.metadata
            if value is None:
                continue
            if meta.get("choices") and value not in meta["choices"]:
                raise ConfigError(
                    f"{where} must be one of {', '.join(meta['choices'])}, got {value!r}"
                )
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, str | bool):
                    continue
                if meta.get("ge") is not None and not v >= meta["ge"]:
                    raise ConfigError(f"{where} must be >= {meta['ge']:g}, got {value!r}")
                if meta.get("gt") is not None and not v > meta["gt"]:
                    raise ConfigError(f"{where} must be > {meta['gt']:g}, got {value!r}")
        self.check()

    def check(self) -> None:
        """Checks across fields (subclasses); raise :class:`ConfigError`."""

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def option_names(cls) -> list[str]:
        """The option names, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def unknown(cls, name: str) -> ConfigError:
        """The error for an unknown option: a suggestion and the valid names, one line."""
        names = cls.option_names()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return ConfigError(
            f"{cls.method}: unknown option {name!r}{hint}; valid: {', '.join(names)}"
        )

    def with_options(self: C, **overrides: Any) -> C:
        """A copy with ``overrides`` applied and validated (unknown names refused).

        Example:
            >>> from metaloss.meta.configs import TaylorGLOConfig
            >>> TaylorGLOConfig.fast().with_options(generations=3).generations
            3
        """
        names = set(self.option_names())
        for key in overrides:
            if key not in names:
                raise self.unknown(key)
        return dataclasses.replace(self, **overrides) if overrides else self

    @classmethod
    def resolve(cls: type[C], config: Any = None, overrides: Mapping[str, Any] | None = None) -> C:
        """``config`` (default: :meth:`default`) with ``overrides``; a config of another
        method, or anything else, is refused."""
        if config is None:
            config = cls.default()
        elif not isinstance(config, cls):
            raise ConfigError(
                f"{cls.method}: config must be a {cls.__name__}, got {type(config).__name__}"
            )
        return config.with_options(**dict(overrides or {}))

    # -- presets ----------------------------------------------------------------------------

    @classmethod
    def default(cls: type[C]) -> C:
        """The method's defaults (the reference budgets where the paper gives them)."""
        return cls()

    @classmethod
    def fast(cls: type[C]) -> C:
        """Tiny budgets: seconds on a small task (tests, demos), not a useful loss."""
        return cls.preset("fast")

    @classmethod
    def preset(cls: type[C], name: str) -> C:
        """A named preset (``default``, ``fast``, or one of ``PRESETS``: the suites' budgets)."""
        if name == "default":
            return cls()
        if name not in cls.PRESETS:
            known = ", ".join(["default", *cls.PRESETS])
            raise ConfigError(f"{cls.method}: unknown preset {name!r}; known: {known}")
        return cls(**cls.PRESETS[name])

    @classmethod
    def preset_options(cls, name: str) -> dict[str, Any]:
        """The options a preset changes (as written in ``PRESETS``; ``{}`` for default)."""
        cls.preset(name)  # validates the name
        return dict(cls.PRESETS.get(name, {}))

    # -- description --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-friendly values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def describe(cls) -> list[dict[str, str]]:
        """One row per option: ``name``, ``type``, ``default``, ``help`` (for the CLI help)."""
        rows = []
        for f in dataclasses.fields(cls):
            meta = f.metadata
            help_text = meta.get("help", "")
            if meta.get("choices"):
                help_text += f" [{'|'.join(meta['choices'])}]"
            rows.append({"name": f.name, "type": str(f.type).replace(" ", ""),
                         "default": _text(f.default), "help": help_text})  # fmt: skip
        return rows


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    return str(value)


EvaluatorSpec = str | Callable[[Any], Any]


def build_evaluator(
    evaluator: EvaluatorSpec, fitness: Any, options: Mapping[str, Any] | None, method: str
) -> Any:
    """The evaluator of a search: a name (``serial``, ``batched``, ``pool``, ``ray``, built
    with ``options``) or a factory called with the fitness function (e.g.
    ``functools.partial(ProcessPoolEvaluator, workers=2)``)."""
    if isinstance(evaluator, str):
        from metaloss.evaluators import make_evaluator

        return make_evaluator(evaluator, fitness, **dict(options or {}))
    if options:
        raise ConfigError(f"{method}: evaluator_options need an evaluator name, not an object")
    if isinstance(evaluator, type) or (callable(evaluator) and not hasattr(evaluator, "evaluate")):
        return evaluator(fitness)
    raise ConfigError(
        f"{method}: evaluator must be serial, batched, pool, ray or a factory fitness -> "
        f"evaluator, got {type(evaluator).__name__}"
    )


def evaluator_name(evaluator: EvaluatorSpec) -> str:
    """How a run records its evaluator: the name, or the factory's name."""
    if isinstance(evaluator, str):
        return evaluator
    return getattr(evaluator, "__name__", type(evaluator).__name__)
