#!/usr/bin/python3
"""Regenerate fixtures/reference/: preprocessing and YOLO-NMS reference numbers made by the real tools.

Run with Debian's Python and Debian's packages (not a virtualenv, not PyPI):

    apt-get install -y python3-opencv python3-pil python3-torchvision python3-numpy
    /usr/bin/python3 tools/reference-preprocessing/make.py

Everything here is computed by OpenCV, Pillow, torchvision and numpy themselves, never by visq's code,
so visq's tests can compare their own numbers against these. The script is deterministic: running it
again with the same package versions rewrites the same bytes (it prints a sha256 for every file, and
`--check` fails if any output would change).

Inputs: fixtures/reference/cat.jpg (committed; see fixtures/reference/README.md for its provenance) and
the first PNG in fixtures/images/machined-surface/good/. If cat.jpg is missing, pass
`--skimage-git-dir DIR` (a clone or bare mirror of github.com/scikit-image/scikit-image) and it is
extracted byte for byte from the commit that added it.
"""

import argparse
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import PIL
import torch
import torchvision
from PIL import Image, ImageOps
from torchvision import transforms as T

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "fixtures" / "reference"
SURFACE_DIR = ROOT / "fixtures" / "images" / "machined-surface" / "good"

CAT_SHA256 = "9547a2802e208ab6affafcb8322576e8443d399c028c22c13fe9b60fcac6ec25"  # checked on every run
CAT_SOURCE = {
    "repository": "https://github.com/scikit-image/scikit-image",
    "commit": "83f51efbc86d3124b1bcb69777155d07f2caff38",
    "path": "skimage/data/chelsea.jpg",
}

# Ultralytics code the letterbox and NMS below follow (read through the code-search index).
ULTRALYTICS_REF = {
    "letterbox": "ultralytics/data/augment.py LetterBox.__call__ (ultralytics 8.1.x, blob at commit "
    "0005af52af705ebb03b6ed1a0be176d52d79241c; the 8.3.x get_params/apply_image split computes the same numbers)",
    "nms": "ultralytics/utils/ops.py non_max_suppression (ultralytics 8.1.x, commit "
    "002217d4c57509738e4dc15b9e3e6722b9e42aa6) == ultralytics/utils/nms.py non_max_suppression (8.3.x, commit "
    "008ad879ea5dc2cfa8b9094f22c164e39310936d) for multi_label=False, agnostic=False, classes=None, no masks",
}

PAD_VALUE = 114
MAX_WH = 7680


# ----------------------------------------------------------------------------------------------------------------
# helpers


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def apt_version(pkg: str):
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=True)
        return r.stdout.strip() or None
    except Exception:  # not Debian, or not installed from apt
        return None


def png_bytes(rgb: np.ndarray) -> bytes:
    """Lossless 8-bit RGB PNG (channel order R, G, B), written by Pillow with fixed settings."""
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def cv2_read_rgb(path: Path) -> np.ndarray:
    """OpenCV's own decoder (cv2.imread, IMREAD_COLOR: BGR, EXIF orientation applied), converted to RGB."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cv2.imread could not read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def pil_read_rgb(path: Path) -> Image.Image:
    """Pillow's own decoder, converted to RGB (no EXIF transpose: Pillow does not apply it unless asked)."""
    with Image.open(path) as im:
        return im.convert("RGB")


def diff_stats(a: np.ndarray, b: np.ndarray) -> dict:
    assert a.shape == b.shape, (a.shape, b.shape)
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {
        "meanAbsDiff": round(float(d.mean()), 4),
        "maxAbsDiff": int(d.max()),
        "fractionOfValuesDiffering": round(float((d > 0).mean()), 4),
        "fractionOfValuesDifferingByMoreThan1": round(float((d > 1).mean()), 4),
        "fractionOfValuesDifferingByMoreThan2": round(float((d > 2).mean()), 4),
    }


