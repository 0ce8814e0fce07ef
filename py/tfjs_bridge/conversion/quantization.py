"""Weight quantization of tfjs models, and what it costs.

`convert --quantize float16|uint8|uint16` passes the converter's own option
(--quantize_float16, --quantize_uint8, --quantize_uint16: every weight) to
the layers and graph conversions. A quantized model cannot match Keras to
1e-5, so verify judges its paths by a budget instead (judge), and reports
what the smaller download costs: sizes before and after, max |error|, argmax
agreement and the accuracy delta on the inputs verified (`--full`: the whole
test set).

The budget (the spec of every quantized path; `verify --max-accuracy-drop`
overrides the first figure):
- classifiers with labels: test accuracy may drop by MAX_ACCURACY_DROP_PP
  percentage points at most;
- any other model: max |error| ≤ MAX_RELATIVE_ERROR × the largest |output|
  Python computed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.errors import BridgeError
from ..folder.formats import DTYPE_BYTES

# The converter's option for each quantization, and the bytes per weight.
# `=*`: every weight. Without a value the option would take the next
# argument (the model's path) as its list of node names.
QUANTIZATIONS = {"float16": "--quantize_float16=*", "uint8": "--quantize_uint8=*",
                 "uint16": "--quantize_uint16=*"}  # fmt: skip
MAX_ACCURACY_DROP_PP = 0.5
MAX_RELATIVE_ERROR = 0.05
QUANTIZE_HELP = ("Store the tfjs models' weights as float16, or affine-quantized to 1 or 2 bytes "
                 "(the converter's own options); verify then judges them by a budget.")  # fmt: skip
ACCURACY_DROP_HELP = ("Quantized models (convert --quantize): the test accuracy they may lose, "
                      f"in percentage points [default: {MAX_ACCURACY_DROP_PP}].")  # fmt: skip


def converter_flag(quantize: str) -> str:
    if quantize not in QUANTIZATIONS:
        known = ", ".join(QUANTIZATIONS)
        raise BridgeError(f"unknown quantization '{quantize}' (known: {known})")
    return QUANTIZATIONS[quantize]


def weight_sizes(model_json: Path) -> dict:
    """The weights' bytes as stored (the shards written) and as float32 (what
    the same weights take unquantized), from model.json's weightsManifest."""
    manifest = json.loads(model_json.read_text())["weightsManifest"]
    stored = sum((model_json.parent / p).stat().st_size for g in manifest for p in g["paths"])
    unquantized = 0
    for group in manifest:
        for weight in group["weights"]:
            quant = weight.get("quantization")
            dtype = quant["original_dtype"] if quant else weight["dtype"]
            unquantized += int(np.prod(weight["shape"], dtype=np.int64)) * DTYPE_BYTES[dtype]
    return {"weight_bytes": stored, "float32_weight_bytes": unquantized}


def judge(
    figures: dict, expected: list[np.ndarray], conversion: dict, max_accuracy_drop: float | None
) -> tuple[bool, str]:
    """Whether a quantized path is within its budget, and why not; adds a
    `quantization` record to figures (sizes, drop, budget)."""
    drop_budget = MAX_ACCURACY_DROP_PP if max_accuracy_drop is None else max_accuracy_drop
    record = {
        "dtype": conversion["quantize"],
        "weight_bytes": conversion["weight_bytes"],
        "float32_weight_bytes": conversion["float32_weight_bytes"],
        "smaller": conversion["float32_weight_bytes"] / max(conversion["weight_bytes"], 1),
    }
    figures["quantization"] = record
    if "outputs" not in figures:  # names, count or shapes differ: no budget excuses that
        return False, figures.get("reason", "outputs do not compare")
    if "accuracy_node" in figures:
        drop = 100 * (figures["accuracy_python"] - figures["accuracy_node"])
        record.update(accuracy_drop_pp=drop, max_accuracy_drop_pp=drop_budget)
        if drop > drop_budget:
            return (
                False,
                f"{record['dtype']}: accuracy drops {drop:.2f} pp (budget {drop_budget} pp)",
            )
        return True, ""
    scale = max(float(np.abs(e).max()) if e.size else 0.0 for e in expected)
    allowed = MAX_RELATIVE_ERROR * scale
    record.update(max_abs_allowed=allowed)
    if figures["max_abs"] > allowed:
        return False, (
            f"{record['dtype']}: max |error| {figures['max_abs']:.2e} > {allowed:.2e} "
            f"({MAX_RELATIVE_ERROR:.0%} of the largest output)"
        )
    return True, ""
