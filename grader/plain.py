"""Plain data across the trust boundary: what a student's kernel may hand back.

The kernel (``encode``) writes a value as one ``.npz`` archive: a JSON tree, stored as bytes
under the key ``tree``, whose leaves are None, bools, ints, floats and strings or name arrays
stored beside it.  The trusted side (``decode``) checks the archive's size, reads it with
``np.load(..., allow_pickle=False)`` and rebuilds only built-in types, plain ``ndarray`` s of
numbers, and ``cnnlib.nn`` layers of the grader's own engine filled with those arrays.  No
object of the student's comes back, so no ``__eq__``, ``__float__`` or ``__array_ufunc__`` of
theirs is ever called by the code that scores.
"""
from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np

MAX_BYTES = 48 * 2**20    # an answer larger than this (uncompressed) is refused (base64: 64 MB)
MAX_NODES = 200_000
_NUMBERS = "biufc"         # numpy dtype kinds that may come back: bool, ints, floats, complex


class BadAnswer(ValueError):
    """The kernel's answer is not plain data within the budget."""


class Foreign:
    """Stands for an object of a type that cannot cross the boundary (a subclass per type name,
    so that messages say ``returned MyLayer``)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object>"


# ---------------------------------------------------------------- kernel side
def _is_cnnlib(value, name: str | None = None) -> bool:
    kind = type(value)
    return kind.__module__ == "cnnlib.nn" and (name is None or kind.__name__ == name)


def encode(value) -> bytes:
    """``value`` as an .npz archive of plain data (runs in the student's kernel)."""
    arrays: dict[str, np.ndarray] = {}

    def store(array: np.ndarray) -> str:
        key = f"a{len(arrays)}"
        arrays[key] = np.ascontiguousarray(array.view(np.ndarray))
        return key

    def tree(v, depth=0):
        if depth > 50:
            return {"object": "too deeply nested"}
        if v is None or type(v) in (bool, str):
            return v
        if isinstance(v, int) and not isinstance(v, np.generic):
            return int(v)
        if isinstance(v, float) and not isinstance(v, np.generic):
            return float(v)
        if isinstance(v, np.generic) and v.dtype.kind in _NUMBERS:
            return {"scalar": store(np.asarray(v))}
        if isinstance(v, np.ndarray) and v.dtype.kind in _NUMBERS:
            return {"array": store(v)}
        if isinstance(v, (list, tuple)) and type(v) in (list, tuple):
            return {type(v).__name__: [tree(x, depth + 1) for x in v]}
        if type(v) is dict:
            return {"dict": [[tree(k, depth + 1), tree(x, depth + 1)] for k, x in v.items()]}
        if _is_cnnlib(v, "Parameter"):
            return {"param": tree(v.data, depth + 1)}
        if _is_cnnlib(v) and hasattr(v, "forward"):
            return {"module": type(v).__name__,
                    "attrs": {k: tree(x, depth + 1) for k, x in vars(v).items()}}
        return {"object": type(v).__name__}

    root = tree(value)
    buffer = io.BytesIO()
    np.savez(buffer, tree=np.frombuffer(json.dumps(root).encode(), dtype=np.uint8), **arrays)
    return buffer.getvalue()


# ---------------------------------------------------------------- trusted side
def _foreign(name) -> Foreign:
    name = name if isinstance(name, str) and re.fullmatch(r"[A-Za-z_]\w{0,59}", name) else "object"
    return type(name, (Foreign,), {"__module__": "submission"})()


def decode(data: bytes, nn=None):
    """The value an ``encode`` archive holds, built from plain types only.

    ``nn``: the trusted ``cnnlib.nn`` module that rebuilds layers (None: layers are Foreign)."""
    if len(data) > MAX_BYTES:
        raise BadAnswer(f"the answer is {len(data) / 2**20:.0f} MB, more than {MAX_BYTES // 2**20} MB")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
        if total > MAX_BYTES:
            raise BadAnswer(f"the answer unpacks to {total / 2**20:.0f} MB")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except BadAnswer:
        raise
    except Exception as exc:
        raise BadAnswer(f"the answer is not a readable archive ({type(exc).__name__})") from None
    try:
        root = json.loads(arrays.pop("tree").tobytes().decode())
    except Exception as exc:
        raise BadAnswer(f"the answer has no readable description ({type(exc).__name__})") from None
    count = [0]

    def array(key):
        a = arrays.get(key) if isinstance(key, str) else None
        if type(a) is not np.ndarray or a.dtype.kind not in _NUMBERS or a.dtype.fields:
            raise BadAnswer(f"the answer refers to a missing or non-numeric array {key!r}")
        return a

    def build(node):
        count[0] += 1
        if count[0] > MAX_NODES:
            raise BadAnswer("the answer holds too many values")
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is not dict or len(node) not in (1, 2):
            raise BadAnswer("the answer's description is malformed")
        (kind, body), *_ = node.items()
        if kind in ("list", "tuple") and type(body) is list:
            items = [build(x) for x in body]
            return items if kind == "list" else tuple(items)
        if kind == "dict" and type(body) is list:
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise BadAnswer("the answer's description is malformed")
                key = build(pair[0])
                if type(key) not in (bool, int, float, str, tuple, type(None)):
                    raise BadAnswer("the answer has a dict key that is not a number or string")
                out[key] = build(pair[1])
            return out
        if kind == "array":
            return array(body)
        if kind == "scalar":
            return array(body)[()]
        if kind == "param":
            value = build(body)
            return nn.Parameter(value) if nn is not None and type(value) is np.ndarray else _foreign("Parameter")
        if kind == "module":
            return _module(body, node.get("attrs"))
        if kind == "object":
            return _foreign(body)
        raise BadAnswer(f"the answer's description has an unknown kind {kind!r}")

    def _module(name, attrs):
        cls = getattr(nn, name, None) if nn is not None and isinstance(name, str) else None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == nn.__name__):
            return _foreign(name)
        if type(attrs) is not dict:
            raise BadAnswer("the answer's description is malformed")
        layer = cls.__new__(cls)
        for key, node in attrs.items():
            if not re.fullmatch(r"(?!__)[A-Za-z_]\w{0,40}", key):
                raise BadAnswer(f"the answer names a layer attribute {key!r}")
            layer.__dict__[key] = build(node)
        return layer

    return build(root)
