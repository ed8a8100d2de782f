// The dashboard's only script (served from the binary; the content security policy allows no
// other). It refreshes the live part of a page and asks before a drop.
"use strict";

function refresh(live) {
  const url = live.dataset.refresh;
  setInterval(async () => {
    try {
      const response = await fetch(url, { cache: "no-store" });
      if (response.ok) {
        // The server escaped every text from the store in this fragment.
        live.innerHTML = await response.text();
        live.dataset.refreshedAt = new Date().toISOString();
        live.classList.remove("stale");
      } else {
        live.classList.add("stale");
      }
    } catch (_) {
      live.classList.add("stale");
    }
  }, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(refresh);
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
});
