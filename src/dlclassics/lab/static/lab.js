// The lab's console API: `window.lab`, the page's one global, for learners (open the browser's
// console) and for the tests. Everything is computed here, in the browser, from the site's files:
//   models.json                      the models exported, [{name, kind, path, run, command}]
//   models/<name>/card.json          what the model is and how it was trained
//   models/<name>/weights.safetensors  its PyTorch state_dict
//   models/<name>/vocab.json         a language model's words, index = token id
//   models/<name>/test.json          an MNIST model's test confusion matrix and its mistakes
//                                    (with test-mistakes.png, their 28x28 tiles), where the card
//                                    names it ("test": "test.json")
//   models/<name>/samples.json       a few test images to classify, {classes, images, labels}
//
//   await lab.ready
//   lab.models                                  [{name, kind, card}]
//   lab.lm.next(text, k, model)                 [{word, p}], likeliest first
//   lab.lm.prob(text, model)                    {log_probability, log_probability_with_eos, words}
//   lab.lm.generate(text, length, temperature, seed, model)   a sentence
//   lab.mnist.predict(pixels, model)            ten probabilities
//   lab.mnist.activations(pixels, model)        a CNN's maps, stage by stage:
//       [{stage, channels, side, conv, pooled, relu}]: conv is `channels` maps of side x side
//       (the conv's output, bias added), pooled and relu `channels` maps of side/2 x side/2
//       (after the 2x2 max-pool, then after the ReLU: the project's order); each map a
//       row-major Float32Array. side is 28 for the first stage, 14 for the second, ...
//   lab.mnist.test(model), lab.mnist.samples(model)   test.json and samples.json, or null
//   lab.xor.forward(weights, T, inputs)         one output per [x1, x2]
//   lab.xor.weights(name)                       an exported XOR net's weights
//   lab.xor.init({k, bypass, init, seed})       starting weights: init "linear" (nn.Linear's,
//       as `xor train`) or "xavier" (as `xor sweep`), drawn from the seed (not torch's draws)
//   lab.xor.train({k, bypass, temperature, optimizer, lr, epochs, weights, earlyStopping})
//       {losses, weights}: `xor train --dtype float64` from these weights (or, without them,
//       from lab.xor.init's with `init` and `seed`), optimizer "adam" or "sgd"; losses[i] is
//       the loss before step i + 1, weights those after the last step. earlyStopping:
//       {patience, minDelta, goal, maxEpochs (default: epochs)}, `xor sweep`'s rule on its
//       validation points; then also {epochs, stopped}: the epochs run and whether it stopped.
// XOR weights are `xor solve --weights` entries: {k, bypass, hidden_weight (k rows of 2),
// hidden_bias (k), out_weight (the 2 bypass weights first, then the k hidden), out_bias}.
// `model` is a model's name and may be left out: then the first forward language model, or the
// only (first) model of that kind.

import {
  Classifier, LanguageModel, logSoftmax, readSafetensors, softmax, xorForward, xorWeights,
} from "./models.js";
import { EarlyStopping, XorTrainer, initWeights } from "./xor.js";

// ---- words, exactly as src/dlclassics/lm/words.py cuts them -----------------------------------

export const PAD = 0, START = 1, UNK = 2, EOS = 3;
// Not listed as next words (lm/generate.py's NOT_WORDS): never targets, or not a word.
const NOT_WORDS = new Set([PAD, START, UNK]);

