#!/usr/bin/env python3
"""The reference pipeline videoforge is measured against: what users of the Python upscalers run today.

It builds the realesr-animevideov3 network (SRVGGNetCompact) in PyTorch from the ONNX file's own weights, so both
sides run the same model, then either

  inference W H N        times the model alone on random W x H input (FP16, CUDA events, after warm-up), or
  pipeline IN OUT        decodes IN with OpenCV, upscales every frame in FP16 on the GPU, clamps, converts to
                         8-bit BGR and encodes OUT with OpenCV's VideoWriter (mp4v): the usual Python loop.

Options: --model PATH (default models/realesr-animevideov3-x2.onnx), --channels-last, --fp32, --compile (the
strongest peer: torch.compile with mode="max-autotune" and Triton conv templates, PReLU fused, CUDA graphs).
Prints one JSON line with the figures.
"""
import argparse
import json
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


class SRVGGNetFromOnnx(torch.nn.Module):
    """Conv 3->64, PReLU, N x (Conv 64->64 + PReLU), Conv 64->3*r*r, PixelShuffle(r), plus the nearest-upsampled
    input; then the model's own final Resize (bicubic 0.5/0.75 for the x2/x3 variants), read from the graph."""

    def __init__(self, path):
        super().__init__()
        m = onnx.load(path)
        init = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in m.graph.initializer}
        convs, prelus = [], []
        self.block = 4
        self.final_scale = None
        for n in m.graph.node:
            if n.op_type == "Conv":
                w = torch.from_numpy(init[n.input[1]])
                b = torch.from_numpy(init[n.input[2]]) if len(n.input) > 2 else None
                c = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2, bias=b is not None)
                c.weight.data.copy_(w)
                if b is not None:
                    c.bias.data.copy_(b)
                convs.append(c)
            elif n.op_type == "PRelu":
                s = torch.from_numpy(init[n.input[1]]).reshape(-1)
                p = torch.nn.PReLU(s.numel())
                p.weight.data.copy_(s)
                prelus.append(p)
            elif n.op_type == "DepthToSpace":
                self.block = next(onnx.helper.get_attribute_value(a) for a in n.attribute if a.name == "blocksize")
            elif n.op_type == "Resize" and n.output[0] == m.graph.output[0].name:
                scales = init.get(n.input[2])
                if scales is not None and float(scales[-1]) != 1.0:
                    self.final_scale = float(scales[-1])
        self.convs = torch.nn.ModuleList(convs)
        self.prelus = torch.nn.ModuleList(prelus)

    def forward(self, x):
        h = x
        for i, c in enumerate(self.convs):
            h = c(h)
            if i < len(self.prelus):
                h = self.prelus[i](h)
        h = F.pixel_shuffle(h, self.block)
        h = h + F.interpolate(x, scale_factor=self.block, mode="nearest")
        if self.final_scale is not None:
            h = F.interpolate(h, scale_factor=self.final_scale, mode="bicubic", align_corners=False)
        return h


def build(args):
    torch.backends.cudnn.benchmark = True
    net = SRVGGNetFromOnnx(args.model).cuda().eval()
    dtype = torch.float32 if args.fp32 else torch.float16
    net = net.to(dtype)
    mf = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=mf)
    if getattr(args, "compile", False):
        import torch._inductor.config as inductor
        inductor.max_autotune_conv_backends = "ATEN,TRITON"
        net = torch.compile(net, mode="max-autotune")
    return net, dtype, mf


@torch.inference_mode()
def inference(args):
    net, dtype, mf = build(args)
    x = torch.rand(1, 3, args.height, args.width, device="cuda", dtype=dtype).contiguous(memory_format=mf)
    for _ in range(5 if not args.compile else 20):  # the compiled net autotunes and captures graphs first
        net(x)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(args.frames):
        net(x)
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / args.frames
    return {"what": "torch inference", "width": args.width, "height": args.height, "fps": 1000.0 / ms,
            "ms_per_frame": ms, "dtype": str(dtype), "channels_last": args.channels_last, "compiled": args.compile}


@torch.inference_mode()
def pipeline(args):
    import cv2
    net, dtype, mf = build(args)
    cap = cv2.VideoCapture(args.input)
    if not cap.isOpened():
        sys.exit(f"cannot open {args.input}")
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 24.0
    writer = None
    n = 0
    t0 = time.perf_counter()
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        x = torch.from_numpy(rgb).cuda().permute(2, 0, 1).unsqueeze(0).to(dtype).div_(255.0)
        x = x.contiguous(memory_format=mf)
        y = net(x).clamp_(0, 1).mul_(255.0).round_().to(torch.uint8)
        out = y.squeeze(0).permute(1, 2, 0).contiguous().cpu().numpy()
        out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
        if writer is None:
            h, w = out.shape[:2]
            writer = cv2.VideoWriter(args.output, cv2.VideoWriter_fourcc(*"mp4v"), fps_in, (w, h))
        writer.write(out)
        n += 1
    if writer is not None:
        writer.release()
    secs = time.perf_counter() - t0
    return {"what": "torch pipeline (OpenCV decode, FP16 model, OpenCV mp4v encode)", "frames": n,
            "seconds": secs, "fps": n / secs if secs > 0 else 0.0}


@torch.inference_mode()
def check(args):
    """The PyTorch network equals ONNX Runtime on the same input (FP32), so the comparison is fair."""
    import onnxruntime as ort
    args.fp32 = True
    net, _, _ = build(args)
    x = np.random.default_rng(0).random((1, 3, 48, 64), dtype=np.float32)
    ref = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = net(torch.from_numpy(x).cuda()).float().cpu().numpy()
    return {"what": "torch vs onnxruntime", "max_abs_diff": float(np.abs(ref - got).max()), "shape": list(got.shape)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/realesr-animevideov3-x2.onnx")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--fp32", action="store_true")
    p.add_argument("--compile", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("inference")
    i.add_argument("width", type=int)
    i.add_argument("height", type=int)
    i.add_argument("frames", type=int)
    q = sub.add_parser("pipeline")
    q.add_argument("input")
    q.add_argument("output")
    sub.add_parser("check")
    args = p.parse_args()
    res = {"inference": inference, "pipeline": pipeline, "check": check}[args.cmd](args)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
