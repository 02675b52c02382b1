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


def shown_name(ds: Dataset) -> str:
    """How a message names a dataset: a bundled split as the option spells it
    ('digits:calibration'), not this machine's install path; a user's file as its path."""
    return ds.name.replace("/", ":") if ds.path == str(DIGITS_PATH) else ds.path


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
        return Dataset(ds.name, ds.path, check_images(Path(spec), ds.x, input_shape), ds.y)
    if ds.x.shape[1:] != tuple(input_shape):
        raise UserError(f"--data {spec or 'digits'}: the bundled digits images have "
                        f"shape {ds.x.shape[1:]}, but the model expects {tuple(input_shape)}; pass "
                        f"--data PATH.npz with {NPZ_CONTENT}")
    return ds


def check_labels(ds: Dataset, classes: int) -> None:
    """Labels must name one of the model's ``classes`` outputs (else accuracy is meaningless)."""
    bad = (ds.y < 0) | (ds.y >= classes)
    if np.any(bad):
        raise UserError(f"{shown_name(ds)}: labels must be in [0, {classes}) for a model with {classes} "
                        f"outputs; found {int(bad.sum())} outside, e.g. {int(ds.y[bad][0])}")


def load_calibration(spec: str | None, input_shape: tuple[int, ...]) -> Dataset:
    """Calibration images: ``spec`` as for ``load_data``; by default the digits calibration
    split, which only fits 1×8×8 models — any other model must be given ``--calib``."""
    if spec is None:
        if tuple(input_shape) != (1, 8, 8):
            raise UserError(f"the model takes inputs of shape {tuple(input_shape)}, so the bundled "
                            f"digits calibration split does not fit; pass --calib PATH.npz with "
                            f"array x of calibration images (array y may be labels or absent)")
        return digits("calibration")
    if spec == "digits" or spec.startswith("digits:"):
        ds = digits(spec.split(":", 1)[1] if ":" in spec else "calibration")
        if ds.x.shape[1:] != tuple(input_shape):
            raise UserError(f"--calib {spec}: the bundled digits images have shape "
                            f"{ds.x.shape[1:]}, but the model takes {tuple(input_shape)}; pass "
                            f"--calib PATH.npz with array x of calibration images")
        return ds
    path = Path(spec)
    arrays = _read_npz(path, ("x",), "calibration file", "array x of calibration images "
                       "(N, *input shape); array y may be labels or absent")
    return calibration_set(path.stem, str(path), arrays["x"], input_shape)


def calibration_set(name: str, where: str, x: np.ndarray, input_shape) -> Dataset:
    """Calibration images ``x`` checked for the model (``check_images``, not all zero) as a
    Dataset without labels (−1); ``where`` names them in messages."""
    x = check_images(where, x, input_shape)
    if not np.any(x):
        raise UserError(f"{where}: the calibration images in array 'x' are all zero: no "
                        f"activation scale can be measured on them; expected images like the "
                        f"test data")
    return Dataset(name, where, x, np.full(len(x), -1, np.int64))


NPZ_CONTENT = "arrays x (N, *input shape, numbers) and y (N,) integer labels"
MAX_ABS_INPUT = 1e6  # larger inputs overflow float64 products deep in a network


