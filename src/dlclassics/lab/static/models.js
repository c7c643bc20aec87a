// The forward passes of the project's models, in plain JavaScript, to be read next to the
// PyTorch code they copy (src/dlclassics/lm/model.py, mnist/models.py, xor/model.py).
//
// Weights are kept as Float32Array, as PyTorch keeps them. Sums are accumulated in JavaScript
// numbers (float64) and stored back as float32: that is a little more precise than PyTorch, never
// less, so the page agrees with it far inside the 1e-5 the tests ask for.

// ---- safetensors: the weights file ------------------------------------------------------------

// A safetensors file is 8 bytes (little-endian u64: the header's length N), N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"?}, then the raw
// arrays, little-endian, at offsets counted from the end of the header.
export function readSafetensors(buffer) {
  const view = new DataView(buffer);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, headerLength)));
  const start = 8 + headerLength;
  const tensors = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [begin, end] = info.data_offsets;
    tensors[name] = { shape: info.shape, data: toFloat32(info.dtype, buffer, start + begin, end - begin) };
  }
  return tensors;
}

function toFloat32(dtype, buffer, offset, bytes) {
  // slice() copies, so the array starts at an offset that is a multiple of 4 (Float32Array needs
  // that), and every tensor owns its bytes.
  const copy = buffer.slice(offset, offset + bytes);
  if (dtype === "F32") return new Float32Array(copy);
  if (dtype === "F16") return float16ToFloat32(new Uint16Array(copy));
  throw new Error(`weights of dtype ${dtype} are not supported (F32 or F16 only)`);
}

// Half-precision storage (the export may store the two large LM matrices so): widened to float32
// once, so that all the arithmetic is float32 either way.
function float16ToFloat32(halves) {
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) {
    const h = halves[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) out[i] = sign * 2 ** -14 * (fraction / 1024);  // subnormal
    else if (exponent === 31) out[i] = fraction ? NaN : sign * Infinity;
    else out[i] = sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
  }
  return out;
}

// ---- building blocks --------------------------------------------------------------------------

// y = W x + b, W of shape (out, in) stored row by row, as nn.Linear keeps it.
export function linear(weight, bias, x) {
  const outSize = bias.length;
  const inSize = x.length;
  const y = new Float32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    let sum = bias[o];
    const row = o * inSize;
    for (let i = 0; i < inSize; i++) sum += weight[row + i] * x[i];
    y[o] = sum;
  }
  return y;
}

export const relu = (x) => x.map((v) => Math.max(v, 0));
export const sigmoid = (v) => 1 / (1 + Math.exp(-v));

