"""The PyTorch reference (facebookresearch/sam2) on the same stages and inputs as `npm run bench`.

Prints one JSON line per stage with the stage names of bench/run.ts, so the two programs can be
compared in the same run (bench/reference/compare.sh alternates them). Weights are the fixtures'
formula weights for SAM 2.1 Hiera-T (same compute as the trained checkpoint).

Needs: Debian's python3-torch, python3-torchvision, python3-yaml, python3-numpy, python3-pil and
libopenblas0-pthread (without it torch is ~25x slower), libtcmalloc-minimal4 (bench/compare.ts preloads it:
with glibc's malloc, page faults on fresh large tensors make set_image ~2.5x slower here), and a checkout of facebookresearch/sam2
(`SAM2_REFERENCE_DIR`, the folder holding its `sam2/` package). Not needed: hydra and iopath (a tiny
`_target_` builder below reads the reference's YAML config) and torch >= 2 (Debian ships 1.13:
scaled_dot_product_attention is added in plain math when missing).

    /usr/bin/python3 bench/reference/sam2_torch.py [stage ...]
"""

import json
import math
import os
import sys
import time
import types
from importlib import import_module

import numpy as np
import torch
import torch.nn.functional as F
import yaml

FIXTURES = os.environ.get(
    "SAM2_FIXTURES", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures")
)
STAGES = ["set_image", "predict_click_median", "predict_batch", "per_frame", "generate", "generate_defaults"]


def setup_reference():
    root = os.environ.get("SAM2_REFERENCE_DIR")
    if not root or not os.path.isdir(os.path.join(root, "sam2")):
        sys.exit("set SAM2_REFERENCE_DIR to a checkout of facebookresearch/sam2 (the folder with sam2/)")
    sys.path.insert(0, root)
    # sam2/__init__.py only registers the hydra config module: stand in for hydra
    hydra = types.ModuleType("hydra")
    hydra.initialize_config_module = lambda *a, **k: None
    core = types.ModuleType("hydra.core")
    gh = types.ModuleType("hydra.core.global_hydra")
    gh.GlobalHydra = types.SimpleNamespace(instance=lambda: types.SimpleNamespace(is_initialized=lambda: True))
    # hieradet imports iopath's path manager only to load pretrained trunk weights (unused here)
    fio = types.ModuleType("iopath.common.file_io")
    fio.g_pathmgr = types.SimpleNamespace(open=open)
    stubs = {"hydra": hydra, "hydra.core": core, "hydra.core.global_hydra": gh}
    stubs.update({"iopath": types.ModuleType("iopath"), "iopath.common": types.ModuleType("iopath.common")})
    for name, mod in {**stubs, "iopath.common.file_io": fio}.items():
        sys.modules.setdefault(name, mod)
    if not hasattr(F, "scaled_dot_product_attention"):

        def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
            w = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1]), dim=-1)
            return w @ v

        F.scaled_dot_product_attention = sdpa
    return root


def build(node):
    """Instantiate a config tree whose dicts name their class in `_target_`."""
    if isinstance(node, list):
        return [build(x) for x in node]
    if isinstance(node, str):
        try:  # YAML 1.1 reads `1e-6` as text; OmegaConf (hydra) reads it as a number
            return float(node)
        except ValueError:
            return node
    if not isinstance(node, dict):
        return node
    args = {k: build(v) for k, v in node.items() if k != "_target_"}
    if "_target_" not in node:
        return args
    mod, _, name = node["_target_"].rpartition(".")
    return getattr(import_module(mod), name)(**args)


def formula_state_dict(manifest):
    """The fixtures' formula weights (fixtures README, "Formula weights"), vectorised."""
    out = {}
    M = np.uint64(0xFFFFFFFF)
    for key, shape in manifest:
        h = np.uint64(0x811C9DC5)
        for b in key.encode():
            h = ((h ^ np.uint64(b)) * np.uint64(0x01000193)) & M
        n = int(np.prod(shape)) if shape else 1
        i = np.arange(n, dtype=np.uint64)
        x = (i * np.uint64(0x9E3779B1) + h) & M
        x ^= x >> np.uint64(16)
        x = (x * np.uint64(0x85EBCA6B)) & M
        x ^= x >> np.uint64(13)
        x = (x * np.uint64(0xC2B2AE35)) & M
        x ^= x >> np.uint64(16)
        u = (x >> np.uint64(8)).astype(np.float64) / 2**24
        x = 2 * u - 1
        leaf = key.rsplit(".", 1)[-1]
        if key.endswith("pred_obj_score_head.layers.2.bias"):
            v = 2.0 + 0.1 * x
        elif leaf == "gamma":
            v = 0.5 + 0.25 * x
        elif leaf == "positional_encoding_gaussian_matrix":
            v = math.sqrt(3) * x
        elif leaf in (
            "pos_embed",
            "pos_embed_window",
            "no_mem_embed",
            "no_mem_pos_enc",
            "no_obj_ptr",
            "no_obj_embed_spatial",
            "maskmem_tpos_enc",
        ):
            v = 0.5 * x
        elif len(shape) == 1 and leaf == "weight":
            v = 1 + 0.2 * x
        elif len(shape) == 1 and leaf == "bias":
            v = 0.1 * x
        else:
            v = math.sqrt(3 / int(np.prod(shape[1:]))) * x
        out[key] = torch.from_numpy(v.astype(np.float32).reshape(shape))
    return out


