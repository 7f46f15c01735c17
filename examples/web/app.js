// Kiln in the browser: the MNIST MLP trained by `npm start` (out/mnist/model/; `?model=<url>` loads
// another saved model directory), run from the bundle dist-web/kiln.js on WebGPU when the browser
// has it, else on the WASM backend (`?backend=wasm` forces WASM; `npm run web` builds the bundle and
// serves the repository, cross-origin isolated, so WASM runs threaded).
// Draw a digit; the 280x280 drawing becomes a 28x28 input like MNIST's (digit scaled into a 20x20
// box, centered on its center of mass, pixels / 255) and the page shows the 10 class probabilities.
import * as kiln from '../../dist-web/kiln.js';

const params = new URLSearchParams(location.search);
const MODEL_DIR = new URL(params.get('model') ?? '../../out/mnist/model/', params.has('model') ? location.href : import.meta.url);
const $ = (id) => document.getElementById(id);
const status = $('status');
const pad = $('pad');
const padCtx = pad.getContext('2d');
const small = $('small');
const smallCtx = small.getContext('2d', { willReadFrequently: true });

// ---- the bars ------------------------------------------------------------------------------
const bars = [];
for (let d = 0; d < 10; d++) {
  const row = document.createElement('div');
  row.className = 'bar';
  row.innerHTML = `<span>${d}</span><span class="track"><div style="width:0"></div></span><span>0.0%</span>`;
  $('bars').append(row);
  bars.push(row);
}

// ---- the model -----------------------------------------------------------------------------
async function loadModel() {
  // The directory Node's kiln.saveModel wrote (config.json and model.safetensors), over HTTP.
  const saved = await kiln.loadModel(MODEL_DIR.href).catch((e) => {
    throw new Error(`${e.message} (train the model first with \`npm start\`)`);
  });
  const { architecture, layers } = saved.config;
  if (architecture !== 'mlp') throw new Error(`unsupported architecture '${architecture}'`);
  const modules = [];
  for (let i = 0; i + 1 < layers.length; i++) {
    if (i > 0) modules.push(new kiln.nn.ReLU());
    modules.push(new kiln.nn.Linear(layers[i], layers[i + 1]));
  }
  const model = new kiln.nn.Sequential(...modules);
  model.loadStateDict(saved.stateDict);
  kiln.dispose(saved.stateDict);
  model.eval();
  return { model, layers };
}

// ---- drawing -------------------------------------------------------------------------------
function clearPad() {
  padCtx.fillStyle = '#000';
  padCtx.fillRect(0, 0, pad.width, pad.height);
}
clearPad();
padCtx.strokeStyle = '#fff';
padCtx.lineWidth = 20;
padCtx.lineCap = 'round';
padCtx.lineJoin = 'round';

let drawing = false;
let last = null;
const point = (e) => {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
};
/** A stroke segment; also used by the browser test (window.kilnDemo.stroke). */
function stroke(from, to) {
  padCtx.beginPath();
  padCtx.moveTo(...from);
  padCtx.lineTo(...to);
  padCtx.stroke();
}
pad.addEventListener('pointerdown', (e) => {
  drawing = true;
  last = point(e);
  stroke(last, last);
  pad.setPointerCapture(e.pointerId);
});
pad.addEventListener('pointermove', (e) => {
  if (!drawing) return;
  const p = point(e);
  stroke(last, p);
  last = p;
  schedule();
});
pad.addEventListener('pointerup', () => {
  drawing = false;
  schedule();
});
$('clear').addEventListener('click', () => {
  clearPad();
  schedule();
});

