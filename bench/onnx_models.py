"""Prepares the ONNX models of bench/onnx-models.mjs: the onnx wheel's `light` ResNet-50 and
SqueezeNet (real architectures; their weights are ConstantOfShape fills, which both runtimes fold
at load), with the batch dim made dynamic so batch 8 runs too.

Usage: python onnx_models.py OUT_DIR
"""

import os
import sys

import onnx
from onnx import numpy_helper

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def dynamic_batch(name: str, out_dir: str) -> None:
    model = onnx.load(os.path.join(DATA, f"light_{name}.onnx"))
    inits = {i.name: i for i in model.graph.initializer}
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name in inits:
            continue
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    # A Reshape to [1, features] (ResNet's head) would pin the batch: copy it from the input instead (0).
    for node in model.graph.node:
        if node.op_type == "Reshape" and node.input[1] in inits:
            shape = numpy_helper.to_array(inits[node.input[1]]).copy()
            if shape[0] == 1:
                shape[0] = 0
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
    onnx.save(model, os.path.join(out_dir, f"{name}.onnx"))


if __name__ == "__main__":
    os.makedirs(sys.argv[1], exist_ok=True)
    for n in ("resnet50", "squeezenet"):
        dynamic_batch(n, sys.argv[1])
