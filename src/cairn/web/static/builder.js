// The model builder: the recipe preview follows the form as it changes, and choosing another
// method reloads the form with that method's settings. Without this script the form's
// "Update preview" and "Show this method's settings" buttons do the same by a full page load.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("builder");
  const preview = document.getElementById("preview");
  if (!form || !preview) return;
  let timer = null;
  let asked = 0;

  const refresh = async () => {
    const mine = ++asked;
    try {
      const reply = await fetch(form.dataset.preview, { method: "POST", body: new FormData(form) });
      if (reply.ok && mine === asked) preview.innerHTML = await reply.text();
    } catch (e) { /* the node is unreachable: keep the last preview */ }
  };
  const soon = (ms) => { clearTimeout(timer); timer = setTimeout(refresh, ms); };

  form.addEventListener("input", () => soon(300));
  form.addEventListener("change", (event) => {
    if (event.target.name === "method") {
      // each method has its own settings: load them, keeping everything else chosen so far
      const query = new URLSearchParams(new FormData(form));
      query.delete("csrf_token"); // a form token has no place in an address
      window.location.assign(form.getAttribute("action") + "?" + query.toString());
      return;
    }
    soon(100);
  });
  form.querySelectorAll("[data-method-switch]").forEach((button) => { button.hidden = true; });
});
