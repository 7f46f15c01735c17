"""Reads a TensorBoard log directory with the tensorboard package's own reader and prints JSON.

Used by tests/train/tensorboard.test.ts: every record is first read with the package's TFRecord
reader (which checks both masked CRC32C checksums and raises DataLossError on a mismatch), then
the directory is loaded with EventAccumulator, the reader behind TensorBoard's own loading path.
PNG images are decoded with Pillow so the test compares pixels, not bytes.

    python read_tensorboard.py LOGDIR
"""
import glob
import io
import json
import os
import sys

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

logdir = sys.argv[1]
records = 0
file_versions = []
for path in sorted(glob.glob(os.path.join(logdir, "*tfevents*"))):
    reader = pywrap_tensorflow.PyRecordReader_New(path)
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            break
        event = event_pb2.Event.FromString(reader.record())
        if event.HasField("file_version"):
            file_versions.append(event.file_version)
        records += 1

acc = event_accumulator.EventAccumulator(logdir, size_guidance={"scalars": 0, "histograms": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
out = {"records": records, "fileVersions": file_versions, "scalars": {}, "histograms": {}, "images": {}}
for tag in tags["scalars"]:
    out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
for tag in tags["histograms"]:
    out["histograms"][tag] = [
        {
            "step": e.step,
            "min": e.histogram_value.min,
            "max": e.histogram_value.max,
            "num": e.histogram_value.num,
            "sum": e.histogram_value.sum,
            "sumSquares": e.histogram_value.sum_squares,
            "bucketLimit": list(e.histogram_value.bucket_limit),
            "bucket": list(e.histogram_value.bucket),
        }
        for e in acc.Histograms(tag)
    ]
for tag in tags["images"]:
    images = []
    for e in acc.Images(tag):
        pixels = np.asarray(Image.open(io.BytesIO(e.encoded_image_string)))
        images.append({"step": e.step, "width": e.width, "height": e.height, "pixels": pixels.reshape(-1).tolist(), "shape": list(pixels.shape)})
    out["images"][tag] = images
print(json.dumps(out))
