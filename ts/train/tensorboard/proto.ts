/**
 * The TensorBoard event protos, as a faithful subset of the official definitions
 * (tensorboard/compat/proto/event.proto, summary.proto, histogram.proto): the same package,
 * message names, field numbers and types, with only the fields Kiln writes. Parsed once by
 * protobufjs, which does the wire encoding.
 */

import protobuf from 'protobufjs';

const EVENT_PROTO = `
syntax = "proto3";
package tensorboard;

// histogram.proto
message HistogramProto {
  double min = 1;
  double max = 2;
  double num = 3;
  double sum = 4;
  double sum_squares = 5;
  // Right edges of the buckets; bucket(i) counts values in (bucket_limit(i-1), bucket_limit(i)].
  repeated double bucket_limit = 6 [packed = true];
  repeated double bucket = 7 [packed = true];
}

// summary.proto
message SummaryMetadata {
  message PluginData {
    string plugin_name = 1;
    bytes content = 2;
  }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
}

message Summary {
  message Image {
    int32 height = 1;
    int32 width = 2;
    // 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA
    int32 colorspace = 3;
    // PNG or JPEG file bytes
    bytes encoded_image_string = 4;
  }
  message Value {
    string node_name = 7;
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value {
      float simple_value = 2;
      Image image = 4;
      HistogramProto histo = 5;
    }
  }
  repeated Value value = 1;
}

// event.proto
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    Summary summary = 5;
  }
}
`;

let eventType: protobuf.Type | null = null;

/** The `tensorboard.Event` message type. */
export function eventMessage(): protobuf.Type {
  eventType ??= protobuf.parse(EVENT_PROTO, { keepCase: true }).root.lookupType('tensorboard.Event');
  return eventType;
}

/** A histogram in TensorBoard's form. */
export interface HistogramValue {
  min: number;
  max: number;
  num: number;
  sum: number;
  sum_squares: number;
  bucket_limit: number[];
  bucket: number[];
}

/** An encoded image (PNG bytes) with its size. */
export interface ImageValue {
  height: number;
  width: number;
  colorspace: number;
  encoded_image_string: Uint8Array;
}

/** One `Summary.Value`: a tag and exactly one of its payloads. */
export type SummaryValue = { tag: string } & ({ simple_value: number } | { histo: HistogramValue } | { image: ImageValue });

/** The bytes of one Event holding `values` at `step`. */
export function encodeSummaryEvent(step: number, wallTime: number, values: SummaryValue[]): Uint8Array {
  const type = eventMessage();
  return type.encode(type.fromObject({ wall_time: wallTime, step, summary: { value: values } })).finish();
}

/** The bytes of the Event that opens every event file (TensorBoard reads the format version from it). */
export function encodeFileVersionEvent(wallTime: number): Uint8Array {
  const type = eventMessage();
  return type.encode(type.fromObject({ wall_time: wallTime, step: 0, file_version: 'brain.Event:2' })).finish();
}
