import type { AnomalyManifest } from '../manifest.js';
import { outputTensor, tensorValues, type GrayOverlay, type TaskOutput, type TaskOutputs } from './types.js';

export type { GrayOverlay, TaskOutput } from './types.js';

/**
 * anomalib-style outputs → `anomaly_score` and the anomaly map as an overlay.
 * Scores are normalised so the model's threshold is 0.5 (anomalib's convention), either by the
 * graph itself or here from the manifest's `scoreNormalization`.
 */
export function anomalyMeasures(manifest: AnomalyManifest, outputs: TaskOutputs): TaskOutput {
  const n = manifest.scoreNormalization;
  const normalise = (x: number) => (n ? Math.min(1, Math.max(0, (x - n.threshold) / (n.max - n.min) + 0.5)) : x);
  const overlays: GrayOverlay[] = [];
  let mapMax = -Infinity;

  if (manifest.outputs.map) {
    const map = outputTensor(outputs, manifest.outputs.map);
    const dims = map.dims;
    const h = Number(dims[dims.length - 2]);
    const w = Number(dims[dims.length - 1]);
    const values = tensorValues(map, manifest.outputs.map);
    const pixels = new Uint8Array(w * h);
    for (let i = 0; i < w * h; i++) {
      const v = values[i]!;
      if (v > mapMax) mapMax = v;
      pixels[i] = Math.round(Math.min(1, Math.max(0, normalise(v))) * 255);
    }
    overlays.push({ kind: 'anomaly_map', format: 'png', width: w, height: h, pixels });
  }
  const rawScore = manifest.outputs.score ? Number(tensorValues(outputTensor(outputs, manifest.outputs.score), manifest.outputs.score)[0]) : mapMax;
  return { measures: new Map([['anomaly_score', normalise(rawScore)]]), overlays };
}
