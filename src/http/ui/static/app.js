// accesskeyd web pages: copy buttons, confirmations, and keeping a one-time password out of
// the browser history. Everything works without this file, only less conveniently.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy"));
      if (!field) return;
      var done = function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () {
          field.select();
        });
      } else {
        field.select();
        try { if (document.execCommand("copy")) done(); } catch (e) { /* selected for Ctrl+C */ }
      }
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
  // The page that shows a new key's password answers a POST: point the address bar at the
  // plain list, so reloading or going back shows the list, never the password again.
  var created = document.querySelector("[data-replace-url]");
  if (created && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", created.getAttribute("data-replace-url"));
  }
});
