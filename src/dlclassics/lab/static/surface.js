// A function of (x1, x2) over the unit square as a picture: white at 0, blue at 1, x1 to the right
// and x2 upwards, with the four XOR inputs marked (red: XOR is 1, green: 0). The XOR tab and the
// study explorer draw every surface with it.

const N = 41;  // grid points per side: cells centred on 0, 1/40, ..., 1
let grid = null;  // one pixel per grid point, then scaled up; made on first use
const pixels = new ImageData(N, N);

// f(x1, x2) -> a value in [0, 1]. The canvas keeps its own size; a small one gets smaller dots.
export function drawSurface(canvas, f, { points = true } = {}) {
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      const shade = Math.round(255 * (1 - Math.min(1, Math.max(0, f(j / (N - 1), i / (N - 1))))));
      const at = 4 * ((N - 1 - i) * N + j);  // the top row is x2 = 1
      pixels.data.set([shade, shade, 255, 255], at);
    }
  }
  if (!grid) grid = Object.assign(document.createElement("canvas"), { width: N, height: N });
  grid.getContext("2d").putImageData(pixels, 0, 0);
  const plot = canvas.getContext("2d");
  const size = canvas.width;
  const dot = Math.max(2, Math.round(size / 40));
  const pad = points ? dot + 1 : 0;  // room for the dots at the corners
  const side = size - 2 * pad;
  const cell = side / N;
  plot.clearRect(0, 0, size, canvas.height);
  plot.imageSmoothingEnabled = false;  // cells, not a blur
  plot.drawImage(grid, pad, pad, side, side);
  if (!points) return;
  for (const [x1, x2] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
    plot.beginPath();
    const x = pad + cell / 2 + x1 * (side - cell), y = pad + side - cell / 2 - x2 * (side - cell);
    plot.arc(x, y, dot, 0, 2 * Math.PI);
    plot.fillStyle = x1 !== x2 ? "#d62728" : "#2ca02c";
    plot.fill();
  }
}
