// The XOR study explorer: an exported `xor sweep` (models.json's "studies", each a
// studies/<name>/study.json that src/dlclassics/lab/export.py writes) drawn as its grid of
// configurations, every run the protocol made a dot, its statistics table, and what the lone
// hidden unit of the solved one-unit-with-bypass runs computes. A click on a configuration hands
// it to the live trainer (`load`, the XOR tab's). Nothing here trains or changes a number of the
// study: it draws what the export wrote.

import { element } from "./dom.js";
import { drawSurface } from "./surface.js";

const SVG = "http://www.w3.org/2000/svg";
const STRIP = { width: 300, height: 26, pad: 8 };  // one configuration's dot plot, in SVG units
const SURFACES = 24;  // lone units drawn per function at most: enough to see them vary

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

async function getJson(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  return response.json();
}

const count = (n) => n.toLocaleString("en");
const figure = (x, digits = 3) => (x === null ? "–" : Number(x.toPrecision(digits)).toString());
const units = (hidden) => `${hidden} hidden unit${hidden === 1 ? "" : "s"}`;
const described = (c) => `lr ${c.lr}, ${units(c.hidden)}, ${c.bypass ? "bypass" : "no bypass"}`;

// The configuration as the trainer takes it: SGD from Xavier weights at T = 1 under the sweep's
// own stopping rule, as `xor sweep` trains every run.
function trainerSettings(config, protocol) {
  return {
    k: config.hidden,
    bypass: config.bypass,
    lr: config.lr,
    optimizer: "sgd",
    init: "xavier",
    temperature: 1,
    earlyStopping: {
      patience: protocol.patience,
      minDelta: protocol.min_delta,
      goal: protocol.goal,
      maxEpochs: protocol.max_epochs,
    },
  };
}

