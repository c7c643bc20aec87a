// The XOR tab: a net trained live, in float64 and step for step as `xor train --dtype float64`
// trains it (xor.js), drawn once per animation frame: the network with its weights, the output's
// and every hidden unit's surface, the loss curve and the truth table; the same run's command
// line; the whole state in the URL (after #xor?, see docs/lab.md), so that a link restores it.
//
// A run is its settings and its starting weights: every change of a setting, an edited weight
// or a preset starts it again from its (new) starting weights, so that what the page shows is
// always what the command line beside it computes.

import lab from "./lab.js";
import { $, element } from "./dom.js";
import { drawSurface } from "./surface.js";
import {
  EarlyStopping, INPUTS, TARGETS, XorTrainer, flatWeights, unflatWeights,
} from "./xor.js";

// The hand-set nets of src/dlclassics/xor/solutions.py (`xor solve`).
const HAND_SET = {
  "k1-bypass": {
    k: 1, bypass: true, hidden_weight: [[1, 1]], hidden_bias: [-1.5], out_weight: [1, 1, -2],
    out_bias: -0.5,
  },
  "k2": {
    k: 2, bypass: false, hidden_weight: [[1, 1], [1, 1]], hidden_bias: [-0.5, -1.5],
    out_weight: [1, -1], out_bias: -0.5,
  },
  "k4": {
    k: 4, bypass: false, hidden_weight: [[-1, -1], [-1, 1], [1, -1], [1, 1]],
    hidden_bias: [0.5, -0.5, -0.5, -1.5], out_weight: [0, 1, 1, 0], out_bias: -0.5,
  },
};
// Their pre-activations are +-0.5 or further from 0: at T = 0.1 the units are steps already.
const HAND_SET_T = 0.1;
const MAX_K = 16;  // the page draws a surface per hidden unit
const MAX_EPOCHS = 10 ** 6;  // `xor train`'s bounds, so that the command shown runs
const MAX_LR = 1000;

let run = null;  // {settings, start, given, trainer, losses, stopping, stoppedAt}
let playing = false;
let presets = [];
let downloadUrl = null;

// ---- the settings, read from the controls (which the study explorer may set too) -------------

function wholeNumber(id, name, low, high) {
  const value = Number($(id).value);
  if (!(Number.isInteger(value) && value >= low && value <= high)) {
    throw new Error(`${name} must be a whole number from ${low} to ${high}, got ${$(id).value}`);
  }
  return value;
}

function positive(id, name, high) {
  const value = Number($(id).value);
  if (!(value > 0 && value <= high)) {
    throw new Error(`${name} must be above 0 and at most ${high}, got ${$(id).value}`);
  }
  return value;
}

function settings() {
  return {
    k: wholeNumber("xor-k", "k", 1, MAX_K),
    bypass: $("xor-bypass").checked,
    optimizer: $("xor-optimizer").value,
    lr: positive("xor-lr", "the learning rate", MAX_LR),
    temperature: Number($("xor-temperature").value),
    epochs: wholeNumber("xor-epochs", "epochs", 1, MAX_EPOCHS),
    init: $("xor-init").value,
    seed: wholeNumber("xor-seed", "the seed", 0, 2 ** 32 - 1),
    early: $("xor-early").checked ? {
      patience: Number($("xor-patience").value),
      minDelta: Number($("xor-min-delta").value),
      goal: Number($("xor-goal").value),
    } : null,
  };
}

// The controls as index.html sets them (the study explorer's own left alone).
function defaultControls() {
  for (const control of $("xor").querySelectorAll("input, select")) {
    if (control.closest("#xor-study")) continue;
    const options = [...(control.options ?? [])];
    if (control.type === "checkbox") control.checked = control.defaultChecked;
    else if (options.length) {
      control.value = (options.find((o) => o.defaultSelected) ?? options[0]).value;
    } else control.value = control.defaultValue;
  }
}

function setControls(values) {
  for (const [id, value] of Object.entries(values)) {
    if (value === undefined || value === null) continue;  // left as it is
    const control = $(id);
    if (control.type === "checkbox") control.checked = Boolean(value);
    else if (control.options && ![...control.options].some((o) => o.value === String(value))) {
      throw new Error(`${id.slice(4)} cannot be ${value}`);
    } else control.value = String(value);
  }
}

// ---- the run ----------------------------------------------------------------------------------

