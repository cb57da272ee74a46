// zoolite's web page: classify photos with the exported LiteRT model, in the browser, with LiteRT.js.
//
// Everything is same-origin: model.json, labels.txt, the .tflite file and the vendored LiteRT.js
// runtime (./litertjs/). Photos never leave the page.
//
// Preprocessing follows zoolite's contract (model.json "input"): upright RGB (EXIF orientation
// applied), stretched without cropping to S x S with bilinear filtering, raw 0-255 pixels, fed
// as uint8 or float32 [1, S, S, 3].
//
// URL parameters (for benchmarks and debugging):
//   ?threads=N   use N threads (capped at navigator.hardwareConcurrency; needs cross-origin isolation)
//   ?resize=Q    createImageBitmap resizeQuality: medium (default: bilinear with mipmaps, closest to
//                Pillow's BILINEAR downscaling, mean abs. difference 1.1 levels), low, high, pixelated

import * as litert from "./litertjs/core/index.js";

const WASM_DIR = "./litertjs/wasm/";
const COMPAT_JS = WASM_DIR + "litert_wasm_compat_internal.js";  // one thread, no relaxed SIMD needed

const DEFAULT_THREADS = 2;
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
};

// What tests and benchmarks read; the page itself only writes it.
const state = window.zoolite = {
  ready: null, threads: 0, threadsNote: "", wasm: "", isolated: self.crossOriginIsolated === true,
  modelFile: "", modelBytes: 0, inputDtype: "", outputDtype: "", size: 0, times: [], photos: 0,
};

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

async function fetchOk(url, as) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response[as]();
}

// -------- runtime and model --------

async function chooseRuntime() {
  const requested = parseInt(params.get("threads") || "", 10);
  const cores = navigator.hardwareConcurrency || 2;
  if (!state.isolated) {
    return { path: COMPAT_JS, options: {}, threads: 1,
             note: "1 thread: page is not cross-origin isolated (serve it with `zoolite serve` for threads)" };
  }
  const simd = await litert.supportsFeature("relaxedSimd");
  const threads = await litert.supportsFeature("threads");
  if (!simd || !threads) {
    return { path: COMPAT_JS, options: {}, threads: 1,
             note: "1 thread: this browser lacks WebAssembly relaxed SIMD or threads" };
  }
  // Default 2, as zoolite measures native latency; never more than the cores (the pthread pool).
  const n = Math.min(Number.isFinite(requested) && requested > 0 ? requested : DEFAULT_THREADS, cores);
  return { path: WASM_DIR, options: { threads: true }, threads: n,
           note: `${n} thread${n > 1 ? "s" : ""}` + (Number.isFinite(requested) ? " (as requested)" : "") };
}

function describeModel(card, size, classes) {
  const m = card.measured || {};
  const parts = [`<b>${card.backbone || "model"}</b>, variant <b>${card.variant || "?"}</b>`,
                 `${state.inputDtype} input ${size}×${size} px`, `${classes.length} classes`];
  let text = parts.join(", ") + ".";
  if (typeof m.accuracy === "number") {
    text += ` Accuracy measured in the zoolite run: <b>${(100 * m.accuracy).toFixed(1)}%</b>` +
            (m.test_images ? ` on ${m.test_images} test photos` : "");
    const lat = m.latency_ms && (m.latency_ms.median ?? m.latency_ms.mean);
    if (typeof lat === "number") {
      text += `; native LiteRT ${lat.toFixed(1)} ms per photo` + (m.threads ? ` with ${m.threads} threads` : "") +
              (m.cpu ? ` on ${m.cpu}` : "");
    }
    text += ".";
  }
  if (threshold !== null) text += ` Says "none of these" below a top score of <b>${threshold.toFixed(2)}</b>.`;
  const node = $("model");
  node.innerHTML = "";
  // Built from text nodes and <b> only: model.json values are never parsed as HTML.
  for (const [i, piece] of text.split(/<\/?b>/).entries()) node.append(i % 2 ? el("b", { text: piece }) : piece);
}

let model, labels, outputScale = 1, outputZeroPoint = 0;
let threshold = null;  // model.json "none_of_these": a photo whose top score is below it shows none of the classes

