"""Checking input tensors that users hand us as .npy files, before anything
runs: one clear error naming the file, and no allocation a header asks for
until the file is known to hold it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import BridgeError
from .signature import InputSpec, Signature, float_input

NPY_MAGIC = b"\x93NUMPY"
MAX_INPUT_BYTES = 2 * 2**30  # refuse anything larger outright


def read_npy_checked(path: Path) -> np.ndarray:
    """np.load, after checking that the header's shape and dtype account for
    exactly the bytes in the file (a lying header is refused unread)."""
    if not path.exists():
        raise BridgeError(f"{path}: no such file")
    if path.is_dir():
        raise BridgeError(f"{path}: a folder, not a .npy file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(6) != NPY_MAGIC:
            raise BridgeError(f"{path}: not a .npy file (no NUMPY magic)")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
        except (ValueError, OSError) as exc:
            raise BridgeError(f"{path}: unreadable .npy header ({exc})") from None
        if dtype.hasobject:
            raise BridgeError(f"{path}: holds Python objects; only numeric arrays are read")
        count = int(np.prod(shape, dtype=object))  # exact, whatever the header claims
        declared = count * dtype.itemsize
        payload = size - f.tell()
        if declared > MAX_INPUT_BYTES:
            raise BridgeError(
                f"{path}: header declares shape {list(shape)} ({declared} bytes), "
                f"over the {MAX_INPUT_BYTES}-byte limit"
            )
        if declared != payload:
            raise BridgeError(
                f"{path}: header declares shape {list(shape)} {dtype} ({declared} bytes) "
                f"but the file holds {payload}"
            )
        array = np.fromfile(f, dtype=dtype, count=count).reshape(
            shape, order="F" if fortran else "C"
        )
    return np.ascontiguousarray(array)


def check_input(
    x: np.ndarray, path: Path | str, input_shape: tuple, allow_nonfinite: bool = False
) -> np.ndarray:
    """The contract of a model with one float input: float32, [N, *input_shape]
    with N >= 1, finite unless allowed (then NaN and ±Inf pass through bit for bit)."""
    return check_for(x, str(path), float_input("input", input_shape), allow_nonfinite)


def load_input(path: Path, input_shape: tuple, allow_nonfinite: bool = False) -> np.ndarray:
    return check_input(read_npy_checked(path), path, input_shape, allow_nonfinite)


def check_for(
    x: np.ndarray, where: str, spec: InputSpec, allow_nonfinite: bool = False, only: bool = True
):
    """One input's contract (signature.py), as node/lib/io/inputs.js checks it:
    its dtype, [N, *shape] with N >= 1, token ids within [low, high), floats
    finite unless allowed. `only`: the model's one input (messages say "the
    model"), else one of several (they name the input)."""
    tokens = spec.kind == "tokens"
    # token ids in the input's own dtype: int32, or float32 for a float input
    # that feeds an Embedding
    dtype = np.dtype(spec.dtype) if tokens else np.dtype(np.float32)
    what = f"{dtype.name} token ids" if tokens else "float32"
    who, whose = ("the model", "the model's input") if only else ((f"input {spec.name}",) * 2)
    if x.dtype != dtype:
        raise BridgeError(
            f"{where}: dtype {x.dtype}, {who} takes {what} "
            f"(cast with x.astype('{np.dtype(dtype).name}'))"
        )
    want = ", ".join(str(d) if d is not None else "*" for d in spec.shape)
    fits = x.ndim == len(spec.shape) + 1 and all(
        d is None or d == s for d, s in zip(spec.shape, x.shape[1:], strict=True)
    )
    if not fits:
        raise BridgeError(f"{where}: shape {list(x.shape)} does not fit {whose} [N, {want}]")
    if x.shape[0] == 0:
        raise BridgeError(f"{where}: empty (0 samples)")
    if tokens:
        bad = (x < spec.low) | (x >= spec.high)
        said = f"token ids outside [{spec.low:g}, {spec.high:g})"
    elif not allow_nonfinite:
        bad = ~np.isfinite(x)
        said = "NaN/Inf values"
    else:
        return x
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        if tokens:
            said += f" (first {int(x[first])} at {list(first)})"
        else:
            said += f" (first at {list(first)}); pass --allow-nonfinite to run them anyway"
        raise BridgeError(f"{where}: {int(bad.sum())} {said}")
    return x


def load_inputs(path: Path, signature: Signature, allow_nonfinite: bool = False) -> list:
    """A .npy (one-input models) or an .npz of arrays named by input name:
    one checked array per input, in the signature's order, all with the same
    number of samples. A missing, extra, mistyped or out-of-range array is a
    one-line error."""
    if path.suffix != ".npz":
        if len(signature.inputs) != 1:
            raise BridgeError(
                f"{path}: the model has {len(signature.inputs)} inputs "
                f"({', '.join(signature.names)}): give an .npz with one array per input"
            )
        return [check_for(read_npy_checked(path), str(path), signature.inputs[0], allow_nonfinite)]
    if not path.exists():
        raise BridgeError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError) as exc:
        raise BridgeError(f"{path}: not a readable .npz file ({exc})") from None
    names = signature.names
    missing = [n for n in names if n not in arrays]
    extra = sorted(set(arrays) - set(names))
    if missing or extra:
        said = [f"no array for {', '.join(missing)}"] if missing else []
        said += [f"arrays the model has no input for: {', '.join(extra)}"] if extra else []
        raise BridgeError(f"{path}: {'; '.join(said)} (the model's inputs: {', '.join(names)})")
    only = len(signature.inputs) == 1
    xs = [
        check_for(arrays[spec.name], f"{path}[{spec.name}]", spec, allow_nonfinite, only)
        for spec in signature.inputs
    ]
    counts = {len(x) for x in xs}
    if len(counts) > 1:
        raise BridgeError(f"{path}: the arrays hold different numbers of samples {sorted(counts)}")
    return xs