// Starts the run again from `start` with the controls' settings.
function restart(start = run.start, given = run.given) {
  const s = settings();
  const trainer = new XorTrainer(start, s);  // checks the weights, lr, T and optimiser
  const stopping = s.early && new EarlyStopping(s.early);
  const reshaped = !run || run.trainer.k !== trainer.k || run.trainer.bypass !== trainer.bypass;
  run = { settings: s, start: trainer.weights(), given, trainer, losses: [], stopping };
  run.stoppedAt = null;
  if (reshaped) buildNetwork();
  showStart();
  draw();
  writeUrl();
}

// Fresh starting weights from the init and seed.
function fresh() {
  const { k, bypass, init, seed } = settings();
  $("xor-preset").value = "";
  $("xor-card").textContent = "";
  restart(lab.xor.init({ k, bypass, init, seed }), false);
}

const finished = () => run.stoppedAt !== null || run.losses.length >= run.settings.epochs;

function advance(epochs) {
  for (let i = 0; i < epochs && !finished(); i++) {
    run.losses.push(run.trainer.step());
    const epoch = run.losses.length;
    if (run.stopping && run.stopping.update(epoch, run.trainer.valLoss())) run.stoppedAt = epoch;
  }
}

function frame() {
  if (!playing) return;
  advance(Number($("xor-speed").value));
  draw();
  if (finished()) pause();
  else requestAnimationFrame(frame);
}

function play() {
  if (playing) return;
  if (finished()) restart();
  playing = true;
  $("xor-play").textContent = "Pause";
  requestAnimationFrame(frame);
}

function pause() {
  playing = false;
  $("xor-play").textContent = "Play";
  writeUrl();
}

// ---- drawing ----------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svgElement(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

// A weight's place in the weights object: "hidden_weight.1.0" is hidden_weight[1][0].
const path = (param) => param.split(".").map((key, i) => (i ? Number(key) : key));
const valueOf = (weights, param) => path(param).reduce((o, key) => o[key], weights);

function withValue(weights, param, value) {
  const copy = structuredClone(weights);
  const keys = path(param);
  const last = keys.pop();
  keys.reduce((o, key) => o[key], copy)[last] = value;
  return copy;
}

// The network: inputs left, hidden units in the middle, the output right; an edge per weight
// (the bypass's curve round the hidden layer), a square per bias.
function buildNetwork() {
  const { k, bypass } = run.trainer;
  const skip = bypass ? 2 : 0;
  const svg = $("xor-network");
  const spacing = Math.min(48, 190 / k);
  const input = [[36, 80], [36, 140]];
  const hidden = Array.from({ length: k }, (_, j) => [160, 110 + (j - (k - 1) / 2) * spacing]);
  const out = [284, 110];
  const nodes = [];
  const line = ([x1, y1], [x2, y2], param) =>
    svgElement("line", { x1, y1, x2, y2, class: "edge", "data-param": param });
  hidden.forEach((h, j) => {
    input.forEach((x, i) => nodes.push(line(x, h, `hidden_weight.${j}.${i}`)));
    nodes.push(line(h, out, `out_weight.${skip + j}`));
  });
  if (bypass) {
    input.forEach(([x, y], i) => nodes.push(svgElement("path", {
      d: `M ${x} ${y} Q 160 ${i ? 245 : -25} ${out[0]} ${out[1]}`, class: "edge", fill: "none",
      "data-param": `out_weight.${i}`,
    })));
  }
  const node = ([x, y], label) => [
    svgElement("circle", { cx: x, cy: y, r: 13, class: "node" }),
    Object.assign(svgElement("text", { x, y: y + 4, "text-anchor": "middle", "font-size": 11 }),
      { textContent: label }),
  ];
  const bias = ([x, y], param) => svgElement("rect",
    { x: x - 22, y: y + 6, width: 10, height: 10, class: "bias", "data-param": param });
  nodes.push(...node(input[0], "x1"), ...node(input[1], "x2"), ...node(out, "out"));
  hidden.forEach((h, j) => nodes.push(...node(h, `h${j + 1}`), bias(h, `hidden_bias.${j}`)));
  nodes.push(bias(out, "out_bias"));
  // Under each edge a wide transparent copy, so that a thin one (a weight near 0) takes a tap.
  const hits = nodes.filter((n) => n.classList.contains("edge")).map((n) => {
    const hit = n.cloneNode();
    hit.setAttribute("class", "hit");
    hit.dataset.hit = hit.dataset.param;
    delete hit.dataset.param;
    return hit;
  });
  for (const n of nodes) {
    if (n.dataset.param) n.append(svgElement("title", {}));
  }
  svg.replaceChildren(...hits, ...nodes);
  $("xor-hidden").replaceChildren(...hidden.map((_, j) => element("figure", {},
    element("canvas", { width: 96, height: 96, "data-unit": j }),
    element("figcaption", {}, `h${j + 1}`))));
  $("xor-edit").hidden = true;
}