async function init() {
  const card = await fetchOk("model.json", "json");
  const labelText = await fetchOk(card.labels_file || "labels.txt", "text").catch(() => null);
  labels = labelText ? labelText.split(/\r?\n/).filter((line) => line.length > 0) : card.classes;
  const cutoff = card.none_of_these && card.none_of_these.threshold;
  threshold = typeof cutoff === "number" ? cutoff : null;

  const runtime = await chooseRuntime();
  // The wasm runtime writes its INFO/WARNING log lines to stderr, which Emscripten shows as
  // console.error: keep real errors there and demote the chatter (LiteRT.js passes a global
  // `Module` object to the Emscripten factory).
  self.Module = {
    print: (line) => console.debug(line),
    printErr: (line) => (/^(INFO|WARNING|VERBOSE|DEBUG)\b/.test(line) ? console.debug : console.warn)(line),
  };
  await litert.loadLiteRt(runtime.path, runtime.options);
  state.wasm = runtime.path === COMPAT_JS ? "compat (1 thread)" : "threaded (relaxed SIMD)";

  state.modelFile = card.model_file;
  const bytes = new Uint8Array(await fetchOk(card.model_file, "arrayBuffer"));
  state.modelBytes = bytes.byteLength;
  model = await litert.loadAndCompile(bytes, { accelerator: "wasm", cpuOptions: { numThreads: runtime.threads } });
  state.threads = runtime.threads;
  state.threadsNote = runtime.note;

  const input = model.getInputDetails()[0];
  const output = model.getOutputDetails()[0];
  state.inputDtype = input.dtype;
  state.outputDtype = output.dtype;
  state.size = input.shape[1];
  if (input.shape[0] !== 1 || input.shape[3] !== 3 || input.shape[1] !== input.shape[2]) {
    throw new Error(`model input shape [${input.shape}] is not [1, S, S, 3]`);
  }
  // LiteRT.js exposes no quantization parameters: take them from model.json (read from the
  // .tflite by zoolite export); a softmax uint8 output without them reads as value / 255.
  const q = card.output && card.output.quantization;
  if (output.dtype === "uint8") {
    [outputScale, outputZeroPoint] = q ? [q.scale, q.zero_point] : [1 / 255, 0];
  }
  describeModel(card, state.size, labels);

  // Warm up (first run allocates and packs weights) so the first photo's time is honest.
  const warm = newTensor(new (input.dtype === "uint8" ? Uint8Array : Float32Array)(state.size * state.size * 3));
  const out = await model.run(warm);
  warm.delete();
  out.forEach((t) => t.delete());
}

function newTensor(data) {
  return new litert.Tensor(data, [1, state.size, state.size, 3]);
}

// -------- preprocessing (zoolite's contract) --------

let canvas, ctx;

