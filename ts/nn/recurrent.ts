/**
 * Recurrent layers: RNN (Elman, tanh or relu), LSTM and GRU, stacked and optionally
 * bidirectional, with PyTorch's equations, parameter names and shapes, so a PyTorch state dict
 * loads unchanged:
 *
 *   weight_ih_l{k}[_reverse]  [G·hiddenSize, inputSize (layer 0) or D·hiddenSize]
 *   weight_hh_l{k}[_reverse]  [G·hiddenSize, hiddenSize]
 *   bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse]  [G·hiddenSize]
 *
 * with G = 1 (RNN), 4 (LSTM, gates i, f, g, o), 3 (GRU, gates r, z, n) and D = 2 if
 * bidirectional, else 1. Each layer and direction runs as one fused op (ops/recurrent.ts).
 *
 * forward returns what PyTorch returns, as a tuple:
 *   const [output, hN] = gru.forward(x, h0?);            // RNN and GRU
 *   const [output, [hN, cN]] = lstm.forward(x, [h0, c0]?); // LSTM
 * output: [batch, steps, D·hiddenSize] (batchFirst, the default here; [steps, batch, ...] with
 * batchFirst false), or [batch, D·hiddenSize] with returnSequences false (the last time step: for
 * a bidirectional layer the forward direction at the last step and the backward direction at the
 * first, i.e. both directions' final states). hN, cN: [numLayers·D, batch, hiddenSize], layer-major
 * then direction, as PyTorch.
 */

import { tidy } from '../engine.js';
import { randu, zeros } from '../ops/creation.js';
import { recurrent, GATES, type RecurrentCell, type RecurrentWeights } from '../ops/recurrent.js';
import { concat, stack } from '../ops/shape.js';
import { Tensor } from '../tensor.js';
import { deriveSeed, fanInUniform } from './init.js';
import { layerArgs } from './layer-args.js';
import { Module } from './module.js';

/** Options of `nn.RNN`, `nn.LSTM` and `nn.GRU`: layers, bias, batch layout, direction, dropout, output and seed. */
export interface RecurrentOptions {
  /** Stacked layers; layer k > 0 reads layer k - 1's output sequence (default 1). */
  numLayers?: number;
  /** Learn b_ih and b_hh (default true). */
  bias?: boolean;
  /** Input and output are [batch, steps, features] (default true; PyTorch's default is false). */
  batchFirst?: boolean;
  /** Run a second set of layers from the last step to the first and concatenate (default false). */
  bidirectional?: boolean;
  /** Dropout probability on each layer's output except the last, in training mode (default 0). */
  dropout?: number;
  /** Return the whole output sequence (default true) or only its last time step. */
  returnSequences?: boolean;
  /** Seeds the initializers (U(±1/√hiddenSize) for every weight and bias, as PyTorch). */
  seed?: number;
}

/** Options of `nn.RNN`: the recurrent options plus the activation. */
export interface RNNOptions extends RecurrentOptions {
  /** The RNN's activation (default 'tanh'). */
  nonlinearity?: 'tanh' | 'relu';
}

/** The JSON a recurrent layer is rebuilt from: `new nn.LSTM(c.inputSize, c.hiddenSize, c)`. */
export interface RecurrentConfig {
  type: 'RNN' | 'LSTM' | 'GRU';
  inputSize: number;
  hiddenSize: number;
  numLayers: number;
  bias: boolean;
  batchFirst: boolean;
  bidirectional: boolean;
  dropout: number;
  returnSequences: boolean;
  nonlinearity?: 'tanh' | 'relu';
}

/** The shared machinery; `State` is a Tensor (RNN, GRU) or [h, c] (LSTM). */
abstract class Recurrent<State> extends Module<[Tensor, State?], [Tensor, State]> {
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;
  readonly bidirectional: boolean;
  readonly dropout: number;
  readonly returnSequences: boolean;