// ---- 280x280 drawing -> 28x28 MNIST-like input ---------------------------------------------
/** Returns the 784 inputs (0..1, row-major), or null for an empty pad. */
function toInput() {
  const { width, height } = pad;
  const px = padCtx.getImageData(0, 0, width, height).data;
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (px[(y * width + x) * 4] > 0) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return null;
  // Fit the bounding box into 20x20 (aspect kept), then center the center of mass in 28x28.
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  const s = 20 / Math.max(w, h);
  const tw = w * s, th = h * s;
  smallCtx.imageSmoothingEnabled = true;
  smallCtx.imageSmoothingQuality = 'high';
  smallCtx.fillStyle = '#000';
  smallCtx.fillRect(0, 0, 28, 28);
  smallCtx.drawImage(pad, x0, y0, w, h, (28 - tw) / 2, (28 - th) / 2, tw, th);
  const img = smallCtx.getImageData(0, 0, 28, 28).data;
  const box = new Float32Array(784);
  let mass = 0, cx = 0, cy = 0;
  for (let i = 0; i < 784; i++) {
    const v = img[i * 4] / 255;
    box[i] = v;
    mass += v;
    cx += v * (i % 28);
    cy += v * Math.floor(i / 28);
  }
  const dx = Math.round(13.5 - cx / mass), dy = Math.round(13.5 - cy / mass);
  const input = new Float32Array(784);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const sx = x - dx, sy = y - dy;
      if (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) input[y * 28 + x] = box[sy * 28 + sx];
    }
  }
  // Show what the model sees.
  const out = smallCtx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const g = Math.round(input[i] * 255);
    out.data.set([g, g, g, 255], i * 4);
  }
  smallCtx.putImageData(out, 0, 0);
  return input;
}

// ---- prediction ----------------------------------------------------------------------------
let net = null;
let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    predict().catch((e) => {
      status.textContent = `error: ${e.message}`;
    });
  });
}

/** Runs the model on the current drawing; resolves to { input, probs, label, ms } (also on window.kilnDemo.last). */
async function predict() {
  if (net === null) return null;
  const input = toInput();
  if (input === null) {
    $('prediction').textContent = '–';
    $('time').textContent = '–';
    for (const row of bars) {
      row.children[1].firstChild.style.width = '0';
      row.children[2].textContent = '0.0%';
      row.classList.remove('top');
    }
    window.kilnDemo.last = null;
    return null;
  }
  const t0 = performance.now();
  // Read with await: on WebGPU a page cannot wait for the GPU synchronously.
  const out = kiln.tidy(() => kiln.softmax(net.model.forward(kiln.tensor(input, [1, 784])), -1));
  const probs = await out.data();
  out.dispose();
  const ms = performance.now() - t0;
  let label = 0;
  for (let d = 1; d < 10; d++) if (probs[d] > probs[label]) label = d;
  bars.forEach((row, d) => {
    row.children[1].firstChild.style.width = `${(probs[d] * 100).toFixed(1)}%`;
    row.children[2].textContent = `${(probs[d] * 100).toFixed(1)}%`;
    row.classList.toggle('top', d === label);
  });
  $('prediction').textContent = String(label);
  $('time').textContent = `${ms.toFixed(2)} ms (${kiln.getBackend() === 'gpu' ? 'WebGPU' : `WASM, ${kiln.simdLevel()}`})`;
  const result = { input: Array.from(input), probs: Array.from(probs), label, ms };
  window.kilnDemo.last = result;
  return result;
}

// kiln: the module, for tests and the console.
window.kilnDemo = { ready: false, last: null, stroke, clear: clearPad, predict, kiln };

try {
  await kiln.init({ threads: params.has('threads') ? Number(params.get('threads')) : 'auto' });
  // WebGPU when the browser gives an adapter; otherwise setBackend warns why and WASM stays.
  const backend = await kiln.setBackend(params.get('backend') === 'wasm' ? 'wasm' : 'gpu');
  net = await loadModel();
  const where =
    backend === 'gpu'
      ? `WebGPU, adapter ${[kiln.gpuInfo().vendor, kiln.gpuInfo().architecture].filter(Boolean).join(' ') || kiln.gpuInfo().adapter}`
      : `${kiln.wasmVariant()} build, ${kiln.numThreads()} thread${kiln.numThreads() > 1 ? 's' : ''}`;
  status.textContent = `model ${net.layers.join('-')} loaded on the ${backend} backend (${where}); draw a digit with the mouse`;
  window.kilnDemo.backend = backend;
  window.kilnDemo.ready = true;
} catch (e) {
  status.textContent = `error: ${e.message}`;
  window.kilnDemo.error = String(e.message);
  throw e;
}
