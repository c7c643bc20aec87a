"use strict";

const $ = (id) => document.getElementById(id);

async function call(method, url, body) {
  const options = { method, headers: { "Content-Type": "application/json" } };
  if (body !== undefined) options.body = JSON.stringify(body);
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new Error(data.detail || `request failed (${response.status})`);
  return data;
}

// Runs an action, showing its error (or nothing) in the given element.
function action(errorId, run) {
  return async () => {
    $(errorId).textContent = "";
    try {
      await run();
    } catch (e) {
      $(errorId).textContent = e.message;
    }
  };
}

function percent(p) {
  return p >= 0.001 ? `${(100 * p).toFixed(1)}%` : p.toExponential(1);
}

function probabilityRows(table, rows) {
  table.replaceChildren(...rows.map(([label, p]) => {
    const tr = document.createElement("tr");
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.round(200 * p)}px`;
    for (const content of [label, bar, percent(p)]) {
      const td = document.createElement("td");
      td.append(content);
      tr.append(td);
    }
    return tr;
  }));
}

function unknownNote(unknown) {
  return unknown.length ? ` (not in the vocabulary: ${unknown.join(", ")})` : "";
}

// ---- tabs and model status

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab, .panel")) t.classList.remove("active");
    tab.classList.add("active");
    $(tab.dataset.tab).classList.add("active");
  });
}

function showStatus(panelId, status) {
  const panel = $(panelId);
  const note = panel.querySelector(".unavailable");
  note.hidden = status.ready;
  note.textContent = status.message;
  panel.querySelector(".source").textContent = status.source ? `model: ${status.source}` : "";
  for (const button of panel.querySelectorAll("button")) button.disabled = !status.ready;
}

// ---- language model

const lmText = () => $("lm-text").value;

$("lm-next-go").addEventListener("click", action("lm-next-error", async () => {
  const k = Number($("lm-k").value);
  const data = await call("POST", "/api/lm/next", { text: lmText(), k });
  probabilityRows($("lm-next-result"), data.words.map((w) => [w.word, w.probability]));
  if (data.unknown.length) $("lm-next-error").textContent = unknownNote(data.unknown).trim();
}));

$("lm-generate-go").addEventListener("click", action("lm-generate-error", async () => {
  const data = await call("POST", "/api/lm/generate", {
    text: lmText(),
    length: Number($("lm-length").value),
    temperature: Number($("lm-temperature").value),
    stop_at_eos: $("lm-stop-at-eos").checked,
  });
  $("lm-generate-result").textContent = data.sentence + unknownNote(data.unknown);
}));

$("lm-prob-go").addEventListener("click", action("lm-prob-error", async () => {
  const data = await call("POST", "/api/lm/prob", { text: lmText() });
  $("lm-prob-result").textContent =
    `log p = ${data.log_probability.toFixed(3)} (p = ${data.probability.toExponential(3)}); ` +
    `as a whole sentence, with the end: log p = ${data.log_probability_with_eos.toFixed(3)}` +
    unknownNote(data.unknown);
}));

// ---- draw a digit

const canvas = $("mnist-canvas");
const pen = canvas.getContext("2d", { willReadFrequently: true });
let drawing = false;

function clearCanvas() {
  pen.fillStyle = "black";
  pen.fillRect(0, 0, canvas.width, canvas.height);
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [event.clientX - box.left, event.clientY - box.top];
}

canvas.addEventListener("pointerdown", (event) => {
  drawing = true;
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
});
for (const name of ["pointerup", "pointerleave"]) {
  canvas.addEventListener(name, () => { drawing = false; });
}

// MNIST digits are scaled to fit 20x20 and centred in 28x28; the drawing gets the same.
function digitPixels() {
  const { data, width, height } = pen.getImageData(0, 0, canvas.width, canvas.height);
  let [left, top, right, bottom] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[4 * (y * width + x)] > 0) {
        left = Math.min(left, x); right = Math.max(right, x);
        top = Math.min(top, y); bottom = Math.max(bottom, y);
      }
    }
  }
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  const out = small.getContext("2d", { willReadFrequently: true });
  out.fillStyle = "black";
  out.fillRect(0, 0, 28, 28);
  if (right >= 0) {
    const side = Math.max(right - left, bottom - top) + 1;
    const scale = 20 / side;
    const [w, h] = [(right - left + 1) * scale, (bottom - top + 1) * scale];
    out.drawImage(canvas, left, top, right - left + 1, bottom - top + 1,
      (28 - w) / 2, (28 - h) / 2, w, h);
  }
  const smallData = out.getImageData(0, 0, 28, 28).data;
  return Array.from({ length: 28 * 28 }, (_, i) => smallData[4 * i] / 255);
}

$("mnist-go").addEventListener("click", action("mnist-error", async () => {
  const data = await call("POST", "/api/mnist/predict", { pixels: digitPixels() });
  const best = data.probabilities.indexOf(Math.max(...data.probabilities));
  $("mnist-prediction").textContent = `prediction: ${data.classes[best]}`;
  probabilityRows($("mnist-result"), data.classes.map((c, i) => [c, data.probabilities[i]]));
}));

$("mnist-clear").addEventListener("click", () => {
  clearCanvas();
  $("mnist-prediction").textContent = "";
  $("mnist-error").textContent = "";
  $("mnist-result").replaceChildren();
});

// ---- XOR decision surface

function drawSurface(grid) {
  const plot = $("xor-canvas").getContext("2d");
  const pad = 12;  // room for the dots at the corners
  const side = plot.canvas.width - 2 * pad;
  const n = grid.length;
  const cell = side / n;
  // Cell centres run from x = 0 to x = 1, bottom to top for x2.
  const at = (x1, x2) => [
    pad + cell / 2 + x1 * (side - cell),
    pad + side - cell / 2 - x2 * (side - cell),
  ];
  plot.clearRect(0, 0, plot.canvas.width, plot.canvas.height);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const shade = Math.round(255 * (1 - grid[i][j]));
      plot.fillStyle = `rgb(${shade}, ${shade}, 255)`;
      const [x, y] = at(j / (n - 1), i / (n - 1));
      plot.fillRect(x - cell / 2, y - cell / 2, cell + 1, cell + 1);
    }
  }
  for (const [x1, x2] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
    plot.beginPath();
    plot.arc(...at(x1, x2), 8, 0, 2 * Math.PI);
    plot.fillStyle = x1 !== x2 ? "#d62728" : "#2ca02c";
    plot.fill();
  }
}

$("xor-go").addEventListener("click", action("xor-error", async () => {
  const [k, bypass] = $("xor-net").value.split(",");
  const query = new URLSearchParams({ k, bypass, temperature: $("xor-temperature").value });
  const data = await call("GET", `/api/xor/surface?${query}`);
  drawSurface(data.grid);
}));

// ---- start

clearCanvas();
call("GET", "/api/status").then((status) => {
  showStatus("lm", status.lm);
  showStatus("mnist", status.mnist);
  if (status.lm.direction === "reverse") {
    $("lm-next-go").textContent = "Predict the word before";
  }
  $("xor-net").replaceChildren(...status.xor.map(({ k, bypass }) => {
    const option = document.createElement("option");
    option.value = `${k},${bypass}`;
    option.textContent = `k=${k}${bypass ? " with bypass" : ""}`;
    return option;
  }));
  $("xor-go").click();
});
