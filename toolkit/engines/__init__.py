"""Where sharded stages and jobs run, like ESPnet's ``cmd.sh`` backends: ``local``, ``slurm`` or ``ray``.

Every module here registers one :class:`~toolkit.engines.base.Engine` in ``ENGINES`` (imported on its first
lookup); the recipe picks one with ``--cmd NAME`` and its resources with ``--cmd_conf FILE`` (``conf/slurm.yaml``, ``conf/ray.yaml``).
"""

from toolkit.engines.base import ENGINES, Engine, Task, TaskResult, load_engine

__all__ = ["ENGINES", "Engine", "Task", "TaskResult", "load_engine"]
