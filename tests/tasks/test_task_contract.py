"""The task contract (bench.testing.TaskContract), checked for every task that runs without external data."""

from __future__ import annotations

from bench.testing import TaskContract


class TestShippedTasks(TaskContract):
    task_names = ["closed-form", "closed-form/small", "closed-form/wide", "shapes", "smile-synthetic"]
    task_params = {"shapes": {"device": "cpu"}, "smile-synthetic": {"device": "cpu"}}