const colour = (w) => (w >= 0 ? "#2b6cb0" : "#dd6b20");

function drawNetwork(weights) {
  for (const n of $("xor-network").querySelectorAll("[data-param]")) {
    const w = valueOf(weights, n.dataset.param);
    if (n.tagName === "rect") {
      n.setAttribute("fill", colour(w));
      n.setAttribute("fill-opacity", Math.min(1, 0.15 + Math.abs(w) / 3).toFixed(2));
    } else {
      n.setAttribute("stroke", colour(w));
      n.setAttribute("stroke-width", Math.min(9, 0.6 + 1.5 * Math.abs(w)).toFixed(2));
    }
    n.firstChild.textContent = `${n.dataset.param} = ${w.toPrecision(4)}`;
  }
}

// The losses on a log scale, at most one point per pixel column.
function drawLoss() {
  const canvas = $("xor-loss");
  const plot = canvas.getContext("2d");
  const { width, height } = canvas;
  const left = 52, bottom = 18, top = 8;
  // The loss at epoch i is the one before step i + 1; the last is the current weights'.
  const { losses } = run;
  const count = losses.length + 1;
  const at = (i) => Math.log10(Math.max(i < losses.length ? losses[i] : run.trainer.loss(), 1e-12));
  const span = Math.max(run.stoppedAt ?? run.settings.epochs, 1);
  const columns = width - left;
  const stride = Math.max(1, Math.ceil(count / columns));
  const shown = [];
  for (let i = 0; i < count - 1; i += stride) shown.push([i, at(i)]);
  shown.push([count - 1, at(count - 1)]);
  let high = -Infinity, low = Infinity;
  for (const [, v] of shown) { high = Math.max(high, v); low = Math.min(low, v); }
  if (high - low < 1e-3) { high += 0.5; low -= 0.5; }
  const x = (i) => left + (columns - 2) * (i / span);
  const y = (v) => top + (height - top - bottom) * ((high - v) / (high - low));
  plot.clearRect(0, 0, width, height);
  plot.fillStyle = "#555";
  plot.font = "11px system-ui, sans-serif";
  plot.fillText((10 ** high).toPrecision(2), 2, top + 8);
  plot.fillText((10 ** low).toPrecision(2), 2, height - bottom);
  plot.fillText(`epoch ${span}`, width - 70, height - 4);
  plot.fillText("0", left, height - 4);
  plot.strokeStyle = "#ccc";
  plot.strokeRect(left, top, columns - 1, height - top - bottom);
  plot.beginPath();
  shown.forEach(([i, v], n) => (n ? plot.lineTo(x(i), y(v)) : plot.moveTo(x(i), y(v))));
  plot.strokeStyle = "#4a7db5";
  plot.lineWidth = 1.5;
  plot.stroke();
}

function drawTruthTable() {
  const rows = INPUTS.map(([x1, x2], r) => {
    const p = run.trainer.output(x1, x2);
    const right = Math.round(p) === TARGETS[r];
    return element("tr", { class: right ? "right" : "wrong" },
      element("td", {}, `${x1}`), element("td", {}, `${x2}`), element("td", {}, `${TARGETS[r]}`),
      element("td", {}, p.toFixed(3)), element("td", {}, right ? "✓" : "✗"));
  });
  const head = element("tr", {},
    ...["x1", "x2", "XOR", "output", ""].map((h) => element("th", {}, h)));
  $("xor-truth").replaceChildren(head, ...rows);
}

function draw() {
  const { trainer } = run;
  const epochs = run.losses.length;
  $("xor-epoch").textContent = `epoch ${epochs}`;
  $("xor-loss-value").textContent = trainer.loss().toPrecision(4);
  $("xor-status").textContent = run.stoppedAt !== null
    ? `: stopped early (xor sweep's rule) at epoch ${run.stoppedAt}`
    : epochs >= run.settings.epochs ? `: the ${epochs} epochs are done` : "";
  drawSurface($("xor-canvas"), (x1, x2) => trainer.output(x1, x2));
  for (const canvas of $("xor-hidden").querySelectorAll("canvas")) {
    const j = Number(canvas.dataset.unit);
    drawSurface(canvas, (x1, x2) => { trainer.output(x1, x2); return trainer.h[j]; });
  }
  drawNetwork(trainer.weights());
  drawLoss();
  drawTruthTable();
  const command = commandLine();
  if ($("xor-command").textContent !== command) $("xor-command").textContent = command;
}

