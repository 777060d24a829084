"""``maintenance demo``: set up and run the captioner fleet until Ctrl-C (a CLI plugin)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from maintenance import Settings


@click.command("demo")
@click.option(
    "--scenario",
    is_flag=True,
    help="Run the narrated end-to-end walkthrough on a fleet of its own; exit 0 only if "
    "every step behaved.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address.")
@click.option("--port", type=int, default=5000, show_default=True, help="0: any free port.")
@click.option("--workers", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--flower/--no-flower", default=True, show_default=True, help="Start Flower too.")
@click.option(
    "--task-seconds",
    type=click.FloatRange(0, 3600),
    default=5.0,
    show_default=True,
    help="Simulated model time per caption, so running jobs can be watched.",
)
def demo(
    scenario: bool,
    host: str,
    port: int,
    workers: int,
    concurrency: int,
    flower: bool,
    task_seconds: float,
) -> None:
    """Start the captioner, prefork workers and beat on the embedded default; Ctrl-C stops all.

    With --scenario: start a fleet of its own, walk through normal maintenance, an
    emergency and the recovery, print a summary, stop everything; exit 0 only if
    every step behaved.
    """
    # Imported here: every `maintenance` command loads this plugin, few run it.
    from .launcher import DemoError, DemoOptions, DemoStack

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise click.BadParameter("the demo only listens on loopback", param_hint="--host")
    settings = Settings.from_env()
    if scenario:
        from .scenario import MIN_TASK_SECONDS, run_scenario

        if task_seconds < MIN_TASK_SECONDS:
            raise click.BadParameter(
                f"the scenario needs jobs of at least {MIN_TASK_SECONDS:g} seconds",
                param_hint="--task-seconds",
            )
        # Its own shape (2 workers x 2 slots: the story counts on it), any free port
        # (it may run beside a demo that holds the usual one), no Flower.
        options = DemoOptions(host, 0, 2, 2, False, task_seconds)
        raise click.exceptions.Exit(run_scenario(options, settings))
    state_dir = Path(settings.data_dir) / "demo"
    state_dir.mkdir(parents=True, exist_ok=True)
    options = DemoOptions(host, port, workers, concurrency, flower, task_seconds)
    stack = DemoStack(options, settings, state_dir)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            click.echo(f"\n{signal.Signals(signum).name}: stopping every demo process...")
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        click.echo("Preparing: Redis, control-plane schema, captioner schema and demo data...")
        stack.prepare()
        click.echo("Starting: web app, workers, beat...")
        stack.start(stopping)
        if not stopping.is_set():
            click.echo(stack.summary())
            stack.run(stopping)
    except DemoError as exc:
        click.echo(f"maintenance demo: {exc}", err=True)
        raise click.exceptions.Exit(1) from None
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("Demo stopped; no process left running.")
