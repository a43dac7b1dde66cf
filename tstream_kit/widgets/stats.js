// tstream StatsPanel: peers table, piece map on a canvas (have / deadline /
// requested / missing), read heads and seconds buffered ahead. The DOM is
// built once; updates rewrite text and redraw the canvas in place.

const COLOURS = { h: "#2e9d5b", d: "#f08c00", r: "#4a7bd0", ".": "#d9d9d9" };
const LEGEND = [["h", "have"], ["d", "deadline (read head)"], ["r", "requested"], [".", "missing"]];

function size(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n || 0, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v.toFixed(0)) + " " + units[i];
}

function render({ model, el }) {
  el.classList.add("tstream-stats");
  el.innerHTML = `
    <div class="tss-summary"></div>
    <canvas class="tss-map" height="64"></canvas>
    <div class="tss-legend"></div>
    <div class="tss-readers"></div>
    <table class="tss-peers"><thead><tr>
      <th>address</th><th>client</th><th>down</th><th>up</th><th>progress</th>
    </tr></thead><tbody></tbody></table>
    <div class="tss-message"></div>`;
  const $ = (sel) => el.querySelector(sel);
  const canvas = $(".tss-map"), tbody = $(".tss-peers tbody");
  $(".tss-legend").innerHTML = LEGEND.map(([c, label]) =>
    `<span><i style="background:${COLOURS[c]}"></i>${label}</span>`).join("") +
    `<span><i style="background:#d0021b"></i>read head</span>`;

  function summary() {
    const map = model.get("pieces") || "";
    const counts = { h: 0, d: 0, r: 0, ".": 0 };
    for (const c of map) counts[c] = (counts[c] || 0) + 1;
    $(".tss-summary").textContent =
      `${map.length} pieces of ${size(model.get("piece_length"))}: ${counts.h} have, ${counts.d} deadline, ` +
      `${counts.r} requested, ${counts["."]} missing · ↓ ${size(model.get("download_rate"))}/s ` +
      `↑ ${size(model.get("upload_rate"))}/s · ${(model.get("peers") || []).length} peers · ` +
      `update #${model.get("refreshes")}`;
    $(".tss-message").textContent = model.get("message") || "";
  }

  function draw() {
    const map = model.get("pieces") || "";
    const width = Math.max(200, Math.floor(el.clientWidth || 640) - 4);
    if (canvas.width !== width) canvas.width = width;
    const ctx = canvas.getContext("2d");
    const n = Math.max(1, map.length);
    // rows of squares when the file has few pieces, one bar per piece otherwise
    const cols = Math.min(n, Math.max(1, Math.floor(width / 6)));
    const rows = Math.ceil(n / cols);
    const cw = width / cols, ch = Math.max(4, Math.min(16, Math.floor(180 / rows)));
    const height = rows * ch;
    if (canvas.height !== height) canvas.height = height;
    ctx.clearRect(0, 0, width, height);
    for (let i = 0; i < map.length; i++) {
      ctx.fillStyle = COLOURS[map[i]] || COLOURS["."];
      const x = (i % cols) * cw, y = Math.floor(i / cols) * ch;
      ctx.fillRect(Math.floor(x), y, Math.max(1, Math.ceil(cw) - (cw > 3 ? 1 : 0)), ch - 1);
    }
    // read heads: the piece under each reader's position (file-relative)
    const plen = model.get("piece_length"), fsize = model.get("file_size");
    for (const r of model.get("readers") || []) {
      if (!plen || r.position == null) continue;
      let i = Math.floor(r.position / plen);
      if (fsize && map.length) i = Math.min(map.length - 1, Math.floor((r.position / fsize) * map.length));
      const x = (i % cols) * cw, y = Math.floor(i / cols) * ch;
      ctx.strokeStyle = "#d0021b";
      ctx.lineWidth = 2;
      ctx.strokeRect(Math.floor(x) + 1, y + 1, Math.max(2, Math.ceil(cw) - 2), ch - 3);
    }
  }

  function readers() {
    const list = model.get("readers") || [];
    $(".tss-readers").textContent = list.length
      ? list.map((r) => `read head ${size(r.position)} · ${(r.buffer_ahead_s || 0).toFixed(1)} s ` +
          `(${size(r.buffer_ahead_bytes)}) buffered ahead · window ${size(r.window_bytes)} · ` +
          `${r.stalls || 0} stalls`).join("\n")
      : "no reader on this file (nothing is playing it)";
  }

  function peers() {
    const list = model.get("peers") || [];
    // reuse rows: rewrite cells, add or drop only the difference
    while (tbody.rows.length > list.length) tbody.deleteRow(-1);
    while (tbody.rows.length < list.length) {
      const row = tbody.insertRow();
      for (let c = 0; c < 5; c++) row.insertCell();
    }
    list.forEach((p, i) => {
      const cells = tbody.rows[i].cells;
      const values = [p.address, p.client || "?", size(p.download_rate) + "/s", size(p.upload_rate) + "/s",
        Math.round(100 * (p.progress || 0)) + "%" + (p.seed ? " (seed)" : "")];
      values.forEach((v, c) => { if (cells[c].textContent !== v) cells[c].textContent = v; });
    });
  }

  const all = () => { summary(); draw(); readers(); peers(); };
  model.on("change:refreshes", all);
  model.on("change:message", summary);
  all();
  const ro = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => draw()) : null;
  if (ro) ro.observe(el);
  return () => { if (ro) ro.disconnect(); };
}

export default { render };
