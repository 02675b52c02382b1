"""ONNX file -> :class:`neurosim.graph.Graph`.

Only the operators a converted SNN can represent are accepted; anything else is
a :class:`UserError` that names the node, its op type and the supported list.
BatchNormalization is folded into the Conv/Gemm before it, a constant Add after
MatMul/Conv becomes its bias, Identity and Dropout are dropped, and a trailing
Softmax is dropped (it does not change the argmax). Shapes are inferred here,
statically, with a free batch dimension.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import UserError
from .graph import Add, AvgPool, Conv, Dense, Graph, Input, MaxPool, Node, Relu, Reshape

# Cast between these is the identity on an activation (the executor computes in float64)
FLOAT_TYPES = (1, 10, 11, 16)  # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16

SUPPORTED_OPS = (
    "Conv", "Gemm", "MatMul", "Add", "Relu", "AveragePool", "GlobalAveragePool",
    "MaxPool", "Flatten", "Reshape", "BatchNormalization", "Identity", "Dropout",
    "Constant", "Softmax", "LogSoftmax", "ReduceMean", "Pad",
    # on static shapes only (folded to constants): the chain PyTorch exports for
    # x.view(x.size(0), -1), i.e. Shape → Gather → Unsqueeze → Concat → Reshape
    "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast",
    # on constants only: the index arithmetic PyTorch exports for F.pad / nn.ZeroPad2d
    "ConstantOfShape", "Slice", "Transpose",
    # as ReLU only: torch.clamp(x, min=0)
    "Clip",
)
# The ops the README lists (the others above are folded on constants only).
LISTED_OPS = SUPPORTED_OPS[:SUPPORTED_OPS.index("Shape")]

# What to do about ops that have no spiking form, said where the model is refused.
OP_HINTS = {
    "LeakyRelu": "a negative slope has no form in these spike codings (a neuron cannot fire a "
                 "negative rate); retrain with ReLU",
    "PRelu": "a learned negative slope has no spiking form; retrain with ReLU",
    "Sigmoid": "spiking neurons carry ReLU-like activations; use ReLU inside the network",
    "Tanh": "spiking neurons carry ReLU-like activations; use ReLU inside the network",
    "Clip": "use ReLU (a ReLU6 or Hardtanh cap is not modelled; only Clip(min=0), i.e. "
            "torch.clamp(x, min=0), is a ReLU)",
    "Mul": "only linear layers and ReLU are converted; fold elementwise scaling into the "
           "preceding Conv/Gemm before export",
    "Sub": "only linear layers and ReLU are converted; fold it into a bias before export (for "
           "input normalisation, normalise the data in the .npz instead)",
    "Transpose": "export with channels-first (NCHW) tensors throughout",
    "Div": "only linear layers and ReLU are converted (a GELU or a division by a constant, "
           "e.g. input normalisation, is exported as Div); use ReLU, and normalise the data "
           "in the .npz instead of inside the model",
    "Erf": "a GELU has no spiking form; retrain with ReLU",
    "HardSigmoid": "spiking neurons carry ReLU-like activations; use ReLU",
    "HardSwish": "spiking neurons carry ReLU-like activations; use ReLU",
    "Softplus": "spiking neurons carry ReLU-like activations; use ReLU",
    "Elu": "a negative branch has no spiking form; retrain with ReLU",
    "Selu": "a negative branch has no spiking form; retrain with ReLU",
    "Gelu": "a GELU has no spiking form; retrain with ReLU",
    "Resize": "upsampling is not converted; only Conv, pooling and dense layers are",
    "Upsample": "upsampling is not converted; only Conv, pooling and dense layers are",
    "Split": "branches are joined only by a residual Add; a Split/Concat of activations "
             "(Inception, DenseNet) is not converted",
    "ReduceMax": "use MaxPool or GlobalAveragePool",
    "GlobalMaxPool": "use GlobalAveragePool (AdaptiveAvgPool2d(1)) or a MaxPool with a "
                     "kernel the size of the feature map",
    "LayerNormalization": "normalisation over a sample is not linear; use BatchNorm (folded) "
                          "or none",
    "InstanceNormalization": "normalisation over a sample is not linear; use BatchNorm "
                             "(folded) or none",
    "ConvTranspose": "transposed convolutions are not converted",
}

# The batch dimension in a folded shape value: 0, which Reshape reads as "copy this dimension".
BATCH = 0


def load_onnx(path: str | Path, name: str | None = None) -> Graph:
    """Read and check an ONNX file, then convert it. Bad files raise UserError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise UserError(f"{path}: not a readable ONNX file (truncated or not ONNX): "
                        f"{type(exc).__name__}: {str(exc)[:200]}") from None
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    external = sorted({e.value for t in model.graph.initializer if uses_external_data(t)
                       for e in t.external_data if e.key == "location"})
    missing = [f for f in external if not (path.parent / f).is_file()]
    if missing:
        raise UserError(f"{path}: its weights are stored in external data file(s) "
                        f"{', '.join(missing)}, expected next to the model, which are missing; "
                        f"copy them beside it, or save the model without external data")
    if external:
        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as exc:
            raise UserError(f"{path}: its external data ({', '.join(external)}) cannot be read: "
                            f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return convert_model(model, path, name or path.stem)


def convert_model(model, shown, name: str) -> Graph:
    """Check an ``onnx.ModelProto`` and convert it; ``shown`` names it in messages (its file,
    or what stands for a model given in memory). Its weights must be in the proto: one that
    still refers to external data files was loaded without them."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise UserError(f"{shown}: not an ONNX model (no graph or no nodes found)")
    if any(uses_external_data(t) for t in model.graph.initializer):
        raise UserError(f"{shown}: its weights refer to external data files that were not "
                        f"loaded; load it with onnx.load(path), which reads them, or pass the "
                        f"file's path")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise UserError(f"{shown}: the ONNX checker rejects this model: "
                        f"{str(exc).splitlines()[0][:300]}") from None
    return _Converter(model, shown, name).convert()


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Converter:
    def __init__(self, model, path: Path, name: str):
        self.model = model
        self.graph = model.graph
        self.path = path
        self.name = name
        self.consts: dict[str, np.ndarray] = {}
        self.alias: dict[str, str] = {}  # ONNX tensor name -> IR node name
        self.nodes: dict[str, Node] = {}
        self.uses: dict[str, int] = {}  # ONNX tensor name -> number of consuming nodes
        # ONNX tensor name -> (IR node name, (top, left, bottom, right)): a zero Pad, folded
        # into the padding of the Conv that reads it
        self.padded: dict[str, tuple[str, tuple[int, int, int, int]]] = {}
        self.static_batch: int | None = None
        self.opset = next((int(o.version) for o in model.opset_import
                           if o.domain in ("", "ai.onnx")), 13)

    # ---- helpers -------------------------------------------------------------------
    def err(self, onnx_node, msg: str) -> UserError:
        return UserError(f"{self.path}: ONNX node '{onnx_node.name}' ({onnx_node.op_type}): {msg}")

    def const(self, onnx_node, tensor: str, what: str) -> np.ndarray:
        if tensor not in self.consts:
            raise self.err(onnx_node, f"expected {what} '{tensor}' to be a constant "
                           f"(initializer or Constant node), found a computed tensor")
        return self.consts[tensor]

    def act(self, onnx_node, tensor: str) -> Node:
        if tensor in self.padded:
            raise self.err(onnx_node, f"its input '{tensor}' comes from a Pad, which is supported "
                           f"only directly before a Conv or AveragePool (it becomes their "
                           f"padding); expected one of those here, or use their own padding")
        if tensor in self.consts:
            raise self.err(onnx_node, f"expected input '{tensor}' to be an activation, "
                           f"found a constant")
        if tensor not in self.alias:
            raise self.err(onnx_node, f"input '{tensor}' is not produced by any earlier node")
        return self.nodes[self.alias[tensor]]

    def insert(self, node: Node) -> str:
        """Add an IR node under a unique name; returns the name."""
        base, k = node.name, 1
        while node.name in self.nodes:
            node.name = f"{base}_{k}"
            k += 1
        self.nodes[node.name] = node
        return node.name

    def add(self, onnx_node, node: Node) -> None:
        self.alias[onnx_node.output[0]] = self.insert(node)

    def sole_use(self, tensor: str) -> bool:
        return self.uses.get(tensor, 0) == 1

    # ---- conversion ------------------------------------------------------------------
    def convert(self) -> Graph:
        from onnx import numpy_helper

        g = self.graph
        for init in g.initializer:
            arr = numpy_helper.to_array(init)
            self.consts[init.name] = arr.astype(np.float64) if arr.dtype.kind == "f" else arr
        for i, n in enumerate(g.node):
            if not n.name:
                n.name = f"{n.op_type}_{i}"
            for t in n.input:
                self.uses[t] = self.uses.get(t, 0) + 1
        for out in g.output:
            self.uses[out.name] = self.uses.get(out.name, 0) + 1

        real_inputs = [i for i in g.input if i.name not in self.consts]
        if len(real_inputs) != 1:
            raise UserError(f"{self.path}: expected exactly one graph input, found "
                            f"{len(real_inputs)} ({', '.join(i.name for i in real_inputs) or 'none'})")
        if len(g.output) != 1:
            raise UserError(f"{self.path}: expected exactly one graph output, found "
                            f"{len(g.output)} ({', '.join(o.name for o in g.output)})")
        inp = real_inputs[0]
        elem = inp.type.tensor_type.elem_type
        if elem not in FLOAT_TYPES:
            from onnx import TensorProto

            found = TensorProto.DataType.Name(elem).lower() if elem else "of no declared type"
            raise UserError(f"{self.path}: graph input '{inp.name}' is {found}; neurosim feeds "
                            f"float images: export the model with a float input and do any cast "
                            f"and scaling (such as / 255) in the data file")
        dims = inp.type.tensor_type.shape.dim
        if len(dims) not in (2, 4):
            hint = ("; a Conv1d model on (N, C, L) runs as a Conv2d with kernel (1, k) on "
                    "inputs of shape (N, C, 1, L): export it so, and give the data that shape"
                    if len(dims) == 3 else "")
            raise UserError(f"{self.path}: graph input '{inp.name}' must have shape (N, F) or "
                            f"(N, C, H, W), found rank {len(dims)}{hint}")
        shape = []
        for d in list(dims)[1:]:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                raise UserError(f"{self.path}: graph input '{inp.name}' must have static "
                                f"non-batch dimensions, found "
                                f"'{d.dim_param or '?'}' in {[x.dim_param or x.dim_value for x in dims]}"
                                f" (export with a dynamic batch axis only: dynamic_axes="
                                f"{{'{inp.name}': {{0: 'N'}}}})")
            shape.append(int(d.dim_value))
        # a model exported without dynamic axes fixes the batch (usually 1); a Reshape may
        # name it as its first entry
        first = dims[0]
        self.static_batch = int(first.dim_value) if first.HasField("dim_value") else None
        in_name = inp.name
        self.nodes[in_name] = Input(in_name, (), tuple(shape))
        self.alias[inp.name] = in_name

        for n in g.node:
            if n.op_type not in SUPPORTED_OPS:
                hint = self._hint_by_position(n) or OP_HINTS.get(n.op_type)
                raise UserError(
                    f"{self.path}: ONNX node '{n.name}' has op type '{n.op_type}', which neurosim "
                    f"does not support" + (f": {hint}" if hint else "")
                    + f". Supported: {', '.join(LISTED_OPS)}")
            if n.domain not in ("", "ai.onnx"):
                raise self.err(n, f"expected the default ONNX domain, found '{n.domain}'")
            getattr(self, "op_" + n.op_type)(n, _attrs(n))

        out = g.output[0].name
        if out in self.consts or out not in self.alias:
            raise UserError(f"{self.path}: graph output '{out}' is not computed from the input")
        graph = Graph(self.name, str(self.path), self._prune(self.alias[out]), in_name,
                      self.alias[out])
        self._check_finite(graph)
        return graph

    def _prune(self, out: str) -> dict[str, Node]:
        keep, stack = set(), [out]
        while stack:
            k = stack.pop()
            if k not in keep:
                keep.add(k)
                stack.extend(self.nodes[k].inputs)
        return {k: v for k, v in self.nodes.items() if k in keep}

    def _check_finite(self, graph: Graph) -> None:
        for node in graph.nodes.values():
            for pname in ("weight", "bias"):
                arr = getattr(node, pname, None)
                if arr is not None and not np.all(np.isfinite(arr)):
                    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
                    raise UserError(f"{self.path}: ONNX node '{node.name}' ({node.op}) has "
                                    f"{bad} NaN/Inf value(s) in its {pname}; expected finite numbers")

    # ---- operators -----------------------------------------------------------------------
    def op_Constant(self, n, a):
        from onnx import numpy_helper

        if "value" not in a:
            raise self.err(n, f"expected a 'value' tensor attribute, found {sorted(a)}")
        arr = numpy_helper.to_array(a["value"])
        self.consts[n.output[0]] = arr.astype(np.float64) if arr.dtype.kind == "f" else arr

    def op_Identity(self, n, a):
        if n.input[0] in self.consts:
            self.consts[n.output[0]] = self.consts[n.input[0]]
        else:
            self.alias[n.output[0]] = self.act(n, n.input[0]).name

    def op_Dropout(self, n, a):
        if len(n.output) > 1 and n.output[1] and self.uses.get(n.output[1], 0):
            raise self.err(n, "expected the dropout mask output to be unused, found it consumed")
        self.alias[n.output[0]] = self.act(n, n.input[0]).name

    def _hint_by_position(self, n) -> str | None:
        """What fits an unsupported node where it sits: on the graph input it is input
        preprocessing; after the last layer it only rescales the logits (an exporter's
        Sigmoid, a temperature)."""
        if n.op_type in ("Sub", "Div", "Mul") and any(
                self.alias.get(t) in self.nodes and self.nodes[self.alias[t]].op == "input"
                for t in n.input):
            return ("it reads the graph input directly: do such preprocessing (normalisation, "
                    "scaling) in the data file and export the model from its first layer on")
        if n.op_type in ("Sigmoid", "Tanh", "HardSigmoid", "Div", "Mul") and n.output \
                and self._only_feeds_the_output(n.output[0]):
            return ("it follows the last layer, where it only transforms the logits; export "
                    "the logits (remove it: neurosim predicts the argmax of the readout)")
        return None

    def _only_feeds_the_output(self, tensor: str) -> bool:
        """``tensor`` is the graph output, or reaches it through Identity/Dropout nodes alone
        (an exporter that renames the output writes an Identity after the last op)."""
        while tensor != self.graph.output[0].name:
            users = [m for m in self.graph.node if tensor in m.input]
            if len(users) != 1 or users[0].op_type not in ("Identity", "Dropout"):
                return False
            tensor = users[0].output[0]
        return True

    def op_Softmax(self, n, a):
        if not self._only_feeds_the_output(n.output[0]):
            raise self.err(n, f"{n.op_type} is only supported as the last node (it is dropped, "
                           "which keeps the argmax); found it inside the network")
        x = self.act(n, n.input[0])
        axis = int(a.get("axis", -1 if self.opset >= 13 else 1))
        if len(x.shape) != 1 or axis not in (1, -1):
            raise self.err(n, f"expected it over the classes (axis 1 of (N, classes)), found "
                           f"axis {axis} on per-sample shape {x.shape}; over another axis it "
                           f"changes the argmax")
        self.alias[n.output[0]] = x.name

    op_LogSoftmax = op_Softmax

    def op_Clip(self, n, a):
        """torch.clamp(x, min=0) is a ReLU; any other bound has no spiking form."""
        if self.opset < 11:
            lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
        else:
            def bound(i, default):
                if len(n.input) > i and n.input[i]:
                    return float(np.ravel(self.const(n, n.input[i], "bound"))[0])
                return default
            lo, hi = bound(1, -np.inf), bound(2, np.inf)
        # a max at float32's largest value is the spec's default written out: no bound
        if lo != 0.0 or hi < float(np.finfo(np.float32).max):
            raise self.err(n, f"found bounds min={lo:g}, max={hi:g}; {OP_HINTS['Clip']}")
        self.op_Relu(n, a)

    def op_Relu(self, n, a):
        x = self.act(n, n.input[0])
        if self._non_negative(x):  # ReLU(ReLU(x)) = ReLU(x), and so after a pool of it
            self.alias[n.output[0]] = x.name
            return
        if x.op == "maxpool" and self.nodes[x.inputs[0]].op not in ("input", "relu", "maxpool"):
            # ReLU(MaxPool(conv)) = MaxPool(ReLU(conv)) (ReLU is monotonic): the neurons are
            # the conv's, and the pool gates their spikes
            src = self.nodes[x.inputs[0]]
            if all(self.uses.get(t, 0) == (t == n.input[0])
                   for t, v in self.alias.items() if v == x.name):
                del self.nodes[x.name]  # only this ReLU reads the pool: it moves, name and all
            relu = self.insert(Relu(n.name, (src.name,), src.shape))
            self.add(n, MaxPool(x.name, (relu,), x.shape, kernel=x.kernel, stride=x.stride,
                                pads=x.pads, dilation=x.dilation))
            return
        if x.op == "reshape":
            # ReLU(flatten(conv(x))) = flatten(ReLU(conv(x))): the neurons keep the conv's
            # (C, H, W) shape and the flatten moves into the next projection
            src = self.nodes[x.inputs[0]]
            while src.op == "reshape":
                src = self.nodes[src.inputs[0]]
            if self._non_negative(src):  # a flattened ReLU output: this ReLU changes nothing
                self.alias[n.output[0]] = x.name
                return
            relu = self.insert(Relu(n.name, (src.name,), src.shape))
            self.add(n, Reshape(n.name + "/reshape", (relu,), x.shape))
            return
        self.add(n, Relu(n.name, (x.name,), x.shape))

    def _non_negative(self, x: Node) -> bool:
        """Is ``x`` a ReLU, or a MaxPool of one (so that another ReLU changes nothing)?"""
        while x.op == "maxpool":
            x = self.nodes[x.inputs[0]]
        return x.op == "relu"

    def _spatial(self, n, x: Node) -> tuple[int, int, int]:
        if len(x.shape) != 3:
            raise self.err(n, f"expected a (C, H, W) input per sample, found shape {x.shape}")
        return x.shape

    def _pads(self, n, a, in_hw, k, s, d) -> tuple[int, int, int, int]:
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("NOTSET", ""):
            p = list(a.get("pads", [0, 0, 0, 0]))
            if len(p) != 4:
                raise self.err(n, f"expected 4 pads for 2-D spatial input, found {p}")
            return (p[0], p[1], p[2], p[3])
        if auto == "VALID":
            return (0, 0, 0, 0)
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for i in range(2):
                out = math.ceil(in_hw[i] / s[i])
                total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i])
                lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
                pads.append((lo, total - lo))
            return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
        raise self.err(n, f"expected auto_pad NOTSET, VALID, SAME_UPPER or SAME_LOWER, found {auto}")

    def _window_out(self, n, in_hw, k, s, pads, d) -> tuple[int, int]:
        if any(v < 1 for v in (*k, *s, *d)):
            raise self.err(n, f"expected positive kernel, strides and dilations, found "
                           f"kernel={k} strides={s} dilations={d}")
        out = []
        for i in range(2):
            span = (k[i] - 1) * d[i] + 1
            size = in_hw[i] + pads[i] + pads[i + 2] - span
            if size < 0:
                raise self.err(n, f"kernel {k} does not fit input {in_hw} with pads {pads}")
            out.append(size // s[i] + 1)
        return tuple(out)

    def _ceil_overhang(self, in_hw, k, s, pads, d) -> tuple[int, int]:
        """Rows and columns a ceil_mode pool reads beyond its bottom/right padding.

        As onnxruntime and PyTorch count it: out = ceil((in + pads − span) / s) + 1, less
        the last window if it would start in the bottom/right padding. Those windows read
        the overhang as padding that is never counted (−∞ for MaxPool)."""
        extra = []
        for i in range(2):
            span = (k[i] - 1) * d[i] + 1
            total = in_hw[i] + pads[i] + pads[i + 2]
            out = -(-(total - span) // s[i]) + 1
            if (out - 1) * s[i] >= in_hw[i] + pads[i]:
                out -= 1
            extra.append(max(0, (out - 1) * s[i] + span - total))
        return tuple(extra)

    def _check_2d(self, n, a, keys=("kernel_shape", "strides", "dilations")):
        for key in keys:
            if key in a and len(a[key]) != 2:
                raise self.err(n, f"expected 2-D '{key}', found {list(a[key])}")
        if a.get("ceil_mode", 0) not in (0, 1):
            raise self.err(n, f"expected ceil_mode 0 or 1, found {a['ceil_mode']}")

    def op_Conv(self, n, a):
        pre = (0, 0, 0, 0)
        if n.input[0] in self.padded:  # a zero Pad before the Conv: part of its padding
            src, pre = self.padded[n.input[0]]
            x = self.nodes[src]
            c, h, w = self._spatial(n, x)
            h, w = h + pre[0] + pre[2], w + pre[1] + pre[3]
        else:
            x = self.act(n, n.input[0])
            c, h, w = self._spatial(n, x)
        weight = self.const(n, n.input[1], "weight")
        if weight.ndim != 4:
            raise self.err(n, f"expected a 4-D weight (2-D convolution), found shape {weight.shape}")
        groups = int(a.get("group", 1))
        o, cg, kh, kw = weight.shape
        if c % groups or o % groups or cg != c // groups:
            raise self.err(n, f"weight shape {weight.shape} does not match {c} input channels "
                           f"in {groups} group(s)")
        bias = (self.const(n, n.input[2], "bias") if len(n.input) > 2 and n.input[2]
                else np.zeros(o))
        if bias.shape != (o,):
            raise self.err(n, f"expected bias of shape ({o},), found {bias.shape}")
        self._check_2d(n, a)
        if "kernel_shape" in a and tuple(a["kernel_shape"]) != (kh, kw):
            raise self.err(n, f"kernel_shape {list(a['kernel_shape'])} disagrees with the weight {weight.shape}")
        s = tuple(a.get("strides", (1, 1)))
        d = tuple(a.get("dilations", (1, 1)))
        pads = self._pads(n, a, (h, w), (kh, kw), s, d)
        oh, ow = self._window_out(n, (h, w), (kh, kw), s, pads, d)
        pads = tuple(p + q for p, q in zip(pads, pre))
        self.add(n, Conv(n.name, (x.name,), (o, oh, ow), weight=np.array(weight, np.float64),
                         bias=np.array(bias, np.float64), stride=s, pads=pads, dilation=d,
                         groups=groups))

    def _flat_input(self, n, x: Node) -> int:
        if len(x.shape) != 1:
            raise self.err(n, f"expected a flat (N, F) input, found per-sample shape {x.shape}; "
                           f"add a Flatten before it")
        return x.shape[0]

    def op_Gemm(self, n, a):
        if a.get("transA", 0):
            raise self.err(n, "expected transA=0, found transA=1")
        x = self.act(n, n.input[0])
        f = self._flat_input(n, x)
        b = self.const(n, n.input[1], "weight")
        weight = (b if a.get("transB", 0) else b.T) * float(a.get("alpha", 1.0))
        if weight.ndim != 2 or weight.shape[1] != f:
            raise self.err(n, f"weight of shape {b.shape} does not take {f} input features")
        out = weight.shape[0]
        if len(n.input) > 2 and n.input[2]:
            c = self.const(n, n.input[2], "bias") * float(a.get("beta", 1.0))
            try:
                bias = np.broadcast_to(c.reshape(-1) if c.size == out else c, (out,)).copy()
            except ValueError:
                raise self.err(n, f"bias of shape {c.shape} does not broadcast to ({out},)") from None
        else:
            bias = np.zeros(out)
        self.add(n, Dense(n.name, (x.name,), (out,), weight=np.array(weight, np.float64),
                          bias=np.array(bias, np.float64)))

    def op_MatMul(self, n, a):
        x = self.act(n, n.input[0])
        f = self._flat_input(n, x)
        b = self.const(n, n.input[1], "weight")
        if b.ndim != 2 or b.shape[0] != f:
            raise self.err(n, f"weight of shape {b.shape} does not take {f} input features")
        self.add(n, Dense(n.name, (x.name,), (b.shape[1],), weight=np.array(b.T, np.float64),
                          bias=np.zeros(b.shape[1])))

    def op_Add(self, n, a):
        ins = list(n.input)
        const = [t for t in ins if t in self.consts]
        if len(const) == 2:
            raise self.err(n, "expected at least one activation input, found two constants")
        if len(const) == 1:  # a bias: fold into the Conv/Dense that produces the other input
            c = self.consts[const[0]]
            other = ins[1] if ins[0] == const[0] else ins[0]
            x = self.act(n, other)
            if x.op not in ("conv", "dense") or not self.sole_use(other):
                raise self.err(n, "a constant Add is supported only as the bias of a Conv, Gemm "
                               f"or MatMul whose output it alone uses; found it after '{x.name}' ({x.op})")
            channels = x.shape[0]
            vec = np.asarray(c, np.float64)
            # ONNX broadcasts numpy-style, from the last axis: against (N, C, H, W) a (C,)
            # vector runs along W, not over the channels. Per channel means every axis but C
            # is 1 once the shape is right-aligned with (N, *shape).
            full = (1,) + tuple(x.shape)
            aligned = (1,) * (len(full) - vec.ndim) + vec.shape
            ok = (vec.ndim <= len(full) and aligned[1] in (1, channels)
                  and all(d == 1 for i, d in enumerate(aligned) if i != 1))
            if not ok:
                want = ", ".join(["1", str(channels)] + ["1"] * (len(full) - 2))
                view = ", ".join(["1", "-1"] + ["1"] * (len(full) - 2))
                raise self.err(n, f"bias of shape {vec.shape} does not broadcast per channel over "
                               f"{x.shape} (ONNX aligns shapes from the last axis: a "
                               f"vector of shape (k,) on a conv output runs along its width); "
                               f"expected shape ({want}), e.g. .view({view}) on the bias")
            x.bias = x.bias + np.broadcast_to(vec.reshape(-1), (channels,))
            self.alias[n.output[0]] = x.name
            return
        x, y = self.act(n, ins[0]), self.act(n, ins[1])
        if x.shape != y.shape:
            raise self.err(n, f"expected two inputs of equal shape, found {x.shape} and {y.shape}")
        self.add(n, Add(n.name, (x.name, y.name), x.shape))

    def op_BatchNormalization(self, n, a):
        x = self.act(n, n.input[0])
        if a.get("training_mode", 0):
            raise self.err(n, "expected an inference-mode BatchNormalization, found training_mode=1")
        if x.op not in ("conv", "dense") or not self.sole_use(n.input[0]):
            hint = {"input": "; normalise the data in the .npz instead of in the model",
                    "relu": "; put it before the ReLU (Conv → BatchNorm → ReLU), or fold it "
                            "into the next layer's weights before export"}.get(x.op, "")
            raise self.err(n, "BatchNormalization is folded into the Conv/Gemm before it; found it "
                           f"after '{x.name}' ({x.op}){'' if self.sole_use(n.input[0]) else ' whose output is also used elsewhere'}"
                           + hint)
        scale, beta, mean, var = (self.const(n, t, w) for t, w in
                                  zip(n.input[1:5], ("scale", "bias", "mean", "var")))
        ch = x.shape[0]
        for arr, w in ((scale, "scale"), (beta, "bias"), (mean, "mean"), (var, "var")):
            if arr.shape != (ch,):
                raise self.err(n, f"expected {w} of shape ({ch},), found {arr.shape}")
        if np.any(var < 0):
            raise self.err(n, "expected non-negative running variances, found a negative one")
        s = scale / np.sqrt(var + float(a.get("epsilon", 1e-5)))
        x.weight = x.weight * s.reshape((-1,) + (1,) * (x.weight.ndim - 1))
        x.bias = (x.bias - mean) * s + beta
        self.alias[n.output[0]] = x.name

    def op_AveragePool(self, n, a):
        pre, cip = (0, 0, 0, 0), bool(a.get("count_include_pad", 0))
        padded = n.input[0] in self.padded
        if padded:  # a zero Pad before the pool (opset 9's count_include_pad=True)
            src, pre = self.padded[n.input[0]]
            x = self.nodes[src]
            c, h, w = self._spatial(n, x)
            h, w = h + pre[0] + pre[2], w + pre[1] + pre[3]
        else:
            x = self.act(n, n.input[0])
            c, h, w = self._spatial(n, x)
        self._check_2d(n, a, ("kernel_shape", "strides"))
        k = tuple(a["kernel_shape"])
        s = tuple(a.get("strides", (1, 1)))
        if tuple(a.get("dilations", (1, 1))) != (1, 1):
            raise self.err(n, f"expected dilations (1, 1), found {list(a['dilations'])}")
        pads = self._pads(n, a, (h, w), k, s, (1, 1))
        extra = self._ceil_overhang((h, w), k, s, pads, (1, 1)) if a.get("ceil_mode") else (0, 0)
        if padded and not cip:
            # the Pad's zeros count in the average; the pool's own pads do not, which is
            # representable only as bottom/right pads (opset 9's ceil_mode overhang)
            if pads[0] or pads[1]:
                raise self.err(n, f"its input comes from a zero Pad, whose zeros count in the "
                               f"average, and its own pads {list(pads)} do not "
                               f"(count_include_pad=0); expected one kind of padding")
            extra, pads = (extra[0] + pads[2], extra[1] + pads[3]), (0, 0, 0, 0)
        cip = cip or padded
        pads = (pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1])
        oh, ow = self._window_out(n, (h, w), k, s, pads, (1, 1))
        pads = tuple(p + q for p, q in zip(pads, pre))
        self.add(n, AvgPool(n.name, (x.name,), (c, oh, ow), kernel=k, stride=s, pads=pads,
                            count_include_pad=cip, ceil_pads=extra))

    def op_GlobalAveragePool(self, n, a):
        x = self.act(n, n.input[0])
        c, h, w = self._spatial(n, x)
        self.add(n, AvgPool(n.name, (x.name,), (c, 1, 1), kernel=(h, w), stride=(1, 1)))

    def op_ReduceMean(self, n, a):
        """A mean over the spatial axes (x.mean((2, 3)), or AdaptiveAvgPool2d(1) from the
        dynamo exporter) is a global average pool."""
        x = self.act(n, n.input[0])
        if "axes" in a:
            axes = [int(v) for v in a["axes"]]
        elif len(n.input) > 1 and n.input[1]:
            axes = [int(v) for v in np.ravel(self.const(n, n.input[1], "axes"))]
        else:
            axes = None
        if not axes and a.get("noop_with_empty_axes", 0):
            self.alias[n.output[0]] = x.name
            return
        rank = len(x.shape) + 1
        norm = sorted(v % rank for v in axes) if axes else list(range(rank))
        if len(x.shape) != 3 or norm != [2, 3]:
            raise self.err(n, f"supported only as a mean over the spatial axes [2, 3] of an "
                           f"(N, C, H, W) tensor (x.mean((2, 3)), a global average pool); found "
                           f"axes {axes if axes else 'all'} on per-sample shape {x.shape}")
        c, h, w = x.shape
        pool = AvgPool(n.name, (x.name,), (c, 1, 1), kernel=(h, w), stride=(1, 1))
        if a.get("keepdims", 1):
            self.add(n, pool)
        else:
            name = self.insert(pool)
            self.add(n, Reshape(n.name + "/squeeze", (name,), (c,)))

    def op_Pad(self, n, a):
        """A zero Pad of the spatial axes (nn.ZeroPad2d, F.pad) folds into the next Conv."""
        x = self.act(n, n.input[0])
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if self.opset < 11:
            pads, value = list(a.get("pads", [])), float(a.get("value", 0.0))
        else:
            pads = [int(v) for v in np.ravel(self.const(n, n.input[1], "pads"))]
            value = (float(np.ravel(self.const(n, n.input[2], "constant value"))[0])
                     if len(n.input) > 2 and n.input[2] else 0.0)
        rank = len(x.shape) + 1
        if len(n.input) > 3 and n.input[3]:  # opset 18: pads for the listed axes only
            axes = [int(v) % rank for v in np.ravel(self.const(n, n.input[3], "axes"))]
            full = [0] * (2 * rank)
            for i, ax in enumerate(axes):
                full[ax], full[ax + rank] = pads[i], pads[i + len(axes)]
            pads = full
        if len(x.shape) != 3 or len(pads) != 8:
            raise self.err(n, f"expected a Pad of an (N, C, H, W) tensor, found per-sample shape "
                           f"{x.shape} and pads {pads}")
        if mode != "constant" or value != 0.0:
            raise self.err(n, f"expected zero padding (mode 'constant', value 0), found mode "
                           f"'{mode}' and value {value:g}; only zero padding is a Conv's padding")
        if pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:
            raise self.err(n, f"expected non-negative pads of the spatial axes only, found {pads}")
        self.padded[n.output[0]] = (x.name, (pads[2], pads[3], pads[6], pads[7]))

    def op_MaxPool(self, n, a):
        x = self.act(n, n.input[0])
        c, h, w = self._spatial(n, x)
        if len(n.output) > 1 and n.output[1] and self.uses.get(n.output[1], 0):
            raise self.err(n, "expected the Indices output to be unused, found it consumed")
        self._check_2d(n, a)
        k = tuple(a["kernel_shape"])
        s = tuple(a.get("strides", (1, 1)))
        d = tuple(a.get("dilations", (1, 1)))
        pads = self._pads(n, a, (h, w), k, s, d)
        if a.get("ceil_mode"):  # the overhang is padding like any other (−∞, never the max)
            extra = self._ceil_overhang((h, w), k, s, pads, d)
            pads = (pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1])
        oh, ow = self._window_out(n, (h, w), k, s, pads, d)
        self.add(n, MaxPool(n.name, (x.name,), (c, oh, ow), kernel=k, stride=s, pads=pads,
                            dilation=d))

    # ---- static shape arithmetic, folded to constants -------------------------------------
    def _shape_consts(self, n) -> list[np.ndarray]:
        vals = []
        for t in n.input:
            if not t:
                vals.append(None)
                continue
            if t not in self.consts:
                if n.op_type == "Concat":
                    raise self.err(n, f"found it applied to the activation '{t}': a Concat of "
                                   f"activations (channel concatenation, as in Inception or "
                                   f"DenseNet) is not converted; branches may "
                                   f"only be joined by a residual Add. (Concat is supported only "
                                   f"on static shape values, as exported for x.view(x.size(0), -1))")
                if n.op_type in OP_HINTS:
                    raise self.err(n, f"found it applied to the activation '{t}': "
                                   f"{OP_HINTS[n.op_type]}")
                raise self.err(n, f"supported only on static shape values (as exported for "
                               f"x.view(x.size(0), -1)); found it applied to the activation '{t}'")
            vals.append(np.asarray(self.consts[t]))
        return vals

    def op_Shape(self, n, a):
        x = self.act(n, n.input[0])
        full = np.array([BATCH] + list(x.shape), np.int64)
        start, end = int(a.get("start", 0)), a.get("end")
        self.consts[n.output[0]] = full[start:None if end is None else int(end)]

    def _axes(self, n, a) -> list[int] | None:
        """The 'axes' of Squeeze/Unsqueeze: an attribute (opset < 13) or a constant input."""
        if "axes" in a:
            return [int(v) for v in a["axes"]]
        if len(n.input) > 1 and n.input[1]:
            return [int(v) for v in np.ravel(self.const(n, n.input[1], "axes"))]
        return None

    def _activation_reshape(self, n, x: Node, shape: list[int], what: str) -> None:
        """A Squeeze/Unsqueeze/Gather that only drops or adds axes of size 1 of the sample: a
        Reshape (x.squeeze(-1), x[:, :, 0, 0] after a global pool)."""
        if int(np.prod(shape)) != int(np.prod(x.shape)):
            raise self.err(n, f"on the activation '{n.input[0]}' of per-sample shape {x.shape} it "
                           f"{what}; expected it to drop or add only axes of size 1 (a "
                           f"reshape), as after a global pool")
        self.add(n, Reshape(n.name, (x.name,), tuple(shape)))

    def _sample_axes(self, n, axes: list[int], rank: int) -> list[int]:
        out = sorted(v % rank for v in axes)
        if 0 in out:
            raise self.err(n, f"expected axes that keep the batch axis 0, found {axes}")
        return [v - 1 for v in out]  # per-sample axes

    def op_Gather(self, n, a):
        if n.input[0] not in self.consts and n.input[1] in self.consts:
            x = self.act(n, n.input[0])
            idx = np.asarray(self.consts[n.input[1]])
            (axis,) = self._sample_axes(n, [int(a.get("axis", 0))], len(x.shape) + 1)
            if idx.ndim == 0 and x.shape[axis] == 1 and int(idx) in (0, -1):
                shape = list(x.shape[:axis]) + list(x.shape[axis + 1:])
                return self._activation_reshape(n, x, shape, "picks")
            picked = (f"index {idx.astype(np.int64).tolist()}" if idx.size <= 4
                      else f"{idx.size} indices")
            raise self.err(n, f"found it selecting {picked} of axis {axis + 1} "
                           f"(size {x.shape[axis]}) of the activation '{n.input[0]}'; only "
                           f"dropping an axis of size 1 (x[:, :, 0, 0] after a global pool) is "
                           f"converted")
        data, idx = self._shape_consts(n)
        self.consts[n.output[0]] = np.take(data, idx.astype(np.int64), axis=int(a.get("axis", 0)))

    def op_Unsqueeze(self, n, a):
        if n.input[0] not in self.consts:
            x = self.act(n, n.input[0])
            axes = self._axes(n, a) or []
            shape = list(x.shape)
            for ax in self._sample_axes(n, axes, len(x.shape) + 1 + len(axes)):
                shape.insert(ax, 1)
            return self._activation_reshape(n, x, shape, "adds axes")
        vals = self._shape_consts(n)
        axes = a.get("axes") if "axes" in a else vals[1]
        self.consts[n.output[0]] = np.expand_dims(vals[0], tuple(int(v) for v in np.ravel(axes)))

    def op_Squeeze(self, n, a):
        if n.input[0] not in self.consts:
            x = self.act(n, n.input[0])
            axes = self._axes(n, a)
            if axes is None:  # every axis of size 1 of the sample (the batch is free)
                keep = [d for d in x.shape if d != 1]
            else:
                drop = self._sample_axes(n, axes, len(x.shape) + 1)
                if any(x.shape[ax] != 1 for ax in drop):
                    raise self.err(n, f"expected axes {axes} of size 1, found per-sample shape "
                                   f"{x.shape}")
                keep = [d for i, d in enumerate(x.shape) if i not in drop]
            return self._activation_reshape(n, x, keep, "squeezes")
        vals = self._shape_consts(n)
        axes = a.get("axes") if "axes" in a else (vals[1] if len(vals) > 1 else None)
        self.consts[n.output[0]] = np.squeeze(
            vals[0], None if axes is None else tuple(int(v) for v in np.ravel(axes)))

    def op_Concat(self, n, a):
        vals = self._shape_consts(n)
        self.consts[n.output[0]] = np.concatenate([np.atleast_1d(v) for v in vals],
                                                  axis=int(a["axis"]))

    def op_Cast(self, n, a):
        if n.input[0] not in self.consts and a.get("to") in FLOAT_TYPES:
            # a float activation cast to another float width (a float64 input cast to
            # float32): the executor computes in float64 anyway, so it is the identity
            self.alias[n.output[0]] = self.act(n, n.input[0]).name
            return
        (v,) = self._shape_consts(n)
        self.consts[n.output[0]] = v

    def op_ConstantOfShape(self, n, a):
        from onnx import numpy_helper

        (shape,) = self._shape_consts(n)
        val = numpy_helper.to_array(a["value"]).reshape(-1) if "value" in a else np.zeros(1)
        self.consts[n.output[0]] = np.full([int(v) for v in np.ravel(shape)], val[0], val.dtype)

    def op_Slice(self, n, a):
        vals = self._shape_consts(n)
        data = vals[0]
        if self.opset < 10:
            starts, ends = list(a["starts"]), list(a["ends"])
            axes, steps = a.get("axes"), None
        else:
            starts, ends = (list(np.ravel(v)) for v in vals[1:3])
            axes = list(np.ravel(vals[3])) if len(vals) > 3 and vals[3] is not None else None
            steps = list(np.ravel(vals[4])) if len(vals) > 4 and vals[4] is not None else None
        axes = list(range(len(starts))) if axes is None else [int(v) for v in axes]
        steps = [1] * len(starts) if steps is None else [int(v) for v in steps]
        index = [slice(None)] * data.ndim
        for ax, st, en, sp in zip(axes, starts, ends, steps):
            index[ax % data.ndim] = slice(int(st), int(en), sp)
        self.consts[n.output[0]] = data[tuple(index)]

    def op_Transpose(self, n, a):
        (v,) = self._shape_consts(n)
        self.consts[n.output[0]] = np.transpose(v, a.get("perm"))

    def op_Flatten(self, n, a):
        x = self.act(n, n.input[0])
        if int(a.get("axis", 1)) != 1:
            raise self.err(n, f"expected axis=1 (keep the batch dimension), found axis={a.get('axis')}")
        self.add(n, Reshape(n.name, (x.name,), (int(np.prod(x.shape)),)))

    def op_Reshape(self, n, a):
        if n.input[0] in self.consts:  # index arithmetic on constants (F.pad's pads)
            data, shape = self._shape_consts(n)
            shape = [int(v) for v in np.ravel(shape)]
            if not a.get("allowzero", 0):
                shape = [data.shape[i] if v == 0 else v for i, v in enumerate(shape)]
            try:
                self.consts[n.output[0]] = np.reshape(data, shape)
            except ValueError:
                raise self.err(n, f"cannot reshape a constant of shape {data.shape} to "
                               f"{shape}") from None
            return
        x = self.act(n, n.input[0])
        target = [int(v) for v in self.const(n, n.input[1], "shape").reshape(-1)]
        size = int(np.prod(x.shape))
        if not target:
            raise self.err(n, "expected a non-empty target shape")
        rest = target[1:]
        # the first entry is the batch: 0 (copy), -1, or the batch size the model was exported with
        if target[0] > 0 and target[0] == self.static_batch:
            target[0] = 0
        if target[0] > 0 and -1 in rest:
            raise self.err(n, f"target shape {target} fixes the batch size and infers another "
                           f"dimension; expected the batch dimension first as 0 or -1")
        rest = [x.shape[i] if v == 0 and not a.get("allowzero", 0) and i < len(x.shape) else v
                for i, v in enumerate(rest)]
        if rest.count(-1) > 1 or any(v < -1 for v in rest):
            raise self.err(n, f"invalid target shape {target}")
        if -1 in rest:
            known = int(np.prod([v for v in rest if v != -1]))
            if known <= 0 or size % known:
                raise self.err(n, f"cannot reshape {x.shape} to {target}")
            rest[rest.index(-1)] = size // known
        if int(np.prod(rest)) != size:
            raise self.err(n, f"cannot reshape a sample of shape {x.shape} ({size} values) to "
                           f"{target}; expected the batch dimension first and {size} values per sample")
        self.add(n, Reshape(n.name, (x.name,), tuple(rest)))
