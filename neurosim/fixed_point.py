"""Fixed-point arithmetic of the hardware model (DESIGN §4): β as shifts, rounding, overflow.

Everything the core computes is an integer of ``state_bits`` bits. The rules, shared by
the dense numpy reference and the numba core (which must agree bit for bit):

* **β as shifts.** β is written as a sum of signed powers of two, ``β = Σ sᵢ·2^kᵢ``
  (the canonical signed-digit form, or plain binary when that is no longer, so β=1.5
  is ``u + (u>>1)`` and β=1.75 is ``(u<<1) − (u>>2)``). Amplifying ``u`` adds the terms
  ``u << k`` (k ≥ 0) or ``shift_right(u, −k)`` (k < 0) at full width; the sum is then
  fitted to the state width once.
* **Right shifts round** by the profile's ``round``: ``floor`` is the arithmetic shift,
  ``nearest`` adds half an LSB first (round half up).
* **Overflow** is never silent: a value outside ``[−2^(b−1), 2^(b−1) − 1]`` is saturated
  or wrapped (profile ``overflow``) and counted.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from .errors import UserError

MAX_CSD_TERMS = 4  # longer sums are not "short"; a profile's max_beta_terms may be lower


def csd_terms(value: float, max_terms: int = MAX_CSD_TERMS) -> tuple[tuple[int, int], ...] | None:
    """β as the fewest signed powers of two: ((sign, exponent), ...), most significant first,
    with value == Σ sign·2**exponent exactly; None if it needs more than ``max_terms`` terms.

    The canonical signed-digit form (non-adjacent form) has the fewest non-zero digits of all
    signed-digit forms, so "no CSD form with ≤ max_terms terms" means "not a short sum of
    signed powers of two". When plain binary needs no more terms, it is used instead (β=1.5 is
    1 + 0.5, i.e. ``u + (u >> 1)`` as in DESIGN §4, rather than 2 − 0.5): only additions.
    """
    frac = Fraction(value)  # exact: a float is a dyadic rational
    lowest = -(frac.denominator.bit_length() - 1)
    n = frac.numerator
    if n <= 0:
        return None
    binary = [(1, lowest + i) for i in range(n.bit_length()) if n >> i & 1]
    signed, exponent = [], lowest
    while n:
        if n & 1:
            digit = 2 - (n & 3)  # +1 or −1, chosen so that the next digit is 0
            signed.append((digit, exponent))
            n -= digit
        n >>= 1
        exponent += 1
    terms = binary if len(binary) <= len(signed) else signed
    if len(terms) > max_terms:
        return None
    return tuple(reversed(terms))


def require_terms(beta: float, max_terms: int, what: str = "the limit") -> tuple[tuple[int, int], ...]:
    """``csd_terms`` or a UserError saying why β cannot be amplified with shift-adds."""
    terms = csd_terms(beta, MAX_CSD_TERMS)
    if terms is None:
        raise UserError(f"beta={beta!r} is not a sum of at most {MAX_CSD_TERMS} signed powers of "
                        f"two; expected e.g. 2, 1.5, 1.25 or 1.75")
    if len(terms) > max_terms:
        raise UserError(f"beta={beta} needs {len(terms)} shift-add terms ({describe_terms(terms)}), "
                        f"but {what} is {max_terms}")
    return terms


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
