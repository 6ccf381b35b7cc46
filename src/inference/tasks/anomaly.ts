import type * as ort from 'onnxruntime-node';
import type { ModelManifest } from '../manifest.js';

export interface GrayOverlay { kind: string; width: number; height: number; pixels: Uint8Array }
export interface TaskOutput { measures: Map<string, number>; overlays: GrayOverlay[] }

/**
 * anomalib-style outputs → `anomaly_score` and the anomaly map as an overlay.
 * Scores are normalised so the model's threshold is 0.5 (anomalib's convention), either by the
 * graph itself or here from the manifest's `scoreNormalization`.
 */
export function anomalyMeasures(manifest: ModelManifest, outputs: ort.InferenceSession.OnnxValueMapType): TaskOutput {
  const n = manifest.scoreNormalization;
  const normalise = (x: number) => (n ? Math.min(1, Math.max(0, (x - n.threshold) / (n.max - n.min) + 0.5)) : x);
  const overlays: GrayOverlay[] = [];
  let mapMax = -Infinity;

  if (manifest.outputs.map) {
    const map = outputs[manifest.outputs.map] as ort.Tensor;
    const dims = map.dims;
    const h = Number(dims[dims.length - 2]);
    const w = Number(dims[dims.length - 1]);
    const values = map.data as Float32Array;
    const pixels = new Uint8Array(w * h);
    for (let i = 0; i < w * h; i++) {
      const v = values[i]!;
      if (v > mapMax) mapMax = v;
      pixels[i] = Math.round(Math.min(1, Math.max(0, normalise(v))) * 255);
    }
    overlays.push({ kind: 'anomaly_map', width: w, height: h, pixels });
  }
  const rawScore = manifest.outputs.score ? Number((outputs[manifest.outputs.score] as ort.Tensor).data[0]) : mapMax;
  return { measures: new Map([['anomaly_score', normalise(rawScore)]]), overlays };
}