  protected constructor(
    private readonly type: RecurrentConfig['type'],
    private readonly cell: RecurrentCell,
    readonly inputSize: number,
    readonly hiddenSize: number,
    options: RecurrentOptions,
  ) {
    super();
    const args = layerArgs(type);
    args.positiveInt('inputSize', inputSize);
    args.positiveInt('hiddenSize', hiddenSize);
    const o = args.options(options);
    this.numLayers = args.positiveInt('numLayers', o.numLayers, 1);
    this.bias = args.flag('bias', o.bias, true);
    this.batchFirst = args.flag('batchFirst', o.batchFirst, true);
    this.bidirectional = args.flag('bidirectional', o.bidirectional, false);
    this.dropout = args.dropout('dropout', o.dropout, 0);
    this.returnSequences = args.flag('returnSequences', o.returnSequences, true);
    const seed = args.seed(o.seed);

    // PyTorch's parameter order: layer by layer, direction by direction, w_ih, w_hh, b_ih, b_hh.
    const gh = GATES[cell] * hiddenSize;
    const init = (shape: number[], k: number) => args.build(() => fanInUniform(shape, { fanIn: hiddenSize, seed: deriveSeed(seed, k) }));
    let k = 0;
    for (let layer = 0; layer < this.numLayers; layer++) {
      const layerInput = layer === 0 ? inputSize : this.directions * hiddenSize;
      for (let d = 0; d < this.directions; d++) {
        const own = this as unknown as Record<string, Tensor>;
        own[this.paramName('weight_ih', layer, d)] = this.registerParameter(init([gh, layerInput], k++));
        own[this.paramName('weight_hh', layer, d)] = this.registerParameter(init([gh, hiddenSize], k++));
        if (this.bias) {
          own[this.paramName('bias_ih', layer, d)] = this.registerParameter(init([gh], k++));
          own[this.paramName('bias_hh', layer, d)] = this.registerParameter(init([gh], k++));
        }
      }
    }
  }

  /** 2 if bidirectional, else 1. */
  get directions(): number {
    return this.bidirectional ? 2 : 1;
  }

  /** 'weight_ih_l0', 'bias_hh_l1_reverse', ... (PyTorch's names). */
  private paramName(kind: string, layer: number, direction: number): string {
    return `${kind}_l${layer}${direction === 1 ? '_reverse' : ''}`;
  }

  /** Looked up by name at each call, so setParameter and loadStateDict replacements are seen. */
  private weights(layer: number, direction: number): RecurrentWeights {
    const own = this as unknown as Record<string, Tensor | undefined>;
    const get = (kind: string) => own[this.paramName(kind, layer, direction)] ?? null;
    return { wIh: get('weight_ih')!, wHh: get('weight_hh')!, bIh: get('bias_ih'), bHh: get('bias_hh') };
  }

  protected describe(): string {
    return `${this.type}(${this.inputSize} -> ${this.hiddenSize})`;
  }

  /** The configuration as JSON, for saveModel; rebuild with `new nn.X(c.inputSize, c.hiddenSize, c)`. */
  config(): RecurrentConfig {
    return {
      type: this.type,
      inputSize: this.inputSize,
      hiddenSize: this.hiddenSize,
      numLayers: this.numLayers,
      bias: this.bias,
      batchFirst: this.batchFirst,
      bidirectional: this.bidirectional,
      dropout: this.dropout,
      returnSequences: this.returnSequences,
    };
  }

  /** Splits the user's state into h0 (and c0), each [numLayers·D, batch, hiddenSize] or null. */
  protected abstract unpackState(state: State | undefined): [Tensor | null, Tensor | null];

  /** Builds the returned state from hN (and cN). */
  protected abstract packState(h: Tensor, c: Tensor | null): State;

  /**
   * x: [batch, steps, inputSize] (batchFirst) or [steps, batch, inputSize]; state: the initial
   * state (zeros if omitted). Returns [output, final state]; shapes in the file comment.
   */
  forward(x: Tensor, state?: State): [Tensor, State] {
    const what = this.describe();
    if (!(x instanceof Tensor)) throw new Error(`${what}: expected a Tensor input, got ${x === null ? 'null' : typeof x}`);
    const layout = this.batchFirst ? 'batch, steps' : 'steps, batch';
    if (x.shape.length !== 3 || x.shape[2] !== this.inputSize) {
      throw new Error(`${what}: expected input [${layout}, ${this.inputSize}], got ${x.dtype} [${x.shape.join(', ')}]`);
    }
    const [h0, c0] = this.unpackState(state);
    const batch = this.batchFirst ? x.shape[0] : x.shape[1];
    const stateShape = [this.numLayers * this.directions, batch, this.hiddenSize];
    for (const [name, s] of [['h0', h0], ['c0', c0]] as const) {
      if (s !== null && (!(s instanceof Tensor) || s.shape.join() !== stateShape.join())) {
        const got = s instanceof Tensor ? `${s.dtype} [${s.shape.join(', ')}]` : typeof s;
        throw new Error(`${what}: initial state ${name} must be [numLayers * directions, batch, hiddenSize] = [${stateShape.join(', ')}], got ${got}`);
      }
    }
    const [output, hN, cN] = tidy(() => this.run(x, h0, c0, batch));
    return [output, this.packState(hN, cN ?? null)];
  }

