/**
 * The pretrained backbone that `visq model fit --method pretrained` takes its features from:
 * MobileNetV2 (ImageNet-1k, int8) from the ONNX Model Zoo, shipped in models/backbones with its
 * licence and provenance (its README; test/unit/backbone.test.ts checks it is the pretrained
 * network). onnxruntime returns only graph outputs, so the features are taken by copying the
 * backbone's nodes into the fitted graph up to two intermediate tensors ("taps") and dequantizing
 * them there; the classifier head is left out.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import type { GraphBuilder } from './onnx-graph.js';

type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;

export interface BackboneTap {
  /** The quantized tensor in the backbone graph; `<id>_scale` and `<id>_zero_point` dequantize it. */
  quantized: string;
  scale: string;
  zeroPoint: string;
  /** Input pixels per feature-map cell. */
  stride: number;
  channels: number;
}

export interface BackboneSpec {
  /** Folder of the shipped backbone (model.onnx, model.json, README.md, LICENSE). */
  dir: string;
  sha256: string;
  /** The graph input: float32 NCHW RGB, normalised with `mean`/`std` after /255. */
  input: string;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  /** Mid-level taps, finest first: local texture (stride 8) and parts of shapes (stride 16), as PatchCore's layer2 + layer3. */
  taps: readonly BackboneTap[];
}

/** The relative URL works from src/model-fit and dist/model-fit alike (both two levels below the root). */
export const MOBILENETV2_INT8: BackboneSpec = {
  dir: fileURLToPath(new URL('../../models/backbones/mobilenetv2-12-int8/', import.meta.url)),
  sha256: '83530ad811bc31d2b60a5599a21265a5057608c9b044b4ee758cc22f2309f54f',
  input: 'input',
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  taps: [
    { quantized: '365_quantized', scale: '365_scale', zeroPoint: '365_zero_point', stride: 8, channels: 32 },
    { quantized: '426_quantized', scale: '426_scale', zeroPoint: '426_zero_point', stride: 16, channels: 96 },
  ],
};

/** The part of a backbone graph that computes the taps, ready to be copied into another graph. */
export interface BackboneGraph {
  spec: BackboneSpec;
  nodes: NodeProto[];
  initializers: TensorProto[];
  /** Operator sets of non-default domains (the int8 ops are com.microsoft's). */
  opsets: Map<string, number>;
}

export class BackboneError extends Error {
  override name = 'BackboneError';
}

const PREFIX = 'backbone/';

/**
 * Keeps the nodes the taps depend on (walking back from them), with their initializers, and
 * prefixes every tensor name so they cannot collide with the fitted graph's. The backbone's graph
 * input is left unprefixed under the name PREFIX + input, which `addBackbone` feeds.
 */
export function backboneGraphFrom(bytes: Uint8Array, spec: BackboneSpec): BackboneGraph {
  const model = onnxProto.onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  if (!graph) throw new BackboneError('the backbone file has no graph');
  const graphNodes = graph.node ?? [];
  const producer = new Map<string, NodeProto>();
  for (const node of graphNodes) for (const output of node.output ?? []) producer.set(output, node);
  const initializerByName = new Map((graph.initializer ?? []).map((t) => [t.name as string, t]));
  const needed = new Set<NodeProto>();
  const neededInitializers = new Set<string>();
  const pending = spec.taps.flatMap((t) => [t.quantized, t.scale, t.zeroPoint]);
  while (pending.length > 0) {
    const name = pending.pop() as string;
    if (initializerByName.has(name)) {
      neededInitializers.add(name);
      continue;
    }
    const node = producer.get(name);
    if (!node) {
      if (name === spec.input || name === '') continue;
      throw new BackboneError(`the backbone has no tensor "${name}"`);
    }
    if (needed.has(node)) continue;
    needed.add(node);
    pending.push(...(node.input ?? []));
  }
  const rename = (name: string): string => (name === '' ? '' : PREFIX + name);
  const nodes = graphNodes
    .filter((node) => needed.has(node))
    .map((node) => ({ ...node, name: rename(node.name ?? ''), input: (node.input ?? []).map(rename), output: (node.output ?? []).map(rename) }));
  const initializers = [...neededInitializers].map((name) => ({ ...(initializerByName.get(name) as TensorProto), name: rename(name) }));
  const opsets = new Map<string, number>();
  const domains = new Set(nodes.map((n) => n.domain ?? '').filter((d) => d !== ''));
  for (const opset of model.opsetImport ?? []) if (opset.domain && domains.has(opset.domain)) opsets.set(opset.domain, Number(opset.version));
  return { spec, nodes, initializers, opsets };
}

/** Reads the shipped backbone, checking it is the file its provenance names. */
export async function loadBackbone(spec: BackboneSpec = MOBILENETV2_INT8): Promise<BackboneGraph> {
  const bytes = await readFile(`${spec.dir}model.onnx`);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== spec.sha256) throw new BackboneError(`${spec.dir}model.onnx has sha256 ${sha256}, expected ${spec.sha256}: restore the shipped file`);
  return backboneGraphFrom(bytes, spec);
}

/**
 * Adds the backbone to `g` on `input` (float32 NCHW RGB, 0..1): the ImageNet normalisation it was
 * trained with, its nodes, and a DequantizeLinear per tap. Returns the float feature maps, finest first.
 */
export function addBackbone(g: GraphBuilder, input: string, backbone: BackboneGraph): string[] {
  const { spec } = backbone;
  const mean = g.floatTensor('backbone_mean', spec.mean, [1, 3, 1, 1]);
  const inverseStd = g.floatTensor('backbone_inverse_std', spec.std.map((s) => 1 / s), [1, 3, 1, 1]);
  const normalised = g.op('Mul', [g.op('Sub', [input, mean]), inverseStd], {}, 'backbone_normalised');
  g.adopt([{ opType: 'Identity', name: `${PREFIX}input_identity`, input: [normalised], output: [PREFIX + spec.input] }], []);
  g.adopt(backbone.nodes, backbone.initializers, backbone.opsets);
  return spec.taps.map((tap, index) =>
    g.op('DequantizeLinear', [PREFIX + tap.quantized, PREFIX + tap.scale, PREFIX + tap.zeroPoint], {}, `backbone_tap${index + 1}`),
  );
}
