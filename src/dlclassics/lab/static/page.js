// The page: wires the controls to window.lab (lab.js). Nothing here computes a model's numbers;
// it only asks lab for them and draws them.

import lab from "./lab.js";
import { entropy, softmax } from "./models.js";
import { $, bars, element, percent } from "./dom.js";
import { startMnist } from "./mnist.js";
import { startXor } from "./xorpage.js";

// Runs `show`, putting its error (or nothing) in the element `errorId`.
function guarded(errorId, show) {
  return (...args) => {
    $(errorId).textContent = "";
    try {
      show(...args);
    } catch (e) {
      $(errorId).textContent = e.message;
    }
  };
}

function options(select, names) {
  select.replaceChildren(...names.map((name) => element("option", { value: name }, name)));
}

// ---- tabs -------------------------------------------------------------------------------------

// #lm, #mnist or #xor in the URL opens that tab (the XOR tab's state may follow: #xor?...).
function showTab(name) {
  const tab = document.querySelector(`.tab[data-tab="${name}"]`);
  if (!tab) return;
  for (const t of document.querySelectorAll(".tab, .panel")) t.classList.remove("active");
  tab.classList.add("active");
  $(name).classList.add("active");
}

const tabInUrl = () => location.hash.match(/^#(\w+)/)?.[1];

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    showTab(tab.dataset.tab);
    history.replaceState(null, "", `#${tab.dataset.tab}`);
  });
}
showTab(tabInUrl());
window.addEventListener("hashchange", () => showTab(tabInUrl()));

function unavailable(panelId, message) {
  const note = $(panelId).querySelector(".unavailable");
  note.hidden = false;
  note.textContent = message;
  for (const control of $(panelId).querySelectorAll("button, input, select")) control.disabled = true;
}

// ---- language model ---------------------------------------------------------------------------

const K = 10;  // bars shown
const lmModels = () => lab.models.filter((m) => m.kind === "lm");
const isReverse = (m) => m.card.architecture.direction === "reverse";
const temperature = (slider) => 10 ** Number(slider.value);
const showT = (t) => (t < 1 ? t.toPrecision(2) : t.toFixed(t < 10 ? 2 : 1));

// The models whose bars are shown: the one chosen and, where the site has one, its partner of
// the other direction with as many layers (an `lm study` exports both): the word after and the
// word before, side by side.
function shownModels() {
  const chosen = lmModels().find((m) => m.name === $("lm-model").value);
  const layers = chosen.card.architecture.layers;
  const others = lmModels().filter((m) => isReverse(m) !== isReverse(chosen));
  const partner = others.find((m) => m.card.architecture.layers === layers) || others[0];
  return partner ? [chosen, partner].sort((a, b) => isReverse(a) - isReverse(b)) : [chosen];
}

// The logits for the current text, per model: the temperature slider re-shapes them without
// running the LSTM again.
let cached = [];

function updateNext() {
  const text = $("lm-text").value;
  cached = shownModels().map((m) => ({ model: m, ...lab.lm.nextLogits(text, m.name) }));
  drawBars();
}

function drawBars() {
  const t = temperature($("lm-temperature"));
  $("lm-t-value").textContent = showT(t);
  const columns = cached.map(({ model, logits, unknown }) => {
    const probs = softmax(logits, t);
    const words = lab.lm.vocabulary(model.name);
    // Ids 0-2 (<PAD>, <START>, <UNK>) are not words: left out, as `lm next` leaves them.
    const ranked = [];
    probs.forEach((p, id) => { if (id > 2) ranked.push([words[id], p]); });
    ranked.sort((a, b) => b[1] - a[1]);
    const table = element("table", { class: "bars" });
    bars(table, ranked.slice(0, K));
    const what = isReverse(model) ? "the word before" : "the next word";
    const note = unknown.length ? `not in the vocabulary (read as <UNK>): ${unknown.join(", ")}` : "";
    return element("div", { class: "column", "data-model": model.name },
      element("h3", {}, `${what} (${model.name})`),
      table,
      element("p", { class: "note" }, `entropy ${entropy(probs).toFixed(3)} nats at T = ${showT(t)}`),
      element("p", { class: "note" }, note));
  });
  $("lm-columns").replaceChildren(...columns);
}

function updateGenerate() {
  const text = $("lm-text").value;
  const length = Number($("lm-length").value);
  const seed = Number($("lm-seed").value);
  const t = Number(showT(temperature($("lm-temperature"))));
  const name = $("lm-model").value;
  $("lm-generate-result").textContent = lab.lm.generate(text, length, t, seed, name);
  $("lm-command").textContent = lab.lm.generateCommand(text, length, t, seed, name);
}

// Surprisal in bits, -log2 p, as a colour: 0 bits white, 16 bits or more full red.
function surprisalColour(p) {
  const bits = Math.min(-Math.log2(Math.max(p, 1e-300)), 16);
  const lightness = 100 - 50 * (bits / 16);
  return `hsl(0, 85%, ${lightness.toFixed(1)}%)`;
}

