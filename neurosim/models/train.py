"""Regenerate the bundled digits data and models.

    pip install -e '.[train]'
    python -m neurosim.models.train            # data (if missing) + all three models
    python -m neurosim.models.train --data-only

Trains ``digits_mlp``, ``digits_cnn`` (LeNet-like, AveragePool) and
``digits_resnet`` (8 conv layers: identity and 1x1-projection shortcuts, with
BatchNorm) on the train split with torch (seeded, CPU), exports them to ONNX and
records in ``manifest.json`` each model's test accuracy as measured by
neurosim's own importer and executor on the bundled test split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .. import data as nsdata

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"


def make_digits_npz() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.uint8)
    labels = d.target.astype(np.uint8)
    split = nsdata.stratified_split(labels, seed=0)
    nsdata.DIGITS_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(nsdata.DIGITS_PATH, images=images, labels=labels, split=split)
    print(f"wrote {nsdata.DIGITS_PATH}: {len(labels)} images, split sizes {np.bincount(split)}")


class Block(nn.Module):
    """Residual block: conv-BN-ReLU, conv-BN, + shortcut (identity or 1x1 conv-BN), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.b2(self.c2(self.relu(self.b1(self.c1(x)))))
        return self.relu(y + (x if self.proj is None else self.proj(x)))


DESCRIPTIONS = {
    "digits_mlp": "MLP 64-128-64-10",
    "digits_cnn": "LeNet-like: conv16-avgpool-conv32-avgpool-fc64-fc10",
    "digits_resnet": "ResNet: stem conv + 3 residual blocks (identity, 1x1 projection, identity), "
                     "8 conv layers with BatchNorm, global average pool, fc10",
}


def build(name: str) -> nn.Module:
    if name == "digits_mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1),
                             nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    if name == "digits_cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),      # 16x4x4
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),     # 32x2x2
            nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    if name == "digits_resnet":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            Block(16, 16, 1), Block(16, 32, 2), Block(32, 32, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    raise KeyError(name)


def train(name: str, epochs: int = 100, seed: int = 0):
    torch.manual_seed(seed)
    tr = nsdata.digits("train")
    x = torch.tensor(tr.x, dtype=torch.float32)
    y = torch.tensor(tr.y)
    model = build(name)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def export(model, path: Path) -> None:
    """The export recipe the README recommends for user models."""

    dummy = torch.zeros(1, 1, 8, 8)
    torch.onnx.export(model, dummy, str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13,
                      dynamo=False)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-only", action="store_true", help="only rewrite digits.npz")
    ap.add_argument("--models", nargs="*", default=["digits_mlp", "digits_cnn", "digits_resnet"])
    ap.add_argument("--epochs", type=int, default=100)
    args = ap.parse_args(argv)
    if args.data_only or not nsdata.DIGITS_PATH.exists():
        make_digits_npz()
        if args.data_only:
            return
    from ..ann import accuracy
    from ..onnx_import import load_onnx

    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    test = nsdata.digits("test")
    for name in args.models:
        model = train(name, args.epochs)
        path = HERE / f"{name}.onnx"
        export(model, path)
        graph = load_onnx(path, name)
        acc = accuracy(graph, test.x, test.y)
        manifest[name] = {
            "file": path.name,
            "description": DESCRIPTIONS[name],
            "test_accuracy": round(acc, 4),
            "test_images": len(test),
            "parameters": graph.params(),
            "macs": graph.macs(),
            "trained": f"torch, {args.epochs} epochs, Adam, seed 0, train split (1257 images)",
        }
        print(f"{name}: test accuracy {acc:.4f} ({graph.params()} parameters, {graph.macs()} MACs)")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