// ---- the command line, the weights file, the URL ---------------------------------------------

function commandLine() {
  const { settings: s, trainer } = run;
  const lines = [
    `dlclassics xor train --k ${trainer.k}${trainer.bypass ? " --bypass" : ""} ` +
    `--optimizer ${s.optimizer} --lr ${s.lr} --epochs ${run.stoppedAt ?? s.epochs} ` +
    `--temperature ${s.temperature} --dtype float64 --init weights.json`,
  ];
  if (run.losses.length && finished()) {
    // xor train's "final loss" is its last recorded one, before the last step, as the curve.
    lines.push(`# it prints "final loss ${Number(run.losses.at(-1).toPrecision(4))}": the loss `
      + "before the last step (the page shows the loss after it)");
  }
  if (s.early) {
    lines.push(`# xor train has no early stopping: ${run.stoppedAt === null
      ? "--epochs is the most; the run may stop sooner"
      : `the run stopped at epoch ${run.stoppedAt}`}`);
  }
  if (run.given) {
    lines.push("# the starting weights as they are, on the four points:",
      `dlclassics xor solve --weights weights.json --temperature ${s.temperature}`);
  }
  return lines.join("\n");
}

function showStart() {
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  const file = JSON.stringify([run.start], null, 1);
  downloadUrl = URL.createObjectURL(new Blob([file], { type: "application/json" }));
  $("xor-download").href = downloadUrl;
}

// The state after #xor?: the settings, the seed, the starting weights (w) and the epoch reached
// (at), which a reload trains again: training is deterministic.
let written = null;  // the state last put in the URL: a hash change to another one is a link

function writeUrl() {
  if (!$("xor").classList.contains("active") || !run) return;
  const { settings: s, trainer } = run;
  const q = new URLSearchParams({
    k: trainer.k, bypass: Number(trainer.bypass), optimizer: s.optimizer, lr: s.lr, T: s.temperature,
    epochs: s.epochs, init: s.init, seed: s.seed, speed: $("xor-speed").value,
  });
  if (s.early) q.set("early", [s.early.patience, s.early.minDelta, s.early.goal].join(","));
  q.set("w", flatWeights(run.start).join(","));
  if (run.given) q.set("given", 1);
  if (run.losses.length) q.set("at", run.losses.length);
  written = `#xor?${q.toString().replace(/%2C/g, ",")}`;
  history.replaceState(null, "", written);
}

function restore(hash) {
  const q = new URLSearchParams(hash.replace(/^#xor\??/, ""));
  if (!q.has("w")) return false;
  const early = q.get("early")?.split(",");
  setControls({
    "xor-k": q.get("k"), "xor-bypass": q.get("bypass") === "1", "xor-optimizer": q.get("optimizer"),
    "xor-lr": q.get("lr"), "xor-temperature": q.get("T"), "xor-epochs": q.get("epochs"),
    "xor-init": q.get("init"), "xor-seed": q.get("seed"), "xor-speed": q.get("speed"),
    "xor-early": Boolean(early), "xor-patience": early?.[0], "xor-min-delta": early?.[1],
    "xor-goal": early?.[2],
  });
  const { k, bypass } = settings();
  const pieces = q.get("w").split(",");
  if (pieces.some((piece) => piece.trim() === "")) throw new Error("the link has an empty weight");
  restart(unflatWeights(pieces.map(Number), k, bypass), q.get("given") === "1");
  advance(Number(q.get("at")) || 0);
  draw();
  writeUrl();
  return true;
}

// ---- editing a weight, presets, the study explorer's hook ------------------------------------

let editing = null;  // the weight being typed

function edit(param) {
  pause();
  editing = param;
  $("xor-edit").hidden = false;
  $("xor-edit-name").textContent = param;
  $("xor-edit-value").value = String(valueOf(run.trainer.weights(), param));
  $("xor-edit-value").focus();
}

function typed() {
  const text = $("xor-edit-value").value;
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value)) return;
  restart(withValue(run.trainer.weights(), editing, value), true);
  $("xor-edit").hidden = false;  // a new shape would have closed it; this one has the same
}

