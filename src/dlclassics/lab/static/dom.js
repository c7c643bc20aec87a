// What the tabs share to draw: an element by id, a new element, a probability in words and a
// table of probability bars. Nothing here computes a model's numbers.

export const $ = (id) => document.getElementById(id);

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

export const percent = (p) =>
  (p >= 0.001 ? `${(100 * p).toFixed(1)}%` : p > 0 ? p.toExponential(1) : "0%");

// A table of labelled probability bars, [label, p, best] each: the bar is the whole width at
// p = 1, and the best row is marked.
export function bars(table, rows) {
  table.replaceChildren(...rows.map(([label, p, best]) => {
    const bar = element("div", { class: "bar" });
    bar.style.width = `${(100 * p).toFixed(2)}%`;
    return element("tr", best ? { class: "best" } : {},
      element("td", { class: "label" }, label),
      element("td", { class: "barcell" }, bar),
      element("td", { class: "value" }, percent(p)));
  }));
}