// Keras' text_to_word_sequence filters, and Python's str.split() white space (which differs from
// JavaScript's \s: it has \x1c-\x1f and \x85, and not \ufeff).
const KERAS_FILTERS = /[!"#$%&()*+,\-./:;<=>?@[\\\]^_`{|}~\t\n]/g;
const PYTHON_SPACE = /[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

export function words(text) {
  return text.toLowerCase().replace(KERAS_FILTERS, " ").split(PYTHON_SPACE).filter(Boolean);
}

// ---- a seedable random number generator -------------------------------------------------------

// mulberry32: a tiny 32-bit generator, so that the same seed gives the same sentence again. It is
// not torch's generator: `dlclassics lm generate` with the same seed samples from the same
// distribution but draws other numbers.
export function randomGenerator(seed) {
  let a = Number(seed) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- loading the site's models ----------------------------------------------------------------

async function getJson(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  return response.json();
}

async function getBuffer(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  return response.arrayBuffer();
}

// One model: its card, and its network built from the weights (and words) it ships with.
async function loadModel(entry) {
  const base = entry.path.replace(/\/$/, "");
  const [card, buffer, vocab] = await Promise.all([
    getJson(`${base}/card.json`),
    getBuffer(`${base}/weights.safetensors`),
    entry.kind === "lm" ? getJson(`${base}/vocab.json`) : null,
  ]);
  const tensors = readSafetensors(buffer);
  const model = { name: entry.name, kind: entry.kind, entry, card };
  if (entry.kind === "lm") {
    model.net = new LanguageModel(tensors, card.architecture);
    model.vocab = vocab;
    model.ids = new Map(vocab.map((w, i) => [w, i]));
    model.reverse = card.architecture.direction === "reverse";
  } else if (entry.kind === "mnist") {
    model.net = new Classifier(tensors);
    // The card's {mean, std}: the model sees (pixel - mean) / std for pixels in [0, 1].
    model.normalization = card.normalization;
    model.base = base;
    // The test split's figures and a few of its images, where the export wrote them.
    const optional = (file) => (file ? getJson(`${base}/${file}`).catch(() => null) : null);
    [model.test, model.samples] = await Promise.all([
      optional(card.test),
      optional(card.samples ?? (card.test ? "samples.json" : null)),
    ]);
  } else if (entry.kind === "xor") {
    model.weights = xorWeights(tensors);
  }
  return model;
}

const loaded = [];

function pick(kind, name) {
  const ofKind = loaded.filter((m) => m.kind === kind);
  if (name !== undefined && name !== null && name !== "") {
    const model = ofKind.find((m) => m.name === name);
    if (!model) {
      const known = ofKind.map((m) => m.name).join(", ") || "none";
      throw new Error(`no ${kind} model named ${name} (the site has: ${known})`);
    }
    return model;
  }
  if (!ofKind.length) throw new Error(`the site has no ${kind} model`);
  return (kind === "lm" && ofKind.find((m) => !m.reverse)) || ofKind[0];
}

// ---- the language model -----------------------------------------------------------------------

// The words in the order the model reads them (lm/batches.py's model_order): a reverse model
// reads the sentence last word first.
const modelOrder = (model, list) => (model.reverse ? [...list].reverse() : [...list]);
const encode = (model, list) => list.map((w) => model.ids.get(w) ?? UNK);

// The k likeliest entries of a distribution, NOT_WORDS left out, likeliest first (ties: the
// lower id first, as a stable sort gives). One pass keeping the best k in order: a full sort of
// the vocabulary on every keystroke would cost more than the model.
function top(model, probs, k) {
  const best = [];  // ids, likeliest first
  for (let id = 0; id < probs.length; id++) {
    if (NOT_WORDS.has(id)) continue;
    if (best.length === k && probs[id] <= probs[best[k - 1]]) continue;
    let at = best.length;
    while (at > 0 && probs[best[at - 1]] < probs[id]) at--;
    best.splice(at, 0, id);
    if (best.length > k) best.pop();
  }
  return best.map((id) => ({ word: model.vocab[id], p: probs[id] }));
}

// What the page caches for a text: the logits of the next word (for a reverse model, the word
// before), from which the bars are re-shaped at any temperature without running the LSTM again.
function nextLogits(text, modelName) {
  const model = pick("lm", modelName);
  const given = words(text);
  const { logits, state } = model.net.final([START, ...encode(model, modelOrder(model, given))]);
  return {
    name: model.name, logits, state,
    unknown: given.filter((w) => !model.ids.has(w)),
  };
}

// `dlclassics lm next`: the model's own probabilities (softmax over the whole vocabulary, not
// renormalised), <EOS> among the words listed. `temperature` (1 unless given) re-shapes them.
function next(text, k = 10, modelName, temperature = 1) {
  const model = pick("lm", modelName);
  return top(model, softmax(nextLogits(text, model.name).logits, temperature), k);
}

// `dlclassics lm prob`: log p(w1..wn | <START>), and with p(<EOS> | w1..wn) too. `words` gives,
// in reading order, each word's probability where the model met it, and the model's top five
// there (for a reverse model: given the words after it).
function prob(text, modelName) {
  const model = pick("lm", modelName);
  const given = words(text);
  if (!given.length) throw new Error("type at least one word");
  const ordered = modelOrder(model, given);
  const inputs = [START, ...encode(model, ordered)];
  const targets = [...inputs.slice(1), EOS];
  const { logits } = model.net.run(inputs);
  const perWord = targets.map((target, j) => logSoftmax(logits[j])[target]);
  const entries = ordered.map((word, j) => ({
    word, p: Math.exp(perWord[j]), log_p: perWord[j], unknown: !model.ids.has(word),
    top: top(model, softmax(logits[j]), 5),
  }));
  const logP = perWord.slice(0, -1).reduce((a, b) => a + b, 0);
  return {
    sentence: given.join(" "),
    log_probability: logP,
    log_probability_with_eos: logP + perWord[perWord.length - 1],
    p_eos: Math.exp(perWord[perWord.length - 1]),
    words: modelOrder(model, entries),
    unknown: given.filter((w) => !model.ids.has(w)),
  };
}

// `dlclassics lm generate` (lm/generate.py): a sentence of `length` words containing the given
// ones, sampled from softmax(logits / T) over what may be said (never <PAD> or <START>; <UNK> only
// with allowUnk; <EOS> only with stopAtEos, where it ends the sentence). T = 0 is greedy.
function generate(text, length = 7, temperature = 1, seed = 0, modelName, options = {}) {
  const model = pick("lm", modelName);
  const given = words(text);
  if (!(temperature >= 0 && temperature < Infinity)) {
    throw new Error(`temperature must be a finite number >= 0, got ${temperature}`);
  }
  if (given.length > length) {
    throw new Error(`the start has ${given.length} words, more than the length ${length}`);
  }
  const banned = new Set([PAD, START]);
  if (!options.allowUnk) banned.add(UNK);
  if (!options.stopAtEos) banned.add(EOS);
  const random = randomGenerator(seed);
  const produced = modelOrder(model, given);
  let { logits, state } = model.net.run([START, ...encode(model, produced)]);
  let last = logits[logits.length - 1];
  while (produced.length < length) {
    const scores = Array.from(last, (v, id) => (banned.has(id) ? -Infinity : v));
    let token;
    if (temperature === 0) {
      token = scores.reduce((best, v, id) => (v > scores[best] ? id : best), 0);
    } else {
      const probs = softmax(scores, temperature);
      token = sample(probs, random());
    }
    if (token === EOS) break;
    produced.push(model.vocab[token]);
    ({ logits: last, state } = model.net.step(token, state));
  }
  return modelOrder(model, produced).join(" ");
}

// The index whose cumulative probability first passes u (inverse-CDF sampling).
function sample(probs, u) {
  let total = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] <= 0) continue;
    total += probs[i];
    last = i;
    if (u < total) return i;
  }
  return last;  // u within rounding of 1
}

