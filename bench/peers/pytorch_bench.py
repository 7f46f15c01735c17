"""PyTorch side of the Kiln benchmarks (bench/peers/pytorch.mjs starts it once and talks to it).

A server on stdin/stdout, one JSON object per line each way. A request:
  {"kind": "cnnTrain", "params": {...}, "data": "/tmp/...bin", "arrays": {"x": [offset, count, "f32"], ...},
   "timing": {"target": 0.7, "repeats": 3, "slowRepeats": 2, "stepRuns": 5, "slowStepRuns": 3}}
The arrays are the peers' shared inputs and weights (the same numbers every library gets), raw
little-endian f32 / i32 in one file. A reply: {"seconds": s} (best of `repeats`), or for a training
step {"runs": [s, ...], "firstLoss": l}, plus "check": [...] where a workload returns values for
the caller to check against its float64 reference; or {"error": "..."}.
Timing follows bench/timing.mjs (warm-up, calibration to ~target seconds per measurement).
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from bench_timing import measure
from torch import nn

torch.set_num_threads(2)


class Inputs:
    """The request's arrays as torch tensors: inputs.t("x", [2, 3]) (a copy, float32 or int64)."""

    def __init__(self, request):
        self.arrays = request.get("arrays", {})
        self.raw = open(request["data"], "rb").read() if request.get("data") else b""

    def t(self, name, shape):
        offset, count, dtype = self.arrays[name]
        a = np.frombuffer(self.raw, dtype=np.float32 if dtype == "f32" else np.int32, count=count, offset=offset)
        out = torch.from_numpy(a.copy()).reshape(shape)
        return out.long() if dtype == "i32" else out


def best(fn, timing):
    return {"seconds": min(measure(fn, timing["target"], timing["repeats"], timing["slowRepeats"]))}


def train(model_params, step, timing):
    """A training step's first loss (checked by the caller) and its seconds per measurement."""
    first = step()
    runs = measure(step, timing["target"], timing["stepRuns"], timing["slowStepRuns"])
    return {"firstLoss": first, "runs": runs}


# ---- workloads: each takes (params, inputs, timing) and returns the reply ----


def matmul(p, inp, timing):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(p["n"], p["n"], generator=g)
    b = torch.randn(p["n"], p["n"], generator=g)
    check = (inp.t("ca", [5, 7]) @ inp.t("cb", [7, 3])).flatten().tolist()
    with torch.inference_mode():
        return {**best(lambda: torch.matmul(a, b), timing), "check": check}


def conv2d(p, inp, timing):
    n, c, h, w, o, k = p["check"]
    with torch.inference_mode():
        check = F.conv2d(inp.t("cx", [n, c, h, w]), inp.t("cw", [o, c, k, k]), padding="same").flatten().tolist()
        x = inp.t("x", [p["batch"], p["channels"], p["size"], p["size"]])
        wt = inp.t("w", [p["filters"], p["channels"], p["kernel"], p["kernel"]])
        return {**best(lambda: F.conv2d(x, wt, padding="same"), timing), "check": check}


def self_attention(p, inp, timing):
    t, d, heads = p["seq"], p["dModel"], p["heads"]
    x = inp.t("x", [1, t, d])
    wq, wk, wv, wo = (inp.t(n, [d, d]) for n in ("wq", "wk", "wv", "wo"))

    def split(z):
        return z.reshape(1, t, heads, d // heads).transpose(1, 2)

    def forward():
        o = F.scaled_dot_product_attention(split(x @ wq), split(x @ wk), split(x @ wv))
        return o.transpose(1, 2).reshape(1, t, d) @ wo

    with torch.inference_mode():
        check = forward()[0, : p["checkRows"]].flatten().tolist()
        return {**best(forward, timing), "check": check}


def adam_step(model, x, y, lr):
    """Adam on a model's parameters; one step = zero_grad, forward, cross-entropy, backward, step, loss read back."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def fit(model, x, y, lr, timing):
    """The first step's loss (the caller checks it against its float64 reference) and the timed runs."""
    return train(model, adam_step(model, x, y, lr), timing)


def mlp_train(p, inp, timing):
    b, i, h, c = p["batch"], p["inputs"], p["hidden"], p["classes"]
    model = nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, c))
    with torch.no_grad():
        # The shared weights are [in, out] (y = x·w + b); nn.Linear keeps [out, in].
        model[0].weight.copy_(inp.t("w1", [i, h]).T)
        model[0].bias.copy_(inp.t("b1", [h]))
        model[2].weight.copy_(inp.t("w2", [h, c]).T)
        model[2].bias.copy_(inp.t("b2", [c]))
    return fit(model, inp.t("x", [b, i]), inp.t("labels", [b]), p["lr"], timing)


