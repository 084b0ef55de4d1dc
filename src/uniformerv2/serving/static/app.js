// The web page of `uniformerv2 serve`: upload a video to /v1/predict, show its top classes as bars while it plays,
// and for a long video draw /v1/timeline's scores over time with a marker that follows playback. The Camera tab
// sends small JPEG frames of the camera over a WebSocket (/v1/live) and shows the running top classes over it.
"use strict";

const KEY_STORE = "uniformerv2-api-key";
const LONG_VIDEO_S = 4;      // longer than two 2 s windows: worth a timeline
const MAX_WINDOWS = 300;     // the timeline's stride grows so a long video stays readable (and cheap)
const COLORS = ["--c0", "--c1", "--c2", "--c3", "--c4"];

const $ = (id) => document.getElementById(id);
const state = { model: null, file: null, url: null, timeline: null, colors: new Map(), plot: null, drawn: -1, token: 0 };

// ------------------------------------------------------------------------------------------------- the API

function apiKey() { return localStorage.getItem(KEY_STORE) || ""; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function needKey(status) {
  if (status !== 401 && status !== 403) return false;
  $("key-form").hidden = false;
  $("key").focus();
  return true;
}

async function getJSON(path) {
  const headers = apiKey() ? { Authorization: "Bearer " + apiKey() } : {};
  const res = await fetch(path, { headers });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body.error || res.statusText);
  return body;
}

// XMLHttpRequest rather than fetch: it reports upload progress, which matters for a large video on a phone.
function upload(path, file, fields, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, String(v));
    form.append("video", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    if (apiKey()) xhr.setRequestHeader("Authorization", "Bearer " + apiKey());
    xhr.responseType = "json";
    if (onProgress) xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body.error || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new ApiError(0, "the server could not be reached (or closed the connection)"));
    xhr.send(form);
  });
}

// --------------------------------------------------------------------------------------------------- status

function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function progress(fraction) {
  const bar = $("progress");
  bar.hidden = fraction === null;
  if (fraction !== null) bar.value = fraction;
}

function fail(err) {
  progress(null);
  if (err instanceof ApiError && needKey(err.status)) status(err.message, true);
  else status(err.message || String(err), true);
}

// ---------------------------------------------------------------------------------------------- the model

async function loadModel() {
  try {
    const m = await getJSON("/v1/model");
    state.model = m;
    $("key-form").hidden = true;
    $("model").textContent = `${m.name} · ${m.num_classes} classes`;
    $("protocol").textContent = `${m.protocol.description} · up to ${m.limits.max_upload_mb} MiB, ` +
                                `${m.limits.max_duration_s} s`;
    $("drop-hint").textContent = `MP4, WebM, MOV, AVI… up to ${m.limits.max_upload_mb} MiB and ` +
                                 `${m.limits.max_duration_s} s`;
    if (!state.file) status("");
  } catch (err) {
    $("model").textContent = "not connected";
    fail(err);
  }
}

// ---------------------------------------------------------------------------------------------- a video

function percent(x) { return (100 * x).toFixed(x >= 0.995 ? 0 : 1) + "%"; }

function color(label) {
  if (!state.colors.has(label)) state.colors.set(label, COLORS[state.colors.size % COLORS.length]);
  return state.colors.get(label);
}

