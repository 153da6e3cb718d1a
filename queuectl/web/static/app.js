// queuectl dashboard: the little the pages do with JavaScript beyond htmx (no inline script:
// the Content-Security-Policy forbids it). Every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('#bulk input[name="id"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }
  // keep a live output scrolled to its end while the reader has not scrolled up
  var live = document.getElementById("live-output");
  if (live) {
    document.body.addEventListener("htmx:sseMessage", function () {
      if (live.scrollHeight - live.scrollTop - live.clientHeight < 80) {
        live.scrollTop = live.scrollHeight;
      }
    });
  }
});