def cnn_train(p, inp, timing):
    b, s, c = p["batch"], p["size"], p["classes"]
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, c),
    )
    shapes = {"c1w": [32, 1, 3, 3], "c1b": [32], "c2w": [64, 32, 3, 3], "c2b": [64], "f1w": [128, 1600], "f1b": [128], "f2w": [c, 128], "f2b": [c]}
    names = {"c1w": "0.weight", "c1b": "0.bias", "c2w": "3.weight", "c2b": "3.bias", "f1w": "7.weight", "f1b": "7.bias", "f2w": "9.weight", "f2b": "9.bias"}
    model.load_state_dict({names[k]: inp.t(k, v) for k, v in shapes.items()})
    return fit(model, inp.t("x", [b, 1, s, s]), inp.t("labels", [b]), p["lr"], timing)


class LstmClassifier(nn.Module):
    def __init__(self, inputs, hidden, classes):
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, batch_first=True)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.out(self.lstm(x)[0][:, -1])


def lstm_train(p, inp, timing):
    b, t, i, h, c = p["batch"], p["steps"], p["inputs"], p["hidden"], p["classes"]
    model = LstmClassifier(i, h, c)
    with torch.no_grad():
        model.lstm.weight_ih_l0.copy_(inp.t("wIh", [4 * h, i]))
        model.lstm.weight_hh_l0.copy_(inp.t("wHh", [4 * h, h]))
        model.lstm.bias_ih_l0.copy_(inp.t("bias", [4 * h]))
        model.lstm.bias_hh_l0.zero_()
        model.out.weight.copy_(inp.t("wOut", [c, h]))
        model.out.bias.copy_(inp.t("bOut", [c]))
    return fit(model, inp.t("x", [b, t, i]), inp.t("labels", [b]), p["lr"], timing)


def check_training(what, first, last, classes):
    """As checkTraining in bench/peers/large.mjs: a fresh model's loss, then a lower one."""
    fresh = np.log(classes)
    if not (np.isfinite(first) and fresh / 2 < first < fresh * 2):
        raise ValueError(f"{what}: first-step loss {first}, expected about ln({classes}) = {fresh:.3f} for a fresh model")
    if not last < first:
        raise ValueError(f"{what}: the loss did not go down over the timed steps on one batch ({first} -> {last})")


def fit_large(what, model, x, y, p, timing):
    """A large-model step (bench/peers/large.mjs): PyTorch's own init; the loss must go down."""
    step = adam_step(model, x, y, p["lr"])
    first = step()
    runs = measure(step, timing["target"], timing["stepRuns"], timing["slowStepRuns"])
    check_training(what, first, step(), p["classes"])
    return {"runs": runs}


class BasicBlock(nn.Module):
    """ResNet's two-convolution block with a projection shortcut when the shape changes (as Kiln's nn.BasicBlock)."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        project = stride != 1 or cin != cout
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if project else nn.Identity()

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.downsample(x))


def resnet18_train(p, inp, timing):
    blocks, cin = [], 64
    for i, width in enumerate([64, 128, 256, 512]):
        blocks += [BasicBlock(cin, width, 1 if i == 0 else 2), BasicBlock(width, width)]
        cin = width
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        *blocks,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, p["classes"]),
    )
    x = inp.t("x", [p["batch"], 3, p["size"], p["size"]])
    return fit_large("pytorch resnet18", model, x, inp.t("labels", [p["batch"]]), p, timing)


class Encoder(nn.Module):
    """Pre-norm encoder layers with GELU and no dropout (as Kiln's), mean over T, a linear head."""

    def __init__(self, p):
        super().__init__()
        layer = lambda: nn.TransformerEncoderLayer(p["dModel"], p["heads"], p["ffn"], dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.ModuleList(layer() for _ in range(p["layers"]))
        self.head = nn.Linear(p["dModel"], p["classes"])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.head(x.mean(1))


def transformer_train(p, inp, timing):
    x = inp.t("x", [p["batch"], p["seq"], p["dModel"]])
    return fit_large("pytorch transformer", Encoder(p), x, inp.t("labels", [p["batch"]]), p, timing)


WORKLOADS = {
    "resnet18Train": resnet18_train,
    "transformerTrain": transformer_train,
    "matmul": matmul,
    "conv2d": conv2d,
    "selfAttention": self_attention,
    "mlpTrain": mlp_train,
    "cnnTrain": cnn_train,
    "lstmTrain": lstm_train,
}


def peak_rss():
    """VmHWM of this process in kilobytes (the Node side's child.mjs reports it for PyTorch)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return {"kilobytes": int(line.split()[1])}
    import resource

    return {"kilobytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def info():
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "python": sys.version.split()[0],
        "workloads": sorted(WORKLOADS),
    }


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request["kind"] == "info":
                reply = info()
            elif request["kind"] == "peakRSS":
                reply = peak_rss()
            else:
                fn = WORKLOADS.get(request["kind"])
                reply = {"error": f"no PyTorch workload {request['kind']}"} if fn is None else fn(request["params"], Inputs(request), request["timing"])
        except Exception as e:  # reported to the caller, which marks the row failed
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
