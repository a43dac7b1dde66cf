/* tstream dashboards typeset no math, and fetch nothing from the internet: mathjax_url points
   here instead of cdnjs. A do-nothing MathJax 2 API so the page's calls succeed. */
(function () {
  var noop = function () {};
  var hub = { Config: noop, Configured: noop, Queue: noop, Typeset: noop,
              Register: { StartupHook: noop, MessageHook: noop }, processSectionDelay: 0 };
  window.MathJax = window.MathJax || {
    Hub: hub, Ajax: { config: {} }, Callback: { After: noop }, config: { loader: {} },
    InputJax: { TeX: { resetEquationNumbers: noop } }, isReady: true,
  };
})();
