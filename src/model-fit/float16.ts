/**
 * Half-precision storage for the fitted statistics: the whitening matrices are most of a model's
 * bytes, and half precision (11 significant bits) halves the file. The fit rounds the matrices to
 * half precision before it scores anything, so the calibration sees exactly the values the graph
 * will use (the graph casts them to float32 once, when the session is created).
 */
import { halfToFloat } from '../inference/tasks/types.js';

const float = new Float32Array(1);
const bits = new Uint32Array(float.buffer);

/** IEEE 754 half-precision bits of `value`, rounded to nearest, ties to even. */
export function toHalfBits(value: number): number {
  float[0] = value;
  const x = bits[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const middle = 1 << (shift - 1);
    if (rest > middle || (rest === middle && half & 1)) half++;
    return sign | half;
  }
  let half = sign | (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa rounds up into the exponent, which is the right result.
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return half;
}

/** The values as half-precision bits. */
export const toHalfArray = (values: ArrayLike<number>): Uint16Array => Uint16Array.from({ length: values.length }, (_, i) => toHalfBits(values[i] as number));

/** The values rounded to half precision (and back to float32), in place. */
export function roundToHalf(values: Float32Array): Float32Array {
  for (let i = 0; i < values.length; i++) values[i] = halfToFloat(toHalfBits(values[i] as number));
  return values;
}