def letterbox_ultralytics(img: np.ndarray, new_shape):
    """Ultralytics LetterBox(new_shape, auto=False, scaleFill=False, scaleup=True, center=True).__call__(image=img),
    transcribed line by line (see ULTRALYTICS_REF). new_shape is (height, width); img is HWC uint8."""
    shape = img.shape[:2]  # current shape [height, width]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    # scaleup=True: no min(r, 1.0)
    ratio = r, r
    new_unpad = int(round(shape[1] * r)), int(round(shape[0] * r))
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]  # wh padding
    # auto=False, scaleFill=False; center=True:
    dw /= 2
    dh /= 2
    resized = shape[::-1] != new_unpad
    if resized:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    geom = {
        "newShapeHW": list(new_shape),
        "r": r,
        "ratio": list(ratio),
        "newUnpadWH": list(new_unpad),
        "dw": dw,
        "dh": dh,
        "resized": resized,
        "top": top,
        "bottom": bottom,
        "left": left,
        "right": right,
        "padValue": PAD_VALUE,
    }
    return img, geom


# ----------------------------------------------------------------------------------------------------------------
# YOLO raw tensor + NMS


def make_yolo_raw():
    """Synthetic Ultralytics-layout raw head output [1, 4 + nc, A]: rows cx, cy, w, h, score_c0..score_c{nc-1}.

    30 objects in a 640x640 input, 10 jittered candidates each (duplicates of one object overlap each other
    with IoUs on both sides of 0.45 and 0.7), about a third of the objects placed close to the previous one (overlaps across objects and
    across classes), plus 100 low-score background anchors; anchors shuffled. Generator: numpy.random.default_rng(7).
    """
    nc, n_obj, per_obj, n_bg = 3, 30, 10, 100
    rng = np.random.default_rng(7)
    rows = []
    prev = None
    for k in range(n_obj):
        cls = int(rng.integers(0, nc))
        w, h = rng.uniform(30, 180), rng.uniform(30, 180)
        if prev is not None and rng.uniform() < 0.35:
            cx = prev[0] + rng.uniform(-0.4, 0.4) * prev[2]
            cy = prev[1] + rng.uniform(-0.4, 0.4) * prev[3]
        else:
            cx, cy = rng.uniform(60, 580), rng.uniform(60, 580)
        prev = (cx, cy, w, h)
        peak = rng.uniform(0.3, 0.97)
        for _ in range(per_obj):
            bx = cx + rng.normal(0, 0.07 * w)
            by = cy + rng.normal(0, 0.07 * h)
            bw = w * np.exp(rng.normal(0, 0.07))
            bh = h * np.exp(rng.normal(0, 0.07))
            scores = rng.uniform(0.0, 0.2, nc)
            scores[cls] = peak * rng.uniform(0.4, 1.0)
            if rng.uniform() < 0.1:  # a competing class, sometimes the best one
                other = (cls + 1 + int(rng.integers(0, nc - 1))) % nc
                scores[other] = rng.uniform(0.2, 0.6)
            rows.append([bx, by, bw, bh, *scores])
    for _ in range(n_bg):
        bw, bh = rng.uniform(10, 120), rng.uniform(10, 120)
        rows.append([rng.uniform(0, 640), rng.uniform(0, 640), bw, bh, *rng.uniform(0.0, 0.3, nc)])
    arr = np.asarray(rows, dtype=np.float64)
    arr = arr[rng.permutation(len(arr))]
    pred = arr.T[None].astype(np.float32)  # [1, 4 + nc, A]
    return np.ascontiguousarray(pred), {
        "generator": "numpy.random.default_rng(7)",
        "nc": nc,
        "objects": n_obj,
        "candidatesPerObject": per_obj,
        "backgroundAnchors": n_bg,
    }


