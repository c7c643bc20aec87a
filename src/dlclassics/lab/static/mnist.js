// The MNIST tab: draw, and every exported model answers as you draw; inside the CNN; the
// logistic regression's templates and the MLP's units; the test set's mistakes. Like page.js it
// computes no model's numbers itself: it asks window.lab (lab.js) and draws what it gets.

import { $, bars, element, percent } from "./dom.js";
import lab from "./lab.js";

const digits = Array.from({ length: 10 }, (_, i) => String(i));

// ---- colours ----------------------------------------------------------------------------------

// Diverging: blue for negative, white for 0, red for positive, full colour at +-scale.
function diverging(value, scale) {
  const t = Math.max(-1, Math.min(1, scale > 0 ? value / scale : 0));
  const fade = Math.round(255 * (1 - Math.abs(t)));
  return t >= 0 ? [255, fade, fade] : [fade, fade, 255];
}

const maxAbs = (arrays) => {
  let m = 0;
  for (const a of arrays) for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
};

// `values` (side x side, row-major) into `canvas` (side x side pixels), diverging colours.
function paint(canvas, values, side, scale) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(side, side);
  for (let i = 0; i < side * side; i++) {
    const [r, g, b] = diverging(values[i], scale);
    image.data.set([r, g, b, 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
}

function grey(canvas, pixels) {  // pixels in [0, 1], white ink on black
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(255 * Math.max(0, Math.min(1, pixels[i])));
    image.data.set([v, v, v, 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
}

function tile(side, attributes = {}) {
  const canvas = element("canvas", { class: "map", ...attributes });
  canvas.width = canvas.height = side;
  return canvas;
}

// The colour key: -scale (blue), 0 (white), +scale (red).
function legend(scale) {
  const key = element("span", { class: "legend" },
    element("span", {}, `−${scale.toPrecision(3)}`),
    element("span", { class: "gradient" }),
    element("span", {}, `+${scale.toPrecision(3)}`));
  return key;
}

// ---- the models -------------------------------------------------------------------------------

let models = [];  // the MNIST models, the run's chosen one first
let chosen = null;  // its name, where a run marked one (mnist cnn's best)
let pixels = null;  // the current input, 784 values in [0, 1]

const isCnn = (name) => lab.mnist.layers(name).convs.length > 0;
const classesOf = (name) => models.find((m) => m.name === name)?.card.classes ?? digits;

export const current = () => pixels;

// ---- drawing ----------------------------------------------------------------------------------

const canvas = $("mnist-canvas");
const pen = canvas.getContext("2d", { willReadFrequently: true });
let drawing = false;
let inked = false;
let pending = false;

function clearCanvas() {
  pen.fillStyle = "black";
  pen.fillRect(0, 0, canvas.width, canvas.height);
  inked = false;
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * (canvas.width / box.width),
    (event.clientY - box.top) * (canvas.height / box.height)];
}

// At most one redraw per animation frame, however fast the pointer events come.
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    if (inked) show(digitPixels(), "your drawing, centred as MNIST's digits");
  });
}

// MNIST's digits: the bounding box scaled to fit 20x20 (aspect kept), then placed so that the
// centre of mass of the ink is at the centre of the 28x28 image.
export function digitPixels() {
  const { data, width, height } = pen.getImageData(0, 0, canvas.width, canvas.height);
  let [left, topEdge, right, bottomEdge] = [width, height, -1, -1];
  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = data[4 * (y * width + x)];
      if (v > 0) {
        left = Math.min(left, x); right = Math.max(right, x);
        topEdge = Math.min(topEdge, y); bottomEdge = Math.max(bottomEdge, y);
        mass += v; mx += v * (x + 0.5); my += v * (y + 0.5);
      }
    }
  }
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  const out = small.getContext("2d", { willReadFrequently: true });
  out.fillStyle = "black";
  out.fillRect(0, 0, 28, 28);
  if (right >= 0) {
    const [w, h] = [right - left + 1, bottomEdge - topEdge + 1];
    const scale = 20 / Math.max(w, h);
    // The centre of mass, in the box's coordinates scaled, lands on (14, 14).
    const x0 = 14 - (mx / mass - left) * scale;
    const y0 = 14 - (my / mass - topEdge) * scale;
    out.imageSmoothingQuality = "high";
    out.drawImage(canvas, left, topEdge, w, h, x0, y0, w * scale, h * scale);
  }
  const smallData = out.getImageData(0, 0, 28, 28).data;
  return Array.from({ length: 784 }, (_, i) => smallData[4 * i] / 255);
}

