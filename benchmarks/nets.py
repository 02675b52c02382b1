"""Generated networks for the benchmarks: neurosim Graphs with random He-initialised weights.

They stand in for trained 3×32×32 networks of realistic size (the bundled models are 8×8
digits); only the work per image matters to the benchmark, not what the weights compute.
Shapes are per sample (no batch dimension), layout NCHW, as the ONNX importer produces them.
"""

from __future__ import annotations

import numpy as np

from neurosim.graph import Add, AvgPool, Conv, Dense, Graph, Input, Relu, Reshape


def vgg32(seed: int = 0) -> Graph:
    """conv16-conv16-pool-conv32-conv32-pool-conv64-pool-fc10 on 3×32×32, He init."""
    rng = np.random.default_rng(seed)
    nodes = {"x": Input("x", (), (3, 32, 32))}
    c, hw, last, k = 3, 32, "x", 0

    def conv(cout):
        nonlocal c, last, k
        k += 1
        w = rng.normal(0, np.sqrt(2 / (9 * c)), (cout, c, 3, 3))
        nodes[f"conv{k}"] = Conv(f"conv{k}", (last,), (cout, hw, hw), weight=w,
                                 bias=rng.normal(0, 0.05, cout), pads=(1, 1, 1, 1))
        nodes[f"relu{k}"] = Relu(f"relu{k}", (f"conv{k}",), (cout, hw, hw))
        c, last = cout, f"relu{k}"

    def pool():
        nonlocal hw, last
        hw //= 2
        nodes[f"pool{k}"] = AvgPool(f"pool{k}", (last,), (c, hw, hw), kernel=(2, 2), stride=(2, 2))
        last = f"pool{k}"

    for step in (16, 16, "p", 32, 32, "p", 64, "p"):
        pool() if step == "p" else conv(step)
    nodes["flat"] = Reshape("flat", (last,), (c * hw * hw,))
    nodes["fc"] = Dense("fc", ("flat",), (10,), weight=rng.normal(0, np.sqrt(1 / (c * hw * hw)),
                                                                   (10, c * hw * hw)),
                        bias=np.zeros(10))
    return Graph("vgg32", "(generated)", nodes, "x", "fc")


def resnet32(seed: int = 0) -> Graph:
    """A ResNet-style network on 3×32×32 with 212,992 hidden neurons, He init.

    stem conv3×3 3→32 at 32×32; two residual blocks at 32×32 (conv-relu-conv, identity
    shortcut, Add, relu); conv3×3 stride 2 to 64 channels at 16×16; one residual block at
    16×16; AvgPool 2×2 stride 2; flatten; Dense to 10. ("32" is the input size, as in vgg32.)
    Every conv is followed by a ReLU or an Add-then-ReLU, so each Add is the pre-activation
    of one hidden population with two incoming projections (conv and identity).
    """
    rng = np.random.default_rng(seed)
    nodes = {"x": Input("x", (), (3, 32, 32))}
    count = {"conv": 0, "relu": 0, "add": 0}

    def name(op: str) -> str:
        count[op] += 1
        return f"{op}{count[op]}"

    def conv(src: str, cout: int, stride: int = 1) -> str:
        cin, h, w = nodes[src].shape
        n = name("conv")
        weight = rng.normal(0, np.sqrt(2 / (9 * cin)), (cout, cin, 3, 3))  # He: fan-in 9·cin
        nodes[n] = Conv(n, (src,), (cout, (h - 1) // stride + 1, (w - 1) // stride + 1),
                        weight=weight, bias=rng.normal(0, 0.05, cout), stride=(stride, stride),
                        pads=(1, 1, 1, 1))
        return n

    def relu(src: str) -> str:
        n = name("relu")
        nodes[n] = Relu(n, (src,), nodes[src].shape)
        return n

    def block(src: str) -> str:
        """relu(conv(relu(conv(src))) + src): the identity-shortcut residual block."""
        c = nodes[src].shape[0]
        inner = conv(relu(conv(src, c)), c)
        n = name("add")
        nodes[n] = Add(n, (inner, src), nodes[src].shape)
        return relu(n)

    last = relu(conv("x", 32))
    last = block(block(last))
    last = block(relu(conv(last, 64, stride=2)))
    c, h, w = nodes[last].shape
    nodes["pool"] = AvgPool("pool", (last,), (c, h // 2, w // 2), kernel=(2, 2), stride=(2, 2))
    features = c * (h // 2) * (w // 2)
    nodes["flat"] = Reshape("flat", ("pool",), (features,))
    nodes["fc"] = Dense("fc", ("flat",), (10,),
                        weight=rng.normal(0, np.sqrt(1 / features), (10, features)),
                        bias=rng.normal(0, 0.05, 10))
    return Graph("resnet32", "(generated)", nodes, "x", "fc")