def nms_ultralytics(prediction: torch.Tensor, conf_thres=0.25, iou_thres=0.45, max_det=300, max_wh=MAX_WH):
    """ultralytics non_max_suppression(prediction, conf_thres, iou_thres, classes=None, agnostic=False,
    multi_label=False, max_det=max_det) for a detection head without masks, transcribed line by line
    (see ULTRALYTICS_REF). Returns (x[i] as (n, 6) float32 tensor: x1, y1, x2, y2, conf, cls; anchor indices)."""
    prediction = prediction.clone()
    bs = prediction.shape[0]
    nc = prediction.shape[1] - 4
    nm = prediction.shape[1] - nc - 4
    mi = 4 + nc
    xc = prediction[:, 4:mi].amax(1) > conf_thres  # candidates
    prediction = prediction.transpose(-1, -2)  # (1, A, 4 + nc)
    xy = prediction[..., :2].clone()  # xywh2xyxy, as ultralytics.utils.ops.xywh2xyxy does it
    wh = prediction[..., 2:4] / 2
    prediction[..., :2] = xy - wh
    prediction[..., 2:4] = xy + wh
    assert bs == 1
    x = prediction[0]
    anchors = torch.arange(x.shape[0])
    x, anchors = x[xc[0]], anchors[xc[0]]
    box, cls, mask = x.split((4, nc, nm), 1)
    conf, j = cls.max(1, keepdim=True)
    keep = conf.view(-1) > conf_thres
    x = torch.cat((box, conf, j.float(), mask), 1)[keep]
    anchors = anchors[keep]
    c = x[:, 5:6] * max_wh  # classes (agnostic=False)
    scores = x[:, 4]
    boxes = x[:, :4] + c  # boxes (offset by class)
    i = torchvision.ops.nms(boxes, scores, iou_thres)
    i = i[:max_det]
    return x[i], anchors[i], int(x.shape[0])


def nms_numpy_check(pred: np.ndarray, conf_thres, iou_thres):
    """Independent float64 greedy NMS (per class, suppress IoU > thres), to cross-check torchvision and to
    measure how far every IoU that decided something is from the threshold."""
    p = pred[0].T.astype(np.float64)
    sc = p[:, 4:]
    best = sc.argmax(1)
    conf = sc.max(1)
    idx = np.nonzero(conf > conf_thres)[0]
    idx = idx[np.argsort(-conf[idx], kind="stable")]
    xyxy = np.concatenate([p[:, :2] - p[:, 2:4] / 2, p[:, :2] + p[:, 2:4] / 2], 1)

    def iou(a, b):
        iw = max(0.0, min(xyxy[a, 2], xyxy[b, 2]) - max(xyxy[a, 0], xyxy[b, 0]))
        ih = max(0.0, min(xyxy[a, 3], xyxy[b, 3]) - max(xyxy[a, 1], xyxy[b, 1]))
        inter = iw * ih
        area = lambda k: (xyxy[k, 2] - xyxy[k, 0]) * (xyxy[k, 3] - xyxy[k, 1])  # noqa: E731
        return inter / (area(a) + area(b) - inter)

    kept, margin = [], float("inf")
    for a in idx:
        suppressed = False
        for k in kept:
            if best[k] != best[a]:
                continue
            v = iou(k, a)
            if v > 0:
                margin = min(margin, abs(v - iou_thres))
            if v > iou_thres:
                suppressed = True
                break
        if not suppressed:
            kept.append(a)
    return kept, margin, conf[idx]


