#!/usr/bin/env python3
"""Checks a `wgtrain export --format onnx` file in onnxruntime, outside
wgtrain, against wgtrain's own output on the same inputs:

- tabular models: INPUT.csv (columns matched by the feature names in the
  model's metadata; for sequence models each row's columns as the steps,
  for time-series models every window of consecutive rows) vs
  `wgtrain predict` CSV output, within 1e-4;
- image models: INPUT IDX file (raw pixel bytes) vs `wgtrain predict`
  CSV output, within 1e-4;
- text models: INPUT text file, scored in non-overlapping windows from a
  zero state (as `wgtrain eval --split all` does), vs the bits per
  character in `wgtrain eval --json` output, within 1e-4.

Needs numpy and onnxruntime (pip).

Usage: scripts/check_onnx.py MODEL.onnx INPUT WGTRAIN_OUTPUT
"""
import csv
import gzip
import json
import math
import sys

import numpy as np
import onnxruntime as ort


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def predictions(path):
    with open(path) as fh:
        rows = list(csv.reader(fh))[1:]
    # `prediction` then one probability per class, or the values alone.
    return np.array([[float(v) for v in r[1:]] if len(r) > 1 else [float(r[0])] for r in rows])


def find(obj, key):
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = find(v, key)
            if found is not None:
                return found
    return None


def main(model, inputs, wgtrain_output):
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    shape = session.get_inputs()[0].shape[1:]
    if meta["task"] == "text":
        vocab = json.loads(meta["vocab"])
        with open(inputs, encoding="utf-8") as fh:
            ids = np.array([vocab.index(c) for c in fh.read()], dtype=np.int64)
        steps = shape[0]
        n = (len(ids) - 1) // steps
        x = np.stack([ids[w * steps : (w + 1) * steps] for w in range(n)])
        y = np.stack([ids[w * steps + 1 : (w + 1) * steps + 1] for w in range(n)])
        (p,) = session.run(None, {"input": x})
        picked = np.take_along_axis(p, y[..., None], axis=-1)[..., 0].astype(np.float64)
        got = float(-np.log(picked).mean() / math.log(2))
        with open(wgtrain_output) as fh:
            lines = [l for l in fh.read().splitlines() if l.startswith("{")]
        want = find(json.loads(lines[-1]), "bits_per_char")
        err = abs(got - want)
        what = f"bits/char over {n} windows: onnxruntime {got:.6f}, wgtrain eval {want:.6f}"
    else:
        if inputs.endswith(".csv"):
            features = json.loads(meta["features"])
            with open(inputs) as fh:
                rows = list(csv.DictReader(fh))
            x = np.array([[float(r[name]) for name in features] for r in rows], dtype=np.float32)
            if len(shape) == 2 and shape[0] * shape[1] == len(features):
                # `--sequence`: each row's columns are the steps.
                x = x.reshape([-1] + shape)
            elif len(shape) == 2:
                # `--window`: every window of consecutive rows, the last one
                # included, as `wgtrain predict` reads a series.
                w = shape[0]
                x = np.stack([x[i : i + w] for i in range(len(x) - w + 1)])
        else:
            x = read_idx(inputs).astype(np.float32).reshape([-1] + shape)
        (out,) = session.run(None, {"input": x})
        want = predictions(wgtrain_output)
        err = float(np.abs(out - want).max())
        what = f"{len(x)} samples, max |onnxruntime - wgtrain predict| {err:.2e}"
    print(f"{model}: {what}")
    if not err <= 1e-4:
        sys.exit("the ONNX model does not reproduce wgtrain's output")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:4])
