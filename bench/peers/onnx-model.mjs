// Builds minimal ONNX models (one node, two float inputs, one output, fixed shapes) in memory by
// writing the protobuf bytes of an onnx.ModelProto directly: no onnx or protobuf package needed.
// Field numbers are from onnx/onnx.proto.

const VARINT = 0;
const LEN = 2;

function varint(value) {
  const out = [];
  let v = BigInt(value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

const key = (field, wire) => varint((field << 3) | wire);
/** An integer field (int32/int64, non-negative here). */
const int = (field, value) => [...key(field, VARINT), ...varint(value)];
/** A length-delimited field: raw bytes. */
const bytes = (field, data) => [...key(field, LEN), ...varint(data.length), ...data];
/** A string field (UTF-8). */
const str = (field, s) => bytes(field, [...new TextEncoder().encode(s)]);
/** An embedded message: its fields' encodings, concatenated. */
const msg = (field, ...parts) => bytes(field, parts.flat());

const FLOAT = 1; // TensorProto.DataType.FLOAT

/** ValueInfoProto { name = 1; type = 2 { tensor_type = 1 { elem_type = 1; shape = 2 { dim = 1 { dim_value = 1 } } } } } */
function valueInfo(field, name, shape) {
  const dims = shape.map((d) => msg(1, int(1, d)));
  return msg(field, str(1, name), msg(2, msg(1, int(1, FLOAT), msg(2, ...dims))));
}

/**
 * A model computing Y = opType(A, B) for float32 inputs of fixed shapes.
 * ModelProto { ir_version = 1; producer_name = 2; graph = 7; opset_import = 8 { domain = 1; version = 2 } }
 * GraphProto { node = 1; name = 2; input = 11; output = 12 }
 * NodeProto { input = 1; output = 2; name = 3; op_type = 4 }
 */
export function binaryOpModel(opType, shapeA, shapeB, shapeY, opset = 13) {
  const node = msg(1, str(1, 'A'), str(1, 'B'), str(2, 'Y'), str(3, `${opType.toLowerCase()}0`), str(4, opType));
  const graph = msg(7, node, str(2, `kiln_bench_${opType}`), valueInfo(11, 'A', shapeA), valueInfo(11, 'B', shapeB), valueInfo(12, 'Y', shapeY));
  const model = [...int(1, 8), ...str(2, 'kiln-bench'), ...graph, ...msg(8, str(1, ''), int(2, opset))];
  return Uint8Array.from(model);
}
