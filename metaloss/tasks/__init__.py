"""Tasks: data splits + model factory + metric + task type, and the task registry."""

from __future__ import annotations

from metaloss.tasks.base import Split, Task, TrainConfig, random_crop_flip
from metaloss.tasks.custom import from_arrays, from_file, from_folder
from metaloss.tasks.registry import TASKS, TaskSpec, build_task, describe, get, names, register_task
from metaloss.tasks.variants import Variant

__all__ = [
    "Split",
    "Task",
    "TrainConfig",
    "Variant",
    "TASKS",
    "TaskSpec",
    "build_task",
    "describe",
    "from_arrays",
    "from_file",
    "from_folder",
    "get",
    "names",
    "random_crop_flip",
    "register_task",
]
