"""The TFLite route: saved_model/ -> tflite/model.tflite, for LiteRT (Python's
TFLite interpreter here; LiteRT.js in a page, docs/node-versions.md's issue #25).

Converted from the SavedModel that train and export write (the RNN unrolled
where the time axis is known), with TFLite's builtin ops only: LiteRT.js has
no Flex (SELECT_TF_OPS) kernels, so a model that would need one (an RNN kept
as a `while` loop over TensorLists, for one) is refused with the op names.
The batch dimension stays dynamic (-1): a reader resizes the input before
allocate_tensors. Asked for (`--static-batch 1,32`), the same model is also
written with its batch fixed at conversion, one file per size
(model_b1.tflite, ...): LiteRT.js's WebGPU delegate takes static-sized
tensors only, and rewriting a dynamic file's batch is not enough there (its
shapes are computed at run time: Shape, Pack, Reshape), while a concrete
function at a fixed batch lets the converter fold them into constants."""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

from ..core.errors import BridgeError, UsageError
from ..core.quiet_tf import import_tensorflow, native_stderr_hidden
from ..folder.formats import FORMATS, SAVED_MODEL

# 'tf.TensorListReserve' op ...; failed to legalize operation 'tf.While'; Flex ops: FlexFoo
_TF_OP = re.compile(r"'tf\.(\w+)'|\bFlex(\w+)")


class FlexOpsRefused(BridgeError):
    """The model needs TensorFlow ops outside TFLite's builtin set."""

    def __init__(self, ops: list[str]):
        self.ops = ops
        super().__init__(
            "tflite: refused: the model needs TensorFlow ops that TFLite's builtin set "
            f"lacks (Flex/SELECT_TF_OPS, which LiteRT.js cannot run): {', '.join(ops)}"
        )


def needed_tf_ops(message: str) -> list[str]:
    """The TensorFlow op names a converter error names, sorted, each once."""
    return sorted({a or b for a, b in _TF_OP.findall(message)})


def interpreter(model: bytes | Path):
    """TensorFlow's own TFLite interpreter (tf.lite.Interpreter; its note that
    LiteRT's package will replace it is silenced)."""
    tf = import_tensorflow()
    content = model if isinstance(model, bytes) else Path(model).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=content)


def model_ops(content: bytes) -> list[str]:
    """The op names in a .tflite model (builtin names, or a custom op's name)."""
    ops = interpreter(content)._get_ops_details()  # noqa: SLF001 - no public listing in TF 2.19
    return sorted({op["op_name"] for op in ops})


# `convert --quantize` in TFLite's own terms: float16 weights, or dynamic-range
# quantization (8-bit weights, float activations). TFLite has no 16-bit
# integer weights.
TFLITE_QUANTIZATIONS = {"float16": "float16", "uint8": "dynamic_range"}


def static_batch_file(batch: int) -> str:
    """The file of the model converted at a fixed batch, inside tflite/."""
    return f"model_b{batch}.tflite"


def builtin_op_names() -> list[str]:
    """TFLite's builtin op names by code (schema.fbs's BuiltinOperator), from
    the pinned TensorFlow's generated schema, read as a file: importing it
    as tensorflow.lite... would import all of TensorFlow (about 15 s)."""
    where = Path(importlib.util.find_spec("tensorflow").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location(
        "tflite_schema", where / "lite" / "python" / "schema_py_generated.py"
    )
    schema = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schema)
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return [codes.get(i, f"BUILTIN_{i}") for i in range(max(codes) + 1)]


def export_tflite(
    model_dir: Path, out_dir: Path, quantize: str | None = None, static_batches: tuple = ()
) -> dict:
    """Write out_dir/model.tflite from model_dir/saved_model/ (its weights
    quantized as TFLITE_QUANTIZATIONS says), and a model_bB.tflite per batch
    size in static_batches; returns what to record."""
    if quantize is not None and quantize not in TFLITE_QUANTIZATIONS:
        raise UsageError(
            f"--quantize {quantize} has no TFLite counterpart "
            f"(tflite takes {', '.join(TFLITE_QUANTIZATIONS)})"
        )
    content = _convert(model_dir / SAVED_MODEL.folder, quantize)
    ops = model_ops(content)
    custom = [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    if custom:
        raise FlexOpsRefused(custom)
    statics = {}
    for batch in sorted(set(static_batches)):
        fixed = _convert(model_dir / SAVED_MODEL.folder, quantize, batch)
        custom = [op for op in model_ops(fixed) if op.startswith("Flex") or op == "CUSTOM"]
        if custom:
            raise FlexOpsRefused(custom)
        statics[batch] = fixed
    (out_dir / FORMATS["tflite"].entry).write_bytes(content)
    for batch, fixed in statics.items():
        (out_dir / static_batch_file(batch)).write_bytes(fixed)
    done = {
        "converter": "tf.lite.TFLiteConverter",
        "converter_version": import_tensorflow().__version__,
        "ops_set": "TFLITE_BUILTINS",
        "ops": ops,
        "quantize": quantize,
    }
    if statics:  # for LiteRT.js on WebGPU (chromium-litert-webgpu/tflite)
        done["static_batches"] = {str(b): static_batch_file(b) for b in statics}
    if quantize is not None:  # verify judges the path by quantization.py's budget
        # Sizes of whole files, this one and the same conversion unquantized:
        # an unrolled RNN's graph is a large part of a .tflite.
        done.update(
            tflite_optimization=TFLITE_QUANTIZATIONS[quantize],
            weight_bytes=len(content),
            float32_weight_bytes=len(_convert(model_dir / SAVED_MODEL.folder, None)),
        )
    return done


def _convert(saved_model: Path, quantize: str | None, batch: int | None = None) -> bytes:
    """The .tflite bytes, builtin ops only, the batch dynamic or fixed at
    `batch`; FlexOpsRefused names what is missing."""
    tf = import_tensorflow()
    if batch is None:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    else:
        converter = _fixed_batch_converter(tf, saved_model, batch)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
    try:
        with native_stderr_hidden():
            return converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises several kinds
        ops = needed_tf_ops(str(exc))
        if ops:
            raise FlexOpsRefused(ops) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        at = "" if batch is None else f" at a static batch of {batch}"
        raise BridgeError(f"tflite: the TFLite converter failed{at}: {first}") from None


def _fixed_batch_converter(tf, saved_model: Path, batch: int):
    """A converter for the SavedModel's serving signature traced at `batch`
    (a concrete function): every shape is known, so the converter leaves no
    shape arithmetic for run time. The signature's input and output names stay."""
    with native_stderr_hidden():
        loaded = tf.saved_model.load(str(saved_model))
    serving = loaded.signatures["serving_default"]
    specs = serving.structured_input_signature[1]
    unknown = [k for k, v in specs.items() if None in v.shape.as_list()[1:]]
    if unknown:
        raise BridgeError(
            f"tflite: refused at a static batch: input {unknown[0]} has an unknown "
            "dimension besides the batch"
        )
    fixed = {k: tf.TensorSpec([batch, *v.shape[1:]], v.dtype, name=k) for k, v in specs.items()}
    traced = tf.function(lambda feed: serving(**feed), input_signature=[fixed])
    return tf.lite.TFLiteConverter.from_concrete_functions([traced.get_concrete_function()], loaded)
