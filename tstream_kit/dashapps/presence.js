// tstream dashboards: the page is here (pings), and its history session is
// kept in localStorage so "continue watching" survives reloads.
const KEY = "tstream.session";

function render({ model, el }) {
  el.classList.add("tstream-presence");
  el.style.display = "none";
  let stored = "";
  try { stored = window.localStorage.getItem(KEY) || ""; } catch (e) { /* storage disabled */ }
  model.send({ type: "hello", session: stored });
  const timer = setInterval(() => model.send({ type: "ping" }), model.get("interval_ms"));
  const onMsg = (msg) => {
    if (msg && msg.type === "session" && msg.token) {
      try { window.localStorage.setItem(KEY, msg.token); } catch (e) { /* storage disabled */ }
    }
  };
  model.on("msg:custom", onMsg);
  return () => { clearInterval(timer); model.off("msg:custom", onMsg); };
}

export default { render };