# ----------------------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skimage-git-dir", help="scikit-image git dir to extract cat.jpg from if it is missing")
    ap.add_argument("--check", action="store_true", help="write nothing; fail if any output would change")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    outputs = {}  # name -> bytes
    index = []  # reference.json "files"

    def emit(name, data: bytes, entry: dict):
        outputs[name] = data
        entry = {"file": name, "bytes": len(data), "sha256": sha256(data), **entry}
        index.append(entry)

    tools = {
        "python": sys.version.split()[0],
        "opencv": cv2.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "aptPackages": {
            p: apt_version(p)
            for p in [
                "python3-opencv",
                "python3-pil",
                "python3-torchvision",
                "python3-torch",
                "python3-numpy",
                "libjpeg62-turbo",
                "libpng16-16",
                "zlib1g",
            ]
        },
    }

    # -- 1. the photo --------------------------------------------------------------------------------------------
    cat_path = OUT / "cat.jpg"
    if not cat_path.exists():
        if not args.skimage_git_dir:
            raise SystemExit(f"{cat_path} is missing; pass --skimage-git-dir (see README.md)")
        data = subprocess.run(
            ["git", f"--git-dir={args.skimage_git_dir}", "show", f"{CAT_SOURCE['commit']}:{CAT_SOURCE['path']}"],
            capture_output=True,
            check=True,
        ).stdout
        cat_path.write_bytes(data)
    cat_bytes = cat_path.read_bytes()
    if sha256(cat_bytes) != CAT_SHA256:
        raise SystemExit(f"{cat_path} is not the expected file (sha256 {sha256(cat_bytes)})")
    cat_cv = cv2_read_rgb(cat_path)  # (H, W, 3) RGB
    cat_pil = pil_read_rgb(cat_path)
    H, W = cat_cv.shape[:2]
    decoders_agree = bool(np.array_equal(cat_cv, np.asarray(cat_pil)))
    with Image.open(cat_path) as im:
        cat_orientation = im.getexif().get(0x0112)
    index.append(
        {
            "file": "cat.jpg",
            "bytes": len(cat_bytes),
            "sha256": sha256(cat_bytes),
            "width": W,
            "height": H,
            "producedBy": {"tool": "none (source photo, committed as found)", **CAT_SOURCE},
            "exifOrientation": cat_orientation,
            "jpeg": "baseline, 4:2:2 chroma subsampling",
            "decodersAgree": decoders_agree,
            "decoders": "cv2.imread and PIL Image.open(...).convert('RGB') decode it to identical pixels "
            "(decodersAgree); every cat-* output starts from exactly those pixels. No decoded copy is stored: "
            "cat-exif6-upright.png (Pillow's decode of cat-exif6.jpg) serves to check a JPEG decoder.",
        }
    )
    # -- 2. EXIF orientation 6 -----------------------------------------------------------------------------------
    # Orientation 6 = "the 0th row is the visual right-hand side, the 0th column the visual top": a viewer must
    # rotate the stored pixels 90 degrees CLOCKWISE to show them upright. So we store the upright photo rotated
    # 90 degrees counter-clockwise (PIL ROTATE_90 is counter-clockwise).
    stored = cat_pil.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    exif6 = buf.getvalue()
    with Image.open(io.BytesIO(exif6)) as im:
        assert im.getexif().get(0x0112) == 6
        assert im.size == (H, W), im.size  # stored sideways: width H, height W
        upright = ImageOps.exif_transpose(im).convert("RGB")
    upright_np = np.asarray(upright)
    assert upright_np.shape == cat_cv.shape, upright_np.shape
    exif_vs_cat = diff_stats(upright_np, np.asarray(cat_pil))
    assert exif_vs_cat["meanAbsDiff"] < 2.0, exif_vs_cat  # same picture, up to JPEG re-encoding
    # What does OpenCV make of it? (cv2.imread applies EXIF orientation unless IMREAD_IGNORE_ORIENTATION.)
    tmp = OUT / ".exif6-probe.jpg"
    tmp.write_bytes(exif6)
    cv_upright = cv2_read_rgb(tmp)
    cv_ignore = cv2.imread(str(tmp), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    tmp.unlink()
    emit(
        "cat-exif6.jpg",
        exif6,
        {
            "width": H,
            "height": W,
            "displayWidth": W,
            "displayHeight": H,
            "exifOrientation": 6,
            "producedBy": {
                "tool": f"Pillow {PIL.__version__}",
                "call": "Image.open('cat.jpg').convert('RGB').transpose(Image.Transpose.ROTATE_90)"
                ".save(f, 'JPEG', quality=95, subsampling=0, exif=<Exif with only 0x0112=6>)",
            },
            "note": "stored pixels are the photo rotated 90 degrees counter-clockwise; EXIF Orientation 6 tells a "
            "viewer to rotate 90 degrees clockwise. Stored (raw) size is {}x{}, displayed size {}x{}.".format(H, W, W, H),
            "uprightVsCatJpg": exif_vs_cat,
            "cv2ImreadAppliesOrientation": bool(np.array_equal(cv_upright, upright_np)),
            "cv2ImreadIgnoreOrientationShapeHW": list(cv_ignore.shape[:2]),
        },
    )
    emit(
        "cat-exif6-upright.png",
        png_bytes(upright_np),
        {
            "width": W,
            "height": H,
            "producedBy": {
                "tool": f"Pillow {PIL.__version__}",
                "call": "ImageOps.exif_transpose(Image.open('cat-exif6.jpg')).convert('RGB')",
            },
            "note": "the decoded, upright pixels of cat-exif6.jpg",
        },
    )

    # -- 3. resizes of cat.jpg -----------------------------------------------------------------------------------
    cv_img = cv2.imread(str(cat_path), cv2.IMREAD_COLOR)  # BGR, as every cv2 pipeline sees it
    r = cv2.resize(cv_img, (256, 256), interpolation=cv2.INTER_LINEAR)
    emit(
        "cat-cv2-linear-256x256.png",
        png_bytes(cv2.cvtColor(r, cv2.COLOR_BGR2RGB)),
        {
            "width": 256,
            "height": 256,
            "source": "cat.jpg",
            "producedBy": {
                "tool": f"OpenCV {cv2.__version__}",
                "call": "cv2.resize(cv2.imread('cat.jpg'), (256, 256), interpolation=cv2.INTER_LINEAR); BGR->RGB",
            },
        },
    )

    letterbox_geoms = {}
    for name, new_shape in [("cat-letterbox-640.png", (640, 640)), ("cat-letterbox-320x256.png", (256, 320))]:
        lb, geom = letterbox_ultralytics(cv_img, new_shape)
        assert lb.shape[:2] == tuple(new_shape), lb.shape
        letterbox_geoms[name] = geom
        emit(
            name,
            png_bytes(cv2.cvtColor(lb, cv2.COLOR_BGR2RGB)),
            {
                "width": new_shape[1],
                "height": new_shape[0],
                "source": "cat.jpg",
                "producedBy": {
                    "tool": f"OpenCV {cv2.__version__} (Ultralytics LetterBox, transcribed)",
                    "call": f"LetterBox(new_shape={new_shape}, auto=False, scaleFill=False, scaleup=True, center=True)"
                    "(image=cv2.imread('cat.jpg')); BGR->RGB",
                    "code": ULTRALYTICS_REF["letterbox"],
                },
                "geometry": geom,
            },
        )

    pil_bilinear = cat_pil.resize((224, 224), Image.BILINEAR)
    emit(
        "cat-pil-bilinear-224x224.png",
        png_bytes(np.asarray(pil_bilinear)),
        {
            "width": 224,
            "height": 224,
            "source": "cat.jpg",
            "producedBy": {
                "tool": f"Pillow {PIL.__version__}",
                "call": "Image.open('cat.jpg').convert('RGB').resize((224, 224), Image.BILINEAR)",
                "note": "Pillow's BILINEAR is antialiased: when downscaling its triangle filter is widened by the scale",
            },
        },
    )

    resize = T.Resize(256)
    crop = T.CenterCrop(224)
    mid = resize(cat_pil)
    tv_out = T.Compose([T.Resize(256), T.CenterCrop(224)])(cat_pil)
    crop_top = int(round((mid.size[1] - 224) / 2.0))  # torchvision.transforms.functional.center_crop
    crop_left = int(round((mid.size[0] - 224) / 2.0))
    assert np.array_equal(np.asarray(tv_out), np.asarray(mid)[crop_top : crop_top + 224, crop_left : crop_left + 224])
    assert np.array_equal(np.asarray(crop(mid)), np.asarray(tv_out))
    assert np.array_equal(np.asarray(mid), np.asarray(cat_pil.resize(mid.size, Image.BILINEAR)))
    tv_geom = {
        "resizeSizeArg": 256,
        "resizedWidth": mid.size[0],
        "resizedHeight": mid.size[1],
        "resizeRule": "shorter side -> 256, longer side -> int(256 * long / short) (truncated)",
        "cropTop": crop_top,
        "cropLeft": crop_left,
        "cropRule": "top = int(round((resizedHeight - 224) / 2.0)), left = int(round((resizedWidth - 224) / 2.0))",
        "resizeBackend": "PIL Image.resize(size, Image.BILINEAR) (torchvision's PIL path; antialiased)",
        "imagenetNormalizeAfterwards": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    }
    emit(
        "cat-torchvision-resize256-centercrop224.png",
        png_bytes(np.asarray(tv_out)),
        {
            "width": 224,
            "height": 224,
            "source": "cat.jpg",
            "producedBy": {
                "tool": f"torchvision {torchvision.__version__} on Pillow {PIL.__version__}",
                "call": "transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])"
                "(Image.open('cat.jpg').convert('RGB'))",
            },
            "geometry": tv_geom,
        },
    )

    emit(
        "cat-pil-lanczos-224x224.png",
        png_bytes(np.asarray(cat_pil.resize((224, 224), Image.LANCZOS))),
        {
            "width": 224,
            "height": 224,
            "source": "cat.jpg",
            "producedBy": {
                "tool": f"Pillow {PIL.__version__}",
                "call": "Image.open('cat.jpg').convert('RGB').resize((224, 224), Image.LANCZOS)",
            },
        },
    )

    # -- 4. the synthetic surface, and an upscale ----------------------------------------------------------------
    surface_path = sorted(SURFACE_DIR.glob("*.png"))[0]
    surface_rel = surface_path.relative_to(ROOT).as_posix()
    s_cv = cv2.imread(str(surface_path), cv2.IMREAD_COLOR)
    s_pil = pil_read_rgb(surface_path)
    assert np.array_equal(cv2.cvtColor(s_cv, cv2.COLOR_BGR2RGB), np.asarray(s_pil))
    sH, sW = s_cv.shape[:2]
    s256 = cv2.resize(s_cv, (256, 256), interpolation=cv2.INTER_LINEAR)
    emit(
        "surface-cv2-linear-256x256.png",
        png_bytes(cv2.cvtColor(s256, cv2.COLOR_BGR2RGB)),
        {
            "width": 256,
            "height": 256,
            "source": surface_rel,
            "sourceWidth": sW,
            "sourceHeight": sH,
            "producedBy": {
                "tool": f"OpenCV {cv2.__version__}",
                "call": f"cv2.resize(cv2.imread('{surface_rel}'), (256, 256), interpolation=cv2.INTER_LINEAR); BGR->RGB",
            },
            "identicalToSource": bool(np.array_equal(s256, s_cv)),
            "note": "the source is already 256x256, so this is OpenCV's same-size resize (a plain copy)",
        },
    )
    s224cv = cv2.resize(s_cv, (224, 224), interpolation=cv2.INTER_LINEAR)
    emit(
        "surface-cv2-linear-224x224.png",
        png_bytes(cv2.cvtColor(s224cv, cv2.COLOR_BGR2RGB)),
        {
            "width": 224,
            "height": 224,
            "source": surface_rel,
            "producedBy": {
                "tool": f"OpenCV {cv2.__version__}",
                "call": f"cv2.resize(cv2.imread('{surface_rel}'), (224, 224), interpolation=cv2.INTER_LINEAR); BGR->RGB",
            },
            "note": "extra: a real cv2 downscale of the surface at the same size as the PIL one, for kernel comparison",
        },
    )
    s224pil = s_pil.resize((224, 224), Image.BILINEAR)
    emit(
        "surface-pil-bilinear-224x224.png",
        png_bytes(np.asarray(s224pil)),
        {
            "width": 224,
            "height": 224,
            "source": surface_rel,
            "producedBy": {
                "tool": f"Pillow {PIL.__version__}",
                "call": f"Image.open('{surface_rel}').convert('RGB').resize((224, 224), Image.BILINEAR)",
            },
        },
    )

    cw, ch = 64, 48
    cx0, cy0 = (W - cw) // 2, (H - ch) // 2
    box = (cx0, cy0, cx0 + cw, cy0 + ch)  # left, top, right (exclusive), bottom (exclusive)
    crop_rgb = np.ascontiguousarray(cat_cv[cy0 : cy0 + ch, cx0 : cx0 + cw])
    emit(
        "cat-crop-64x48.png",
        png_bytes(crop_rgb),
        {
            "width": cw,
            "height": ch,
            "source": "cat.jpg",
            "cropBox": {"left": box[0], "top": box[1], "right": box[2], "bottom": box[3], "exclusiveEnd": True},
            "producedBy": {"tool": "numpy slicing", "call": f"rgb[{box[1]}:{box[3]}, {box[0]}:{box[2]}] of cat.jpg decoded"},
        },
    )
    up = cv2.resize(crop_rgb, (200, 150), interpolation=cv2.INTER_LINEAR)  # channel-wise, so RGB in = RGB out
    emit(
        "cat-crop-cv2-linear-upscale-200x150.png",
        png_bytes(up),
        {
            "width": 200,
            "height": 150,
            "source": "cat-crop-64x48.png",
            "producedBy": {
                "tool": f"OpenCV {cv2.__version__}",
                "call": "cv2.resize(crop_64x48, (200, 150), interpolation=cv2.INTER_LINEAR)",
            },
            "scale": {"x": 200 / cw, "y": 150 / ch},
        },
    )

    # -- kernel comparisons (numbers only, not files) ------------------------------------------------------------
    cat_rgb = cat_cv
    comparisons = []

    def compare(label, a, b):
        comparisons.append({"what": label, **diff_stats(a, b)})

    for size in [(224, 224), (256, 256)]:
        cvl = cv2.resize(cat_rgb, size, interpolation=cv2.INTER_LINEAR)
        cva = cv2.resize(cat_rgb, size, interpolation=cv2.INTER_AREA)
        pb = np.asarray(cat_pil.resize(size, Image.BILINEAR))
        pl = np.asarray(cat_pil.resize(size, Image.LANCZOS))
        pbic = np.asarray(cat_pil.resize(size, Image.BICUBIC))
        tag = f"cat {W}x{H} -> {size[0]}x{size[1]}"
        compare(f"{tag}: cv2 INTER_LINEAR vs PIL BILINEAR", cvl, pb)
        compare(f"{tag}: cv2 INTER_AREA vs PIL BILINEAR", cva, pb)
        compare(f"{tag}: cv2 INTER_LINEAR vs cv2 INTER_AREA", cvl, cva)
        compare(f"{tag}: PIL BILINEAR vs PIL BICUBIC", pb, pbic)
        compare(f"{tag}: PIL BILINEAR vs PIL LANCZOS", pb, pl)
    s_rgb = np.asarray(s_pil)
    compare(
        f"surface {sW}x{sH} -> 224x224: cv2 INTER_LINEAR vs PIL BILINEAR",
        cv2.resize(s_rgb, (224, 224), interpolation=cv2.INTER_LINEAR),
        np.asarray(s224pil),
    )
    compare(
        f"surface {sW}x{sH} -> 224x224: cv2 INTER_AREA vs PIL BILINEAR",
        cv2.resize(s_rgb, (224, 224), interpolation=cv2.INTER_AREA),
        np.asarray(s224pil),
    )
    compare(
        "crop 64x48 -> 200x150 (upscale): cv2 INTER_LINEAR vs PIL BILINEAR",
        up,
        np.asarray(Image.fromarray(crop_rgb).resize((200, 150), Image.BILINEAR)),
    )
    nw, nh = letterbox_geoms["cat-letterbox-640.png"]["newUnpadWH"]
    compare(
        f"cat {W}x{H} -> {nw}x{nh} (letterbox-640 content, upscale): cv2 INTER_LINEAR vs PIL BILINEAR",
        cv2.resize(cat_rgb, (nw, nh), interpolation=cv2.INTER_LINEAR),
        np.asarray(cat_pil.resize((nw, nh), Image.BILINEAR)),
    )
    g320 = letterbox_geoms["cat-letterbox-320x256.png"]
    nw, nh = g320["newUnpadWH"]
    compare(
        f"cat {W}x{H} -> {nw}x{nh} (letterbox-320x256 content, downscale): cv2 INTER_LINEAR vs PIL BILINEAR",
        cv2.resize(cat_rgb, (nw, nh), interpolation=cv2.INTER_LINEAR),
        np.asarray(cat_pil.resize((nw, nh), Image.BILINEAR)),
    )

    # -- 5. YOLO raw tensor and NMS ------------------------------------------------------------------------------
    pred, gen = make_yolo_raw()
    raw = pred.astype("<f4").tobytes(order="C")
    emit(
        "yolo-raw-1x7x400.f32",
        raw,
        {
            "shape": list(pred.shape),
            "dtype": "float32, little-endian, C order",
            "layout": "[batch, 4 + nc, anchors]: rows cx, cy, w, h (pixels of a 640x640 input), score class 0..2",
            "producedBy": {"tool": f"numpy {np.__version__}", "call": "make_yolo_raw() in make.py", **gen},
        },
    )
    assert np.frombuffer(raw, dtype="<f4").reshape(pred.shape).tobytes() == raw
    nms_json = {
        "input": "yolo-raw-1x7x400.f32",
        "inputShape": list(pred.shape),
        "call": "ultralytics non_max_suppression(prediction, conf_thres=0.25, iou_thres=<t>, classes=None, "
        "agnostic=False, multi_label=False, max_det=300)  [max_wh=7680, max_nms=30000, nc=0 -> 3]",
        "code": ULTRALYTICS_REF["nms"],
        "computedWith": f"torch {torch.__version__}, torchvision {torchvision.__version__} (torchvision.ops.nms), float32",
        "order": "as Ultralytics returns them: descending confidence (torchvision.ops.nms order)",
        "boxFormat": "x1, y1, x2, y2 in input pixels (not clipped, not scaled back); classIndex is the argmax class",
        "numbers": "each value is the exact float32 result, printed as the shortest decimal of that float32 widened to double",
        "confThres": 0.25,
        "maxDet": 300,
    }
    pt = torch.from_numpy(pred.copy())
    nms_checks = {}
    for t in (0.7, 0.45):
        det, anchors, n_cand = nms_ultralytics(pt, conf_thres=0.25, iou_thres=t, max_det=300)
        kept, margin, confs = nms_numpy_check(pred, 0.25, t)
        assert [int(a) for a in anchors] == [int(a) for a in kept], f"numpy cross-check disagrees at iou {t}"
        assert margin > 5e-4, f"an IoU is within {margin} of {t}: float32 vs float64 could decide differently"
        assert len(np.unique(confs)) == len(confs), "tied scores: NMS order would be ambiguous"
        d = det.numpy()
        nms_json[f"iou_{t}"] = {
            "iouThres": t,
            "candidatesAboveConf": n_cand,
            "count": int(len(d)),
            "minAbsIouMinusThreshold": round(float(margin), 6),
            "detections": [
                {
                    "x1": float(row[0]),
                    "y1": float(row[1]),
                    "x2": float(row[2]),
                    "y2": float(row[3]),
                    "confidence": float(row[4]),
                    "classIndex": int(row[5]),
                    "anchorIndex": int(a),
                }
                for row, a in zip(d, anchors)
            ],
        }
        nms_checks[str(t)] = {"count": int(len(d)), "candidatesAboveConf": n_cand, "minAbsIouMinusThreshold": margin}
    nms_bytes = (json.dumps(nms_json, indent=2) + "\n").encode()
    emit(
        "yolo-nms-reference.json",
        nms_bytes,
        {
            "producedBy": {
                "tool": f"torchvision {torchvision.__version__} ops.nms + Ultralytics NMS wrapper transcribed",
                "call": nms_json["call"],
                "code": ULTRALYTICS_REF["nms"],
            },
            "detections": {k: v["count"] for k, v in nms_checks.items()},
            "candidatesAboveConf": nms_checks["0.7"]["candidatesAboveConf"],
        },
    )

    # -- 6. index ------------------------------------------------------------------------------------------------
    reference = {
        "about": "Reference preprocessing outputs computed by the real tools (OpenCV, Pillow, torchvision) and a "
        "reference Ultralytics NMS result. Regenerate: /usr/bin/python3 tools/reference-preprocessing/make.py",
        "tools": tools,
        "ultralyticsCode": ULTRALYTICS_REF,
        "pngFormat": "8-bit RGB, channel order R,G,B (OpenCV results converted from BGR), written by Pillow",
        "files": index,
        "kernelComparisons": comparisons,
    }
    outputs["reference.json"] = (json.dumps(reference, indent=2) + "\n").encode()

    expected = set(outputs) | {"cat.jpg", "README.md"}
    for p in sorted(OUT.iterdir()):
        if p.is_file() and p.name not in expected:
            print(f"warning: {p.name} is not produced by this script (stale?); left in place", file=sys.stderr)
    changed = []
    for name, data in outputs.items():
        p = OUT / name
        if not p.exists() or p.read_bytes() != data:
            changed.append(name)
            if not args.check:
                p.write_bytes(data)
    total = 0
    for p in sorted(OUT.iterdir()):
        if p.is_file():
            total += p.stat().st_size
            print(f"{p.stat().st_size:>8}  {sha256(p.read_bytes())[:16]}  {p.name}")
    print(f"{total:>8}  total bytes in {OUT.relative_to(ROOT)}")
    for c in comparisons:
        print(f"  {c['what']}: mean |d| {c['meanAbsDiff']}, max {c['maxAbsDiff']}")
    if args.check:
        if changed:
            raise SystemExit(f"would change: {', '.join(changed)}")
        print("check: all outputs unchanged")
    elif changed:
        print("wrote: " + ", ".join(changed))
    else:
        print("nothing changed")


if __name__ == "__main__":
    main()
