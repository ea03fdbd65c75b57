// The console's only script: refreshes the parts of a page marked data-live from the
// server (HTML it rendered and escaped), every data-every milliseconds, and not while the
// tab is hidden. Everything else works without it.
"use strict";
(function () {
  function refresh(section) {
    if (document.hidden) return;
    fetch(section.dataset.live, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html !== null) section.innerHTML = html; })
      .catch(function () { /* the next tick tries again */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (section) {
      refresh(section);
      setInterval(function () { refresh(section); }, Number(section.dataset.every) || 5000);
      document.addEventListener("visibilitychange", function () {
        if (!document.hidden) refresh(section);
      });
    });
  });
})();
