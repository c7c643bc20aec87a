// Training the project's XOR nets in the browser, in float64, step for step as PyTorch does it:
// XorNet (src/dlclassics/xor/model.py), binary cross-entropy and torch.optim.Adam or SGD
// (xor/train.py), and `xor sweep`'s early stopping (xor/batched.py). Every operation is written in
// PyTorch's order (its kernels' formulas, its autograd's backward), so that a run here and the
// same run of `xor train --dtype float64` agree to rounding.
//
// Weights are the form `xor solve --weights` reads: {k, bypass, hidden_weight (k rows of 2),
// hidden_bias (k), out_weight (the 2 bypass weights first, then the k hidden ones), out_bias}.

// The XOR points, and the validation set of `xor sweep` (xor/data.py): the four points, then four
// near the corners.
export const INPUTS = [[0, 0], [0, 1], [1, 0], [1, 1]];
export const TARGETS = [0, 1, 1, 0];
const VAL_INPUTS = [...INPUTS, [1, 0.1], [1, 0.9], [0.9, 0.9], [0.1, 0.9]];
const VAL_TARGETS = [...TARGETS, 1, 0, 0, 1];

// torch.sigmoid: 1 / (1 + exp(-x)).
const sigmoid = (x) => 1 / (1 + Math.exp(-x));

// Binary cross-entropy of one point as PyTorch's kernel computes it, each log clamped at -100.
const bce = (p, y) => (y - 1) * Math.max(Math.log1p(-p), -100) - y * Math.max(Math.log(p), -100);

const OPTIMIZERS = ["adam", "sgd"];
const INITS = ["linear", "xavier"];

// Draws starting weights with `random` (uniform in [0, 1)). "linear": nn.Linear's default,
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases (`xor train`); "xavier":
// Xavier-uniform, U(-sqrt(6/(fan_in + fan_out)), +...), and zero biases (`xor sweep`).
export function initWeights({ k, bypass, init = "linear", random }) {
  const n = k + (bypass ? 2 : 0);
  const uniform = (bound) => (2 * random() - 1) * bound;
  if (init === "linear") {
    const b1 = 1 / Math.sqrt(2), b2 = 1 / Math.sqrt(n);
    return {
      k, bypass,
      hidden_weight: Array.from({ length: k }, () => [uniform(b1), uniform(b1)]),
      hidden_bias: Array.from({ length: k }, () => uniform(b1)),
      out_weight: Array.from({ length: n }, () => uniform(b2)),
      out_bias: uniform(b2),
    };
  }
  if (init === "xavier") {
    const b1 = Math.sqrt(6 / (2 + k)), b2 = Math.sqrt(6 / (n + 1));
    return {
      k, bypass,
      hidden_weight: Array.from({ length: k }, () => [uniform(b1), uniform(b1)]),
      hidden_bias: new Array(k).fill(0),
      out_weight: Array.from({ length: n }, () => uniform(b2)),
      out_bias: 0,
    };
  }
  throw new Error(`init must be one of ${INITS.join(", ")}, got ${init}`);
}

// A net's weights as one list, in state_dict order: hidden.weight (k x 2, row-major),
// hidden.bias (k), out.weight (n), out.bias (1); and back.
export const flatWeights = (w) => [
  ...w.hidden_weight.flat(), ...w.hidden_bias, ...w.out_weight, w.out_bias,
];

export function unflatWeights(values, k, bypass) {
  const n = k + (bypass ? 2 : 0);
  if (values.length !== 3 * k + n + 1) {
    throw new Error(`${values.length} numbers are not the weights of a net of k=${k}`);
  }
  return {
    k, bypass,
    hidden_weight: Array.from({ length: k }, (_, j) => [values[2 * j], values[2 * j + 1]]),
    hidden_bias: Array.from(values.slice(2 * k, 3 * k)),
    out_weight: Array.from(values.slice(3 * k, 3 * k + n)),
    out_bias: values[3 * k + n],
  };
}

// A net and its optimiser. The parameters live in one Float64Array, in state_dict order:
// hidden.weight (k x 2, row-major), hidden.bias (k), out.weight (n), out.bias (1); Adam and SGD
// are elementwise, so one array is the same as PyTorch's four tensors.
export class XorTrainer {
  constructor(weights, { temperature, optimizer = "adam", lr }) {
    const k = weights.hidden_weight.length;
    const n = weights.out_weight.length;
    if (k < 1) throw new Error("k must be at least 1");
    if (n !== k && n !== k + 2) {
      throw new Error(`out_weight must have k = ${k} or k + 2 = ${k + 2} values, got ${n}`);
    }
    if (!(temperature > 0 && temperature < Infinity)) {
      throw new Error(`temperature must be positive, got ${temperature}`);
    }
    if (!(lr > 0 && lr < Infinity)) throw new Error(`lr must be positive, got ${lr}`);
    if (!OPTIMIZERS.includes(optimizer)) {
      throw new Error(`optimizer must be one of ${OPTIMIZERS.join(", ")}, got ${optimizer}`);
    }
    Object.assign(this, { k, n, bypass: n === k + 2, temperature, optimizer, lr });
    const values = flatWeights(weights).map(Number);
    if (values.length !== 3 * k + n + 1 || !values.every(Number.isFinite)) {
      throw new Error("the weights must be finite numbers of the net's shapes");
    }
    this.p = Float64Array.from(values);
    this.grad = new Float64Array(this.p.length);
    this.m = new Float64Array(this.p.length);  // Adam's exp_avg
    this.v = new Float64Array(this.p.length);  // Adam's exp_avg_sq
    this.t = 0;  // steps taken
    this.h = new Float64Array(k);  // a point's hidden units, kept for the backward pass
  }

