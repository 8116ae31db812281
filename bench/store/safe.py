"""A pickle-free format for checkpoints: plain data as JSON, arrays and tensors as NPZ members.

Loading a checkpoint from a results folder someone else wrote must not run code, so nothing is
unpickled: :func:`dumps` writes one NPZ archive holding the tree as JSON (member ``__tree__``)
and every array as a member of its own, and :func:`loads` reads it with ``allow_pickle=False``.

What a tree may hold: None, bools, ints (any size), floats (NaN and infinities included),
strings, bytes, lists, tuples, sets, dicts (keys of those kinds), numpy arrays of numbers or
bools, numpy scalars, torch tensors, and numpy random generators (``Generator`` and the legacy
``RandomState``, stored as their plain state). Anything else raises :class:`UnsafeState` naming
where in the tree it sits, so an optimizer author learns at once what to change.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np

_TREE = "__tree__"
_TAG = "$"  # every non-JSON value is a one-key dict {"$kind": payload}


class UnsafeState(TypeError):
    """A checkpoint tree holds a value the safe format does not store."""


class _Writer:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, value: np.ndarray, where: str) -> str:
        if value.dtype.kind not in "biufc" or value.dtype.hasobject:
            raise UnsafeState(f"{where} is a numpy array of dtype {value.dtype}; only numeric and bool arrays "
                              "can be stored safely")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.require(value, requirements="C")  # keeps 0-d arrays 0-d
        return key

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return value if np.isfinite(value) else {_TAG + "float": repr(value)}
        if isinstance(value, (bytes, bytearray)):
            return {_TAG + "bytes": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {_TAG + "tuple": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, (set, frozenset)):
            return {_TAG + "set": [self.encode(v, f"{where}{{}}") for v in sorted(value, key=repr)]}
        if isinstance(value, dict):
            return {_TAG + "dict": [[self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                                    for k, v in value.items()]}
        return self.encode_special(value, where)

    def encode_special(self, value: Any, where: str) -> Any:
        if isinstance(value, np.ndarray):
            return {_TAG + "array": self.array(value, where)}
        if isinstance(value, np.generic):
            return {_TAG + "scalar": self.array(np.asarray(value), where)}
        if isinstance(value, np.random.Generator):
            bit_generator = value.bit_generator
            return {_TAG + "generator": [type(bit_generator).__name__,
                                         self.encode(bit_generator.state, f"{where}.state")]}
        if isinstance(value, np.random.RandomState):
            return {_TAG + "randomstate": self.encode(value.get_state(legacy=False), f"{where}.state")}
        if type(value).__module__.split(".")[0] == "torch" and type(value).__name__ in ("Tensor", "Parameter"):
            tensor = value.detach().cpu()
            dtype = str(tensor.dtype).removeprefix("torch.")
            if dtype == "bfloat16":
                tensor = tensor.float()
            return {_TAG + "tensor": [self.array(tensor.numpy(), where), dtype]}
        raise UnsafeState(f"{where} holds a {type(value).__module__}.{type(value).__qualname__}, which a checkpoint "
                          "cannot store safely; keep only numbers, strings, lists, dicts, numpy arrays and random "
                          "generators in the state (override state_dict/load_state_dict to convert)")


def dumps(tree: Any, what: str = "state") -> bytes:
    """The NPZ bytes of ``tree``; :class:`UnsafeState` if it holds anything but plain data."""
    writer = _Writer()
    encoded = writer.encode(tree, what)
    text = json.dumps(encoded, separators=(",", ":"), allow_nan=False)
    buffer = io.BytesIO()
    np.savez(buffer, **{_TREE: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}, **writer.arrays)
    return buffer.getvalue()


class _Reader:
    def __init__(self, arrays: Any) -> None:
        self.arrays = arrays

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            raise ValueError("malformed tree node")
        (tag, payload), = value.items()
        if tag == _TAG + "float":
            return float(payload)
        if tag == _TAG + "bytes":
            return base64.b64decode(payload)
        if tag == _TAG + "tuple":
            return tuple(self.decode(v) for v in payload)
        if tag == _TAG + "set":
            return {self.decode(v) for v in payload}
        if tag == _TAG + "dict":
            return {_hashable(self.decode(k)): self.decode(v) for k, v in payload}
        return self.decode_special(tag, payload)

    def decode_special(self, tag: str, payload: Any) -> Any:
        if tag == _TAG + "array":
            return self.arrays[payload].copy()
        if tag == _TAG + "scalar":
            return self.arrays[payload][()]
        if tag == _TAG + "generator":
            name, state = payload
            if name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
                raise ValueError(f"unknown bit generator {name!r}")
            generator = np.random.Generator(getattr(np.random, name)())
            generator.bit_generator.state = self.decode(state)
            return generator
        if tag == _TAG + "randomstate":
            random_state = np.random.RandomState()
            random_state.set_state(self.decode(payload))
            return random_state
        if tag == _TAG + "tensor":
            import torch

            key, dtype = payload
            tensor = torch.from_numpy(self.arrays[key].copy())
            return tensor.to(getattr(torch, dtype)) if dtype == "bfloat16" else tensor
        raise ValueError(f"unknown tag {tag!r}")


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def loads(data: bytes) -> Any:
    """The tree stored by :func:`dumps`; never unpickles. :class:`ValueError` if ``data`` is damaged."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # noqa: BLE001 - zipfile/numpy raise many types for damaged archives
        raise ValueError(f"not a readable checkpoint archive ({type(exc).__name__}: {exc})") from None
    if _TREE not in arrays:
        raise ValueError("not a checkpoint archive (no tree)")
    try:
        tree = json.loads(arrays.pop(_TREE).tobytes().decode("utf-8"))
        return _Reader(arrays).decode(tree)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"damaged checkpoint tree ({type(exc).__name__}: {exc})") from None
