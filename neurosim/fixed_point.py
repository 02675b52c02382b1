"""Fixed-point arithmetic of the hardware model (DESIGN §4): β as shifts, rounding, overflow.

Everything the core computes is an integer of ``state_bits`` bits. The rules, shared by
the dense numpy reference and the numba core (which must agree bit for bit):

* **β as shifts.** β is written as a sum of signed powers of two, ``β = Σ sᵢ·2^kᵢ``
  (fewest terms; among equally short forms the one with positive terms, so β=1.5 is
  ``u + (u>>1)`` and β=1.75 is ``(u<<1) − (u>>2)``). Amplifying ``u`` adds the terms
  ``u << k`` (k ≥ 0) or ``shift_right(u, −k)`` (k < 0) at full width; the sum is then
  fitted to the state width once.
* **Right shifts round** by the profile's ``round``: ``floor`` is the arithmetic shift,
  ``nearest`` adds half an LSB first (round half up).
* **Overflow** is never silent: a value outside ``[−2^(b−1), 2^(b−1) − 1]`` is saturated
  or wrapped (profile ``overflow``) and counted.
"""

from __future__ import annotations

import itertools

import numpy as np

from .errors import UserError

MAX_CSD_TERMS = 4
_MIN_EXP, _MAX_EXP = -8, 4


def csd_terms(beta: float, max_terms: int = MAX_CSD_TERMS) -> tuple[tuple[int, int], ...]:
    """β as ((sign, exponent), ...), the shortest exact signed-power-of-two sum.

    Raises UserError when no sum of at most ``max_terms`` terms with exponents in
    [−8, 4] equals β exactly.
    """
    exps = range(_MAX_EXP, _MIN_EXP - 1, -1)
    for n in range(1, max_terms + 1):
        best = None
        for ks in itertools.combinations(exps, n):  # distinct exponents, largest first
            for signs in itertools.product((1, -1), repeat=n):
                if sum(s * 2.0 ** k for s, k in zip(signs, ks)) == beta:
                    cand = tuple(zip(signs, ks))
                    # prefer more positive terms (binary form), then larger exponents
                    key = (sum(s < 0 for s in signs), [-k for k in ks])
                    if best is None or key < best[0]:
                        best = (key, cand)
        if best is not None:
            return best[1]
    raise UserError(f"beta={beta!r} is not a sum of at most {max_terms} signed powers of two "
                    f"(2^{_MIN_EXP} … 2^{_MAX_EXP}); expected e.g. 2, 1.5, 1.25 or 1.75")


def describe_terms(terms) -> str:
    """'u + (u>>1)'-style text of a β decomposition."""
    parts = []
    for s, k in terms:
        t = "u" if k == 0 else (f"(u<<{k})" if k > 0 else f"(u>>{-k})")
        parts.append(("- " if s < 0 else "+ ") + t)
    text = " ".join(parts)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def state_limits(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


# ---- numpy forms (the dense reference) -----------------------------------------------------

def shift_right_np(u: np.ndarray, n: int, nearest: bool) -> np.ndarray:
    if nearest:
        return (u + (1 << (n - 1))) >> n
    return u >> n


def fit_np(u: np.ndarray, bits: int, wrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """(value fitted to ``bits``, per-element overflow flags)."""
    lo, hi = state_limits(bits)
    over = (u < lo) | (u > hi)
    if wrap:
        span = 1 << bits
        fitted = ((u - lo) % span) + lo
    else:
        fitted = np.clip(u, lo, hi)
    return fitted, over


def amplify_np(u: np.ndarray, terms, nearest: bool) -> np.ndarray:
    out = np.zeros_like(u)
    for s, k in terms:
        term = u << k if k > 0 else (u if k == 0 else shift_right_np(u, -k, nearest))
        out = out + term if s > 0 else out - term
    return out


def amplify_cost(terms) -> tuple[int, int]:
    """(shifts, adds) one amplification of one register costs."""
    shifts = sum(1 for _, k in terms if k != 0)
    return shifts, len(terms) - 1
