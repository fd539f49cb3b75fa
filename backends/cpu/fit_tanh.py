"""Fits the coefficients of the CPU backend's tanh (backends/cpu/tanh.c).

tanh(x) = x P(x^2) / Q(x^2) on [0, CLAMP], Q(0) = 1, x clamped to
[-CLAMP, CLAMP]: a rational fit, minimax in the absolute error of tanh,
found by Loeb's linearisation (weights 1 / Q of the previous pass) inside
Lawson's reweighting (weights times the error), in double on a dense grid.
The coefficients are then rounded to float32 and the error is measured
as the C code computes it (the same float32 operations in the same order),
over every float32 in [0, CLAMP] and some beyond, with tanh in double as
the truth. Prints the C table and the error.

    python3 backends/cpu/fit_tanh.py [P_TERMS Q_TERMS]
"""
import sys

import numpy as np

CLAMP = 9.0  # 1 - tanh(9) = 3e-8, under half an ulp of 1
SCALE = CLAMP * CLAMP  # the fit works in u = x^2 / SCALE, in [0, 1]


def fit(n_p, n_q, grid):
    """P with n_p terms, Q with n_q (the first 1), in u; minimax in tanh."""
    x = grid
    u = x * x / SCALE
    t = np.tanh(x)
    up = np.vander(u, n_p, increasing=True)
    uq = np.vander(u, n_q, increasing=True)[:, 1:]
    # x P(u) - t (1 + q.u) = 0, linear in the coefficients
    a = np.hstack([x[:, None] * up, -t[:, None] * uq])
    q_prev = np.ones_like(x)
    lawson = np.ones_like(x) / len(x)
    best = None
    for it in range(400):
        w = np.sqrt(lawson) / q_prev
        c, *_ = np.linalg.lstsq(a * w[:, None], t * w, rcond=None)
        p, q = c[:n_p], np.concatenate([[1.0], c[n_p:]])
        qv = np.polynomial.polynomial.polyval(u, q)
        err = x * np.polynomial.polynomial.polyval(u, p) / qv - t
        m = np.abs(err).max()
        if best is None or m < best[0]:
            best = (m, p, q)
        q_prev = qv
        if it >= 20:  # Loeb first, then Lawson towards equal ripples
            lawson = lawson * np.abs(err)
            lawson /= lawson.sum()
    m, p, q = best
    # back from u to s = x^2
    k = SCALE ** -np.arange(max(n_p, n_q))
    return m, p * k[:n_p], q * k[:n_q]


def evaluate(x, p, q):
    """The C kernel's arithmetic, in float32 (no FMA: the build has none)."""
    x = np.minimum(np.maximum(x, np.float32(-CLAMP)), np.float32(CLAMP))
    s = x * x
    num = np.full_like(x, p[-1])
    for c in p[-2::-1]:
        num = num * s + c
    den = np.full_like(x, q[-1])
    for c in q[-2::-1]:
        den = den * s + c
    return x * num / den


def max_error(p, q):
    """Over every non-negative float32 up to 12 (tanh is odd, and so is the
    fit: the negatives give the same errors), in chunks."""
    top = np.float32(12.0).view(np.uint32)
    worst, at = 0.0, 0.0
    for lo in range(0, int(top) + 1, 1 << 25):
        bits = np.arange(lo, min(lo + (1 << 25), int(top) + 1), dtype=np.uint32)
        x = bits.view(np.float32)
        e = np.abs(evaluate(x, p, q).astype(np.float64) - np.tanh(x.astype(np.float64)))
        i = int(e.argmax())
        if e[i] > worst:
            worst, at = float(e[i]), float(x[i])
    return worst, at


def c_float(v):
    """v as a C float literal that reads back as the same float32."""
    s = f"{float(v):.9g}"
    return s + ("f" if "." in s or "e" in s else ".0f")


def main():
    n_p, n_q = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) == 3 else (5, 5)
    # dense, and denser where the curve bends (Chebyshev points)
    k = np.arange(20000)
    grid = np.unique(np.concatenate([
        CLAMP * (1 - np.cos(np.pi * k / (2 * (len(k) - 1)))),
        np.linspace(0, CLAMP, 20000)]))
    m, p, q = fit(n_p, n_q, grid)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    worst, at = max_error(p32, q32)
    print(f"/* fit in double: {m:.3g}; float32, every float32: {worst:.3g} at {at:.9g} */")
    for name, c in (("p", p32), ("q", q32)):
        print(f"static const float {name}[{len(c)}] = {{"
              + ", ".join(c_float(v) for v in c) + "};")


if __name__ == "__main__":
    main()