function cssColor(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

// One class as a list item: its name and score over a bar (`trackClass`/`fillTag`: the two views' bar markup).
function scoreItem(p, trackClass, fillTag) {
  const li = document.createElement("li");
  li.dataset.label = p.label;
  li.dataset.score = String(p.score);
  const head = document.createElement("div");
  head.className = "head";
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = p.label;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = percent(p.score);
  head.append(label, score);
  const track = document.createElement("div");
  track.className = trackClass;
  const fill = document.createElement(fillTag);
  track.append(fill);
  li.append(head, track);
  return [li, fill];
}

function showPredictions(result) {
  const list = $("predictions");
  list.replaceChildren();
  state.colors = new Map();
  for (const p of result.predictions) {
    const [li, fill] = scoreItem(p, "track", "div");
    fill.className = "fill " + color(p.label).slice(2);
    list.append(li);
    requestAnimationFrame(() => { fill.style.width = Math.max(0.5, 100 * p.score) + "%"; });
  }
  const t = result.timing_ms;
  $("timing").textContent = `${result.protocol} · ${(t.total / 1000).toFixed(2)} s ` +
                            `(decode ${Math.round(t.decode)} ms, model ${Math.round(t.model)} ms)`;
}

async function classify(file) {
  const token = ++state.token;  // a newer file replaces this one: its late answers are dropped
  state.file = file;
  state.timeline = null;
  $("timeline-card").hidden = true;
  $("now").textContent = "";
  const limits = state.model && state.model.limits;
  if (limits && file.size > limits.max_upload_mb * 1024 * 1024) {
    status(`${file.name} is ${(file.size / 1048576).toFixed(1)} MiB; this server takes up to ` +
           `${limits.max_upload_mb} MiB`, true);
    return;
  }
  if (state.url) URL.revokeObjectURL(state.url);
  state.url = URL.createObjectURL(file);
  const video = $("video");
  video.src = state.url;
  video.play().catch(() => {});  // a browser may refuse to autoplay: the controls are there
  $("result").hidden = false;
  $("predictions").replaceChildren();
  $("timing").textContent = "";
  $("file-name").textContent = file.name;
  try {
    status(`uploading ${file.name}…`);
    const result = await upload("/v1/predict", file, { top_k: 5 }, (f) => {
      progress(f);
      if (f >= 1) status(`classifying ${file.name}…`);
    });
    if (token !== state.token) return;
    progress(null);
    showPredictions(result);
    status("");
    if (result.duration_s >= LONG_VIDEO_S) await timeline(file, result.duration_s, token);
  } catch (err) {
    if (token === state.token) fail(err);
  }
}

// ----------------------------------------------------------------------------------------------- timeline

async function timeline(file, duration, token) {
  const stride = Math.max(1, Math.ceil(duration / MAX_WINDOWS));
  status("scoring the video over time…");
  const tl = await upload("/v1/timeline", file, { window: 2, stride, top_k: 5 }, null);
  if (token !== state.token) return;
  state.timeline = tl;
  state.duration = duration;
  $("timeline-card").hidden = false;
  $("timeline-info").textContent = `${tl.windows.length} windows of 2 s, every ${stride} s`;
  const legend = $("legend");
  legend.replaceChildren();
  for (const [label, c] of state.colors) {
    const li = document.createElement("li");
    const swatch = document.createElement("i");
    swatch.className = c.slice(2);
    li.append(swatch, document.createTextNode(label));
    legend.append(li);
  }
  $("timeline").dataset.windows = String(tl.windows.length);
  renderPlot();
  status("");
}

// The plot is drawn once into an offscreen canvas; every animation frame copies it and adds the marker.
function renderPlot() {
  const tl = state.timeline;
  if (!tl) return;
  const canvas = $("timeline");
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(200, canvas.clientWidth), h = canvas.clientHeight || 220;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const off = document.createElement("canvas");
  off.width = canvas.width;
  off.height = canvas.height;
  const g = off.getContext("2d");
  g.scale(dpr, dpr);
  const pad = { l: 40, r: 10, t: 10, b: 26 };
  const duration = state.duration || tl.windows[tl.windows.length - 1].end_s;
  const labels = [...state.colors.keys()].filter((l) => tl.class_names.includes(l));
  let top = 0;
  for (const label of labels) {
    const c = tl.class_names.indexOf(label);
    for (const row of tl.scores) top = Math.max(top, row[c]);
  }
  const tick = top <= 0.2 ? 0.05 : top <= 0.5 ? 0.1 : 0.25;  // round percentages on the axis
  top = Math.min(1, Math.max(tick, Math.ceil(top / tick - 1e-9) * tick));
  const x = (t) => pad.l + (w - pad.l - pad.r) * (t / duration);
  const y = (p) => pad.t + (h - pad.t - pad.b) * (1 - p / top);
  const text = cssColor("--muted"), line = cssColor("--line");
  g.font = "12px system-ui, sans-serif";
  g.fillStyle = text;
  g.strokeStyle = line;
  g.lineWidth = 1;
  for (let i = 0; i * tick <= top + 1e-9; i++) {  // probability grid
    const p = i * tick;
    g.beginPath(); g.moveTo(pad.l, y(p)); g.lineTo(w - pad.r, y(p)); g.stroke();
    g.textAlign = "right"; g.textBaseline = "middle";
    g.fillText(Math.round(100 * p) + "%", pad.l - 6, y(p));
  }
  const step = niceStep(duration / Math.max(2, Math.floor((w - pad.l) / 70)));
  g.textAlign = "center"; g.textBaseline = "top";
  for (let t = 0; t <= duration + 1e-6; t += step) g.fillText(formatTime(t), x(t), h - pad.b + 6);
  const centres = tl.windows.map((win) => (win.start_s + win.end_s) / 2);
  for (const label of labels) {
    const c = tl.class_names.indexOf(label);
    g.strokeStyle = cssColor(state.colors.get(label));
    g.lineWidth = 2;
    g.beginPath();
    tl.scores.forEach((row, i) => (i ? g.lineTo(x(centres[i]), y(row[c])) : g.moveTo(x(centres[i]), y(row[c]))));
    g.stroke();
  }
  state.plot = { off, x, pad, w, h, duration, centres, dpr };
  state.drawn = -1;
  drawMarker(true);
}

function niceStep(raw) {
  for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600]) if (s >= raw) return s;
  return 600;
}

