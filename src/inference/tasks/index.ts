import { anomalyTask } from './anomaly.js';
import { classificationTask } from './classification.js';
import { detectionTask } from './detection.js';
import { instanceSegmentationTask } from './instance-segmentation.js';
import { segmentationTask } from './segmentation.js';

/** Every supported model task: a task is its module and one line here. */
export const tasks = [anomalyTask, classificationTask, detectionTask, segmentationTask, instanceSegmentationTask] as const;

export type { ModelTask, TaskOutput, TaskOutputs, TaskOverlay, GrayOverlay, JsonOverlay, OutputTensor } from './types.js';