function updateProb() {
  const result = lab.lm.prob($("lm-sentence").value, $("lm-model").value);
  const popup = $("lm-prob-top");
  popup.hidden = true;
  $("lm-prob-words").replaceChildren(...result.words.map((w) => {
    const span = element("button", { class: "word", type: "button" }, w.word);
    span.style.background = surprisalColour(w.p);
    const tip = `p = ${percent(w.p)}, ${(-Math.log2(w.p)).toFixed(2)} bits; top five: ` +
      w.top.map((t) => `${t.word} ${percent(t.p)}`).join(", ");
    span.title = tip;
    // Hover (a mouse) or tap (touch): the same box under the sentence.
    const show = () => {
      popup.hidden = false;
      popup.replaceChildren(element("strong", {}, `${w.word}: `), tip);
    };
    span.addEventListener("mouseenter", show);
    span.addEventListener("click", show);
    return span;
  }));
  const n = result.words.length;
  $("lm-prob-result").textContent =
    `log p = ${result.log_probability.toFixed(4)} (p = ${Math.exp(result.log_probability).toExponential(3)}), ` +
    `perplexity per word ${Math.exp(-result.log_probability / n).toFixed(2)}; ` +
    `as a whole sentence, with <EOS>: log p = ${result.log_probability_with_eos.toFixed(4)}` +
    (result.unknown.length ? ` (read as <UNK>: ${result.unknown.join(", ")})` : "");
}

function cardText(model) {
  const { card } = model;
  return card.text || `${model.name}: ${JSON.stringify(card.architecture)}`;
}

function showCard() {
  const model = lmModels().find((m) => m.name === $("lm-model").value);
  $("lm-card").textContent = cardText(model);
}

// The study's perplexities: every language model's train/val/test, as grouped bars in SVG.
function studyChart() {
  const rows = lmModels().map((m) => {
    const p = m.card.results?.perplexity ?? m.card.results ?? {};
    const a = m.card.architecture;
    return { label: `${a.layers} layer${a.layers > 1 ? "s" : ""} ${a.direction}`, p };
  }).filter((r) => ["train", "val", "test"].some((s) => typeof r.p[s] === "number"));
  if (!rows.length) return;
  const splits = [["train", "#4a7db5"], ["val", "#e39c37"], ["test", "#5aa35a"]];
  const max = Math.max(...rows.flatMap((r) => splits.map(([s]) => r.p[s] ?? 0)));
  const width = 320, height = 180, left = 8, bottom = 36, top = 16;
  const group = (width - left) / rows.length;
  const bar = (group - 8) / splits.length;
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "perplexity per model and split");
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(svgNs, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  rows.forEach((row, g) => {
    splits.forEach(([split, colour], s) => {
      const value = row.p[split];
      if (typeof value !== "number") return;
      const h = (height - bottom - top) * (value / max);
      const x = left + g * group + 4 + s * bar;
      add("rect", { x, y: height - bottom - h, width: bar - 1, height: h, fill: colour });
      add("text", { x: x + bar / 2, y: height - bottom - h - 3, "text-anchor": "middle",
        "font-size": 8 }, value.toFixed(0));
    });
    add("text", { x: left + g * group + group / 2, y: height - bottom + 12, "text-anchor": "middle",
      "font-size": 9 }, row.label);
  });
  splits.forEach(([split, colour], s) => {
    add("rect", { x: left + 60 * s, y: height - 14, width: 10, height: 10, fill: colour });
    add("text", { x: left + 60 * s + 14, y: height - 5, "font-size": 10 }, split);
  });
  $("lm-study").replaceChildren(element("h3", {}, "Perplexity (lower is better)"), svg);
}

function startLm() {
  const models = lmModels();
  if (!models.length) {
    unavailable("lm", "This site has no language model: train one (dlclassics lm train) and export it.");
    return;
  }
  options($("lm-model"), models.map((m) => m.name));
  $("lm-model").value = models.find((m) => !isReverse(m))?.name ?? models[0].name;
  const next = guarded("lm-next-error", updateNext);
  const prob = guarded("lm-prob-error", updateProb);
  const gen = guarded("lm-generate-error", updateGenerate);
  // "input" fires on every keystroke, paste and deletion: the bars follow the typing.
  $("lm-text").addEventListener("input", next);
  $("lm-temperature").addEventListener("input", guarded("lm-next-error", drawBars));
  $("lm-sentence").addEventListener("input", prob);
  $("lm-generate-go").addEventListener("click", gen);
  $("lm-model").addEventListener("change", () => { next(); prob(); showCard(); });
  next();
  prob();
  gen();  // a first sentence, and its command, without a click
  showCard();
  studyChart();
}

// ---- start ------------------------------------------------------------------------------------

lab.ready.then(() => {
  startLm();
  startMnist();
  startXor();
  document.body.dataset.ready = "true";
}).catch((e) => {
  $("load-error").hidden = false;
  $("load-error").textContent = `The models did not load: ${e.message}`;
});