function formatTime(t) {
  const m = Math.floor(t / 60), s = Math.round(t % 60);
  return m ? `${m}:${String(s).padStart(2, "0")}` : `${s}s`;
}

function drawMarker(force = false) {
  const plot = state.plot, tl = state.timeline;
  if (!plot || !tl) return;
  const t = $("video").currentTime || 0;
  if (!force && Math.abs(t - state.drawn) < 1e-3) return;
  state.drawn = t;
  const canvas = $("timeline");
  const g = canvas.getContext("2d");
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.drawImage(plot.off, 0, 0);
  g.scale(plot.dpr, plot.dpr);
  const mx = plot.x(Math.min(t, plot.duration));
  g.strokeStyle = cssColor("--text");
  g.lineWidth = 1.5;
  g.beginPath(); g.moveTo(mx, plot.pad.t); g.lineTo(mx, plot.h - plot.pad.b); g.stroke();
  // the top class of the window whose centre is nearest, as Timeline.label_at reads it
  let w = 0;
  plot.centres.forEach((c, i) => { if (Math.abs(c - t) < Math.abs(plot.centres[w] - t)) w = i; });
  const top = tl.windows[w].top[0];
  $("now").textContent = `at ${t.toFixed(1)} s: ${top.label} ${percent(top.score)}`;
}

function animate() {
  drawMarker();
  requestAnimationFrame(animate);
}

function seek(event) {
  const plot = state.plot;
  if (!plot) return;
  const rect = $("timeline").getBoundingClientRect();
  const frac = (event.clientX - rect.left - plot.pad.l) / (rect.width - plot.pad.l - plot.pad.r);
  $("video").currentTime = Math.max(0, Math.min(1, frac)) * plot.duration;
}

// -------------------------------------------------------------------------------------------------- camera

const LIVE_FPS = 12;            // frames sent a second
const LIVE_EVERY = 0.5;         // seconds between decisions
const LIVE_WINDOW = 2;          // seconds of frames each decision scores
const LIVE_MAX_BUFFERED = 256 * 1024;  // bytes waiting in the socket: past that frames are skipped, not queued
const live = { wanted: false, stream: null, ws: null, timer: null, retryTimer: null, retry: 0, connects: 0,
               encoding: false, size: 160, canvas: null, sent: [], shownAt: 0 };