async function pixels(file) {
  const size = state.size;
  const quality = params.get("resize") || "medium";  // Chromium: bilinear (+ mipmaps when shrinking)
  const bitmap = await createImageBitmap(file, {
    imageOrientation: "from-image",   // upright, as zoolite applies EXIF orientation
    colorSpaceConversion: "none",     // raw decoded values, as Pillow gives (no ICC conversion)
    premultiplyAlpha: "none",
    resizeWidth: size, resizeHeight: size, resizeQuality: quality,  // stretched, no crop
  });
  if (!canvas) {
    canvas = new OffscreenCanvas(size, size);
    ctx = canvas.getContext("2d", { willReadFrequently: true });
  }
  ctx.clearRect(0, 0, size, size);
  ctx.drawImage(bitmap, 0, 0);  // 1:1, no further resampling
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, size, size).data;
  const rgb = new (state.inputDtype === "uint8" ? Uint8Array : Float32Array)(size * size * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

// -------- inference and results --------

async function classify(rgb) {
  const t0 = performance.now();
  const input = newTensor(rgb);
  const outputs = await model.run(input);
  const raw = outputs[0].toTypedArray();
  const ms = performance.now() - t0;
  input.delete();
  outputs.forEach((t) => t.delete());
  const probs = Array.from(raw, (v) => state.outputDtype === "uint8" ? (v - outputZeroPoint) * outputScale : v);
  const top = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  return { ms, top: top.map(([p, i]) => ({ label: labels[i] ?? `class ${i}`, p })) };
}

state.preprocess = (blob) => pixels(blob);  // the model's input for a photo (tests)

// Back-to-back inference on one random image, n times: the pure model time (benchmarks).
state.benchmark = async (n = 50) => {
  const data = new (state.inputDtype === "uint8" ? Uint8Array : Float32Array)(state.size * state.size * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  const times = [];
  for (let i = 0; i < n; i++) times.push((await classify(data)).ms);
  return times;
};

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function updateSummary() {
  const summary = $("summary");
  const med = median(state.times);
  const mb = (state.modelBytes / 1e6).toFixed(state.modelBytes < 1e7 ? 2 : 1);
  summary.hidden = false;
  summary.textContent = `${state.photos} photo${state.photos === 1 ? "" : "s"} · median ` +
    (Number.isNaN(med) ? "–" : `${med.toFixed(1)} ms`) + ` per photo · ${state.threadsNote} · ` +
    `${state.modelFile} (${mb} MB)`;
  Object.assign(summary.dataset, { photos: state.photos, medianMs: Number.isNaN(med) ? "" : med.toFixed(3),
                                   threads: state.threads });
}

async function handle(file) {
  let rgb;
  try {
    rgb = await pixels(file);
  } catch (e) {
    $("results").append(el("li", { class: "result error", dataset: { file: file.name, error: "decode" },
      text: `${file.name}: cannot be decoded as an image by this browser; skipped.` }));
    return;
  }
  let result;
  try {
    result = await classify(rgb);
  } catch (e) {
    $("results").append(el("li", { class: "result error", dataset: { file: file.name, error: "inference" },
      text: `${file.name}: inference failed (${String(e.message || e).split("\n")[0]}).` }));
    return;
  }
  state.photos += 1;
  state.times.push(result.ms);
  const thumb = el("img", { alt: file.name });
  const url = URL.createObjectURL(file);
  thumb.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
  thumb.addEventListener("error", () => URL.revokeObjectURL(url), { once: true });
  thumb.src = url;
  const best = result.top[0];
  const rejected = threshold !== null && best.p < threshold;  // MediaPipe keeps scores >= threshold
  const list = el("ol");
  for (const { label, p } of result.top) {
    const pct = Math.max(0, Math.min(100, 100 * p));
    list.append(el("li", {}, el("span", { text: label }), el("span", { text: `${pct.toFixed(1)}%` }),
                   el("span", { class: "bar" }, el("span", { style: `width:${pct.toFixed(1)}%` }))));
  }
  const details = el("div", { style: "flex:1;min-width:0" }, list,
    el("div", { class: "name", text: file.name, title: file.name }),
    el("div", { class: "ms", text: `${result.ms.toFixed(1)} ms` }));
  if (rejected) {  // worded as `zoolite predict` prints it
    details.prepend(el("div", { class: "verdict",
      text: `none of the ${labels.length} classes (top: ${best.label} ${best.p.toFixed(2)})` }));
  }
  $("results").append(el("li", { class: rejected ? "result rejected" : "result", dataset: { file: file.name,
    label: rejected ? "" : best.label, rejected: String(rejected), ms: result.ms.toFixed(3), p: best.p.toFixed(4) } },
    thumb, details));
  updateSummary();
}

// Photos chosen or dropped while the model loads wait here, in the order given; null once it is ready.
let waiting = [];
let queue = Promise.resolve();
function addFiles(files) {
  if (files.length === 0) return;  // e.g. text dragged in, not files
  if (document.body.dataset.state === "error") return;  // no model to run: the status says why
  if (waiting) {
    waiting.push(...files);
    setStatus(`Loading the model… ${waiting.length} photo${waiting.length === 1 ? "" : "s"} waiting.`, "loading");
    return;
  }
  for (const file of files) queue = queue.then(() => handle(file));
  queue = queue.then(() => { setStatus(`Done: ${state.photos} classified.`, "ready"); });
  setStatus("Classifying…", "busy");
}

// Listening from the start, not once the model is ready: a photo given while it loads is queued,
// and one dropped anywhere on the page never makes the browser navigate away to the file.
const chooser = $("files");
chooser.addEventListener("change", () => { addFiles([...chooser.files]); chooser.value = ""; });
const drop = $("drop");
drop.addEventListener("dragover", () => drop.classList.add("over"));
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  drop.classList.remove("over");
  addFiles([...e.dataTransfer.files]);
});
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

state.ready = init().then(() => {
  setStatus(`Ready: ${state.threadsNote}, LiteRT.js ${state.wasm}.`, "ready");
  document.body.dataset.state = "ready";
  const given = waiting;
  waiting = null;
  addFiles(given);
}, (e) => {
  setStatus(`Cannot load the model: ${String(e.message || e).split("\n")[0]}`, "error");
  document.body.dataset.state = "error";
  chooser.disabled = true;
  throw e;
});
