"""Planted submissions of a2-conv-backprop, made from the released notebook.

Each variant fills the solution cells (grade ids ``numerical_gradient``,
``conv2d_backward``, ``gradient_check``, ``answer_transpose``). ``EXPECTED``
gives the autograded score (out of ``FULL``) and status.
"""
from __future__ import annotations

from ._writer import writers


ASSIGNMENT = "a2-conv-backprop"

NUMERICAL = '''
def numerical_gradient(f, x, eps=1e-6):
    """Centred differences."""
    g = np.zeros(x.shape)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f(x)
        x[i] = old - eps
        fm = f(x)
        x[i] = old
        g[i] = (float(np.sum(fp)) - float(np.sum(fm))) / (2 * eps)
    return g
'''
# one-sided difference: error of order eps instead of eps**2
NUMERICAL_FORWARD = '''
def numerical_gradient(f, x, eps=1e-6):
    """Forward differences."""
    g = np.zeros(x.shape)
    f0 = float(np.sum(f(x)))
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        g[i] = (float(np.sum(f(x))) - f0) / eps
        x[i] = old
    return g
'''
# forgets to put the entry back
NUMERICAL_NO_RESTORE = '''
def numerical_gradient(f, x, eps=1e-6):
    """Leaves x perturbed."""
    g = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        x[i] += eps
        fp = float(np.sum(f(x)))
        x[i] -= 2 * eps
        fm = float(np.sum(f(x)))
        g[i] = (fp - fm) / (2 * eps)
    return g
'''

# straightforward loops over every output position
BACKWARD_LOOPS = '''
def conv2d_backward(dy, x, w, stride=1, padding=0):
    """Loops."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    _, _, HO, WO = dy.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for n in range(N):
        for f in range(F):
            for i in range(HO):
                for j in range(WO):
                    r, c = i * stride, j * stride
                    dw[f] += dy[n, f, i, j] * xp[n, :, r:r + KH, c:c + KW]
                    dxp[n, :, r:r + KH, c:c + KW] += dy[n, f, i, j] * w[f]
    db = dy.sum(axis=(0, 2, 3))
    return dxp[:, :, padding:padding + H, padding:padding + W], dw, db
'''

# loop over kernel offsets, vectorised over the rest
BACKWARD_OFFSETS = '''
def conv2d_backward(dy, x, w, stride=1, padding=0):
    """Offsets."""
    F, C, KH, KW = w.shape
    HO, WO = dy.shape[2:]
    H, W = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp = np.zeros(xp.shape, dtype=np.result_type(x, w, dy))
    dw = np.zeros(w.shape, dtype=dxp.dtype)
    for u in range(KH):
        for v in range(KW):
            rs = slice(u, u + stride * (HO - 1) + 1, stride)
            cs = slice(v, v + stride * (WO - 1) + 1, stride)
            dw[:, :, u, v] = np.tensordot(dy, xp[:, :, rs, cs], axes=([0, 2, 3], [0, 2, 3]))
            dxp[:, :, rs, cs] += np.einsum("nfij,fc->ncij", dy, w[:, :, u, v])
    return dxp[:, :, padding:padding + H, padding:padding + W], dw, dy.sum(axis=(0, 2, 3))
'''
# dx sends dy back through the kernel without rotating it
BACKWARD_FLIPPED = BACKWARD_OFFSETS.replace("w[:, :, u, v])", "w[:, :, KH - 1 - u, KW - 1 - v])")
# windows step by 1 whatever the stride
BACKWARD_NO_STRIDE = (BACKWARD_OFFSETS.replace("u + stride * (HO - 1) + 1, stride", "u + HO")
                      .replace("v + stride * (WO - 1) + 1, stride", "v + WO"))
# overlapping windows overwrite each other's gradient instead of adding up
BACKWARD_OVERWRITE = BACKWARD_LOOPS.replace("dxp[n, :, r:r + KH, c:c + KW] +=", "dxp[n, :, r:r + KH, c:c + KW] =")
# returns the gradient of the padded input
BACKWARD_NO_CROP = BACKWARD_OFFSETS.replace("dxp[:, :, padding:padding + H, padding:padding + W]", "dxp")
# one bias gradient per image
BACKWARD_DB_PER_IMAGE = BACKWARD_OFFSETS.replace("dy.sum(axis=(0, 2, 3))", "dy.sum(axis=(2, 3))")
# the engine's implementation, reached without writing its name
BACKWARD_DISGUISED = '''
import importlib as _il
_engine = _il.import_module("cnn" + "lib.functional")
def conv2d_backward(dy, x, w, stride=1, padding=0):
    """Borrowed."""
    return getattr(_engine, "conv2d_" + "backward")(dy, x, w, stride=stride, padding=padding)
'''