function loadPreset() {
  const preset = presets.find((p) => p.name === $("xor-preset").value);
  if (!preset) return;
  pause();
  const { weights } = preset;
  const k = weights.hidden_weight.length;
  setControls({
    "xor-k": k, "xor-bypass": weights.out_weight.length === k + 2,
    "xor-temperature": preset.temperature,
  });
  $("xor-card").textContent = preset.card ?? "";
  restart(weights, true);
}

// For the study explorer (study.js): a run of its grid, from fresh weights with its init.
function load({ k, bypass, lr, optimizer, init, temperature, earlyStopping }) {
  pause();
  setControls({
    "xor-k": k, "xor-bypass": bypass, "xor-lr": lr, "xor-optimizer": optimizer, "xor-init": init,
    "xor-temperature": temperature, "xor-early": Boolean(earlyStopping),
    "xor-patience": earlyStopping?.patience, "xor-min-delta": earlyStopping?.minDelta,
    "xor-goal": earlyStopping?.goal, "xor-epochs": earlyStopping?.maxEpochs,
    "xor-seed": Number($("xor-seed").value) + 1,
  });
  fresh();
  play();
}

// Runs `action`, showing its error (a bad setting) under the controls, then throwing it on.
function shown(action) {
  return (...args) => {
    $("xor-error").textContent = "";
    try {
      action(...args);
    } catch (e) {
      pause();
      $("xor-error").textContent = e.message;
      throw e;
    }
  };
}

// `shown`, for the page's own controls: the error shown is all there is to do about it.
function guarded(action) {
  const show = shown(action);
  return (...args) => {
    try {
      show(...args);
    } catch {
      // shown under the controls
    }
  };
}

export function startXor() {
  presets = [
    ...Object.entries(HAND_SET).map(([name, weights]) => ({
      name: `${name} (hand-set)`, weights, temperature: HAND_SET_T,
    })),
    ...lab.models.filter((m) => m.kind === "xor").map((m) => ({
      name: m.name, weights: lab.xor.weights(m.name), temperature: m.card.architecture?.temperature,
      card: m.card.text ?? `${m.name}: ${JSON.stringify(m.card.architecture)}`,
    })),
  ];
  $("xor-preset").replaceChildren(element("option", { value: "" }, "choose one"),
    ...presets.map((p) => element("option", { value: p.name }, p.name)));

  $("xor-play").addEventListener("click", guarded(() => (playing ? pause() : play())));
  $("xor-step").addEventListener("click", guarded(() => {
    pause();
    advance(1);
    draw();
    writeUrl();
  }));
  $("xor-reset").addEventListener("click", guarded(() => { pause(); restart(); }));
  $("xor-new").addEventListener("click", guarded(() => {
    pause();
    $("xor-seed").value = String(Number($("xor-seed").value) + 1);
    fresh();
  }));
  for (const id of ["xor-k", "xor-bypass", "xor-init", "xor-seed"]) {
    $(id).addEventListener("change", guarded(fresh));
  }
  for (const id of ["xor-optimizer", "xor-lr", "xor-temperature", "xor-epochs", "xor-early",
    "xor-patience", "xor-min-delta", "xor-goal"]) {
    $(id).addEventListener("change", guarded(() => restart()));
  }
  $("xor-speed").addEventListener("change", writeUrl);
  $("xor-preset").addEventListener("change", guarded(loadPreset));
  $("xor-network").addEventListener("click", (event) => {
    const target = event.target.closest("[data-param], [data-hit]");
    if (target) edit(target.dataset.param ?? target.dataset.hit);
  });
  $("xor-edit-value").addEventListener("input", guarded(typed));
  document.querySelector("button[data-tab=xor]").addEventListener("click", writeUrl);
  // A link to another state, pasted into this open tab, changes only the hash.
  window.addEventListener("hashchange", guarded(() => {
    if (location.hash.startsWith("#xor?") && location.hash !== written) restore(location.hash);
  }));

  guarded(() => {
    try {
      if (restore(location.hash)) return;
    } catch (e) {
      defaultControls();
      fresh();
      throw new Error(`the link's XOR state was not restored: ${e.message}`);
    }
    fresh();
  })();

  // The study explorer, another module: the tab works without it.
  import("./study.js")
    .then(({ startStudy }) => startStudy($("xor-study"), shown(load)))
    .catch((e) => {
      $("xor-study").textContent = `The study explorer did not load: ${e.message}`;
    });
}