def _read_npz(path: Path, keys: tuple[str, ...], what: str, content: str) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of an .npz archive, numeric, no pickles; UserErrors that say what the
    file must hold otherwise."""
    if path.is_dir():
        raise UserError(f"{path}: is a directory; expected a {what} (.npz with {content})")
    if not path.is_file():
        raise UserError(f"{path}: {what} not found (expected an .npz with {content})")
    with open(path, "rb") as fh:
        head = fh.read(64)
    if not head.startswith((b"PK", b"\x93NUMPY")):  # neither a zip (.npz) nor an .npy
        raise UserError(f"{path}: is {_describe_bytes(head)}, not an .npz archive; expected an "
                        f".npz (numpy.savez) with {content}")
    try:
        f = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UserError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc}); "
                        f"expected an .npz (numpy.savez) with {content}") from None
    if not hasattr(f, "files"):
        raise UserError(f"{path}: holds a single array (.npy); expected an .npz (numpy.savez) "
                        f"with {content}")
    with f:
        missing = [k for k in keys if k not in f.files]
        if missing:
            raise UserError(f"{path}: missing array(s) {missing} (found {f.files}); expected "
                            f"{content}")
        out = {}
        for k in keys:
            try:
                a = f[k]
            except ValueError:  # an object array: refused rather than unpickled
                raise UserError(f"{path}: array '{k}' holds Python objects; expected numbers "
                                f"({content})") from None
            if a.dtype.kind not in "fiub":
                raise UserError(f"{path}: array '{k}' has dtype {a.dtype}; expected numbers")
            out[k] = a
    return out


def _describe_bytes(head: bytes) -> str:
    """What a file that is not an .npz looks like from its first bytes, for the message."""
    if not head:
        return "empty"
    if head[:1] == b"\x80":  # the protocol opcode every pickle since protocol 2 starts with
        return "a Python pickle (not loaded: unpickling can run code)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file"
    first = text.splitlines()[0][:30] if text.strip() else ""
    return f"a text file (starting {first!r}; a CSV?)"


def _shape_hint(shape: tuple[int, ...], input_shape: tuple[int, ...]) -> str:
    """What a wrongly shaped x most likely is, and the numpy call that fixes it."""
    want = tuple(input_shape)
    if len(want) == 3 and shape == (want[1], want[2], want[0]):
        return "; it looks channels-last (N, H, W, C): use x.transpose(0, 3, 1, 2)"
    if len(want) == 3 and want[0] == 1 and shape == want[1:]:
        return "; it lacks the channel axis: use x[:, None]"
    if shape and int(np.prod(shape)) == int(np.prod(want)):
        return f"; the sizes agree: use x.reshape(-1, {', '.join(map(str, want))})"
    return ""


def check_images(path, x: np.ndarray, input_shape) -> np.ndarray:
    """Images ``x`` for a model taking ``input_shape`` as float64, or a UserError naming
    ``path`` (a file, or what names arrays given in memory) with what is wrong."""
    if x.ndim >= 1 and len(x) == 0 and x.shape[1:] == tuple(input_shape):
        raise UserError(f"{path}: array 'x' holds no images (shape {x.shape}); expected x of "
                        f"shape (N, {', '.join(map(str, input_shape))}) with N > 0")
    if x.ndim < 1 or x.shape[1:] != tuple(input_shape) or len(x) == 0:
        raise UserError(f"{path}: array 'x' has shape {x.shape} (images of shape {x.shape[1:]}), "
                        f"but the model takes images of shape {tuple(input_shape)}: expected x "
                        f"of shape (N, {', '.join(map(str, input_shape))}) with N > 0"
                        + (_shape_hint(x.shape[1:], input_shape) if x.ndim >= 1 and len(x) else ""))
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise UserError(f"{path}: array 'x' contains NaN or Inf")
    if np.abs(x).max() > MAX_ABS_INPUT:
        raise UserError(f"{path}: array 'x' holds values up to {np.abs(x).max():.3g}; expected "
                        f"inputs scaled as the model was trained (|x| ≤ {MAX_ABS_INPUT:g})")
    return x


SCALE_MISMATCH = 10.0  # test and calibration inputs whose largest values differ more than this


SCALE_NOTE = 1.5  # ... and from this factor on, a loss of accuracy names the difference


def scale_note(data: Dataset, calib: Dataset) -> str:
    """'' or a sentence for a conversion-loss warning when the test images' largest |value|
    is SCALE_NOTE times the calibration images' or more (or less by as much): under
    SCALE_MISMATCH they are not refused, but the activation scales come from the
    calibration images, and a probe's calibration set at 0.3× cost 68 points with a warning
    that blamed the coding alone."""
    if not len(data) or not len(calib):
        return ""
    a, b = float(np.abs(data.x).max()), float(np.abs(calib.x).max())
    if a == 0.0 or b == 0.0 or 1 / SCALE_NOTE < a / b < SCALE_NOTE:
        return ""
    return (f"the test images' largest |value| is {a / b:.2g}× the calibration images' "
            f"({a:.3g} against {b:.3g}): the activation scales come from the calibration "
            f"images, so if they are not like the test data that alone can lose accuracy")


def check_scale(data: Dataset, calib: Dataset, data_opt: str = "--data",
                calib_opt: str = "--calib") -> None:
    """Test and calibration images must be scaled alike: λ of the input (the calibration's
    largest pixel) sets the encoders' range, so test images 0..255 against calibration images
    0..1 saturate every input, and the run would report a silently degenerate accuracy."""
    if not len(data) or not len(calib):
        return
    a, b = float(np.abs(data.x).max()), float(np.abs(calib.x).max())
    if a == 0.0:  # all-zero test images have no scale to mismatch (an all-zero calibration
        return    # set is refused by calibrate: it measures nothing)

    def rng(x):
        return f"{x.min():.3g}..{x.max():.3g}"

    where = (f"{data_opt} {shown_name(data)} holds inputs in {rng(data.x)} but {calib_opt} "
             f"{shown_name(calib)} in ")
    if a > SCALE_MISMATCH * b or b > SCALE_MISMATCH * a:
        # images kept as uint8 (0..255) beside images scaled to 0..1: the commonest slip
        hint = (" (uint8 0..255 against 0..1? divide by 255)"
                if 100 <= max(a, b) <= 255 and min(a, b) <= 1.0 else "")
        raise UserError(f"{where}{rng(calib.x)}: the two are scaled differently{hint}; "
                        f"expected both scaled as the model was trained")
    # one set all ≥ 0, the other all ≤ 0: a sign flip, which no calibration can absorb
    if a > 0 and b > 0 and ((data.x.max() <= 0 <= calib.x.min())
                            or (calib.x.max() <= 0 <= data.x.min())):
        raise UserError(f"{where}{rng(calib.x)}: one is never negative and the other never "
                        f"positive (inverted or differently normalised?); expected both scaled "
                        f"as the model was trained")


def check_label_array(y: np.ndarray, n: int, where: str) -> np.ndarray:
    """Labels ``y`` for ``n`` images as (n,) int64 class labels, or a UserError naming
    ``where`` that says what is wrong (one-hot, a column, fractions, another length)."""
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:
        onehot = np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)
        raise UserError(f"{where}: array 'y' has shape {y.shape}; expected ({n},) integer class "
                        f"labels" + ("; it looks one-hot: use y.argmax(1)" if onehot else ""))
    if y.ndim == 2 and y.shape == (n, 1):
        raise UserError(f"{where}: array 'y' has shape {y.shape}; expected ({n},) integer class "
                        f"labels: use y.ravel()")
    if y.dtype.kind in "iuf" and y.size and np.all(np.isfinite(y)):
        # a class index past 2^31 fits no model; shown as stored, before a cast wraps it
        # (a probe's 2^64 − 1 was reported as -1, a float 1e20 with a numpy warning)
        huge = np.abs(y.astype(np.float64)) >= 2.0 ** 31
        if np.any(huge):
            raise UserError(f"{where}: array 'y' holds {int(huge.sum())} label(s) too large to "
                            f"be a class index, e.g. {y[huge].reshape(-1)[0]}; expected integer "
                            f"class labels 0, 1, ...")
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)  # whole numbers stored as floats (e.g. saved from a torch tensor)
    if y.dtype.kind not in "iu":
        frac = y.dtype.kind == "f" and np.all(np.isfinite(y))
        raise UserError(f"{where}: array 'y' has dtype {y.dtype}; expected integer class labels"
                        + ("; found values that are not whole numbers, e.g. "
                           f"{y[y != np.round(y)].reshape(-1)[0]:g}" if frac else ""))
    if y.ndim != 1 or len(y) != n:
        raise UserError(f"{where}: expected 'y' of shape ({n},), found {y.shape}")
    return y.astype(np.int64)


def _load_npz(path: Path) -> Dataset:
    arrays = _read_npz(path, ("x", "y"), "data file", NPZ_CONTENT)
    if arrays["x"].ndim == 0:
        raise UserError(f"{path}: array 'x' has shape () (a single number); expected {NPZ_CONTENT}")
    y = check_label_array(arrays["y"], len(arrays["x"]), str(path))
    return Dataset(path.stem, str(path), arrays["x"], y)
