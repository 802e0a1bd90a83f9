#!/usr/bin/env python3
"""Checks a `wgtrain export --format pytorch` file outside wgtrain: a numpy
forward pass over its tensors (PyTorch names and layouts, the stored
standardisation applied first) must match `wgtrain predict` on the same
CSV rows within 1e-4. Dense models (linear, logistic, mlp, custom dense
stacks). Needs numpy and safetensors (pip).

Usage: scripts/check_export.py EXPORTED.safetensors INPUT.csv PREDICTIONS.csv
"""
import csv
import json
import sys

import numpy as np
from safetensors import safe_open


def main(exported, inputs, predictions):
    with safe_open(exported, "np") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    layers = meta["layers"].split(",")
    features = json.loads(meta["features"])
    with open(inputs) as fh:
        rows = list(csv.DictReader(fh))
    x = np.array([[float(r[name]) for name in features] for r in rows], dtype=np.float64)
    x = (x - t["input.mean"]) / t["input.std"]
    acts = {
        "relu": lambda v: np.maximum(v, 0),
        "tanh": np.tanh,
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "identity": lambda v: v,
        "leaky_relu": lambda v: np.where(v > 0, v, 0.01 * v),
        "softplus": lambda v: np.logaddexp(0, v),
        "gelu": lambda v: 0.5 * v * (1 + np.tanh(0.7978845608 * (v + 0.044715 * v**3))),
    }
    for i, layer in enumerate(layers):
        kind = layer.split(":")[0]
        if kind == "dense":
            x = x @ t[f"{i}.weight"].T.astype(np.float64) + t[f"{i}.bias"]
        elif kind in acts:
            x = acts[kind](x)
        elif kind == "layernorm":
            mu = x.mean(axis=-1, keepdims=True)
            var = x.var(axis=-1, keepdims=True)
            x = (x - mu) / np.sqrt(var + 1e-5) * t[f"{i}.weight"] + t[f"{i}.bias"]
        elif kind == "batchnorm":
            mu, var = t[f"{i}.running_mean"], t[f"{i}.running_var"]
            x = (x - mu) / np.sqrt(var + 1e-5) * t[f"{i}.weight"] + t[f"{i}.bias"]
        elif kind == "dropout":
            pass  # training only
        elif kind == "flatten":
            x = x.reshape(len(x), -1)
        else:
            sys.exit(f"layer {layer}: this check covers dense models only")
    if meta["task"] == "regression":
        out = x * t["target.std"] + t["target.mean"]
    elif x.shape[1] == 1:
        p = 1 / (1 + np.exp(-x[:, 0]))
        out = np.stack([1 - p, p], axis=1)
    else:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        out = e / e.sum(axis=1, keepdims=True)
    with open(predictions) as fh:
        pred = list(csv.reader(fh))[1:]
    want = np.array([[float(v) for v in r[1:]] if len(r) > 1 else [float(r[0])] for r in pred])
    err = np.abs(out - want).max()
    print(f"{exported}: numpy forward vs wgtrain predict over {len(rows)} rows: max |difference| {err:.2e}")
    if not err <= 1e-4:
        sys.exit("the exported model does not reproduce wgtrain's predictions")


if __name__ == "__main__":
    main(*sys.argv[1:4])