// Every run a mark on one epochs axis shared by all configurations (0 to max_epochs): a dot
// where it solved XOR, a cross at max_epochs where it failed; the mean of the solved ones a tick.
function strip(config, maxEpochs) {
  const { width, height, pad } = STRIP;
  const x = (epochs) => pad + (width - 2 * pad) * (epochs / maxEpochs);
  const marks = config.outcomes.map((run, i) => {
    const y = height / 2 + 5 * ((i % 3) - 1);  // a little apart, so equal epochs stay countable
    const title = svg("title", {}, `run ${i + 1}: ${run.succeeded
      ? `solved in ${count(run.epochs)} epochs` : `failed (${count(run.epochs)} epochs)`}, `
      + `validation loss ${figure(run.val_loss)}`);
    if (run.succeeded) {
      return svg("circle", { class: "run solved", cx: x(run.epochs), cy: y, r: 3.2 }, title);
    }
    const [cx, r] = [x(maxEpochs), 3.2];
    const cross = `M${cx - r},${y - r}L${cx + r},${y + r}M${cx - r},${y + r}L${cx + r},${y - r}`;
    return svg("path", { class: "run failed", d: cross }, title);
  });
  const mean = config.mean_epochs === null ? [] : [svg("line", {
    class: "mean", x1: x(config.mean_epochs), x2: x(config.mean_epochs), y1: 2, y2: height - 2,
  }, svg("title", {}, `mean ${count(Math.round(config.mean_epochs))} epochs`))];
  return svg("svg", { class: "study-strip", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${config.successes} of ${config.runs} runs solved` },
  svg("line", { class: "axis", x1: pad, x2: width - pad, y1: height / 2, y2: height / 2 }),
  ...mean, ...marks);
}

function axis(maxEpochs) {
  const { width, pad } = STRIP;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const x = pad + (width - 2 * pad) * f;
    const anchor = f === 0 ? "start" : f === 1 ? "end" : "middle";
    return svg("g", {}, svg("line", { class: "axis", x1: x, x2: x, y1: 0, y2: 4 }),
      svg("text", { x, y: 14, "text-anchor": anchor }, count(Math.round(f * maxEpochs))));
  });
  return svg("svg", { class: "study-strip study-axis", viewBox: `0 0 ${width} 18` }, ...ticks);
}

// The grid: one button per configuration (grouped by learning rate, the extra one last), its
// success rate and its runs' strip.
function grid(study, load, status) {
  const { protocol } = study;
  const buttons = study.configs.map((config, n) => {
    const button = element("button", {
      class: "study-config", type: "button", "aria-pressed": "false", "data-config": n,
      "data-runs": config.runs, "data-successes": config.successes,
    },
    element("span", { class: "study-label" },
      `${units(config.hidden)}, ${config.bypass ? "bypass" : "no bypass"}`),
    element("span", { class: "study-rate" },
      `${config.successes}/${config.runs} solved`),
    strip(config, protocol.max_epochs));
    button.addEventListener("click", async () => {
      for (const b of buttons) b.setAttribute("aria-pressed", String(b === button));
      status.className = "note";
      status.textContent = `Training ${described(config)} with SGD from Xavier weights (T = 1), `
        + "under the study's stopping rule…";
      try {
        await load(trainerSettings(config, protocol));
        status.textContent = `Loaded ${described(config)} into the trainer.`;
      } catch (e) {
        status.className = "error";
        status.textContent = e.message;
      }
    });
    return button;
  });
  const groups = [];
  study.configs.forEach((config, n) => {
    const title = config.extra ? `The extra configuration: lr ${config.lr}` : `lr ${config.lr}`;
    if (groups.at(-1)?.title !== title) groups.push({ title, buttons: [] });
    groups.at(-1).buttons.push(buttons[n]);
  });
  return element("div", { class: "study-grid" },
    ...groups.flatMap((g) => [element("h4", {}, g.title), ...g.buttons]),
    element("div", { class: "study-axis-row" }, element("span", {}, "epochs"),
      axis(protocol.max_epochs)));
}

function statisticsTable(study) {
  const head = ["lr", "hidden", "bypass", "runs", "solved", "failed", "mean epochs", "std epochs",
    "mean train loss", "mean val loss"];
  const rows = study.configs.map((c) => element("tr", {},
    ...[c.lr, c.hidden, c.bypass ? "yes" : "no", c.runs, c.successes, c.failures,
      c.mean_epochs === null ? "–" : count(Math.round(c.mean_epochs)),
      c.std_epochs === null ? "–" : count(Math.round(c.std_epochs)),
      figure(c.mean_train_loss), figure(c.mean_val_loss)]
      .map((v) => element("td", {}, String(v)))));
  return element("div", { class: "study-table-box" },
    element("table", { class: "study-table" },
      element("thead", {}, element("tr", {}, ...head.map((h) => element("th", {}, h)))),
      element("tbody", {}, ...rows)));
}

// A hidden unit's output sigmoid(w . x + b) at T = 1 over the unit square; its numbers on hover.
function unitSurface(weight, bias) {
  const canvas = element("canvas", { class: "study-unit", width: 64, height: 64 });
  drawSurface(canvas, (x1, x2) => 1 / (1 + Math.exp(-(weight[0] * x1 + weight[1] * x2 + bias))));
  canvas.title = `w (${weight.map((w) => figure(w)).join(", ")}), b ${figure(bias)}`;
  return canvas;
}

// One function's row: its name, how many runs compute it, their units' surfaces.
function functionRow(label, name, runs) {
  const shown = runs.slice(0, SURFACES);
  return element("div", { class: "study-function" },
    element("span", { class: "study-function-name" }, name),
    element("span", { class: "study-function-count" }, label),
    element("div", { class: "study-units" }, ...shown.map((o) => unitSurface(o.weight, o.bias)),
      runs.length > shown.length
        ? element("span", { class: "note" }, `and ${runs.length - shown.length} more`) : ""));
}

// What the lone hidden unit of the solved one-unit-with-bypass runs computes: the analysis'
// functions, each with its count and its runs' units, below the hand-set net's unit.
function loneUnits(study) {
  const hand = study.hand_set;
  const handSet = functionRow("hand-set", hand.function, [hand]);
  handSet.classList.add("study-hand-set");
  const sections = study.hidden_unit.filter((h) => h.bypass).map((analysis) => {
    const config = study.configs[analysis.config];
    const solved = config.outcomes.filter((o) => o.succeeded);
    const rows = Object.entries(analysis.functions).map(([name, n]) => functionRow(
      `${n} run${n === 1 ? "" : "s"}`, name, solved.filter((o) => o.function === name)));
    return element("div", { class: "study-lone-config" },
      element("h4", {}, `${described(config)}: ${solved.length} solved`),
      ...(rows.length ? rows
        : [element("p", { class: "note" }, "No run of this configuration solved XOR.")]));
  });
  return element("div", { class: "study-lone" },
    element("h3", {}, "What the lone hidden neuron computes"),
    element("p", { class: "note" }, "With the bypass one hidden unit is enough: the output sees "
      + "x1 and x2 directly, and the unit only has to single out a corner. Each square is a "
      + "unit's output σ(w·x + b) at T = 1 (white 0, blue 1; the dots are the four inputs), "
      + "named by the Boolean function it computes where it exceeds ½. The hand-set net of "
      + `\`xor solve\` uses w (${hand.weight.join(", ")}), b ${hand.bias}: ${hand.function}, `
      + "soft at T = 1 (it is set for a step, T → 0); training finds other functions, with "
      + "larger weights."),
    handSet,
    ...(sections.length ? sections : [element("p", { class: "note" },
      "This study has no configuration with one hidden unit and the bypass.")]));
}

