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


models_dir_option = click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="TFJS_BRIDGE_MODELS",
    help="Folder holding one folder per model [default: shared_models/].",
)


def _models_root(out: Path | None) -> Path:
    from .paths import MODELS_DIR

    return out if out is not None else MODELS_DIR


@main.command()
@click.argument("models", nargs=-1)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Override the spec's epochs."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use at most N train and N test samples.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for weights and shuffling."
)
@models_dir_option
def train(models, epochs, limit, seed, out):
    """Train registry MODELS (default: all) in tf-keras and save them.

    Example: tfjs-bridge train gru --epochs 1 --limit 5000"""
    from .registry import resolve
    from .train import train as train_model

    root = _models_root(out)
    for spec in resolve(models):
        manifest = train_model(spec, root, epochs=epochs, limit=limit, seed=seed)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in manifest["test"].items())
        click.echo(
            f"{spec.name}: {manifest['epochs']} epochs in {manifest['train_seconds']:.1f} s; "
            f"test {shown} -> {root / spec.name}"
        )


@main.command()
@click.argument("models", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["layers", "graph", "all"]),
    default="all",
    show_default=True,
    help="layers: keras.h5 -> tfjs_layers/; graph: saved_model/ -> tfjs_graph/.",
)
@models_dir_option
def convert(models, fmt, out):
    """Convert trained MODELS (default: all) with tensorflowjs_converter.

    Example: tfjs-bridge convert gru --format layers"""
    from .convert import FORMATS
    from .convert import convert as convert_model
    from .registry import resolve

    formats = FORMATS if fmt == "all" else (fmt,)
    root = _models_root(out)
    for spec in resolve(models):
        manifest = convert_model(root / spec.name, formats)
        for f in formats:
            done = manifest["conversions"][f]
            click.echo(
                f"{spec.name}: {f} -> {root / spec.name / done['output']} "
                f"({len(done['files'])} files, tensorflowjs {done['converter_version']})"
            )


@main.command("import")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
def import_cmd(model_dir: Path):
    """Convert a Node-trained tfjs layers model in MODEL_DIR back to Keras.

    Reads MODEL_DIR/tfjs_layers/model.json and writes MODEL_DIR/keras.h5.
    Example: tfjs-bridge import shared_models/lstm_node"""
    from .convert import import_layers_model

    written = import_layers_model(model_dir)
    click.echo(f"wrote {written}")


@main.command()
@click.option("--check", is_flag=True, help="Fail if node/registry.json is out of date.")
def registry(check: bool):
    """List the registry models and write node/registry.json for the Node side."""
    from .registry import MODELS, REGISTRY_JSON, registry_json, write_registry_json

    for spec in MODELS.values():
        click.echo(f"{spec.name:<10} {spec.description}")
    if check:
        if not REGISTRY_JSON.exists() or REGISTRY_JSON.read_text() != registry_json():
            raise BridgeError(f"{REGISTRY_JSON} is out of date: run `tfjs-bridge registry`")
        return
    click.echo(f"wrote {write_registry_json()}")