canvas.addEventListener("pointerdown", (event) => {
  drawing = true;
  canvas.setPointerCapture?.(event.pointerId);
  pen.beginPath();
  pen.moveTo(...point(event));
});
canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  pen.lineTo(...point(event));
  pen.strokeStyle = "white";
  pen.lineWidth = 20;
  pen.lineCap = pen.lineJoin = "round";
  pen.stroke();
  inked = true;
  schedule();
});
for (const name of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(name, () => {
    if (drawing && inked) schedule();
    drawing = false;
  });
}

// ---- every model on the input -----------------------------------------------------------------

// The page's one redraw: the input as the model sees it, every model's probabilities and the
// picked CNN's maps. `pixels` are used as given (a drawing is centred before it comes here).
export function show(input, note) {
  pixels = Array.from(input);
  $("mnist-error").textContent = "";
  try {
    grey($("mnist-input"), pixels);
    if (note) $("mnist-input-note").textContent = note;
    for (const model of models) {
      const probs = lab.mnist.predict(pixels, model.name);
      const classes = classesOf(model.name);
      const best = probs.indexOf(Math.max(...probs));
      const column = $("mnist-columns").querySelector(`[data-model="${CSS.escape(model.name)}"]`);
      column.querySelector(".prediction").textContent = `→ ${classes[best]}`;
      bars(column.querySelector("table"), probs.map((p, i) => [classes[i], p, i === best]));
    }
    drawInside();
  } catch (e) {
    $("mnist-error").textContent = e.message;
  }
}

function buildColumns() {
  $("mnist-columns").replaceChildren(...models.map((m) => {
    const title = element("h3", {}, m.name);
    if (m.name === chosen) {
      title.prepend(element("span", { class: "chosen", title: "the model its run chose" }, "★ "));
    }
    return element("div", { class: "column mnist-column", "data-model": m.name },
      title, element("p", { class: "prediction result" }), element("table", { class: "bars" }));
  }));
  if (chosen) {
    $("mnist-columns").append(element("p", { class: "note wide-note" },
      `★ ${chosen}: the model its run chose (mnist cnn's best on validation).`));
  }
}

// ---- inside the CNN ---------------------------------------------------------------------------

let inside = null;  // {name, rows: [{stage, kind, canvases, scale}]} built for one CNN

const KINDS = [["conv", "conv output"], ["pooled", "2x2 max-pooled"], ["relu", "after ReLU"]];

function highlight(stage, filter, on) {
  // One filter lit at a time: a tap (touch has no mouseleave) moves the light.
  for (const node of document.querySelectorAll("#mnist-filters .lit")) node.classList.remove("lit");
  for (const node of document.querySelectorAll(`#mnist-filters [data-stage="${stage}"][data-filter="${filter}"]`)) {
    node.classList.toggle("lit", on);
  }
  $("mnist-hover").textContent = on ? `made by filter ${filter + 1} of conv layer ${stage + 1}` : "";
}

function buildInside(name, stages) {
  const rows = [];
  const blocks = stages.map(({ stage, channels, side }) => {
    const block = element("div", { class: "stage" },
      element("h3", {}, `Stage ${stage + 1}: ${channels} maps of ${side}x${side}, then ${side / 2}x${side / 2}`));
    for (const [kind, label] of KINDS) {
      const s = kind === "conv" ? side : Math.floor(side / 2);
      const canvases = Array.from({ length: channels }, (_, c) => {
        const map = tile(s, { title: `${label}, filter ${c + 1} of conv layer ${stage + 1}` });
        for (const [on, events] of [[true, ["mouseenter", "click"]], [false, ["mouseleave"]]]) {
          for (const e of events) map.addEventListener(e, () => highlight(stage, c, on));
        }
        return map;
      });
      const scale = element("span", { class: "note" });
      rows.push({ stage, kind, side: s, canvases, scale });
      block.append(element("div", { class: "maprow" },
        element("span", { class: "maplabel" }, label), ...canvases, scale));
    }
    return block;
  });
  $("mnist-inside").replaceChildren(...blocks, element("p", { class: "note", id: "mnist-hover" }));
  inside = { name, rows };
  drawFilters(name);
}

function drawInside() {
  const name = $("mnist-cnn").value;
  if (!name) return;
  const stages = lab.mnist.activations(pixels, name);
  if (!inside || inside.name !== name) buildInside(name, stages);
  for (const row of inside.rows) {
    const maps = stages[row.stage][row.kind];
    const scale = maxAbs(maps);
    maps.forEach((map, c) => paint(row.canvases[c], map, row.side, scale));
    row.scale.textContent = `±${scale.toPrecision(3)}`;
  }
}