// softmax(logits / T), stable: the largest logit is subtracted first (log-sum-exp), so a large
// logit or a small T cannot overflow exp(). Returns plain numbers (float64).
export function softmax(logits, temperature = 1) {
  const scaled = Array.from(logits, (v) => v / temperature);
  let max = -Infinity;
  for (const v of scaled) max = Math.max(max, v);
  const exps = scaled.map((v) => Math.exp(v - max));  // a banned -Infinity gives exp = 0
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

// log softmax(logits): logit - log(sum(exp(logits))), computed as in softmax.
export function logSoftmax(logits) {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let total = 0;
  for (const v of logits) total += Math.exp(v - max);
  const logTotal = max + Math.log(total);
  return Array.from(logits, (v) => v - logTotal);
}

// Entropy in nats of a probability distribution.
export function entropy(probs) {
  return -probs.reduce((sum, p) => (p > 0 ? sum + p * Math.log(p) : sum), 0);
}

// ---- the language model: Embedding -> LSTM x layers -> Linear (lm/model.py) --------------------

export class LanguageModel {
  constructor(tensors, config) {
    this.config = config;  // vocab_size, layers, direction, embedding_size, hidden_size
    this.embedding = tensors["embedding.weight"].data;
    this.layers = [];
    for (let n = 0; n < config.layers; n++) {
      const get = (name) => tensors[`lstm.${name}_l${n}`].data;
      this.layers.push({
        weightIh: get("weight_ih"), weightHh: get("weight_hh"),
        biasIh: get("bias_ih"), biasHh: get("bias_hh"),
      });
    }
    this.outWeight = tensors["out.weight"].data;
    this.outBias = tensors["out.bias"].data;
  }

  // The LSTM's state before the first token: h and c zero in every layer, as PyTorch starts.
  initialState() {
    const zeros = () => new Float32Array(this.config.hidden_size);
    return this.layers.map(() => ({ h: zeros(), c: zeros() }));
  }

  // nn.Embedding: row `token` of the embedding matrix.
  embed(token) {
    const e = this.config.embedding_size;
    return this.embedding.subarray(token * e, (token + 1) * e);
  }

  // One LSTM cell step, PyTorch's equations and gate order: the 4H rows of weight_ih, weight_hh
  // and the biases are the input gate i, the forget gate f, the candidate g, the output gate o.
  //   gates = W_ih x + b_ih + W_hh h + b_hh
  //   i, f, o = sigmoid(...), g = tanh(...)
  //   c' = f * c + i * g,  h' = o * tanh(c')
  static cell(layer, x, { h, c }) {
    const size = h.length;
    const fromInput = linear(layer.weightIh, layer.biasIh, x);
    const fromHidden = linear(layer.weightHh, layer.biasHh, h);
    const gates = fromInput.map((v, j) => v + fromHidden[j]);
    const newH = new Float32Array(size);
    const newC = new Float32Array(size);
    for (let j = 0; j < size; j++) {
      const i = sigmoid(gates[j]);
      const f = sigmoid(gates[size + j]);
      const g = Math.tanh(gates[2 * size + j]);
      const o = sigmoid(gates[3 * size + j]);
      newC[j] = f * c[j] + i * g;
      newH[j] = o * Math.tanh(newC[j]);
    }
    return { h: newH, c: newC };
  }

  // One token in: the stacked layers run in turn (each layer's h is the next one's input), and
  // the output layer turns the top h into logits over the vocabulary. Returns the logits and the
  // new state; the state passed in is not changed.
  step(token, state) {
    const next = this.advance(token, state);
    return { logits: this.output(next), state: next };
  }

  // The stacked layers alone: the state after `token`.
  advance(token, state) {
    let x = this.embed(token);
    const next = [];
    this.layers.forEach((layer, n) => {
      next.push(LanguageModel.cell(layer, x, state[n]));
      x = next[n].h;
    });
    return next;
  }

  // The output layer on the top layer's h: logits over the vocabulary.
  output(state) {
    return linear(this.outWeight, this.outBias, state[state.length - 1].h);
  }

  // The logits after the last of `tokens` only, and the state: what the next-word bars need.
  // The output layer (vocabulary x hidden, most of the arithmetic) runs once, not per token.
  final(tokens, state = this.initialState()) {
    for (const token of tokens) state = this.advance(token, state);
    return { logits: this.output(state), state };
  }

  // The logits after each token of `tokens` (as model(inputs) gives for a batch of one).
  run(tokens, state = this.initialState()) {
    const all = [];
    for (const token of tokens) {
      const out = this.step(token, state);
      all.push(out.logits);
      state = out.state;
    }
    return { logits: all, state };
  }
}

// ---- MNIST: logistic regression, the MLP, the CNNs (mnist/models.py) ---------------------------

// nn.Conv2d with a square kernel, stride 1 and "same" zero padding (kernel 5, padding 2 in the
// project): input (inC, H, W), weight (outC, inC, k, k), output (outC, H, W), all row-major.
export function conv2d(input, inC, side, weight, bias, kernel) {
  const outC = bias.length;
  const pad = (kernel - 1) / 2;
  const out = new Float32Array(outC * side * side);
  for (let o = 0; o < outC; o++) {
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        let sum = bias[o];
        for (let c = 0; c < inC; c++) {
          for (let ky = 0; ky < kernel; ky++) {
            const iy = y + ky - pad;
            if (iy < 0 || iy >= side) continue;  // zero padding
            for (let kx = 0; kx < kernel; kx++) {
              const ix = x + kx - pad;
              if (ix < 0 || ix >= side) continue;
              sum += weight[((o * inC + c) * kernel + ky) * kernel + kx] * input[(c * side + iy) * side + ix];
            }
          }
        }
        out[(o * side + y) * side + x] = sum;
      }
    }
  }
  return out;
}

// 2x2 max-pooling, stride 2 (an odd last row or column is dropped, as max_pool2d does).
export function maxPool2x2(input, channels, side) {
  const half = Math.floor(side / 2);
  const out = new Float32Array(channels * half * half);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < half; y++) {
      for (let x = 0; x < half; x++) {
        const at = (dy, dx) => input[(c * side + 2 * y + dy) * side + 2 * x + dx];
        out[(c * half + y) * half + x] = Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1));
      }
    }
  }
  return out;
}

