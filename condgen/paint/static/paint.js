// condgen paint: the page keeps one class id per pixel (`ids`); the canvas only shows them. No antialiasing,
// no colour snapping: what is sent to /synthesize is the id map itself, as a grey PNG (R = G = B = id).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null, W: 0, H: 0, ids: null, colors: null, current: 0, tool: "brush", eraser: 0,
  undo: [], redo: [], busy: false, pending: false, liveTouched: false, style: null, drawing: false,
  last: null, lastSent: null, lastResult: null, requests: 0,
};
window.paint = state;  // for the browser tests and the curious

// ----- messages and API
let sayTimer = null;
function say(text, isError = false) {  // errors stay until the next action; notes fade after 5 s
  const box = $("message");
  box.hidden = !text;
  box.textContent = text || "";
  box.className = isError ? "error" : "";
  clearTimeout(sayTimer);
  if (text && !isError) sayTimer = setTimeout(() => { box.hidden = true; }, 5000);
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error(`the server did not answer (${err.message}); is condgen paint still running?`);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function decodeIds(json) {
  if (json.width !== state.W || json.height !== state.H) throw new Error("the label map has the wrong size");
  const raw = Uint8Array.from(atob(json.ids), (c) => c.charCodeAt(0));
  return json.bytes_per_id === 1 ? raw : new Uint16Array(raw.buffer);
}

// ----- the id map and its picture
function idsToPng() {
  const c = document.createElement("canvas");
  c.width = state.W; c.height = state.H;
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(state.W, state.H);
  for (let i = 0; i < state.ids.length; i++) {
    const v = state.ids[i];
    img.data[4 * i] = v; img.data[4 * i + 1] = v; img.data[4 * i + 2] = v; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

function redraw() {
  const ctx = $("canvas").getContext("2d");
  const img = ctx.createImageData(state.W, state.H);
  const colors = state.colors;
  for (let i = 0; i < state.ids.length; i++) {
    const c = colors[state.ids[i]] || [0, 0, 0];
    img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function checkpoint() {
  state.undo.push(state.ids.slice());
  if (state.undo.length > 100) state.undo.shift();
  state.redo = [];
  updateButtons();
}

function setIds(ids, record = true) {
  if (record) checkpoint();
  state.ids = ids;
  redraw();
}

function updateButtons() {
  $("undo").disabled = !state.undo.length;
  $("redo").disabled = !state.redo.length;
}

// ----- tools
function stamp(x, y, cls) {
  const { W, H, ids } = state;
  if (state.tool === "pencil") {
    if (x >= 0 && y >= 0 && x < W && y < H) ids[y * W + x] = cls;
    return;
  }
  const size = +$("size").value;
  const r = size / 2;
  const x0 = Math.floor(x + 0.5 - r), y0 = Math.floor(y + 0.5 - r);
  for (let j = y0; j < y0 + size; j++) {
    for (let i = x0; i < x0 + size; i++) {
      if (i < 0 || j < 0 || i >= W || j >= H) continue;
      const dx = i + 0.5 - (x + 0.5), dy = j + 0.5 - (y + 0.5);
      if (size <= 2 || dx * dx + dy * dy <= r * r) ids[j * W + i] = cls;
    }
  }
}

function line(a, b, cls) {  // every pixel between two pointer positions (Bresenham), so fast strokes have no gaps
  let [x, y] = a;
  const [x1, y1] = b;
  const dx = Math.abs(x1 - x), dy = -Math.abs(y1 - y), sx = x < x1 ? 1 : -1, sy = y < y1 ? 1 : -1;
  let err = dx + dy;
  for (;;) {
    stamp(x, y, cls);
    if (x === x1 && y === y1) break;
    const e2 = 2 * err;
    if (e2 >= dy) { err += dy; x += sx; }
    if (e2 <= dx) { err += dx; y += sy; }
  }
}

function floodFill(x, y, cls) {
  const { W, H, ids } = state;
  const target = ids[y * W + x];
  if (target === cls) return false;
  const stack = [y * W + x];
  while (stack.length) {
    const p = stack.pop();
    if (ids[p] !== target) continue;
    ids[p] = cls;
    const px = p % W;
    if (px > 0) stack.push(p - 1);
    if (px < W - 1) stack.push(p + 1);
    if (p >= W) stack.push(p - W);
    if (p < W * (H - 1)) stack.push(p + W);
  }
  return true;
}

function pixelAt(event) {  // the pixel under the pointer, from the canvas' content box (inside its border)
  const canvas = $("canvas");
  const rect = canvas.getBoundingClientRect();
  const left = rect.left + canvas.clientLeft, top = rect.top + canvas.clientTop;
  const x = Math.floor(((event.clientX - left) / canvas.clientWidth) * state.W);
  const y = Math.floor(((event.clientY - top) / canvas.clientHeight) * state.H);
  return [Math.min(state.W - 1, Math.max(0, x)), Math.min(state.H - 1, Math.max(0, y))];
}

function strokeClass() { return state.tool === "eraser" ? state.eraser : state.current; }

function onDown(event) {
  if (!state.ids || event.button !== 0) return;
  const p = pixelAt(event);
  if (state.tool === "pick") {
    selectClass(state.ids[p[1] * state.W + p[0]]);
    return;
  }
  if (state.tool === "fill") {
    const before = state.ids.slice();
    if (floodFill(p[0], p[1], state.current)) {
      state.undo.push(before); state.redo = []; updateButtons();
      redraw(); changed();
    }
    return;
  }
  checkpoint();
  state.drawing = true;
  state.last = p;
  $("canvas").setPointerCapture(event.pointerId);
  stamp(p[0], p[1], strokeClass());
  redraw();
}

function onMove(event) {
  if (!state.ids) return;
  const p = pixelAt(event);
  const c = state.info.classes[state.ids[p[1] * state.W + p[0]]];
  $("cursor-info").textContent = `(${p[0]}, ${p[1]}): ${c ? c.name : "?"}`;
  if (!state.drawing) return;
  line(state.last, p, strokeClass());
  state.last = p;
  redraw();
}

function onUp() {
  if (!state.drawing) return;
  state.drawing = false;
  changed();
}

function changed() {  // a stroke, fill or load finished
  if ($("live").checked) generate();
}

function setTool(tool) {
  state.tool = tool;
  for (const b of document.querySelectorAll("#tools button")) b.classList.toggle("active", b.dataset.tool === tool);
  $("current-tool").textContent = { brush: "brush", pencil: "pencil", fill: "fill", pick: "eyedropper",
    eraser: "eraser" }[tool];
}

function selectClass(id) {
  state.current = id;
  const c = state.info.classes[id];
  $("current-name").textContent = `${c.name} (${c.id})`;
  $("current-swatch").style.background = `rgb(${c.color.join(",")})`;
  for (const b of document.querySelectorAll(".classes button")) b.classList.toggle("active", +b.dataset.id === id);
}

// ----- palette
function buildPalette() {
  const box = $("palette");
  box.textContent = "";
  const groups = state.info.groups;
  for (const group of groups) {
    const classes = state.info.classes.filter((c) => c.group === group);
    const grid = document.createElement("div");
    grid.className = "classes";
    for (const c of classes) {
      const b = document.createElement("button");
      b.dataset.id = c.id;
      b.dataset.name = c.name;
      b.title = `${c.name}: id ${c.id}, rgb(${c.color.join(", ")})`;
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = `rgb(${c.color.join(",")})`;
      b.append(sw, document.createTextNode(c.name));
      b.addEventListener("click", () => selectClass(c.id));
      grid.append(b);
    }
    if (groups.length > 1) {
      const d = document.createElement("details");
      d.open = true;
      const s = document.createElement("summary");
      s.textContent = `${group} (${classes.length})`;
      d.append(s, grid);
      box.append(d);
    } else {
      box.append(grid);
    }
    for (const c of classes) {
      const o = document.createElement("option");
      o.value = c.id; o.textContent = c.name;
      $("eraser-class").append(o);
    }
  }
}

function filterPalette() {
  const q = $("filter").value.trim().toLowerCase();
  for (const b of document.querySelectorAll(".classes button")) b.hidden = !!q && !b.dataset.name.toLowerCase().includes(q);
  for (const d of document.querySelectorAll("#palette details")) {
    d.hidden = !!q && !d.querySelector("button:not([hidden])");
    if (q) d.open = true;
  }
}

// ----- loading label maps
async function loadLabels(blob, kind, what) {
  try {
    const r = await api(`labels?input=${kind}`, { method: "POST", body: blob, headers: { "Content-Type": "image/png" } });
    const json = await r.json();
    setIds(decodeIds(json));
    say(`opened ${what}` + (json.note ? `: ${json.note}` : ""));
    changed();
  } catch (err) {
    say(`${what}: ${err.message}`, true);
  }
}

async function buildExamples() {
  const r = await api("examples");
  const { examples } = await r.json();
  const box = $("examples");
  for (const e of examples) {
    const img = document.createElement("img");
    img.src = `${e.url}?format=color`;
    img.alt = img.title = e.name;
    img.dataset.name = e.name;
    img.addEventListener("click", async () => {
      try {
        const blob = await (await api(`${e.url}?format=ids`)).blob();
        await loadLabels(blob, "ids", `example ${e.name}`);
      } catch (err) { say(err.message, true); }
    });
    box.append(img);
  }
}

// ----- synthesis
async function generate() {
  if (state.busy) { state.pending = true; return; }
  state.busy = true;
  $("generate").disabled = true;
  const sent = state.ids.slice();
  const seed = Math.max(0, Math.floor(+$("seed").value || 0));
  const samples = Math.min(state.info.max_samples, Math.max(1, Math.floor(+$("samples").value || 1)));
  const query = new URLSearchParams({ seed, samples });
  if (state.style) query.set("style", state.style);
  const start = performance.now();
  $("timing").textContent = `generating ${samples} image(s)…`;
  try {
    const body = await idsToPng();
    const r = await api(`synthesize?${query}`, { method: "POST", body, headers: { "Content-Type": "image/png" } });
    const json = await r.json();
    const total = performance.now() - start;
    state.lastSent = sent;
    state.lastResult = { ...json, total_ms: total };
    state.requests += 1;
    showResults(json, total);
    if (!state.liveTouched && state.requests === 1) {
      const fast = Math.max(...json.ms) * json.samples < 700;
      $("live").checked = fast;
      $("timing").textContent += fast ? " Fast enough: live mode is on." : " Live mode is off: press Generate.";
    }
    say("");
  } catch (err) {
    say(`could not generate: ${err.message}`, true);
  } finally {
    state.busy = false;
    $("generate").disabled = false;
    if (state.pending) { state.pending = false; generate(); }
  }
}

function showResults(json, total) {
  const box = $("results");
  box.textContent = "";
  box.style.gridTemplateColumns = `repeat(${Math.min(json.images.length, 3)}, minmax(0, 256px))`;
  json.images.forEach((src, k) => {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = src;
    img.alt = `sample ${k}`;
    const cap = document.createElement("figcaption");
    const a = document.createElement("a");
    a.href = src;
    a.download = `photo_seed${json.seed}_s${k}.png`;
    a.textContent = "download";
    cap.append(`${json.style ? "style" : "seed " + json.seed} · sample ${k} · ${json.ms[k].toFixed(0)} ms · `, a);
    fig.append(img, cap);
    box.append(fig);
  });
  const per = json.ms.reduce((a, b) => a + b, 0) / json.ms.length;
  $("timing").textContent = `${json.images.length} image(s): ${per.toFixed(0)} ms each on the server, ${total.toFixed(0)} ms in all.`;
}

async function setStyle(file) {
  try {
    const r = await api("style", { method: "POST", body: file, headers: { "Content-Type": file.type || "image/png" } });
    const json = await r.json();
    state.style = json.style;
    $("style-preview").src = json.preview;
    $("style-preview").hidden = false;
    $("style-clear").disabled = false;
    $("style-clear").textContent = "Remove style image";
    $("style-note").textContent = `style of ${file.name}: sample 0 is its mean, other samples vary around it`;
    say(`style image ${file.name} encoded`);
    changed();
  } catch (err) {
    say(`style image ${file.name}: ${err.message}`, true);
  }
}

function clearStyle() {
  state.style = null;
  $("style-preview").hidden = true;
  $("style-clear").disabled = true;
  $("style-clear").textContent = "No style image";
  $("style-note").textContent = "";
}

async function download(output, name) {
  try {
    const r = await api(`labels?input=ids&output=${output}`, { method: "POST", body: await idsToPng(),
      headers: { "Content-Type": "image/png" } });
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url; a.download = name;
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) { say(err.message, true); }
}

// ----- a run still training
function showAbout() {
  const info = state.info;
  $("about").textContent = `${info.kind} ${info.run}` + (info.step != null ? ` (step ${info.step})` : "") +
    ` · ${info.width}×${info.height} px · ${info.classes.length} classes` + (info.dataset ? ` · ${info.dataset}` : "");
}

async function checkNewer() {
  try {
    const c = await (await api("checkpoint")).json();
    $("reload").hidden = c.newer_step == null;
    if (c.newer_step != null) $("reload").textContent = `Load step ${c.newer_step}`;
  } catch (_) { /* the server is gone: the next action says so */ }
}

async function reloadModel() {
  try {
    const r = await (await api("reload", { method: "POST" })).json();
    state.info.step = r.step;
    showAbout();
    $("reload").hidden = true;
    say(r.reloaded ? `now serving step ${r.step}` : "already the newest checkpoint");
  } catch (err) { say(err.message, true); }
}

// ----- start
async function start() {
  try {
    state.info = await (await api("classes")).json();
  } catch (err) {
    say(`could not load the model: ${err.message}`, true);
    return;
  }
  const info = state.info;
  state.W = info.width; state.H = info.height;
  state.colors = info.classes.map((c) => c.color);
  const canvas = $("canvas");
  canvas.width = info.width; canvas.height = info.height;
  canvas.style.height = `${Math.round((512 * info.height) / info.width)}px`;
  showAbout();
  setInterval(checkNewer, 20000);  // a run still training writes new checkpoints: offer them
  buildPalette();
  state.eraser = info.dontcare != null ? info.dontcare : 0;
  $("eraser-class").value = state.eraser;
  $("size").max = Math.max(8, Math.round(info.width / 2));
  $("size").value = Math.max(1, Math.round(info.width / 12));
  $("size-out").textContent = $("size").value;
  if (!info.multimodal) {
    for (const id of ["seed", "samples", "new-seed"]) $(id).disabled = true;
    $("style-note").textContent = "this model takes no latent: one photo per label map";
  }
  $("samples").max = info.max_samples;
  if (!info.style_encoder) {
    $("style-file").disabled = true;
    $("style-file").parentElement.classList.add("disabled");
    $("style-file").parentElement.title = "this model has no VAE style encoder";
  }
  selectClass(0);
  setTool("brush");
  state.ids = new Uint8Array(info.width * info.height).fill(state.eraser);  // don't care where there is one
  redraw();
  updateButtons();
  try { await buildExamples(); } catch (err) { say(err.message, true); }
  const first = document.querySelector("#examples img");
  if (first) {
    try {
      const blob = await (await api(`examples/${first.dataset.name}?format=ids`)).blob();
      await loadLabels(blob, "ids", `example ${first.dataset.name}`);
      state.undo = []; updateButtons();
    } catch (err) { say(err.message, true); }
  }
  await generate();  // the first image also tells whether live mode can keep up
  state.ready = true;
}

function wire() {
  const canvas = $("canvas");
  canvas.addEventListener("pointerdown", onDown);
  canvas.addEventListener("pointermove", onMove);
  canvas.addEventListener("pointerup", onUp);
  canvas.addEventListener("pointercancel", onUp);
  canvas.addEventListener("pointerleave", () => { $("cursor-info").textContent = ""; });
  for (const b of document.querySelectorAll("#tools button")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("size").addEventListener("input", () => { $("size-out").textContent = $("size").value; });
  $("eraser-class").addEventListener("change", () => { state.eraser = +$("eraser-class").value; });
  $("undo").addEventListener("click", () => {
    if (!state.undo.length) return;
    state.redo.push(state.ids); state.ids = state.undo.pop(); redraw(); updateButtons(); changed();
  });
  $("redo").addEventListener("click", () => {
    if (!state.redo.length) return;
    state.undo.push(state.ids); state.ids = state.redo.pop(); redraw(); updateButtons(); changed();
  });
  $("clear").addEventListener("click", () => { setIds(new Uint8Array(state.W * state.H).fill(state.eraser)); changed(); });
  $("blank").addEventListener("click", () => { setIds(new Uint8Array(state.W * state.H).fill(state.current)); changed(); });
  $("open-ids").addEventListener("change", (e) => {
    const f = e.target.files[0]; if (f) loadLabels(f, "ids", f.name); e.target.value = "";
  });
  $("open-colors").addEventListener("change", (e) => {
    const f = e.target.files[0]; if (f) loadLabels(f, "color", f.name); e.target.value = "";
  });
  $("style-file").addEventListener("change", (e) => {
    const f = e.target.files[0]; if (f) setStyle(f); e.target.value = "";
  });
  $("style-clear").addEventListener("click", () => { clearStyle(); changed(); });
  $("new-seed").addEventListener("click", () => {
    $("seed").value = Math.floor(Math.random() * 2 ** 31); generate();
  });
  $("live").addEventListener("change", () => { state.liveTouched = true; });
  $("generate").addEventListener("click", generate);
  $("save-ids").addEventListener("click", () => download("ids", "label_ids.png"));
  $("save-colors").addEventListener("click", () => download("color", "label_colors.png"));
  $("filter").addEventListener("input", filterPalette);
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    const key = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && key === "z") { e.preventDefault(); $(e.shiftKey ? "redo" : "undo").click(); return; }
    if ((e.ctrlKey || e.metaKey) && key === "y") { e.preventDefault(); $("redo").click(); return; }
    const tool = { b: "brush", p: "pencil", f: "fill", i: "pick", e: "eraser" }[key];
    if (tool) setTool(tool);
    if (key === "[" || key === "]") {
      $("size").value = +$("size").value + (key === "]" ? 1 : -1);
      $("size-out").textContent = $("size").value;
    }
  });
}

wire();
$("reload").addEventListener("click", reloadModel);
start();
