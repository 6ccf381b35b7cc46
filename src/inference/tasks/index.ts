import type { Manifest } from '../manifest.js';
import type { InputGeometry } from '../preprocess.js';
import { anomalyMeasures } from './anomaly.js';
import { classificationMeasures } from './classification.js';
import { detectionMeasures } from './detection.js';
import { segmentationMeasures } from './segmentation.js';
import type { TaskOutput, TaskOutputs } from './types.js';

export type { TaskOutput, TaskOutputs, TaskOverlay, GrayOverlay, JsonOverlay, OutputTensor } from './types.js';

/** A model's output tensors (+ where the original image lies in its input) → its measures and overlays. */
export function taskOutput(manifest: Manifest, outputs: TaskOutputs, geometry: InputGeometry): TaskOutput {
  switch (manifest.task) {
    case 'anomaly':
      return anomalyMeasures(manifest, outputs);
    case 'classification':
      return classificationMeasures(manifest, outputs);
    case 'detection':
      return detectionMeasures(manifest, outputs, geometry);
    case 'segmentation':
      return segmentationMeasures(manifest, outputs, geometry);
  }
}
