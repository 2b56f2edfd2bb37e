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


def run_ncnn(param, binary, rgb):
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    opt.use_fp16_storage = False
    opt.use_fp16_packed = False
    opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = False
    opt.num_threads = os.cpu_count() or 1
    assert net.load_param(str(param)) == 0, param
    assert net.load_model(str(binary)) == 0, binary
    x = np.ascontiguousarray((rgb.astype(np.float32) / 255.0).transpose(2, 0, 1))
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(x))
    ret, out = ex.extract("output")
    assert ret == 0, ret
    return np.array(out, dtype=np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path.home() / ".cache/lupa-import")
    args = parser.parse_args()
    index = json.loads((ROOT / "models/index.json").read_text())
    out_dir = ROOT / "tests/fixtures/parity"
    out_dir.mkdir(parents=True, exist_ok=True)
    for spec in index["models"]:
        param, binary = source_files(spec, args.cache)
        for image in IMAGES:
            rgb = np.asarray(Image.open(ROOT / "tests/fixtures/images" / image).convert("RGB"))
            y = run_ncnn(param, binary, rgb)
            s = spec["scale"]
            assert y.shape == (3, rgb.shape[0] * s, rgb.shape[1] * s), y.shape
            name = f'{spec["id"]}__{pathlib.Path(image).stem}.safetensors'
            save_file({"output": y}, out_dir / name, metadata={
                "model": spec["id"], "image": image, "runtime": f"ncnn {ncnn.__version__} (PyPI), CPU, f32",
            })
            print(f"{name}: {y.shape}, range [{y.min():.3f}, {y.max():.3f}]")


if __name__ == "__main__":
    main()
