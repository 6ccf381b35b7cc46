/**
 * Resampling as the tools models are trained with do it, on interleaved 8-bit pixels. libvips (sharp)
 * antialiases when shrinking; OpenCV's INTER_LINEAR does not, and PIL's BILINEAR widens its triangle
 * filter by the shrink factor: a model expects what its maker's tool produced (a detector trained on
 * cv2.resize sees fine lines differently after an antialiased shrink).
 */

export interface RawImage { data: Uint8Array; width: number; height: number; channels: number }

const clip8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);
/** C's rint(): halves to even, as OpenCV's cvRound. */
const rint = (x: number) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** OpenCV's source index and fixed-point weights (×2048) along one axis of INTER_LINEAR. */
function openCvLinearTaps(src: number, dst: number): { index: Int32Array; w0: Int32Array; w1: Int32Array } {
  const scale = src / dst;
  const index = new Int32Array(dst);
  const w0 = new Int32Array(dst);
  const w1 = new Int32Array(dst);
  for (let d = 0; d < dst; d++) {
    let f = (d + 0.5) * scale - 0.5;
    let s = Math.floor(f);
    f -= s;
    if (s < 0) { f = 0; s = 0; }
    if (s >= src - 1) { f = 0; s = src - 1; }
    index[d] = s;
    w0[d] = rint((1 - f) * 2048);
    w1[d] = rint(f * 2048);
  }
  return { index, w0, w1 };
}

/**
 * OpenCV `cv2.resize(..., interpolation=INTER_LINEAR)` on 8-bit images, in its fixed-point
 * arithmetic (11-bit weights per axis) and with the rounding of its vectorised vertical pass. As
 * OpenCV does, an exact halving of both sides is an INTER_AREA 2×2 average.
 */
export function resizeOpenCvLinear(img: RawImage, width: number, height: number): RawImage {
  const { data: src, width: sw, height: sh, channels: c } = img;
  const out = new Uint8Array(width * height * c);
  if (sw === 2 * width && sh === 2 * height) {
    for (let y = 0; y < height; y++) {
      const r0 = 2 * y * sw * c;
      const r1 = r0 + sw * c;
      for (let x = 0; x < width; x++) {
        for (let k = 0; k < c; k++) {
          const i = 2 * x * c + k;
          out[(y * width + x) * c + k] = (src[r0 + i]! + src[r0 + i + c]! + src[r1 + i]! + src[r1 + i + c]! + 2) >> 2;
        }
      }
    }
    return { data: out, width, height, channels: c };
  }
  const tx = openCvLinearTaps(sw, width);
  const ty = openCvLinearTaps(sh, height);
  // Horizontal pass of every source row a destination row needs, kept as integers (×2048).
  const rows = new Map<number, Int32Array>();
  const horizontal = (sy: number): Int32Array => {
    let row = rows.get(sy);
    if (row) return row;
    row = new Int32Array(width * c);
    const base = sy * sw * c;
    for (let x = 0; x < width; x++) {
      const s0 = base + tx.index[x]! * c;
      const s1 = tx.index[x]! < sw - 1 ? s0 + c : s0;
      for (let k = 0; k < c; k++) row[x * c + k] = src[s0 + k]! * tx.w0[x]! + src[s1 + k]! * tx.w1[x]!;
    }
    rows.set(sy, row);
    return row;
  };
  for (let y = 0; y < height; y++) {
    const sy = ty.index[y]!;
    const a = horizontal(sy);
    const b = horizontal(Math.min(sy + 1, sh - 1));
    const b0 = ty.w0[y]!;
    const b1 = ty.w1[y]!;
    const o = y * width * c;
    // OpenCV's vectorised vertical pass (what x86 builds run): each row to 16 bits (>> 4), the high
    // half of each 16×16-bit product (>> 16), then (sum + 2) >> 2.
    for (let i = 0; i < width * c; i++) out[o + i] = clip8((((a[i]! >> 4) * b0 >> 16) + ((b[i]! >> 4) * b1 >> 16) + 2) >> 2);
    if (y > 0 && ty.index[y - 1]! < sy) rows.delete(ty.index[y - 1]!);
  }
  return { data: out, width, height, channels: c };
}

/** PIL's per-pixel windows and fixed-point coefficients (22 bits) of its BILINEAR filter along one axis. */
function pilBilinearTaps(src: number, dst: number): { start: Int32Array; count: Int32Array; weights: Int32Array; stride: number } {
  const scale = src / dst;
  const filterScale = Math.max(1, scale);
  const support = filterScale; // the triangle's support (1) widened by the shrink factor
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(dst);
  const count = new Int32Array(dst);
  const weights = new Int32Array(dst * stride);
  const k = new Float64Array(stride);
  for (let d = 0; d < dst; d++) {
    const center = (d + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), src) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) / filterScale);
      k[x] = t < 1 ? 1 - t : 0;
      total += k[x]!;
    }
    for (let x = 0; x < xmax; x++) {
      const w = total ? k[x]! / total : 0;
      // PIL's normalize_coeffs_8bpc: round half away from zero at 22 bits.
      weights[d * stride + x] = w < 0 ? Math.trunc(-0.5 + w * 4194304) : Math.trunc(0.5 + w * 4194304);
    }
    start[d] = xmin;
    count[d] = xmax;
  }
  return { start, count, weights, stride };
}

/**
 * PIL `Image.resize(size, Image.BILINEAR)` on 8-bit images — what torchvision's `Resize` does to a
 * PIL image: horizontal pass first, rounded to 8 bits, then vertical, in PIL's fixed-point arithmetic.
 */
export function resizePilBilinear(img: RawImage, width: number, height: number): RawImage {
  const { data: src, width: sw, height: sh, channels: c } = img;
  const half = 1 << 21;
  let mid: Uint8Array = src;
  if (width !== sw) {
    const t = pilBilinearTaps(sw, width);
    mid = new Uint8Array(width * sh * c);
    for (let y = 0; y < sh; y++) {
      for (let x = 0; x < width; x++) {
        for (let ch = 0; ch < c; ch++) {
          let sum = half;
          for (let i = 0; i < t.count[x]!; i++) sum += src[(y * sw + t.start[x]! + i) * c + ch]! * t.weights[x * t.stride + i]!;
          mid[(y * width + x) * c + ch] = clip8(Math.floor(sum / 4194304));
        }
      }
    }
  }
  if (height === sh) return { data: mid, width, height, channels: c };
  const t = pilBilinearTaps(sh, height);
  const out = new Uint8Array(width * height * c);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width * c; x++) {
      let sum = half;
      for (let i = 0; i < t.count[y]!; i++) sum += mid[(t.start[y]! + i) * width * c + x]! * t.weights[y * t.stride + i]!;
      out[y * width * c + x] = clip8(Math.floor(sum / 4194304));
    }
  }
  return { data: out, width, height, channels: c };
}