def build_model(root, video):
    with open(os.path.join(root, "sam2", "configs", "sam2.1", "sam2.1_hiera_t.yaml")) as f:
        cfg = yaml.safe_load(f)["model"]
    # the post-processing settings build_sam2 / build_sam2_video_predictor apply
    cfg["sam_mask_decoder_extra_args"] = {
        "dynamic_multimask_via_stability": True,
        "dynamic_multimask_stability_delta": 0.05,
        "dynamic_multimask_stability_thresh": 0.98,
    }
    if video:
        cfg["_target_"] = "sam2.sam2_video_predictor.SAM2VideoPredictor"
        cfg["binarize_mask_from_pts_for_mem_enc"] = True
        cfg["fill_hole_area"] = 8
    model = build(cfg)
    with open(os.path.join(FIXTURES, "manifests.json")) as f:
        manifest = json.load(f)["sam2.1_hiera_tiny"]
    model.load_state_dict(formula_state_dict(manifest), strict=True)
    return model.eval()


def times(fn, runs, warmup=1):
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return t


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main():
    asked = sys.argv[1:]
    for a in asked:
        if a not in STAGES:
            sys.exit(f"unknown stage {a}; stages: {', '.join(STAGES)}")
    want = lambda s: not asked or s in asked  # noqa: E731
    threads = int(os.environ.get("SAM2_TORCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    root = setup_reference()
    from PIL import Image

    common = {"backend": "pytorch-cpu", "threads": threads, "torch": torch.__version__, "model": "sam2.1_hiera_tiny (formula weights)"}
    r3 = lambda s: round(s, 3)  # noqa: E731

    def emit(stage, fields):
        print(json.dumps({"stage": stage, **fields, **common}), flush=True)

    with torch.inference_mode():
        if want("set_image") or want("predict_click_median") or want("predict_batch"):
            from sam2.sam2_image_predictor import SAM2ImagePredictor

            predictor = SAM2ImagePredictor(build_model(root, video=False))
            image = np.array(Image.open(os.path.join(FIXTURES, "images", "truck.png")).convert("RGB"))
            t = times(lambda: predictor.set_image(image), 3) if want("set_image") else None
            if t:
                emit("set_image", {"seconds": r3(median(t)), "runs": [r3(x) for x in t], "image": "truck.png 1800x1200"})
            else:
                predictor.set_image(image)
            if want("predict_click_median"):
                click = lambda: predictor.predict(point_coords=np.array([[500, 375]]), point_labels=np.array([1]))  # noqa: E731
                t = times(click, 11, 3)
                emit("predict_click_median", {"seconds": r3(median(t)), "runs": [r3(x) for x in t], "output": "3 masks 1800x1200"})
            if want("predict_batch"):
                pts = np.array([[[(i % 8) * 225 + 100, (i // 8) * 150 + 75]] for i in range(64)], dtype=np.float32)
                batch = lambda: predictor.predict(point_coords=pts, point_labels=np.ones((64, 1)), multimask_output=True)  # noqa: E731
                t = times(batch, 1, 0)
                emit("predict_batch", {"seconds": r3(t[0]), "prompts": 64})

        if want("per_frame"):
            video = build_model(root, video=True)
            state = video.init_state(os.path.join(FIXTURES, "videos", "bedroom"))
            video.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=np.array([[210, 350]]), labels=np.array([1]))
            video.add_new_points_or_box(state, frame_idx=0, obj_id=2, box=np.array([300, 0, 500, 400]))
            per_frame, last = [], time.perf_counter()
            for frame_idx, _, _ in video.propagate_in_video(state):
                if frame_idx > 0:
                    per_frame.append(r3(time.perf_counter() - last))
                last = time.perf_counter()
            emit("per_frame", {"seconds": per_frame, "median": median(per_frame), "frames": f"1-{len(per_frame)}", "objects": 2})

        if want("generate"):
            from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

            gen = SAM2AutomaticMaskGenerator(build_model(root, video=False), points_per_side=16)
            image = np.array(Image.open(os.path.join(FIXTURES, "amg_truck", "input.png")).convert("RGB"))
            t0 = time.perf_counter()
            anns = gen.generate(image)
            emit("generate", {"seconds": r3(time.perf_counter() - t0), "masks": len(anns), "points": "16x16", "image": "amg_truck/input.png 450x300"})

        if want("generate_defaults"):
            from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

            gen = SAM2AutomaticMaskGenerator(build_model(root, video=False), points_per_side=32, points_per_batch=64)
            image = np.array(Image.open(os.path.join(FIXTURES, "images", "truck.jpg")).convert("RGB"))
            t0 = time.perf_counter()
            anns = gen.generate(image)
            emit("generate_defaults", {"seconds": r3(time.perf_counter() - t0), "masks": len(anns), "points": "32x32", "image": "truck.jpg 1800x1200"})


if __name__ == "__main__":
    main()