function render(box, study, load) {
  const p = study.protocol;
  const status = element("p", { class: "note study-status" },
    "Click a configuration to train a fresh run of it in the trainer.");
  box.replaceChildren(
    element("p", { class: "study-about" },
      `Run ${study.run} (\`dlclassics ${study.command}\`): each configuration trains full-batch `
      + `SGD runs until ${count(p.successes)} solve XOR or ${count(p.max_runs)} have been made. `
      + `A run solves XOR when its validation loss has improved by less than ${p.min_delta} for `
      + `${p.patience} epochs with its best below ${p.goal}; it fails at `
      + `${count(p.max_epochs)} epochs. Dots: solved runs at their epochs; crosses: failed `
      + "runs; the tick: the mean of the solved ones."),
    grid(study, load, status),
    status,
    element("h3", {}, "Statistics"),
    statisticsTable(study),
    loneUnits(study));
}

export async function startStudy(container, load) {
  container.classList.add("study");
  try {
    const index = await getJson("models.json");
    const studies = index.studies ?? [];
    if (!studies.length) {
      container.replaceChildren(element("p", { class: "note study-none" },
        "No XOR study in this site: run `dlclassics xor sweep --out RUN`, then "
        + "`dlclassics export RUN --out SITE`."));
      return;
    }
    const box = element("div", { class: "study-body" });
    const show = async (entry) => render(box, await getJson(`${entry.path}/study.json`), load);
    const picker = element("select", { class: "study-pick" },
      ...studies.map((s, i) => element("option", { value: i }, `${s.name} (run ${s.run})`)));
    picker.addEventListener("change", () => show(studies[picker.value]).catch((e) => {
      box.replaceChildren(element("p", { class: "error" }, e.message));
    }));
    container.replaceChildren(
      element("h2", {}, "The hyperparameter study (xor sweep)"),
      studies.length > 1 ? element("label", {}, "Study ", picker) : "",
      box);
    await show(studies[0]);
  } catch (e) {
    container.replaceChildren(element("p", { class: "error" }, `The XOR study: ${e.message}`));
  } finally {
    container.dataset.ready = "true";
  }
}