CHECK = '''
dx_chk, dw_chk, db_chk = conv2d_backward(g_chk, x_chk, w_chk, STRIDE_CHK, PADDING_CHK)
def _loss_x(v):
    return np.sum(conv2d(v, w_chk, b_chk, STRIDE_CHK, PADDING_CHK) * g_chk)
def _loss_w(v):
    return np.sum(conv2d(x_chk, v, b_chk, STRIDE_CHK, PADDING_CHK) * g_chk)
def _loss_b(v):
    return np.sum(conv2d(x_chk, w_chk, v, STRIDE_CHK, PADDING_CHK) * g_chk)
err_dx = relative_error(dx_chk, numerical_gradient(_loss_x, x_chk))
err_dw = relative_error(dw_chk, numerical_gradient(_loss_w, w_chk))
err_db = relative_error(db_chk, numerical_gradient(_loss_b, b_chk))
print(err_dx, err_dw, err_db)
'''
# reports made-up numbers
CHECK_FAKE = '''
err_dx = 1e-10
err_dw = 1e-10
err_db = 1e-10
'''
ANSWER = "Each input pixel collects dy[i] w[u] from outputs i = p - u, so the kernel is read backwards."


def _v(backward, numerical=NUMERICAL, check=CHECK):
    return {"numerical_gradient": numerical, "conv2d_backward": backward, "gradient_check": check}


VARIANTS = {
    "correct-loops": _v(BACKWARD_LOOPS),
    "correct-offsets": _v(BACKWARD_OFFSETS),
    "forward-difference": _v(BACKWARD_OFFSETS, numerical=NUMERICAL_FORWARD),
    "no-restore": _v(BACKWARD_OFFSETS, numerical=NUMERICAL_NO_RESTORE),
    "flipped-kernel": _v(BACKWARD_FLIPPED),
    "forgot-stride": _v(BACKWARD_NO_STRIDE),
    "overwrite": _v(BACKWARD_OVERWRITE),
    "no-crop": _v(BACKWARD_NO_CROP),
    "db-per-image": _v(BACKWARD_DB_PER_IMAGE),
    "fake-check": _v(BACKWARD_FLIPPED, check=CHECK_FAKE),
    "disguised-import": _v(BACKWARD_DISGUISED),
    "stub": {},
}

# points: numerical_gradient 1 + 1 hidden; backward shapes 1, by hand 2, hidden db 1, dw 1,
# dx 2, dw stride/padding 2, dx stride/padding 3; gradient check 2 (+ 2 graded by hand)
FULL = 16
DX = 2 + 2 + 3 + 2          # by hand, dx hidden, dx stride/padding hidden, gradient check
EXPECTED = {
    "correct-loops": (FULL, "graded"),
    "correct-offsets": (FULL, "graded"),
    "forward-difference": (FULL - 1, "graded"),     # hidden numerical test (the check's loss is linear: exact)
    "no-restore": (FULL - 2, "graded"),             # both numerical tests
    "flipped-kernel": (FULL - DX, "graded"),
    "forgot-stride": (FULL - 2 - 2 - 3 - 2, "graded"),  # by hand (stride case), strided dw and dx, check
    "overwrite": (FULL - DX, "graded"),
    "no-crop": (FULL - 1 - 2 - 3 - 2, "graded"),    # shapes, by hand (padding case), padded dx, check
    "db-per-image": (FULL - 1 - 2 - 1 - 2, "graded"),   # shapes, by hand, db, check
    "fake-check": (FULL - DX, "graded"),            # the check's numbers need a correct backward pass
    "disguised-import": (2, "graded"),              # only the numerical-gradient tests
    "stub": (0, "graded"),
}


make, make_class = writers(ASSIGNMENT, VARIANTS, "answer_transpose", ANSWER)
