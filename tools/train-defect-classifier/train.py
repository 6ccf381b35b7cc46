#!/usr/bin/env python3
"""Trains the defect classifier on the tensors prepare.ts wrote and exports it to ONNX.

Reads   <work>/train.{u8,json}, <work>/validation.{u8,json}  (uint8 NCHW, the pipeline's pixels)
Writes  <work>/model.onnx      opset 17; input "input" float32 [N, 3, S, S], RGB, /255 then
                               (x - mean) / std per channel; output "logits" [N, C]
        <work>/training.json   normalisation, architecture, hyper-parameters, per-epoch history,
                               validation metrics and probabilities (evaluate.ts checks the ONNX
                               export against them), time taken

The held-out test set is never read here: evaluate.ts measures it through onnxruntime-node.

    /usr/bin/python3 tools/train-defect-classifier/train.py --work <dir>
"""
import argparse
import json
import os
import platform
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def load_set(work, name):
    with open(os.path.join(work, f"{name}.json")) as f:
        meta = json.load(f)
    x = np.fromfile(os.path.join(work, f"{name}.u8"), dtype=np.uint8)
    x = x.reshape(meta["count"], meta["channels"], meta["height"], meta["width"])
    return torch.from_numpy(x), torch.tensor(meta["targets"], dtype=torch.int64), meta


