"""The command line's own pieces, beside its commands (cli.py): the group that
turns every failure into one line on stderr, the terminal progress bar, and
the option types and options several commands share. Click and the terminal
stay here and in cli.py, out of the library."""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import click

from .core.errors import BridgeError, UsageError, unexpected
from .core.progress import NO_PROGRESS, Progress

DEBUG_ENV = "TFJS_BRIDGE_DEBUG"  # set and not 0: tracebacks, as with --debug
DEBUG_HELP = f"Show a failure's traceback (also {DEBUG_ENV}=1)."
AT_LEAST_1 = click.IntRange(min=1)
PATH = click.Path(path_type=Path)
DIR = click.Path(file_okay=False, path_type=Path)
INTERRUPTED = 130  # the shell's code for a command ended by SIGINT
_RAN = "tfjs_bridge.ran"  # ctx.meta: the command and the models it was given
_MODEL_PARAMS = ("models", "model_dirs", "keras_models", "model_dir", "path", "source")


class BridgeCommand(click.Command):
    """Notes which command runs on which models, for BridgeGroup's error line."""

    def invoke(self, ctx):
        named = []
        for value in (ctx.params.get(key) for key in _MODEL_PARAMS):
            if isinstance(value, tuple | list):
                named += map(str, value)
            elif value is not None:
                named.append(str(value))
        ctx.meta[_RAN] = " ".join([ctx.info_name, *named])
        return super().invoke(ctx)


class BridgeGroup(click.Group):
    """Every failure is one line on stderr: a BridgeError as itself, with its
    exit code; anything unexpected as the command, its models and the
    exception, exit 1; Ctrl-C, exit 130. --debug (or TFJS_BRIDGE_DEBUG=1)
    shows the traceback too."""

    command_class = BridgeCommand

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # click's own, which click shows
        except BridgeError as err:
            self._traceback(ctx)
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            if sys.stderr.isatty():
                click.echo(err=True)  # past the terminal's ^C
            click.echo(f"error: {self._ran(ctx)}: interrupted", err=True)
            sys.exit(INTERRUPTED)
        except Exception as exc:
            if not self._traceback(ctx):
                click.echo(f"error: {self._ran(ctx)}: {unexpected(exc)} "
                           "(run with --debug for the traceback)", err=True)  # fmt: skip
            sys.exit(1)

    @staticmethod
    def _ran(ctx) -> str:
        return ctx.meta.get(_RAN) or ctx.invoked_subcommand or ctx.info_name

    @staticmethod
    def _traceback(ctx) -> bool:
        """With --debug or TFJS_BRIDGE_DEBUG: the handled exception's traceback."""
        debug = ctx.params.get("debug") or os.environ.get(DEBUG_ENV, "0") not in ("", "0")
        if debug:
            click.echo(traceback.format_exc(), err=True, nl=False)
        return bool(debug)


class ClickProgress:
    """progress.Progress as a click progress bar on `stream`."""

    def __init__(self, stream):
        self.stream = stream
        self.bar = None

    def start(self, total: int, label: str) -> None:
        self.close()
        self.bar = click.progressbar(length=total, label=label, file=self.stream)
        self.bar.__enter__()

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def set_label(self, label: str) -> None:
        if self.bar is not None:
            self.bar.label = label

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@contextmanager
def terminal_progress():
    """A progress bar when stderr is a terminal, else none. The bar writes to
    a duplicate of stderr taken now: training hides fd 2 while it runs
    (TensorFlow's native logging, core/quiet_tf.py), and the bar must still show."""
    if not sys.stderr.isatty():
        yield NO_PROGRESS
        return
    sys.stderr.flush()
    with os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1) as stream:
        progress: Progress = ClickProgress(stream)
        try:
            yield progress
        finally:
            progress.close()


def echo_note(message: str) -> None:
    click.echo(f"note: {message}", err=True)


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def echo_lines(lines, err: bool = False) -> None:
    for line in lines:
        click.echo(line, err=err)


def echo_wrote(paths) -> None:
    for path in paths:
        click.echo(f"wrote {path}")


def given_options() -> set[str]:
    """The running command's parameters the user set (on the command line or
    by environment)."""
    ctx, default = click.get_current_context(), click.core.ParameterSource.DEFAULT
    return {name for name in ctx.params if ctx.get_parameter_source(name) != default}


class BatchSizes(click.ParamType):
    """--batch 1,32,256: positive integers, comma-separated."""

    name = "sizes"

    def convert(self, value, param, ctx) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            sizes = [int(b) for b in value.split(",")]
        except ValueError:
            sizes = []
        if not sizes or any(b <= 0 for b in sizes):
            raise UsageError(f"--batch wants positive integers like 1,32,256, got '{value}'")
        return sizes


models_dir_option = click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TFJS_BRIDGE_MODELS",
    help="Folder holding one folder per model [default: shared_models/].",
)
