// tstream player: fragmented MP4 through Media Source Extensions for files the browser cannot
// play directly (remux/transcode at api/transcode), and subtitle tracks (api/subtitles).
// Relative URLs: works at / and under /tstream/ (Jupyter).
(function () {
  "use strict";
  const AHEAD_S = 30;        // stop reading the response while this much is buffered ahead
  const viewer = Math.random().toString(36).slice(2, 12);   // one id per page: a seek replaces our job
  let current = null;        // the MSE session of the page's video

  function once(target, name) {
    return new Promise(resolve => target.addEventListener(name, resolve, { once: true }));
  }
  function sleep(ms) { return new Promise(r => setTimeout(r, ms)); }
  function buffered(video, t) {
    for (let i = 0; i < video.buffered.length; i++)
      if (video.buffered.start(i) <= t + 0.1 && t < video.buffered.end(i) - 0.2) return true;
    return false;
  }

  function stop() {
    if (current) { current.closed = true; if (current.ctrl) current.ctrl.abort(); current = null; }
  }

  // Play magnet/index through api/transcode; media is /api/info's "media" (probe + playback).
  function playTranscoded(video, magnet, index, media, onError) {
    stop();
    const s = { closed: false, ctrl: null, gen: 0 };
    current = s;
    const ms = new MediaSource();
    video.src = URL.createObjectURL(ms);
    const mime = media.playback.mime;
    ms.addEventListener("sourceopen", () => {
      if (media.duration_s) ms.duration = media.duration_s;
      let sb;
      try { sb = ms.addSourceBuffer(mime); } catch (e) { onError("cannot play " + mime + ": " + e); return; }
      s.sb = sb;
      feed(0);
      video.addEventListener("seeking", () => {
        if (!s.closed && !buffered(video, video.currentTime)) feed(video.currentTime);
      });
    }, { once: true });

    async function append(chunk, gen) {
      while (sb().updating) await once(sb(), "updateend");
      if (gen !== s.gen) return false;
      for (;;) {
        try { s.sb.appendBuffer(chunk); break; }
        catch (e) {
          if (e.name !== "QuotaExceededError") throw e;
          const end = Math.max(0, video.currentTime - 10);      // drop what was watched
          if (end <= 0) { await sleep(500); continue; }
          s.sb.remove(0, end); await once(s.sb, "updateend");
        }
      }
      await once(s.sb, "updateend");
      return gen === s.gen;
    }
    function sb() { return s.sb; }

    async function feed(start) {
      const gen = ++s.gen;
      if (s.ctrl) s.ctrl.abort();
      const ctrl = new AbortController();
      s.ctrl = ctrl;
      while (s.sb.updating) await once(s.sb, "updateend");
      if (gen !== s.gen) return;
      s.sb.abort();           // a new init segment follows: reset the parser
      const q = new URLSearchParams({ magnet, file_index: index, start: start.toFixed(3), viewer });
      if (media.playback.audio_track) q.set("audio", media.playback.audio_track);
      let r;
      try {
        r = await fetch("api/transcode?" + q, { signal: ctrl.signal });
      } catch (e) { if (gen === s.gen && !s.closed) onError("transcode request failed: " + e); return; }
      if (!r.ok) {
        let msg = "HTTP " + r.status;
        try { msg = (await r.json()).error || msg; } catch (e) { /* keep the status */ }
        if (gen === s.gen) onError(msg);
        return;
      }
      const reader = r.body.getReader();
      try {
        for (;;) {
          while (gen === s.gen && !s.closed && video.buffered.length &&
                 video.buffered.end(video.buffered.length - 1) - video.currentTime > AHEAD_S)
            await sleep(250);   // backpressure: the server's ffmpeg waits for us
          if (gen !== s.gen || s.closed) { ctrl.abort(); return; }
          const { done, value } = await reader.read();
          if (done) break;
          if (!(await append(value, gen))) { ctrl.abort(); return; }
        }
        if (gen === s.gen && ms.readyState === "open" && !s.sb.updating) ms.endOfStream();
      } catch (e) {
        if (gen === s.gen && !s.closed && e.name !== "AbortError") onError("transcode stream: " + e);
      }
    }
  }

  // <track> elements for every subtitle track of the file; the first (or the default) shows.
  function addSubtitles(video, magnet, index, tracks) {
    for (const t of Array.from(video.querySelectorAll("track"))) t.remove();
    let shown = false;
    tracks.filter(t => t.supported !== false).forEach((t, i) => {
      const el = document.createElement("track");
      el.kind = "subtitles";
      el.label = t.label || t.track;
      if (t.language) el.srclang = t.language;
      el.src = "api/subtitles?" + new URLSearchParams({ magnet, file_index: index, track: t.track });
      el.dataset.track = t.track;
      video.append(el);
      if (!shown && (t.default || i === 0)) { el.default = true; el.track.mode = "showing"; shown = true; }
    });
  }

  window.tstreamMedia = { playTranscoded, addSubtitles, stop, viewer };
})();
