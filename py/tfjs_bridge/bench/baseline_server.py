"""The Python baseline that `bench --serve` loads the Node service against:
a model folder served the way Python users serve a Keras model, with
FastAPI under uvicorn (one process), the forward pass in a `tf.function`,
and TensorFlow Serving's REST row format.

    python -m tfjs_bridge.bench.baseline_server --model shared_models/gru --port 0
    curl -d '{"instances": [[[0.0, ...], ...]]}' http://127.0.0.1:PORT/v1/models/gru:predict

`POST /v1/models/NAME:predict` takes {"instances": [...]}: with one input,
each instance is a sample's nested list (or an object by the input's name);
with several, an object by input name. It answers {"predictions": [...]}:
with one output, one value per instance; with several, an object by output
name per instance. A bad body gets 400 and {"error": "one line"}. The
endpoint is a plain `def`, so FastAPI runs it in its thread pool, as most
Python services are written. Once ready it prints one line on stdout,
`listening on http://HOST:PORT` (with the real port when given 0)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import click
import numpy as np

from ..core.errors import BridgeError, first_line
from ..folder.checked_inputs import check_for
from ..folder.signature import FREE_AXIS, InputSpec, Signature

INT32 = np.iinfo(np.int32)


class BadRequest(Exception):
    """A request the model cannot take: answered with 400."""


# --- the model ----------------------------------------------------------------


class Served:
    """A model folder's Keras model (loaded and sha256-checked as verify and
    bench load the truth: reference.Reference) and its forward pass in a
    tf.function; signature and output names from its manifest."""

    def __init__(self, model_dir: Path, name: str | None = None):
        from ..core.quiet_tf import import_tensorflow
        from ..parity.truth import KerasTruth, subject_from_folder

        tf = import_tensorflow()
        subject = subject_from_folder(model_dir)
        reference = KerasTruth(subject)
        model = reference.keras_model
        if model is None:
            raise BridgeError(
                f"{model_dir}: its reference is a {subject.reference_kind}, not a Keras model"
            )
        self.name = name or model_dir.resolve().name
        self.signature: Signature = subject.signature
        self.output_names: list[str] = list(reference.output_names)
        self._tf = tf
        self._forward = tf.function(
            lambda *xs: model(xs[0] if len(xs) == 1 else list(xs), training=False),
            reduce_retracing=True,
        )

    def __call__(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        ys = self._forward(*(self._tf.constant(x) for x in xs))
        if isinstance(ys, dict):
            ys = [ys[k] for k in sorted(ys)]
        elif not isinstance(ys, list | tuple):
            ys = [ys]
        return [y.numpy() for y in ys]

    def warm_up(self) -> None:
        """Trace the tf.function once (one sample of zeros), before serving."""
        self(
            [
                np.zeros((1, *(d or FREE_AXIS for d in spec.shape)), _dtype(spec))
                for spec in self.signature.inputs
            ]
        )


def _dtype(spec: InputSpec):
    return np.int32 if spec.kind == "tokens" else np.float32


# --- the row format -----------------------------------------------------------


def parse_instances(body: object, signature: Signature) -> list[np.ndarray]:
    """{"instances": [...]} -> one checked array per input, in the signature's
    order (inputs.check_for: dtype, shape, token range, finite)."""
    if not isinstance(body, dict) or "instances" not in body:
        raise BadRequest('expected a JSON object {"instances": [...]}')
    extra = sorted(set(body) - {"instances", "signature_name"})
    if extra:
        raise BadRequest(f"unknown field '{extra[0]}' (expected instances)")
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadRequest("instances: expected a non-empty list")
    specs = signature.inputs
    named = all(isinstance(i, dict) for i in instances)
    if len(specs) > 1 and not named:
        raise BadRequest(
            f"instances: the model takes {len(specs)} inputs: each instance must be an object "
            f"by input name ({', '.join(signature.names)})"
        )
    if named:
        for i, instance in enumerate(instances):
            if set(instance) != set(signature.names):
                raise BadRequest(
                    f"instances[{i}]: keys {sorted(instance)}, the model's inputs are "
                    f"{', '.join(signature.names)}"
                )
    only = len(specs) == 1
    return [
        _array(
            [instance[spec.name] for instance in instances] if named else instances,
            spec,
            "instances" if only else f"instances: input {spec.name}",
            only,
        )
        for spec in specs
    ]


def _array(values: list, spec: InputSpec, where: str, only: bool) -> np.ndarray:
    try:
        x = np.asarray(values)
    except ValueError:
        x = None
    if x is None or x.dtype.kind not in "biuf":
        raise BadRequest(f"{where}: expected nested lists of numbers of one shape per sample")
    if spec.kind == "tokens":
        if x.dtype.kind not in "iu":
            raise BadRequest(f"{where}: token ids must be integers")
        if x.size and (x.min() < INT32.min or x.max() > INT32.max):
            raise BadRequest(f"{where}: token ids outside [{spec.low:g}, {spec.high:g})")
    x = x.astype(_dtype(spec))
    try:
        x = check_for(x, where, spec, allow_nonfinite=True, only=only)
    except BridgeError as err:
        raise BadRequest(str(err)) from None
    if spec.kind != "tokens" and not np.isfinite(x).all():
        raise BadRequest(f"{where}: {int((~np.isfinite(x)).sum())} NaN/Inf values")
    return x


def _json(raw: bytes | str) -> object:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"malformed JSON: {first_line(err)}") from None


def predictions(ys: list[np.ndarray], output_names: list[str]) -> list:
    """One output: its value per instance; several: an object by output name per instance."""
    if len(ys) == 1:
        return ys[0].tolist()
    rows = [y.tolist() for y in ys]
    return [dict(zip(output_names, values, strict=True)) for values in zip(*rows, strict=True)]


# --- the app --------------------------------------------------------------------


def create_app(served: Served):
    from fastapi import Body, FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    app = FastAPI(title=f"tfjs-bridge Python baseline ({served.name})")

    def error(status: int, message: str) -> JSONResponse:
        lines = message.strip().splitlines()
        return JSONResponse({"error": lines[0] if lines else "error"}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        problem = exc.errors()[0] if exc.errors() else {}
        if problem.get("type") == "json_invalid":
            return error(400, f"malformed JSON: {problem.get('ctx', {}).get('error', 'invalid')}")
        return error(400, f"bad request: {problem.get('msg', 'invalid body')}")

    def unknown(name: str) -> JSONResponse:
        return error(404, f"no model named '{name}' (this server has {served.name})")

    @app.get("/v1/models/{name}")
    def status(name: str):
        if name != served.name:
            return unknown(name)
        state = {"error_code": "OK", "error_message": ""}
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": state}]}

    @app.post("/v1/models/{name}:predict")
    def predict(name: str, body: object = Body(...)):
        if name != served.name:
            return unknown(name)
        try:
            if isinstance(body, bytes | str):  # not sent as application/json (curl -d): read it
                body = _json(body)
            xs = parse_instances(body, served.signature)
        except BadRequest as err:
            return error(400, str(err))
        try:
            ys = served(xs)
        except Exception as err:  # the model failed on a checked input: say so, one line
            return error(500, f"the model failed: {first_line(err)}")
        return {"predictions": predictions(ys, served.output_names)}

    return app


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise BridgeError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def serve(model_dir: Path, host: str, port: int, name: str | None = None) -> None:
    """Load, warm up, listen; print `listening on http://HOST:PORT` once ready.
    SIGTERM or SIGINT stops it (uvicorn finishes the requests in flight)."""
    import uvicorn

    served = Served(model_dir, name)
    served.warm_up()
    sock = _listen(host, port)
    url = f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started:
                print(f"listening on {url}", flush=True)

    config = uvicorn.Config(
        create_app(served), log_level="warning", access_log=False, lifespan="off"
    )
    Server(config).run(sockets=[sock])


@click.command()
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="A model folder (keras.h5 and its manifest).")  # fmt: skip
@click.option("--name", default=None, help="The model's name in URLs [default: the folder's].")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="0: any free port (the line on stdout says which).")  # fmt: skip
def main(model_dir: Path, name: str | None, host: str, port: int):
    """Serve a model folder with FastAPI + uvicorn: the Python baseline of `bench --serve`."""
    try:
        serve(model_dir, host, port, name)
    except BridgeError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
