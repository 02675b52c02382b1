"""Tiny ONNX models built in tests (one op or a few), for the importer's edge cases."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inputs, output, inits=(), out_shape=("N", 10), opset=13) -> onnx.ModelProto:
    outp = helper.make_tensor_value_info(output, TensorProto.FLOAT, list(out_shape))
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs]
    inits = [numpy_helper.from_array(np.asarray(a, np.float32), k) for k, a in inits]
    g = helper.make_graph(nodes, "t", ins, [outp], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def conv_model(cin, cout, hw, k, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1,
               seed=0, bn=False) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = [("W", rng.normal(0, 1, (cout, cin // groups, k, k))), ("B", rng.normal(0, 1, cout))]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", kernel_shape=[k, k],
                              strides=list(stride), pads=list(pads), dilations=list(dilation),
                              group=groups)]
    last = "c"
    if bn:
        inits += [("g", rng.uniform(0.5, 2, cout)), ("b", rng.normal(0, 1, cout)),
                  ("m", rng.normal(0, 1, cout)), ("v", rng.uniform(0.1, 3, cout))]
        nodes.append(helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"],
                                      name="bn", epsilon=1e-4))
        last = "bn"
    nodes.append(helper.make_node("Flatten", [last], ["y"], name="flat"))
    return model(nodes, [("x", ("N", cin, hw, hw))], "y", inits, out_shape=("N", "F"))