  // The output for one point (hidden units left in this.h).
  output(x1, x2) {
    const { k, n, p, h, temperature: T } = this;
    const out = 3 * k, bias = out + n, skip = n - k;
    // nn.Linear is addmm: the products summed, then the bias.
    for (let j = 0; j < k; j++) {
      h[j] = sigmoid((x1 * p[2 * j] + x2 * p[2 * j + 1] + p[2 * k + j]) / T);
    }
    let z = skip ? x1 * p[out] + x2 * p[out + 1] : 0;
    for (let j = 0; j < k; j++) z += h[j] * p[out + skip + j];
    return sigmoid((z + p[bias]) / T);
  }

  // The mean binary cross-entropy over `inputs`.
  loss(inputs = INPUTS, targets = TARGETS) {
    let sum = 0;
    inputs.forEach(([x1, x2], r) => { sum += bce(this.output(x1, x2), targets[r]); });
    return sum / inputs.length;
  }

  // `xor sweep`'s validation loss: the mean over its eight points.
  valLoss() {
    return this.loss(VAL_INPUTS, VAL_TARGETS);
  }

  // One full-batch step; returns the loss before it, as `xor train` records it.
  step() {
    const { k, n, p, h, grad, temperature: T } = this;
    const out = 3 * k, bias = out + n, skip = n - k;
    grad.fill(0);
    let sum = 0;
    INPUTS.forEach(([x1, x2], r) => {
      const y = TARGETS[r];
      const o = this.output(x1, x2);
      sum += bce(o, y);
      // binary_cross_entropy_backward (mean over 4), sigmoid_backward, then the division by T.
      const dOut = ((o - y) / Math.max((1 - o) * o, 1e-12) / 4) * (1 - o) * o / T;
      grad[bias] += dOut;
      if (skip) {
        grad[out] += dOut * x1;
        grad[out + 1] += dOut * x2;
      }
      for (let j = 0; j < k; j++) {
        grad[out + skip + j] += dOut * h[j];
        const dz = dOut * p[out + skip + j] * (1 - h[j]) * h[j] / T;
        grad[2 * j] += dz * x1;
        grad[2 * j + 1] += dz * x2;
        grad[2 * k + j] += dz;
      }
    });
    this.t += 1;
    if (this.optimizer === "sgd") {
      for (let i = 0; i < p.length; i++) p[i] += -this.lr * grad[i];
    } else {
      this.adam();
    }
    return sum / 4;
  }

  // torch.optim.Adam's single-tensor step, defaults (betas 0.9, 0.999, eps 1e-8), in its order.
  adam() {
    const { p, grad, m, v, t, lr } = this;
    const beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    const stepSize = lr / (1 - beta1 ** t);
    const correction2 = Math.sqrt(1 - beta2 ** t);
    const w = 1 - beta1;
    for (let i = 0; i < p.length; i++) {
      const g = grad[i];
      m[i] = m[i] + w * (g - m[i]);  // lerp_ with a weight below 0.5
      v[i] = v[i] * beta2 + (1 - beta2) * g * g;  // mul_, then addcmul_
      p[i] = p[i] + (-stepSize * m[i]) / (Math.sqrt(v[i]) / correction2 + eps);  // addcdiv_
    }
  }

  weights() {
    return unflatWeights(this.p, this.k, this.bypass);
  }
}

// `xor sweep`'s early stopping, one run: after each step the validation loss; it improves when
// it is below the best so far minus minDelta; the run stops once it has not improved for
// `patience` epochs and the best is below `goal`. Returns whether this epoch stops the run.
export class EarlyStopping {
  constructor({ patience = 10, minDelta = 1e-4, goal = 0.2 } = {}) {
    if (!(Number.isInteger(patience) && patience >= 1)) {
      throw new Error(`patience must be a whole number >= 1, got ${patience}`);
    }
    if (!(minDelta >= 0) || !(goal > 0)) throw new Error("minDelta must be >= 0 and goal > 0");
    Object.assign(this, { patience, minDelta, goal, best: Infinity, lastImproved: 0 });
  }

  update(epoch, val) {
    if (val < this.best - this.minDelta) {
      this.best = val;
      this.lastImproved = epoch;
    }
    return epoch - this.lastImproved >= this.patience && this.best < this.goal;
  }
}