// Every MNIST architecture, read from its weights' names rather than from a table of archs:
//   ConvNet: convs.0, convs.1, ... each conv -> 2x2 max-pool -> ReLU (the model's order: ReLU
//            commutes with max-pooling), then head.2 and head.4 (Flatten, Dropout, Linear, ReLU,
//            Linear; dropout does nothing at inference);
//   logreg and the MLP: nn.Sequential(Flatten, Linear, ReLU, Linear, ...): "1", "3", "5".
// Linear layers have a ReLU between them and none after the last: the model returns logits.
export class Classifier {
  constructor(tensors) {
    const index = (name) => Number(name.match(/(\d+)\.weight$/)[1]);
    const weights = Object.keys(tensors).filter((name) => name.endsWith(".weight"));
    const layer = (name) => ({
      weight: tensors[name].data, shape: tensors[name].shape,
      bias: tensors[name.replace(/weight$/, "bias")].data,
    });
    const byIndex = (a, b) => index(a) - index(b);
    this.convs = weights.filter((n) => n.startsWith("convs.")).sort(byIndex).map(layer);
    this.linears = weights.filter((n) => !n.startsWith("convs.")).sort(byIndex).map(layer);
  }

  // Each conv stage, step by step as ConvNet.forward runs it (conv -> 2x2 max-pool -> ReLU), for
  // the normalised image `pixels`: [{stage, channels, side, conv, pooled, relu}], `side` the
  // conv output's width (28, 14, ...), each of conv/pooled/relu a list of `channels` maps, row-
  // major Float32Arrays of side*side (conv) or (side/2)^2 (pooled, relu) values. None for logreg
  // and the MLP.
  stages(pixels) {
    const out = [];
    let x = Float32Array.from(pixels);
    let channels = 1;
    let side = 28;
    this.convs.forEach((conv, stage) => {
      const conved = conv2d(x, channels, side, conv.weight, conv.bias, conv.shape[2]);
      channels = conv.shape[0];
      const pooled = maxPool2x2(conved, channels, side);
      x = relu(pooled);
      const half = Math.floor(side / 2);
      const maps = (a, s) => Array.from({ length: channels }, (_, c) => a.slice(c * s * s, (c + 1) * s * s));
      out.push({ stage, channels, side, conv: maps(conved, side), pooled: maps(pooled, half), relu: maps(x, half) });
      side = half;
    });
    return out;
  }

  // pixels: the normalised image, 784 values row-major. Returns the ten logits.
  logits(pixels) {
    let x = Float32Array.from(pixels);
    let channels = 1;
    let side = 28;
    for (const conv of this.convs) {
      x = conv2d(x, channels, side, conv.weight, conv.bias, conv.shape[2]);
      channels = conv.shape[0];
      x = relu(maxPool2x2(x, channels, side));
      side = Math.floor(side / 2);
    }
    // Flatten: (channels, side, side) row-major is already the order nn.Flatten gives.
    this.linears.forEach((l, n) => {
      x = linear(l.weight, l.bias, x);
      if (n < this.linears.length - 1) x = relu(x);
    });
    return x;
  }
}

// ---- XOR: 2 inputs -> k hidden BTUs -> 1 output BTU, optional bypass (xor/model.py) ------------

// The binary threshold unit 1 / (1 + exp(-x / T)): a step function as T -> 0.
export const btu = (x, temperature) => sigmoid(x / temperature);

// weights: {hidden_weight: k rows of 2, hidden_bias: k, out_weight: k or k+2, out_bias}, the
// form `xor solve --weights` reads. With k+2 output weights the net has a bypass: the output
// unit sees [x1, x2, h1..hk], inputs first. Returns the output for each [x1, x2] of `inputs`.
export function xorForward(weights, temperature, inputs) {
  const k = weights.hidden_weight.length;
  const outWeight = weights.out_weight.flat();
  const bypass = outWeight.length === k + 2;
  const outBias = Number(weights.out_bias);
  return inputs.map(([x1, x2]) => {
    const hidden = weights.hidden_weight.map(
      ([w1, w2], j) => btu(w1 * x1 + w2 * x2 + weights.hidden_bias[j], temperature),
    );
    const seen = bypass ? [x1, x2, ...hidden] : hidden;
    const sum = seen.reduce((s, v, j) => s + outWeight[j] * v, outBias);
    return btu(sum, temperature);
  });
}

// The weights of an exported XorNet (hidden.weight (k, 2), hidden.bias, out.weight (1, n),
// out.bias) in the form xorForward takes.
export function xorWeights(tensors) {
  const hidden = tensors["hidden.weight"].data;
  const k = tensors["hidden.bias"].data.length;
  return {
    hidden_weight: Array.from({ length: k }, (_, j) => [hidden[2 * j], hidden[2 * j + 1]]),
    hidden_bias: Array.from(tensors["hidden.bias"].data),
    out_weight: Array.from(tensors["out.weight"].data),
    out_bias: tensors["out.bias"].data[0],
  };
}