def conv_block(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DefectNet(nn.Module):
    """A small VGG-like CNN. The defects are small and anywhere on the part, so the head sees the
    global maximum (is there a defect anywhere?) next to the global mean of the last feature map."""

    WIDTHS = (16, 32, 64, 96)

    def __init__(self, classes):
        super().__init__()
        w = self.WIDTHS
        self.features = nn.Sequential(
            conv_block(3, w[0], stride=2),                              # S/2
            nn.MaxPool2d(2), conv_block(w[0], w[1]), conv_block(w[1], w[1]),  # S/4
            nn.MaxPool2d(2), conv_block(w[1], w[2]), conv_block(w[2], w[2]),  # S/8
            nn.MaxPool2d(2), conv_block(w[2], w[3]),                          # S/16
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(2 * w[3], classes)

    def forward(self, x):
        f = self.features(x)
        pooled = torch.cat([torch.amax(f, dim=(2, 3)), torch.mean(f, dim=(2, 3))], dim=1)
        return self.head(self.dropout(pooled))


def describe():
    w = DefectNet.WIDTHS
    return (
        f"CNN: conv3x3/2-BN-ReLU ({w[0]}), then 2×2 max-pooling and conv3x3-BN-ReLU ×2 ({w[1]}), "
        f"2×2 max-pooling and ×2 ({w[2]}), 2×2 max-pooling and ×1 ({w[3]}) at input/16; global max and global "
        f"average pooling concatenated ({2 * w[3]} features), dropout 0.2, linear to the class logits"
    )


def normalise(x_u8, mean, std):
    x = x_u8.float().div_(255.0)
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def augment(x, gen):
    """Random horizontal and vertical flips (they keep the machining lay horizontal)."""
    n = x.shape[0]
    h = torch.rand(n, generator=gen) < 0.5
    v = torch.rand(n, generator=gen) < 0.5
    x = x.clone()
    x[h] = torch.flip(x[h], dims=[3])
    x[v] = torch.flip(x[v], dims=[2])
    return x


def fast(x):
    """Channels-last tensors: oneDNN's convolutions are several times faster on them on a CPU."""
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict(model, x_u8, mean, std, batch=100):
    model.eval()
    out = [F.softmax(model(fast(normalise(x_u8[i:i + batch], mean, std))), dim=1) for i in range(0, x_u8.shape[0], batch)]
    return torch.cat(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    with open(os.path.join(HERE, "config.json")) as f:
        config = json.load(f)
    tc = config["training"]
    labels = config["labels"]

    torch.set_num_threads(tc["threads"])
    random.seed(tc["seed"])
    np.random.seed(tc["seed"] % 2**32)
    torch.manual_seed(tc["seed"])
    torch.use_deterministic_algorithms(True, warn_only=True)

    x_train, y_train, train_meta = load_set(args.work, "train")
    x_val, y_val, val_meta = load_set(args.work, "validation")
    assert train_meta["labels"] == labels and val_meta["labels"] == labels, "labels differ from config.json"
    size = train_meta["height"]

    # Per-channel mean/std of the training pixels (after /255), rounded to what model.json states,
    # so training sees exactly the normalisation visq applies.
    xf = x_train.float().div_(255.0)
    mean_list = [round(v, 4) for v in xf.mean(dim=(0, 2, 3)).tolist()]
    std_list = [round(v, 4) for v in xf.std(dim=(0, 2, 3)).tolist()]
    mean, std = torch.tensor(mean_list), torch.tensor(std_list)
    del xf

    model = DefectNet(len(labels)).to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    epochs, bs = tc["epochs"], tc["batchSize"]
    steps = epochs * ((x_train.shape[0] + bs - 1) // bs)
    opt = torch.optim.AdamW(model.parameters(), lr=tc["learningRate"], weight_decay=tc["weightDecay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc["learningRate"], total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(tc["seed"])
    print(f"training {params} parameters on {x_train.shape[0]} images ({size}×{size}), "
          f"validating on {x_val.shape[0]}, {epochs} epochs, {torch.get_num_threads()} threads", file=sys.stderr, flush=True)

    history, best = [], None
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(x_train.shape[0], generator=gen)
        total, seen = 0.0, 0
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            xb = fast(augment(normalise(x_train[idx], mean, std), gen))
            loss = F.cross_entropy(model(xb), y_train[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        probs = predict(model, x_val, mean, std)
        val_loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), y_val).item()
        val_acc = (probs.argmax(1) == y_val).float().mean().item()
        history.append({"epoch": epoch, "train_loss": round(total / seen, 4), "val_loss": round(val_loss, 4),
                        "val_accuracy": round(val_acc, 4), "seconds": round(time.perf_counter() - started, 1)})
        print(json.dumps(history[-1]), file=sys.stderr, flush=True)
        # Keep the epoch with the best validation accuracy (lower validation loss on a tie).
        if best is None or (val_acc, -val_loss) > (best["val_accuracy"], -best["val_loss"]):
            best = {"epoch": epoch, "val_accuracy": val_acc, "val_loss": val_loss,
                    "state": {k: v.clone() for k, v in model.state_dict().items()}}
    seconds = time.perf_counter() - started
    model.load_state_dict(best["state"])
    model.eval()

    val_probs = predict(model, x_val, mean, std)
    model = model.to(memory_format=torch.contiguous_format)
    onnx_path = os.path.join(args.work, "model.onnx")
    torch.onnx.export(
        model, torch.zeros(1, 3, size, size), onnx_path,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        opset_version=17, do_constant_folding=True,
    )
    import onnx
    onnx.checker.check_model(onnx.load(onnx_path), full_check=True)

    report = {
        "labels": labels,
        "input_size": size,
        "normalization": {"mean": mean_list, "std": std_list},
        "architecture": describe(),
        "parameters": params,
        "optimizer": f"AdamW (weight decay {tc['weightDecay']}), one-cycle learning rate up to {tc['learningRate']}, "
                     f"batch {bs}, {epochs} epochs, cross-entropy with label smoothing 0.05, random horizontal/vertical flips",
        "seed": tc["seed"],
        "best_epoch": best["epoch"],
        "validation": {"images": int(x_val.shape[0]), "accuracy": round(best["val_accuracy"], 4), "loss": round(best["val_loss"], 4)},
        "history": history,
        "training_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "software": f"PyTorch {torch.__version__}, onnx {onnx.__version__}, Python {platform.python_version()}, opset 17",
        "validation_files": val_meta["files"],
        "validation_probabilities": [[float(p) for p in row] for row in val_probs.tolist()],
    }
    with open(os.path.join(args.work, "training.json"), "w") as f:
        json.dump(report, f)
    print(f"trained in {seconds:.1f} s; best epoch {best['epoch']}: validation accuracy {best['val_accuracy']:.4f}; "
          f"exported {onnx_path} ({os.path.getsize(onnx_path)} bytes)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
