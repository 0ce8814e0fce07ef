"""Checking input tensors that users hand us as .npy files, before anything
runs: one clear error naming the file, and no allocation a header asks for
until the file is known to hold it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import BridgeError

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
    x: np.ndarray, path: Path, input_shape: tuple, allow_nonfinite: bool = False
) -> np.ndarray:
    """The model's input contract: float32, [N, *input_shape] with N >= 1,
    finite unless allowed (then NaN and ±Inf pass through bit for bit)."""
    want = ", ".join(str(d) if d is not None else "*" for d in input_shape)
    if x.dtype != np.float32:
        raise BridgeError(
            f"{path}: dtype {x.dtype}, the model takes float32 (cast with x.astype('float32'))"
        )
    fits = x.ndim == len(input_shape) + 1 and all(
        d is None or d == s for d, s in zip(input_shape, x.shape[1:], strict=True)
    )
    if not fits:
        raise BridgeError(
            f"{path}: shape {list(x.shape)} does not fit the model's input [N, {want}]"
        )
    if x.shape[0] == 0:
        raise BridgeError(f"{path}: empty (0 samples)")
    if not allow_nonfinite:
        bad = ~np.isfinite(x)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise BridgeError(
                f"{path}: {int(bad.sum())} NaN/Inf values (first at {list(first)}); "
                "pass --allow-nonfinite to run them anyway"
            )
    return x


def load_input(path: Path, input_shape: tuple, allow_nonfinite: bool = False) -> np.ndarray:
    return check_input(read_npy_checked(path), path, input_shape, allow_nonfinite)