// The filters of the first two conv layers: layer 1's (1 input channel) one 5x5 image each;
// layer 2's one 5x5 image per input channel, a row per filter.
function drawFilters(name) {
  const { convs } = lab.mnist.layers(name);
  const blocks = convs.slice(0, 2).map((conv, stage) => {
    const [outC, inC, k] = conv.shape;
    const scale = maxAbs([conv.weight]);
    const filters = Array.from({ length: outC }, (_, o) => {
      const images = Array.from({ length: inC }, (_, c) => {
        const image = tile(k, { class: "map filter" });
        paint(image, conv.weight.subarray((o * inC + c) * k * k, (o * inC + c + 1) * k * k), k, scale);
        return image;
      });
      return element("div", {
        class: "filterbox", "data-stage": stage, "data-filter": o,
        title: `filter ${o + 1} of conv layer ${stage + 1} (bias ${conv.bias[o].toFixed(3)})`,
      }, element("span", { class: "maplabel" }, `${o + 1}`), ...images);
    });
    return element("div", { class: "stage" },
      element("h3", {}, `Conv layer ${stage + 1}'s filters (${outC} x ${inC} x ${k}x${k})`),
      element("div", { class: "filters" }, ...filters), legend(scale));
  });
  $("mnist-filters").replaceChildren(...blocks);
}

// ---- templates and units ----------------------------------------------------------------------

function drawWeights() {
  const blocks = [];
  for (const model of models) {
    const { convs, linears } = lab.mnist.layers(model.name);
    if (convs.length || !linears.length) continue;
    const first = linears[0];
    const classes = classesOf(model.name);
    const logreg = linears.length === 1;
    const count = logreg ? first.shape[0] : Math.min(64, first.shape[0]);
    const rows = Array.from({ length: count }, (_, o) => first.weight.subarray(o * 784, (o + 1) * 784));
    const scale = maxAbs(rows);
    const images = rows.map((row, o) => {
      const image = tile(28, { class: "map weight" });
      paint(image, row, 28, scale);
      return element("figure", {}, image, element("figcaption", {}, logreg ? classes[o] : `${o + 1}`));
    });
    const what = logreg
      ? `${model.name}: each class's weights over the 28x28 pixels (its template)`
      : `${model.name}: the first layer's first ${count} of ${first.shape[0]} units, as 28x28 images`;
    blocks.push(element("div", { class: "stage" }, element("h3", {}, what),
      element("div", { class: "weights" }, ...images), legend(scale)));
  }
  if (!blocks.length) blocks.push(element("p", { class: "note" }, "No logistic regression or MLP exported."));
  $("mnist-weights").replaceChildren(...blocks);
}

// ---- the test set's mistakes ------------------------------------------------------------------

const sprites = new Map();  // model name -> a promise of its decoded sprite image

function sprite(name, test) {
  if (!sprites.has(name)) {
    const image = new Image();
    image.src = `${lab.mnist.folder(name)}/${test.sprite}`;
    sprites.set(name, image.decode().then(() => image));
  }
  return sprites.get(name);
}

function drawTest() {
  const name = $("mnist-test-model").value;
  $("mnist-cell").replaceChildren();
  const test = lab.mnist.test(name);
  if (!test) {
    $("mnist-test").replaceChildren(element("p", { class: "note" },
      `No test.json for ${name}: the export wrote no test figures for this model, so there is no confusion matrix to show.`));
    return;
  }
  const classes = test.classes ?? classesOf(name);
  const rowTotals = test.confusion.map((row) => row.reduce((a, b) => a + b, 0));
  const head = element("tr", {}, element("th", { class: "corner" }, "true \\ pred"),
    ...classes.map((c, j) => element("th", { title: c }, String(j))));
  const rows = test.confusion.map((row, i) => element("tr", {},
    element("th", { title: classes[i] }, String(i)),
    ...row.map((count, j) => {
      const share = rowTotals[i] ? count / rowTotals[i] : 0;
      const cell = element("button", {
        class: "cell", type: "button", "data-true": i, "data-pred": j,
        title: `true ${classes[i]}, predicted ${classes[j]}: ${count}`,
      }, String(count));
      const strength = i === j ? share : Math.min(1, 4 * share);
      const light = Math.round(100 - 55 * strength);
      cell.style.background = i === j ? `hsl(120, 45%, ${light}%)` : `hsl(0, 75%, ${light}%)`;
      cell.addEventListener("click", () => showCell(name, test, i, j));
      return element("td", {}, cell);
    })));
  const figures = `accuracy ${percent(test.accuracy)}, balanced accuracy ${percent(test.balanced_accuracy)}`;
  const perClass = element("table", { class: "perclass" },
    element("tr", {}, element("th", {}, "class"), element("th", {}, "precision"), element("th", {}, "recall")),
    ...classes.map((c, k) => element("tr", {}, element("td", {}, c),
      element("td", {}, percent(test.precision[k])), element("td", {}, percent(test.recall[k])))));
  $("mnist-test").replaceChildren(
    element("div", { class: "confusion-box" }, element("table", { class: "confusion" }, head, ...rows)),
    element("p", { class: "note" }, "Rows: the true class; columns: the predicted one. Click a cell for its test images."),
    element("p", { class: "result" }, figures), perClass);
}

