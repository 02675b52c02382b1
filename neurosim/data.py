"""Data sets: the bundled digits set and user ``.npz`` files.

Digits: the 8x8 handwritten digits shipped with scikit-learn (1797 images, 10
classes, pixel values 0..16), copied into ``neurosim/data/digits.npz`` so that
neurosim works offline without scikit-learn. Pixels are scaled to [0, 1] and
shaped (1, 8, 8). The split is fixed and stored in the file itself (array
``split``: 0 = train, 1 = calibration, 2 = test), stratified per class with
numpy seed 0: 1257 train / 180 calibration / 360 test images.
Regenerate with ``python -m neurosim.models.train --data-only``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError

DIGITS_PATH = Path(__file__).resolve().parent / "data" / "digits.npz"
SPLITS = {"train": 0, "calibration": 1, "test": 2}
SPLIT_SIZES = {"train": 1257, "calibration": 180, "test": 360}


@dataclass
class Dataset:
    name: str
    path: str
    x: np.ndarray  # (N, *input_shape) float64
    y: np.ndarray  # (N,) int64 class labels

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int | None) -> "Dataset":
        return self if n is None else Dataset(self.name, self.path, self.x[:n], self.y[:n])


def digits(split: str = "test") -> Dataset:
    if split not in SPLITS:
        raise UserError(f"unknown digits split '{split}'; expected one of {', '.join(SPLITS)}")
    with np.load(DIGITS_PATH) as f:
        mask = f["split"] == SPLITS[split]
        x = f["images"][mask].astype(np.float64)[:, None, :, :] / 16.0
        y = f["labels"][mask].astype(np.int64)
    return Dataset(f"digits/{split}", str(DIGITS_PATH), x, y)


def stratified_split(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """0/1/2 per image (train/calibration/test), SPLIT_SIZES in total, stratified per class.

    Images are sorted by class, shuffled within each class (numpy seed ``seed``);
    evenly spaced positions of that order go to test, then to calibration, so every
    split holds each class in proportion.
    """
    n = len(labels)
    order = np.lexsort((np.random.default_rng(seed).random(n), labels))
    pick = lambda m, k: np.round(np.linspace(0, m - 1, k)).astype(int)  # noqa: E731
    split = np.zeros(n, np.int8)
    test = order[pick(n, SPLIT_SIZES["test"])]
    split[test] = SPLITS["test"]
    rest = order[split[order] == 0]
    split[rest[pick(len(rest), SPLIT_SIZES["calibration"])]] = SPLITS["calibration"]
    return split


def load_data(spec: str | None, input_shape: tuple[int, ...]) -> Dataset:
    """``None``/'digits' -> the bundled test split; 'digits:SPLIT'; or a PATH.npz with x and y."""
    if spec is None or spec == "digits":
        ds = digits("test")
    elif spec.startswith("digits:"):
        ds = digits(spec.split(":", 1)[1])
    else:
        ds = _load_npz(Path(spec))
    if ds.x.shape[1:] != tuple(input_shape):
        raise UserError(f"{ds.path}: array 'x' has per-sample shape {ds.x.shape[1:]}, but the model "
                        f"expects {tuple(input_shape)}")
    return ds


def load_calibration(spec: str | None, input_shape: tuple[int, ...]) -> Dataset:
    """Calibration images: ``spec`` as for ``load_data``; by default the digits calibration
    split, which only fits 1×8×8 models — any other model must be given ``--calib``."""
    if spec is None:
        if tuple(input_shape) != (1, 8, 8):
            raise UserError(f"the model takes inputs of shape {tuple(input_shape)}, so the bundled "
                            f"digits calibration split does not fit; pass --calib PATH.npz with "
                            f"array x of calibration images (array y may be labels or absent)")
        return digits("calibration")
    if spec == "digits" or spec.startswith("digits"):
        return load_data(spec if ":" in spec else "digits:calibration", input_shape)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"{path}: calibration file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f.files:
                raise UserError(f"{path}: expected an array 'x' of calibration images, found {f.files}")
            x = f["x"].astype(np.float64)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: not a readable .npz file: {type(exc).__name__}: {exc}") from None
    if x.shape[1:] != tuple(input_shape) or len(x) == 0:
        raise UserError(f"{path}: array 'x' has shape {x.shape}, expected (N, {', '.join(map(str, input_shape))}) with N > 0")
    if not np.all(np.isfinite(x)):
        raise UserError(f"{path}: array 'x' contains NaN or Inf")
    return Dataset(path.stem, str(path), x, np.full(len(x), -1, np.int64))


def _load_npz(path: Path) -> Dataset:
    if not path.is_file():
        raise UserError(f"{path}: data file not found (expected 'digits' or a PATH.npz with arrays x and y)")
    try:
        f = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UserError(f"{path}: not a readable .npz file: {type(exc).__name__}: {exc}") from None
    if not hasattr(f, "files"):
        raise UserError(f"{path}: expected an .npz archive with arrays 'x' and 'y', found a single array")
    with f:
        missing = [k for k in ("x", "y") if k not in f.files]
        if missing:
            raise UserError(f"{path}: expected arrays 'x' and 'y', missing {missing} (found {f.files})")
        x, y = f["x"], f["y"]
    if x.dtype.kind not in "fiu" or y.dtype.kind not in "iu":
        raise UserError(f"{path}: expected numeric 'x' and integer 'y', found {x.dtype} and {y.dtype}")
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(f"{path}: expected 'y' of shape ({len(x)},), found {y.shape}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise UserError(f"{path}: array 'x' contains NaN or Inf")
    return Dataset(path.stem, str(path), x, y.astype(np.int64))
