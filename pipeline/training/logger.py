"""Training logs: CSV rows and TensorBoard scalars, written by rank 0 only."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from pipeline.io_utils import atomic_write_text

log = logging.getLogger(__name__)


class MetricLogger:
    """Appends scalar rows to ``<dir>/<name>.csv`` and mirrors them to TensorBoard."""

    def __init__(self, log_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.enabled = enabled
        self._writer = None
        self._fields: dict[str, list[str]] = {}
        if not enabled:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                # lazy: tensorboard costs about a second at start-up and a run may turn it off
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.log_dir / "tensorboard"))
            except ImportError:  # tensorboard is a dependency, but keep training if it is gone
                log.warning("tensorboard is not installed; logging to CSV only")

    def log(self, name: str, step: int, values: dict[str, Any]) -> None:
        """Writes one row of ``values`` at ``step`` to ``<name>.csv`` and TensorBoard."""
        if not self.enabled:
            return
        row = {"step": step, **values}
        path = self.log_dir / f"{name}.csv"
        fields = self._fields.get(name)
        if fields is None:
            if path.exists() and path.stat().st_size > 0:
                with path.open(newline="") as fh:
                    fields = next(csv.reader(fh), list(row))
            else:
                fields = list(row)
                with path.open("w", newline="") as fh:
                    csv.writer(fh).writerow(fields)
            self._fields[name] = fields
        with path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore").writerow(row)
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self._writer.add_scalar(f"{name}/{key}", value, step)

    def rewind(self, step: int, names: tuple[str, ...]) -> None:
        """Forgets what was logged after ``step`` to the logs ``names``: a run resumed from a
        checkpoint at ``step`` logs those steps again, and each must appear once.

        CSV rows with a larger step are dropped (the file is rewritten atomically); TensorBoard
        discards its events from ``step + 1`` on (``purge_step``).
        """
        if not self.enabled:
            return

        for name in names:
            path = self.log_dir / f"{name}.csv"
            if not path.is_file():
                continue
            with path.open(newline="") as fh:
                rows = list(csv.reader(fh))
            if not rows or "step" not in rows[0]:
                continue
            col = rows[0].index("step")
            keep = [r for r in rows[1:] if not _after(r, col, step)]
            if len(keep) < len(rows) - 1:
                log.info("%s: dropped %d rows logged after step %d", path, len(rows) - 1 - len(keep), step)
                lines = _csv_text([rows[0], *keep])
                atomic_write_text(path, lines)
        if self._writer is not None:
            # lazy: tensorboard costs about a second at start-up and a run may turn it off
            from torch.utils.tensorboard import SummaryWriter

            self._writer.close()
            self._writer = SummaryWriter(str(self.log_dir / "tensorboard"), purge_step=step + 1)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _after(row: list[str], col: int, step: int) -> bool:
    try:
        return int(float(row[col])) > step
    except (IndexError, ValueError):
        return False  # a row we cannot read is kept as it is


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()
