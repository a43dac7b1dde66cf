// tstream Player: a <video> on the stream URL, a file picker, a buffering
// indicator, a bar of downloaded pieces, peers and speed. Reports position,
// duration, state and errors back to Python (traitlets).

const COLOURS = { h: "#2e9d5b", d: "#f08c00", r: "#4a7bd0", ".": "#d9d9d9" };

const MEDIA_ERRORS = {
  1: "playback was aborted",
  2: "a network error stopped the video (the stream ended early: peers gone, or the server stopped)",
  3: "the browser could not decode the video (a codec it does not support, e.g. HEVC, or damaged data)",
  4: "the browser cannot play this file: its format is not supported, or the stream answered an error",
};

function rate(n) {
  const units = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
  let v = n || 0, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v.toFixed(0)) + " " + units[i];
}

function clock(s) {
  if (!isFinite(s)) return "--:--";
  s = Math.max(0, Math.floor(s));
  const m = Math.floor(s / 60), r = s % 60;
  return m + ":" + String(r).padStart(2, "0");
}

function render({ model, el }) {
  el.classList.add("tstream-player");
  el.innerHTML = `
    <div class="tsp-title"></div>
    <div class="tsp-row tsp-files"><label>file <select class="tsp-select"></select></label></div>
    <div class="tsp-stage">
      <video class="tsp-video" controls playsinline preload="auto"></video>
      <div class="tsp-buffering" hidden><span class="tsp-spinner"></span> buffering…</div>
    </div>
    <canvas class="tsp-pieces" height="8" title="downloaded pieces"></canvas>
    <div class="tsp-row tsp-status">
      <span class="tsp-state"></span> · <span class="tsp-time"></span> ·
      <span class="tsp-peers"></span> · <span class="tsp-rate"></span> ·
      <span class="tsp-have"></span> · <span class="tsp-ahead"></span>
    </div>
    <div class="tsp-error" hidden></div>`;
  const $ = (sel) => el.querySelector(sel);
  const video = $(".tsp-video"), select = $(".tsp-select"), canvas = $(".tsp-pieces");
  const buffering = $(".tsp-buffering"), errorBox = $(".tsp-error");
  let lastSent = -1, seekedToStart = false, fetchingError = false;

  function set(changes) {
    for (const [k, v] of Object.entries(changes)) model.set(k, v);
    model.save_changes();
  }
  function setState(s) { if (model.get("state") !== s) set({ state: s }); status(); }

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  function status() {
    $(".tsp-state").textContent = model.get("state");
    $(".tsp-time").textContent = clock(video.currentTime) + " / " + clock(video.duration);
    $(".tsp-peers").textContent = model.get("peers") + (model.get("peers") === 1 ? " peer" : " peers");
    $(".tsp-rate").textContent = rate(model.get("download_rate"));
    $(".tsp-have").textContent = Math.round(100 * model.get("have_fraction")) + "% downloaded";
    $(".tsp-ahead").textContent = model.get("buffer_ahead_s").toFixed(1) + " s buffered ahead";
    const message = model.get("message"), err = model.get("error");
    showError(err || message);
  }

  function drawPieces() {
    const map = model.get("pieces") || "";
    const width = Math.max(100, Math.floor(canvas.clientWidth || video.clientWidth || 640));
    if (canvas.width !== width) canvas.width = width;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = COLOURS["."];
    ctx.fillRect(0, 0, width, canvas.height);
    if (!map.length) return;
    const w = width / map.length;
    for (let i = 0; i < map.length; i++) {
      const c = map[i];
      if (c === ".") continue;
      ctx.fillStyle = COLOURS[c] || COLOURS["."];
      ctx.fillRect(Math.floor(i * w), 0, Math.ceil(w), canvas.height);
    }
    if (isFinite(video.duration) && video.duration > 0) {   // the play head
      ctx.fillStyle = "#111";
      ctx.fillRect(Math.floor((video.currentTime / video.duration) * width), 0, 2, canvas.height);
    }
  }

  function files() {
    const list = model.get("files") || [];
    $(".tsp-files").hidden = list.length < 2;
    select.innerHTML = "";
    for (const f of list) {
      const o = document.createElement("option");
      o.value = String(f.index);
      o.textContent = f.path + (f.playable ? "" : " (may not play)");
      select.appendChild(o);
    }
    select.value = String(model.get("file_index"));
  }

  function load() {
    const src = model.get("src");
    $(".tsp-title").textContent = model.get("title") || "";
    showError("");
    seekedToStart = false;
    lastSent = -1;
    if (!src) { video.removeAttribute("src"); return; }
    if (video.getAttribute("src") !== src) {
      video.muted = model.get("muted");
      video.autoplay = model.get("autoplay");
      video.src = src;
      video.load();
      set({ error: "", ready_state: 0 });
      setState("loading");
    }
  }

  // Ask the server why: a failed stream answers JSON {"error": "..."}.
  async function explain(code) {
    let text = MEDIA_ERRORS[code] || "the video failed";
    if (video.error && video.error.message) text += " (" + video.error.message + ")";
    if (!fetchingError && model.get("src")) {
      fetchingError = true;
      try {
        const r = await fetch(model.get("src"), { headers: { Range: "bytes=0-0" }, credentials: "same-origin" });
        if (!r.ok) {
          let detail = r.statusText;
          try { detail = (await r.json()).error || detail; } catch (e) { /* not JSON */ }
          text = "the stream answered " + r.status + ": " + detail;
        }
      } catch (e) { /* network: keep the media error */ }
      fetchingError = false;
    }
    set({ error: text, state: "error" });
    status();
  }

  const handlers = {
    loadedmetadata: () => {
      set({ duration: isFinite(video.duration) ? video.duration : 0, ready_state: video.readyState });
      const start = model.get("start_at");
      if (!seekedToStart && start > 0 && start < (video.duration || Infinity)) video.currentTime = start;
      seekedToStart = true;
      if (model.get("autoplay")) video.play().catch(() => setState("paused"));
    },
    canplay: () => set({ ready_state: video.readyState }),
    waiting: () => { buffering.hidden = false; setState("buffering"); },
    stalled: () => { if (!video.paused) buffering.hidden = false; },
    playing: () => { buffering.hidden = true; setState("playing"); set({ ready_state: video.readyState }); },
    pause: () => { if (!video.ended) setState("paused"); },
    ended: () => setState("ended"),
    seeking: () => { buffering.hidden = false; },
    seeked: () => { buffering.hidden = true; set({ position: video.currentTime }); },
    timeupdate: () => {
      const t = video.currentTime;
      if (Math.abs(t - lastSent) >= 1) { lastSent = t; set({ position: t, ready_state: video.readyState }); }
      status();
    },
    error: () => { buffering.hidden = true; explain(video.error ? video.error.code : 0); },
  };
  for (const [name, fn] of Object.entries(handlers)) video.addEventListener(name, fn);
  select.addEventListener("change", () => set({ file_index: parseInt(select.value, 10) }));

  const onStats = () => { status(); drawPieces(); };
  const onMessage = () => status();
  const onHeight = () => { video.style.maxHeight = model.get("height"); };
  model.on("change:src", load);
  model.on("change:files", files);
  model.on("change:file_index", files);
  model.on("change:pieces", drawPieces);
  for (const k of ["peers", "download_rate", "have_fraction", "buffer_ahead_s"]) model.on("change:" + k, onStats);
  model.on("change:message", onMessage);
  model.on("change:error", onMessage);
  model.on("change:title", () => { $(".tsp-title").textContent = model.get("title"); });
  model.on("change:height", onHeight);
  // Python may ask for a seek (tests, notebooks): set position with seek_to
  model.on("msg:custom", (msg) => {
    if (msg && msg.type === "seek" && isFinite(msg.seconds)) video.currentTime = msg.seconds;
    if (msg && msg.type === "play") video.play().catch(() => {});
    if (msg && msg.type === "pause") video.pause();
  });

  onHeight();
  files();
  load();
  status();
  const timer = setInterval(drawPieces, 1000);   // the play head moves between piece updates
  return () => {
    clearInterval(timer);
    for (const [name, fn] of Object.entries(handlers)) video.removeEventListener(name, fn);
    video.pause();
    video.removeAttribute("src");
    video.load();   // let the browser drop the connection
  };
}

export default { render };
