"""Terminal observers: a rich progress bar for optimisation and a run log file."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from recon.cache import writable_folder
from recon.errors import ReconError
from recon.events import Observer


class ConsoleProgress(Observer):
    """Prints stage lines and shows a progress bar with step, loss, PSNR and Gaussian count."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True, soft_wrap=True)  # whole lines in logs and CI
        self.quiet = quiet
        self._progress: Progress | None = None
        self._task = None

    def stage_started(self, stage: str) -> None:
        # A live bar only on a terminal; logs and CI get a plain line every `_every` steps instead.
        if stage == "optimize" and not self.quiet and self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]optimize"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("optimize", total=None, stats="")

    _every = 100

    def step_metrics(self, step: int, metrics: dict[str, float]) -> None:
        stats = f"loss {metrics['loss']:.4f}  PSNR {metrics['psnr']:.2f}  {int(metrics['gaussians']):,} Gaussians"
        if self._progress is not None:
            self._progress.update(self._task, completed=step + 1, total=metrics.get("total"), stats=stats)
        elif not self.quiet and step % self._every == 0:
            self.console.print(f"  optimize step {step}/{int(metrics.get('total', 0))}: {stats}", highlight=False)

    def stage_finished(self, stage: str, seconds: float, cached: bool) -> None:
        if self._progress is not None and stage == "optimize":
            self._progress.stop()
            self._progress = None
        if not self.quiet:
            how = "reused from cache" if cached else f"{seconds:.1f} s"
            self.console.print(f"[green]✓[/green] {stage:<9} {how}")

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"  {message}", highlight=False)


class RunLog(Observer):
    """Appends every stage event and log line, timestamped, to RUN/run.log."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        writable_folder(self.path.parent)

    def _write(self, text: str) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        except OSError as e:
            raise ReconError(f"cannot write the run log ({e.strerror or e})", self.path) from None

    def stage_started(self, stage: str) -> None:
        self._write(f"[{stage}] started")

    def stage_finished(self, stage: str, seconds: float, cached: bool) -> None:
        self._write(f"[{stage}] finished in {seconds:.2f} s" + (" (cached)" if cached else ""))

    def log(self, message: str) -> None:
        self._write(message)

    def step_metrics(self, step: int, metrics: dict[str, float]) -> None:
        if step % 500 == 0:
            self._write(f"[optimize] step {step} " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
