"""Log messages and progress bars on stderr."""

from __future__ import annotations

import logging
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn, \
    TimeRemainingColumn
from rich.text import Text

stderr = Console(stderr=True, highlight=False)


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else record.levelname.lower() + ": "
        return f"videoinv: {level}{record.getMessage()}"


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """INFO by default, DEBUG with -v (plus FFmpeg's own warnings), errors only with --quiet."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    for name in ("videoinv", "libav"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]  # the root logger has no handler in the CLI: no doubles
        logger.setLevel(level)
    if verbose:
        import av.logging

        av.logging.set_level(av.logging.WARNING)


class _Rate(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.1f} fps" if speed else "  --- fps", style="progress.data.speed")


class _Count(ProgressColumn):
    def render(self, task) -> Text:
        total = f"/{int(task.total)}" if task.total else ""
        return Text(f"{int(task.completed)}{total} frames", style="progress.download")


class FrameProgress:
    """A frames / fps / ETA bar; silent when ``enabled`` is False. Use as a context manager,
    call :meth:`start` with the expected frame count and :meth:`advance` per frame."""

    def __init__(self, description: str, enabled: bool):
        self.enabled = enabled
        self.description = description
        self._progress = None
        self._task = None
        self._t0 = time.perf_counter()
        self._t_start: float | None = None  # when the input was open and the models loaded
        self.frames = 0

    def __enter__(self) -> FrameProgress:
        if self.enabled:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                      _Count(), _Rate(), TimeRemainingColumn(), console=stderr,
                                      transient=False, speed_estimate_period=10)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=None)
        return self

    def start(self, total: int | None) -> None:
        self._t_start = time.perf_counter()
        if self._progress is not None:
            self._progress.update(self._task, total=total or None)

    def advance(self, *_args) -> None:
        self.frames += 1
        if self._progress is not None:
            self._progress.advance(self._task)

    @property
    def fps(self) -> float:
        elapsed = time.perf_counter() - self._t0
        return self.frames / elapsed if elapsed > 0 else 0.0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    @property
    def setup(self) -> float:
        """Seconds before the first frame could be read: the models loading, the input opening."""
        return 0.0 if self._t_start is None else self._t_start - self._t0

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            if exc[0] is None and self._progress.tasks[0].total is not None:
                self._progress.update(self._task, total=self.frames)
            self._progress.__exit__(*exc)


def progress_enabled(quiet: bool) -> bool:
    """Progress bars are for people: on only when stdout and stderr are terminals."""
    return not quiet and sys.stdout.isatty() and sys.stderr.isatty()
