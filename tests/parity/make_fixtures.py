#!/usr/bin/env python3
"""Reference outputs from the real ncnn runtime, for the Rust parity tests.

For every model in models/index.json, runs the *original* ncnn .param/.bin (taken from the pinned
registry package the importer unpacked, sha256-checked against the index) on the test crops in
tests/fixtures/images, and writes tests/fixtures/parity/<model>__<image>.safetensors holding
`output`: f32 [3, s*H, s*W], the raw network output (not clamped).

Run after `cargo run -p lupa-import` (which fills the package cache):

    pip install -r tests/parity/requirements.txt
    python3 tests/parity/make_fixtures.py [--cache ~/.cache/lupa-import]

ncnn runs on the CPU in f32 (fp16/bf16 storage and arithmetic off) so the reference is the model's
full-precision output.

The Real-CUGAN .param files hold only the two U-Nets; the steps around them are done here as
realcugan-ncnn-vulkan and upstream's upcunet_v3.py do them: reflect padding by 18 (2x), 14 (3x) or
19 (4x) px plus up to an even size (a multiple of 4 at 3x), a crop of the output to s·H × s·W, and
at 4x the nearest-neighbour upsampled input added.
"""
import argparse
import hashlib
import json
import os
import pathlib

import ncnn
import numpy as np
from PIL import Image
from safetensors.numpy import save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Non-square on purpose, so a transposed width/height shows up.
IMAGES = ["astronaut_face_40x32.png", "cartoon_32x40.png"]


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_files(spec, cache):
    src = spec["source"]
    root = cache / f'{src["package"]}-{src["version"]}' / "unpacked"
    paths = []
    for f in src["files"]:
        path = root / f["path"]
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `cargo run -p lupa-import` first")
        if sha256(path) != f["sha256"]:
            raise SystemExit(f"{path} does not match the sha256 pinned in models/index.json")
        paths.append(path)
    return paths


def load_net(spec, cache, threads=None, vulkan=False):
    """The original ncnn files of `spec` (sha256-checked), loaded in f32 for the CPU, or with
    `vulkan` for ncnn's Vulkan compute path on GPU 0 (still f32: no fp16 storage or arithmetic)."""
    param, binary = source_files(spec, cache)
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = vulkan
    opt.use_fp16_storage = False
    opt.use_fp16_packed = False
    opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = False
    opt.num_threads = threads or os.cpu_count() or 1
    assert net.load_param(str(param)) == 0, param
    assert net.load_model(str(binary)) == 0, binary
    return net


def forward(net, spec, rgb):
    """The raw output, f32 [3, s·H, s·W], of `spec`'s network on an 8-bit RGB image (H, W, 3).

    Real-CUGAN se: the ncnn U-Nets with upstream's padding, crop and 4x residual around them.
    """
    scale = spec["scale"]
    cugan = spec["architecture"]["type"] == "up_cunet"
    x = rgb.astype(np.float32) / 255.0
    if cugan:
        h, w = rgb.shape[:2]
        pad, multiple = {2: (18, 2), 3: (14, 4), 4: (19, 2)}[scale]
        x = np.pad(x, ((pad, pad + -h % multiple), (pad, pad + -w % multiple), (0, 0)), mode="reflect")
    names = ("in0", "out0") if cugan else ("data", "output")
    # ncnn.Mat wraps the array without copying: it must stay alive until the extraction.
    planar = np.ascontiguousarray(x.transpose(2, 0, 1))
    ex = net.create_extractor()
    ex.input(names[0], ncnn.Mat(planar))
    ret, out = ex.extract(names[1])
    assert ret == 0, ret
    y = np.array(out, dtype=np.float32)
    if cugan:
        y = y[:, : scale * rgb.shape[0], : scale * rgb.shape[1]]
        if scale == 4:
            y = y + (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1).repeat(4, axis=1).repeat(4, axis=2)
    return np.ascontiguousarray(y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path.home() / ".cache/lupa-import")
    parser.add_argument("--only", help="comma-separated model ids (default: every model)")
    args = parser.parse_args()
    index = json.loads((ROOT / "models/index.json").read_text())
    out_dir = ROOT / "tests/fixtures/parity"
    out_dir.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    for spec in index["models"]:
        if only and spec["id"] not in only:
            continue
        net = load_net(spec, args.cache)
        for image in IMAGES:
            rgb = np.asarray(Image.open(ROOT / "tests/fixtures/images" / image).convert("RGB"))
            s = spec["scale"]
            y = forward(net, spec, rgb)
            assert y.shape == (3, rgb.shape[0] * s, rgb.shape[1] * s), y.shape
            name = f'{spec["id"]}__{pathlib.Path(image).stem}.safetensors'
            save_file({"output": y}, out_dir / name, metadata={
                "model": spec["id"], "image": image, "runtime": f"ncnn {ncnn.__version__} (PyPI), CPU, f32",
            })
            print(f"{name}: {y.shape}, range [{y.min():.3f}, {y.max():.3f}]")


if __name__ == "__main__":
    main()