function cameraStatus(text, isError = false) {
  const el = $("camera-status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function cameraError(err) {
  const reasons = {
    NotAllowedError: "the camera was not allowed: allow it for this page in the browser's site settings",
    NotFoundError: "no camera was found",
    NotReadableError: "the camera is in use by another application",
    OverconstrainedError: "no camera fits the request",
  };
  return reasons[err && err.name] || `the camera could not be opened (${err && (err.message || err.name)})`;
}

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function startCamera() {
  live.wanted = true;
  $("camera-toggle").textContent = "Stop camera";
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    cameraStatus("Browsers give the camera only to secure pages: open this page over HTTPS, or on this " +
                 "machine as http://localhost or http://127.0.0.1.", true);
    return;
  }
  if (!live.stream) {
    cameraStatus("asking for the camera…");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(
        { video: { facingMode: "environment", width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (err) {
      if (live.wanted) { cameraStatus(cameraError(err), true); $("camera-toggle").textContent = "Start camera"; }
      live.wanted = false;
      return;
    }
    if (!live.wanted) { for (const t of stream.getTracks()) t.stop(); return; }  // left the tab meanwhile
    live.stream = stream;
    const video = $("camera");
    video.srcObject = stream;
    video.play().catch(() => {});
  }
  cameraStatus("connecting…");
  connectLive();
  clearInterval(live.timer);
  live.timer = setInterval(sendFrame, 1000 / LIVE_FPS);
}

function stopCamera(reason = "camera stopped") {
  live.wanted = false;
  clearInterval(live.timer);
  clearTimeout(live.retryTimer);
  live.timer = live.retryTimer = null;
  if (live.ws) {
    const ws = live.ws;
    live.ws = null;  // its close event is then nobody's business
    ws.close(1000, reason);  // the server drops this connection's frames at once
  }
  if (live.stream) {
    for (const t of live.stream.getTracks()) t.stop();
    live.stream = null;
  }
  $("camera").srcObject = null;
  $("live-top").replaceChildren();
  $("live-info").textContent = "";
  $("camera-toggle").textContent = "Start camera";
  cameraStatus("");
}

function connectLive() {
  clearTimeout(live.retryTimer);
  if (!live.wanted) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams({ every: LIVE_EVERY, window: LIVE_WINDOW, top_k: 5 });
  const protocols = ["uniformerv2"];  // the key as a subprotocol: browsers cannot set Authorization here
  if (apiKey()) protocols.push("bearer." + base64url(apiKey()));
  const ws = new WebSocket(`${scheme}//${location.host}/v1/live?${params}`, protocols);
  live.ws = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    live.retry = 0;
    live.connects += 1;
    $("camera-view").dataset.connects = String(live.connects);
    cameraStatus("");
  };
  ws.onmessage = (event) => {
    if (live.ws !== ws) return;
    let m;
    try { m = JSON.parse(event.data); } catch (err) { return; }
    if (m.type === "ready") live.size = Math.max(16, m.size || 160);
    else if (m.type === "decision") showLive(m);
    else if (m.type === "error") cameraStatus(m.error, true);
  };
  ws.onclose = (event) => {
    if (live.ws !== ws) return;  // stopped on purpose, or replaced
    live.ws = null;
    if (!live.wanted) return;
    const wait = Math.min(10, 2 ** live.retry);  // 1, 2, 4, 8, 10, 10… seconds
    live.retry += 1;
    cameraStatus(opened ? `the connection closed (${event.reason || "code " + event.code}); reconnecting in ` +
                          `${wait} s…`
                        : `could not connect to the server's camera endpoint (a wrong API key, a busy server, or ` +
                          `one without WebSocket support); retrying in ${wait} s…`, !opened);
    live.retryTimer = setTimeout(connectLive, wait * 1000);
  };
}

// One frame of the camera, its short side the model's input size, as an 8-byte timestamp and a JPEG.
function sendFrame() {
  const ws = live.ws, video = $("camera");
  if (!ws || ws.readyState !== WebSocket.OPEN || live.encoding || !video.videoWidth) return;
  if (ws.bufferedAmount > LIVE_MAX_BUFFERED) return;  // the network is behind: skip, never queue
  const vw = video.videoWidth, vh = video.videoHeight;
  const scale = Math.min(1, live.size / Math.min(vw, vh));
  const w = Math.max(1, Math.round(vw * scale)), h = Math.max(1, Math.round(vh * scale));
  if (!live.canvas) live.canvas = document.createElement("canvas");
  const canvas = live.canvas;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  canvas.getContext("2d").drawImage(video, 0, 0, w, h);
  const stamp = performance.now() / 1000;
  live.encoding = true;
  canvas.toBlob((blob) => {
    live.encoding = false;
    if (!blob || live.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    const head = new ArrayBuffer(8);
    new DataView(head).setFloat64(0, stamp);  // big-endian
    ws.send(new Blob([head, blob]));
    live.sent.push(stamp);
    while (live.sent.length && live.sent[0] < stamp - 2) live.sent.shift();
  }, "image/jpeg", 0.85);
}

function showLive(m) {
  const list = $("live-top");
  list.replaceChildren();
  for (const p of m.top) {
    const [li, fill] = scoreItem(p, "bar", "i");
    fill.style.width = Math.max(0.5, 100 * p.score) + "%";
    list.append(li);
  }
  list.dataset.streamTime = String(m.stream_time);
  // the frames' timestamps are this page's clock: the lag seen here includes the network both ways
  const lag = performance.now() / 1000 - m.stream_time;
  const n = live.sent.length, span = n > 1 ? live.sent[n - 1] - live.sent[0] : 0;
  const fps = span > 0 ? `${Math.round((n - 1) / span)} frames/s sent` : "frames sent";
  $("live-info").textContent = `lag ${Math.round(1000 * lag)} ms · ${fps}`;
}

function showTab(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const on = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  $("upload-view").hidden = name !== "upload";
  $("camera-view").hidden = name !== "camera";
  history.replaceState(null, "", name === "camera" ? "#camera" : location.pathname + location.search);
  if (name === "camera") {
    $("video").pause();
    startCamera();
  } else if (live.wanted || live.stream) {
    stopCamera();
  }
}

function wireCamera() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
    tab.addEventListener("keydown", (e) => {  // arrow keys move between tabs
      if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
      const next = tabs[(tabs.indexOf(tab) + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      next.focus();
      showTab(next.dataset.tab);
    });
  }
  $("camera-toggle").addEventListener("click", () => (live.wanted ? stopCamera() : startCamera()));
  $("camera").addEventListener("loadedmetadata", (e) => {  // the picture's shape sizes its box (style.css)
    const v = e.target;
    if (v.videoWidth && v.videoHeight) v.parentElement.style.setProperty("--aspect", v.videoWidth / v.videoHeight);
  });
  // leaving the page closes the connection cleanly (the server frees its state either way)
  window.addEventListener("pagehide", () => stopCamera("page closed"));
  window.addEventListener("pageshow", (e) => {  // back from the browser's page cache: the camera again
    if (e.persisted && !$("camera-view").hidden) startCamera();
  });
  if (location.hash === "#camera") showTab("camera");
}

// ------------------------------------------------------------------------------------------------- wiring

function wire() {
  const drop = $("drop"), input = $("file");
  input.addEventListener("change", () => input.files.length && classify(input.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => {
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) classify(file);
  });
  // a file dropped anywhere else must not make the browser navigate away to it
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem(KEY_STORE, $("key").value.trim());
    $("key").value = "";
    loadModel();
    if (live.wanted && live.stream && !live.ws) connectLive();  // the camera was refused for the key: at once
  });
  const canvas = $("timeline");
  canvas.addEventListener("pointerdown", (e) => { canvas.setPointerCapture(e.pointerId); seek(e); });
  canvas.addEventListener("pointermove", (e) => { if (e.buttons) seek(e); });
  let resize = null;
  window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(renderPlot, 100); });
  requestAnimationFrame(animate);
  wireCamera();
  loadModel();
}

wire();
