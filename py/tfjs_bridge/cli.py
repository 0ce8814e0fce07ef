"""The `tfjs-bridge` command line: parsing and printing only; the work is in
the library modules, which the tests call directly."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .errors import BridgeError


class BridgeGroup(click.Group):
    """Turns BridgeError into one line on stderr and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BridgeError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)


@click.group(cls=BridgeGroup)
@click.version_option(__version__, prog_name="tfjs-bridge")
def main():
    """Train recurrent models in Keras, convert them for TensorFlow.js, and
    check that Node.js (tfjs-node) computes what Python computed."""


@main.command()
def doctor():
    """Check both runtimes: versions, and one TensorFlow build shared by Python and Node."""
    from .doctor import diagnose

    report = diagnose()
    width = max(len(k) for k in report.versions)
    for name, version in report.versions.items():
        click.echo(f"{name:<{width}}  {version if version is not None else '-'}")
    if report.ok:
        click.echo("✓ Python and Node run the same TensorFlow build")
        return
    for problem in report.problems:
        click.echo(f"✗ {problem}", err=True)
    sys.exit(1)


@main.command("build-addon")
@click.option("--force", is_flag=True, help="Rebuild even if the addon is up to date.")
@click.option(
    "--tf-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="A tensorflow package folder to link against (default: the installed one).",
)
def build_addon_cmd(force: bool, tf_dir: Path | None):
    """Compile tfjs-node's native addon against the Python TensorFlow (offline)."""
    from .addon import build_addon

    result = build_addon(tf_dir=tf_dir, force=force, log=click.echo)
    state = "built" if result.rebuilt else "up to date"
    click.echo(f"tfjs-node addon {state}: {result.addon} -> TensorFlow {result.tensorflow_version}")
