// Keyboard shortcuts for the page's player: space play/pause, arrows -/+10 s,
// f fullscreen. Typing in a text box, a list or with a modifier is left alone.
const SKIP = /^(INPUT|TEXTAREA|SELECT)$/;

function clock(s) {
  if (!isFinite(s)) return "--:--";
  s = Math.max(0, Math.floor(s));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function render({ model, el }) {
  el.classList.add("tstream-keys");
  el.innerHTML = `<span class="tsk-help">Keys: <kbd>space</kbd> play/pause · <kbd>&larr;</kbd> <kbd>&rarr;</kbd> 10 s ·
    <kbd>f</kbd> fullscreen</span> <span class="tsk-osd" aria-live="polite"></span>`;
  const osd = el.querySelector(".tsk-osd");
  let hide = null;
  function say(text) {
    osd.textContent = text;
    clearTimeout(hide);
    hide = setTimeout(() => { osd.textContent = ""; }, 1500);
    model.set("last_action", text);
    model.save_changes();
  }
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || SKIP.test(t.tagName || ""))) return;
    const video = document.querySelector(".tstream-player video");
    if (!video || !video.getAttribute("src")) return;
    const onButton = t && t.tagName === "BUTTON";
    if (e.key === " " || e.code === "Space") {
      if (onButton) return;          // space presses a focused button
      if (video.paused) { video.play().catch(() => {}); say("play"); } else { video.pause(); say("pause"); }
    } else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const step = e.key === "ArrowRight" ? 10 : -10;
      const end = isFinite(video.duration) ? video.duration : Infinity;
      video.currentTime = Math.min(end, Math.max(0, video.currentTime + step));
      say((step > 0 ? "+10 s → " : "−10 s → ") + clock(video.currentTime));
    } else if (e.key === "f" || e.key === "F") {
      const stage = video.closest(".tsp-stage") || video;
      if (document.fullscreenElement) { document.exitFullscreen().catch(() => {}); say("fullscreen off"); }
      else { stage.requestFullscreen().catch(() => {}); say("fullscreen"); }
    } else {
      return;
    }
    e.preventDefault();
    e.stopPropagation();
  }
  document.addEventListener("keydown", onKey, true);
  return () => document.removeEventListener("keydown", onKey, true);
}

export default { render };