function showCell(name, test, i, j) {
  const classes = test.classes ?? classesOf(name);
  const index = (c) => (typeof c === "number" ? c : classes.indexOf(c));
  const fell = test.mistakes.filter((m) => index(m.true) === i && index(m.pred) === j);
  const count = test.confusion[i][j];
  const heading = i === j
    ? `true ${classes[i]}, predicted ${classes[j]}: ${count} right (the sprite holds mistakes only)`
    : `true ${classes[i]}, predicted ${classes[j]}: ${count} test images, ${fell.length} in the sprite`;
  const tiles = fell.map((m) => {
    const image = tile(28, { class: "map mistake" });
    const caption = `true ${classes[i]}, predicted ${classes[j]} (p ${percent(m.p_pred)}; ` +
      `p true ${percent(m.p_true)})`;
    return element("figure", { class: "tile", title: `test image ${m.index}: ${caption}` }, image,
      element("figcaption", {}, `${classes[i]}→${classes[j]} ${percent(m.p_pred)}`));
  });
  $("mnist-cell").replaceChildren(element("h3", {}, heading), element("div", { class: "tiles" }, ...tiles));
  if (!fell.length) return;
  const columns = test.sprite_columns;
  sprite(name, test).then((image) => {
    fell.forEach((m, n) => {
      const at = m.sprite;
      tiles[n].querySelector("canvas").getContext("2d").drawImage(
        image, (at % columns) * 28, Math.floor(at / columns) * 28, 28, 28, 0, 0, 28, 28);
    });
  }).catch(() => {
    $("mnist-cell").append(element("p", { class: "error" }, `${test.sprite} did not load`));
  });
}

// ---- samples ----------------------------------------------------------------------------------

function drawSamples() {
  const owner = models.find((m) => lab.mnist.samples(m.name));
  if (!owner) {
    $("mnist-samples-box").hidden = true;
    return;
  }
  const samples = lab.mnist.samples(owner.name);
  const classes = samples.classes ?? classesOf(owner.name);
  $("mnist-samples").replaceChildren(...samples.images.map((image, n) => {
    const values = image.map((v) => v / 255);
    const canvas = tile(28, { class: "map" });
    grey(canvas, values);
    const label = classes[samples.labels[n]];
    const button = element("button", { type: "button", class: "sample", title: `test image: ${label}` }, canvas);
    button.addEventListener("click", () => {
      clearCanvas();
      show(values, `a test image (${label}), as the test set has it: no centring`);
    });
    return button;
  }));
}

// ---- start ------------------------------------------------------------------------------------

function unavailable(message) {
  const note = $("mnist").querySelector(".unavailable");
  note.hidden = false;
  note.textContent = message;
  for (const control of $("mnist").querySelectorAll("button, input, select")) control.disabled = true;
}

const options = (select, names) =>
  select.replaceChildren(...names.map((name) => element("option", { value: name }, name)));

export function startMnist() {
  clearCanvas();
  models = lab.models.filter((m) => m.kind === "mnist")
    .sort((a, b) => Number(Boolean(b.card.results?.best)) - Number(Boolean(a.card.results?.best)));
  if (!models.length) {
    unavailable("This site has no MNIST model: train one (dlclassics mnist fc or cnn) and export it.");
    return;
  }
  chosen = models.find((m) => m.card.results?.best)?.name ?? null;
  buildColumns();
  const cnns = models.filter((m) => isCnn(m.name)).map((m) => m.name);
  options($("mnist-cnn"), cnns);
  if (!cnns.length) $("mnist-inside").replaceChildren(element("p", { class: "note" }, "No CNN exported."));
  $("mnist-cnn").addEventListener("change", () => show(pixels));
  options($("mnist-test-model"), models.map((m) => m.name));
  $("mnist-test-model").addEventListener("change", () => {
    drawTest();
    const m = models.find((x) => x.name === $("mnist-test-model").value);
    $("mnist-card").textContent = m.card.text ?? "";
  });
  $("mnist-card").textContent = models[0].card.text ?? "";
  $("mnist-clear").addEventListener("click", () => {
    clearCanvas();
    show(new Array(784).fill(0), "a blank input");
  });
  drawWeights();
  drawTest();
  drawSamples();
  show(new Array(784).fill(0), null);
}