// The `dlclassics lm generate` command that samples from the same distribution. The model's path
// is its run directory; an `lm study`'s trial is the run's trials/<trial> folder.
function generateCommand(text, length, temperature, seed, modelName) {
  const model = pick("lm", modelName);
  const { card } = model;
  const run = card.run ?? model.entry.run ?? model.name;
  const study = /\bstudy\b/.test(card.command ?? model.entry.command ?? "");
  const trial = model.name.match(/layers\d+-(forward|reverse)$/)?.[0];
  const path = card.model_path ?? (study && trial ? `${run}/trials/${trial}` : run);
  const quote = (s) => (/^[\w./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
  return `dlclassics lm generate --model ${quote(String(path))} --start ${quote(words(text).join(" "))}` +
    ` --length ${length} --temperature ${temperature} --seed ${seed}`;
}

// ---- MNIST and XOR ----------------------------------------------------------------------------

// pixels: 784 values in [0, 1], row-major 28x28, white ink on black (the IDX images / 255).
// The pixels as the model sees them: (pixel - mean) / std, the card's normalisation. No
// re-centring: that is the canvas drawing's only.
function normalised(model, pixels) {
  if (pixels.length !== 784) throw new Error(`an image is 784 pixels, got ${pixels.length}`);
  const { mean, std } = model.normalization;
  return Array.from(pixels, (p) => (p - mean) / std);
}

function predict(pixels, modelName) {
  const model = pick("mnist", modelName);
  return softmax(model.net.logits(normalised(model, pixels)));
}

function activations(pixels, modelName) {
  const model = pick("mnist", modelName);
  return model.net.stages(normalised(model, pixels));
}

// A model's layers as stored: {convs: [{weight, shape, bias}], linears: [...]}, weights in
// PyTorch's layout (conv (out, in, k, k); linear (out, in)).
function layers(modelName) {
  const { net } = pick("mnist", modelName);
  return { convs: net.convs, linears: net.linears };
}

// The XOR nets trained here, in float64, as `xor train` and `xor sweep` train them (xor.js).
function xorInit({ k = 2, bypass = false, init = "linear", seed = 0 } = {}) {
  if (!(Number.isInteger(k) && k >= 1 && k <= 1024)) {
    throw new Error(`k must be a whole number from 1 to 1024, got ${k}`);
  }
  return initWeights({ k, bypass: Boolean(bypass), init, random: randomGenerator(seed) });
}

function xorTrain({
  k, bypass, temperature = 0.5, optimizer = "adam", lr = 0.01, epochs = 1000, weights,
  init, seed, earlyStopping,
} = {}) {
  const start = weights ?? xorInit({ k, bypass, init, seed });
  const trainer = new XorTrainer(start, { temperature, optimizer, lr });
  if ((k !== undefined && k !== trainer.k) || (bypass !== undefined && Boolean(bypass) !== trainer.bypass)) {
    throw new Error(`the weights are a net of k=${trainer.k}, bypass=${trainer.bypass}`);
  }
  const most = earlyStopping?.maxEpochs ?? epochs;
  // Every epoch's loss is kept: `xor train`'s bound keeps that to megabytes.
  if (!(Number.isInteger(most) && most >= 1 && most <= 10 ** 6)) {
    throw new Error(`epochs must be a whole number from 1 to 1000000, got ${most}`);
  }
  const stopping = earlyStopping ? new EarlyStopping(earlyStopping) : null;
  const losses = [];
  let stopped = false;
  for (let epoch = 1; epoch <= most && !stopped; epoch++) {
    losses.push(trainer.step());
    if (stopping) stopped = stopping.update(epoch, trainer.valLoss());
  }
  const result = { losses, weights: trainer.weights() };
  return stopping ? { ...result, epochs: losses.length, stopped } : result;
}

// ---- the global -------------------------------------------------------------------------------

const lab = {
  ready: null,
  models: [],
  words,
  lm: {
    next, prob, generate, nextLogits, generateCommand,
    vocabulary: (name) => pick("lm", name).vocab,  // the words, index = token id
  },
  mnist: {
    predict, activations, layers,
    test: (name) => pick("mnist", name).test ?? null,
    samples: (name) => pick("mnist", name).samples ?? null,
    // The model's folder in the site (its test-mistakes.png is there).
    folder: (name) => pick("mnist", name).base,
  },
  xor: {
    forward: (weights, temperature, inputs) => xorForward(weights, temperature, inputs),
    // The exported XOR nets' weights, by name.
    weights: (name) => pick("xor", name).weights,
    init: xorInit,
    train: xorTrain,
  },
};

lab.ready = (async () => {
  const index = await getJson("models.json");
  lab.version = index.version;
  const models = await Promise.all(index.models.map(loadModel));
  loaded.push(...models);
  lab.models = models.map(({ name, kind, card }) => ({ name, kind, card }));
  return lab;
})();

window.lab = lab;
export default lab;
