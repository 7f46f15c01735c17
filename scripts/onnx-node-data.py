"""Writes the ONNX per-node backend tests (onnx.backend.test.case.node) as test data.

The `onnx` wheel ships the generators of the node tests but not their data; this writes each case
as <out>/node/<test name>/{model.onnx, test_data_set_0/{input,output}_N.pb, meta.json} (the layout
of onnx's other test data). Cases whose inputs or outputs are not tensors (sequences, maps,
optionals) are listed in <out>/node/skipped.json. Usage: python onnx-node-data.py OUT_DIR
"""

import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node as node_cases


def main(out: str) -> None:
    root = os.path.join(out, "node")
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    cases = node_cases.collect_testcases()
    ops = {}
    for case in cases:
        if not case.name.endswith("_expanded") and "_expanded_" not in case.name:
            ops[case.name] = case.model.graph.node[0].op_type
    skipped = []
    for case in cases:
        base = case.name.split("_expanded")[0]
        op = ops.get(base, case.model.graph.node[0].op_type)
        graph = case.model.graph
        if not all(v.type.HasField("tensor_type") for v in list(graph.input) + list(graph.output)):
            skipped.append({"name": case.name, "op": op})
            continue
        case_dir = os.path.join(root, case.name)
        data_dir = os.path.join(case_dir, "test_data_set_0")
        os.makedirs(data_dir)
        with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        inputs, outputs = case.data_sets[0]
        for kind, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
            for j, value in enumerate(values):
                proto = value if isinstance(value, onnx.TensorProto) else numpy_helper.from_array(np.asarray(value), infos[j].name)
                with open(os.path.join(data_dir, f"{kind}_{j}.pb"), "wb") as f:
                    f.write(proto.SerializeToString())
        with open(os.path.join(case_dir, "meta.json"), "w") as f:
            json.dump({"op": op, "rtol": case.rtol, "atol": case.atol, "expanded": base != case.name}, f)
    with open(os.path.join(root, "skipped.json"), "w") as f:
        json.dump(skipped, f, indent=1)
    print(f"wrote {len(cases) - len(skipped)} node tests to {root} ({len(skipped)} with non-tensor values skipped)")


if __name__ == "__main__":
    main(sys.argv[1])
