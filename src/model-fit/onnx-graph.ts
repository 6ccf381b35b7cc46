/**
 * A small builder for ONNX graphs on top of onnx-proto (the protobuf classes of onnx.proto3).
 * Just enough for the anomaly models here: nodes with typed attributes, float/int64 initializers,
 * inputs/outputs with symbolic dimensions, serialised at a fixed opset.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type AttributeProto = onnxProto.onnx.IAttributeProto;
type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

/** Opset 14: what anomalib exports use, and well within onnxruntime-node 1.30. */
export const OPSET_VERSION = 14;
/** IR version 7 goes with opsets 13–15 and is read by every runtime that reads opset 14. */
const IR_VERSION = 7;

/** An attribute value with its ONNX type made explicit (a JS number cannot tell int from float). */
export type Attribute =
  | { int: number }
  | { ints: number[] }
  | { float: number }
  | { floats: number[] }
  | { string: string };

/** A tensor dimension: a fixed size or a symbolic name such as `batch_size`. */
export type Dimension = number | string;

function toAttributeProto(name: string, value: Attribute): AttributeProto {
  const types = onnx.AttributeProto.AttributeType;
  if ('int' in value) return { name, type: types.INT, i: value.int };
  if ('ints' in value) return { name, type: types.INTS, ints: value.ints };
  if ('float' in value) return { name, type: types.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: types.FLOATS, floats: value.floats };
  return { name, type: types.STRING, s: new TextEncoder().encode(value.string) };
}

function valueInfo(name: string, elemType: number, shape: readonly Dimension[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function littleEndianBytes(view: Float32Array | BigInt64Array): Uint8Array {
  // Copy so the bytes are exactly this tensor's (a typed array may view a larger buffer).
  return new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}

export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly usedNames = new Set<string>();
  /** Operator sets of other domains that adopted nodes need (e.g. com.microsoft for QLinearAdd). */
  private readonly extraOpsets = new Map<string, number>();

  constructor(private readonly graphName: string) {}

  /** A fresh tensor name based on `hint`. */
  private name(hint: string): string {
    let candidate = hint;
    for (let i = 1; this.usedNames.has(candidate); i++) candidate = `${hint}_${i}`;
    this.usedNames.add(candidate);
    return candidate;
  }

  input(name: string, shape: readonly Dimension[]): string {
    this.usedNames.add(name);
    this.inputs.push(valueInfo(name, onnx.TensorProto.DataType.FLOAT, shape));
    return name;
  }

  /** Declares `tensor` a graph output under `name` (through an Identity when the names differ). */
  output(tensor: string, name: string, shape: readonly Dimension[]): string {
    if (tensor !== name) {
      this.usedNames.add(name);
      this.nodes.push({ opType: 'Identity', input: [tensor], output: [name], name: `${name}_identity` });
    }
    this.outputs.push(valueInfo(name, onnx.TensorProto.DataType.FLOAT, shape));
    return name;
  }

  floatTensor(hint: string, values: ArrayLike<number>, dims: readonly number[]): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (values.length !== expected) throw new Error(`${hint}: ${values.length} values for dims [${dims.join(', ')}]`);
    const name = this.name(hint);
    this.initializers.push({
      name,
      dims: [...dims],
      dataType: onnx.TensorProto.DataType.FLOAT,
      rawData: littleEndianBytes(Float32Array.from(values)),
    });
    return name;
  }

  /** A float16 initializer from half-precision bits (Cast it to float before arithmetic). */
  float16Tensor(hint: string, halfBits: Uint16Array, dims: readonly number[]): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (halfBits.length !== expected) throw new Error(`${hint}: ${halfBits.length} values for dims [${dims.join(', ')}]`);
    const name = this.name(hint);
    const bytes = new Uint8Array(halfBits.length * 2);
    const view = new DataView(bytes.buffer);
    halfBits.forEach((value, i) => view.setUint16(i * 2, value, true));
    this.initializers.push({ name, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT16, rawData: bytes });
    return name;
  }

  int64Tensor(hint: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.name(hint);
    this.initializers.push({
      name,
      dims: [...dims],
      dataType: onnx.TensorProto.DataType.INT64,
      rawData: littleEndianBytes(BigInt64Array.from(values.map((v) => BigInt(v)))),
    });
    return name;
  }

  /** A scalar float constant (rank 0), for broadcasting arithmetic. */
  scalar(hint: string, value: number): string {
    return this.floatTensor(hint, [value], []);
  }

  /** Adds a node with one output and returns the output's name. Use '' for an omitted input. */
  op(opType: string, inputs: readonly string[], attributes: Record<string, Attribute> = {}, outputHint?: string): string {
    const output = this.name(outputHint ?? opType.toLowerCase());
    this.nodes.push({
      opType,
      name: `${output}_node`,
      input: [...inputs],
      output: [output],
      attribute: Object.entries(attributes).map(([key, value]) => toAttributeProto(key, value)),
    });
    return output;
  }

  /** Adds a node with several outputs and returns their names. */
  opMulti(opType: string, inputs: readonly string[], attributes: Record<string, Attribute>, outputs: number, outputHint: string): string[] {
    const names = Array.from({ length: outputs }, (_, i) => this.name(`${outputHint}_${i}`));
    this.nodes.push({
      opType,
      name: `${names[0]}_node`,
      input: [...inputs],
      output: names,
      attribute: Object.entries(attributes).map(([key, value]) => toAttributeProto(key, value)),
    });
    return names;
  }

  /**
   * Takes over nodes and initializers of another graph (a pretrained backbone) as they are: their
   * tensor names must already be unique here (prefix them first), and `opsets` names the operator
   * sets of domains other than the default one that those nodes use.
   */
  adopt(nodes: readonly NodeProto[], initializers: readonly TensorProto[], opsets: ReadonlyMap<string, number> = new Map()): void {
    for (const node of nodes) for (const name of node.output ?? []) this.usedNames.add(name);
    for (const tensor of initializers) this.usedNames.add(tensor.name as string);
    this.nodes.push(...nodes);
    this.initializers.push(...initializers);
    for (const [domain, version] of opsets) this.extraOpsets.set(domain, version);
  }

  /** Serialises the model (ONNX protobuf bytes). */
  toBytes(metadata: Record<string, string> = {}, docString = ''): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: 'visq-model-fit',
      producerVersion: '1',
      docString,
      opsetImport: [{ domain: '', version: OPSET_VERSION }, ...[...this.extraOpsets].map(([domain, version]) => ({ domain, version }))],
      metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
