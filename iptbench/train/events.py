"""TensorBoard event files in RUN/tb, written only when the optional `tensorboard` package is installed.

`pip install 'iptbench[tensorboard]'`, then `tensorboard --logdir runs/`. Without the package nothing is
written and nothing is printed: the CSV logs hold the same numbers. On resume, events past the checkpoint
step are purged (TensorBoard's purge_step), as the CSV logs drop their rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError when the tensorboard package is missing
        return None
    return SummaryWriter


class Events:
    def __init__(self, folder: Path, purge_step: int | None) -> None:
        writer = _summary_writer()
        self.writer = None if writer is None else writer(str(folder), purge_step=purge_step)

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            return
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
