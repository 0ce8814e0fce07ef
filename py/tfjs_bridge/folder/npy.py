"""How tensors cross between Python and Node: binary ``.npy`` files.

``.npy`` stores raw little-endian bytes plus dtype and shape, so every float32
bit pattern (NaN payloads, -0.0, denormals, ±Inf) survives the trip; decimal
text would not. Node reads them with ``npyjs`` and writes them with
``node/lib/io/npy.js``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import BridgeError

SUPPORTED_DTYPES = (np.float32, np.float64, np.int32, np.uint8)


def save_array(path: str | Path, array: np.ndarray) -> Path:
    array = np.ascontiguousarray(array)
    if array.dtype.type not in SUPPORTED_DTYPES:
        raise BridgeError(f"{path}: dtype {array.dtype} cannot cross to Node (use float32)")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, array.astype(array.dtype.newbyteorder("<"), copy=False), allow_pickle=False)
    os.replace(tmp, path)  # a reader never sees half a file, nor a failed run's
    return path


def load_array(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BridgeError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError) as exc:
        raise BridgeError(f"{path}: not a readable .npy file ({exc})") from None