  /** The layers and directions; returns [output, hN, cN?] (intermediates are freed by the caller's tidy). */
  private run(x: Tensor, h0: Tensor | null, c0: Tensor | null, batch: number): Tensor[] {
    const lstm = this.cell === 'lstm';
    const zero = h0 === null || (lstm && c0 === null) ? zeros([batch, this.hiddenSize]) : null;
    const pick = (s: Tensor | null, k: number): Tensor => (s === null ? zero! : s.slice([k, 0, 0], [1, batch, this.hiddenSize]).reshape([batch, this.hiddenSize]));
    let input = this.batchFirst ? x : x.permute([1, 0, 2]);
    const hs: Tensor[] = [];
    const cs: Tensor[] = [];
    for (let layer = 0; layer < this.numLayers; layer++) {
      if (layer > 0 && this.training && this.dropout > 0) {
        // Inverted dropout between layers, as nn.Dropout: keep with probability 1 - p, scale by 1/(1 - p).
        const keep = 1 - this.dropout;
        input = input.mul(randu([...input.shape]).less(keep).cast('float32').mul(1 / keep));
      }
      const outputs: Tensor[] = [];
      for (let d = 0; d < this.directions; d++) {
        const k = layer * this.directions + d;
        const r = recurrent(this.cell, input, pick(h0, k), lstm ? pick(c0, k) : null, this.weights(layer, d), d === 1);
        outputs.push(r.output);
        hs.push(r.h);
        if (r.c !== undefined) cs.push(r.c);
      }
      input = outputs.length === 1 ? outputs[0] : concat(outputs, -1);
    }
    let output: Tensor;
    if (this.returnSequences) output = this.batchFirst ? input : input.permute([1, 0, 2]);
    else output = this.bidirectional ? concat(hs.slice(-2), -1) : hs[hs.length - 1];
    return lstm ? [output, stack(hs, 0), stack(cs, 0)] : [output, stack(hs, 0)];
  }
}

/**
 * Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh (default) or relu.
 * forward(x, h0?) -> [output, hN]; see the file comment for shapes.
 */
export class RNN extends Recurrent<Tensor> {
  readonly nonlinearity: 'tanh' | 'relu';

  constructor(inputSize: number, hiddenSize: number, options: RNNOptions = {}) {
    const args = layerArgs('RNN');
    const nonlinearity = args.oneOf('nonlinearity', args.options(options).nonlinearity, ['tanh', 'relu'], 'tanh');
    super('RNN', nonlinearity === 'relu' ? 'rnnRelu' : 'rnnTanh', inputSize, hiddenSize, options);
    this.nonlinearity = nonlinearity;
  }

  override config(): RecurrentConfig {
    return { ...super.config(), nonlinearity: this.nonlinearity };
  }

  protected unpackState(state: Tensor | undefined): [Tensor | null, Tensor | null] {
    return [state ?? null, null];
  }

  protected packState(h: Tensor): Tensor {
    return h;
  }
}

/**
 * LSTM (PyTorch's gates i, f, g, o): c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
 * forward(x, [h0, c0]?) -> [output, [hN, cN]]; see the file comment for shapes.
 */
export class LSTM extends Recurrent<[Tensor, Tensor]> {
  constructor(inputSize: number, hiddenSize: number, options: RecurrentOptions = {}) {
    super('LSTM', 'lstm', inputSize, hiddenSize, options);
  }

  protected unpackState(state: [Tensor, Tensor] | undefined): [Tensor | null, Tensor | null] {
    if (state === undefined) return [null, null];
    if (!Array.isArray(state) || state.length !== 2) {
      throw new Error(`${this.describe()}: the initial state must be [h0, c0], got ${Array.isArray(state) ? `an array of ${state.length}` : typeof state}`);
    }
    return [state[0], state[1]];
  }

  protected packState(h: Tensor, c: Tensor | null): [Tensor, Tensor] {
    return [h, c!];
  }
}

/**
 * GRU (PyTorch's gates r, z, n): n_t = tanh(W_in x_t + b_in + r (W_hn h_{t-1} + b_hn)),
 * h_t = (1 - z) n_t + z h_{t-1}. forward(x, h0?) -> [output, hN]; see the file comment for shapes.
 */
export class GRU extends Recurrent<Tensor> {
  constructor(inputSize: number, hiddenSize: number, options: RecurrentOptions = {}) {
    super('GRU', 'gru', inputSize, hiddenSize, options);
  }

  protected unpackState(state: Tensor | undefined): [Tensor | null, Tensor | null] {
    return [state ?? null, null];
  }

  protected packState(h: Tensor): Tensor {
    return h;
  }
}
