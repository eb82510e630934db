"""The runtime's array types, for the type checker: what a frame and what an embedding or distance is.

Inputs from callers stay ``np.ndarray`` (any dtype: the runtime validates and converts them, with an
``InputError`` for what it cannot use); what the runtime hands back has the dtype it promises.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

UInt8Array = npt.NDArray[np.uint8]        # frames (BGR [H, W, 3]) and model input batches [N, H, W, 3]
Float32Array = npt.NDArray[np.float32]    # embeddings [n, D], distances [n], anomaly maps [H, W]
