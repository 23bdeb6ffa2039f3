// Nube console: small progressive enhancements. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // The project switcher submits on change.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  // Destructive actions ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // Long form posts say they are under way.
  for (const form of document.querySelectorAll("form[data-busy]")) {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; button.textContent = form.dataset.busy; }
    });
  }

  // Live status: tables with data-poll ask for the status of their rows every few seconds.
  for (const table of document.querySelectorAll("[data-poll]")) {
    const rows = [...table.querySelectorAll("tr[data-id]")];
    if (!rows.length) continue;
    const url = table.dataset.poll + "?" + rows.map((r) => "id=" + encodeURIComponent(r.dataset.id)).join("&");
    const reload = table.hasAttribute("data-reload-on-change");
    const tick = async () => {
      if (document.hidden) return;
      let answer;
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) return;
        answer = await response.json();
      } catch (e) { return; }
      for (const row of rows) {
        const now = answer[row.dataset.id];
        if (!now) continue;
        const status = row.querySelector("[data-field=status]");
        const task = row.querySelector("[data-field=task]");
        const changed = status && status.textContent.trim() !== now.status;
        if (changed) {
          status.textContent = now.status;
          status.className = "status s-" + now.status.toLowerCase();
        }
        if (task) task.textContent = now.task || "";
        if (changed && reload) window.location.reload();
      }
    };
    setInterval(tick, 3000);
  }

  // The console log's refresh button fetches the log in place.
  for (const link of document.querySelectorAll("[data-refresh-log]")) {
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      const target = document.getElementById(link.dataset.refreshLog);
      const response = await fetch(link.href, { credentials: "same-origin" });
      if (response.ok) {
        const text = await response.text();
        target.textContent = text.split("\n").slice(-200).join("\n") || target.textContent;
        target.scrollTop = target.scrollHeight;
      }
    });
  }

  // Uploads with a progress bar: a form with data-upload sends its file with XHR.
  for (const form of document.querySelectorAll("form[data-upload]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const bar = form.querySelector("progress");
      const note = form.querySelector("[data-upload-status]");
      const button = form.querySelector("button[type=submit]");
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable && bar) { bar.max = e.total; bar.value = e.loaded; }
        if (note && e.lengthComputable) note.textContent = Math.round((100 * e.loaded) / e.total) + "% sent";
      });
      xhr.addEventListener("load", () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = { message: xhr.responseText }; }
        if (xhr.status < 300 && body.next) { window.location.assign(body.next); return; }
        if (note) { note.textContent = body.message || "Upload failed (" + xhr.status + ")"; note.className = "flash error"; }
        if (button) button.disabled = false;
      });
      xhr.addEventListener("error", () => {
        if (note) { note.textContent = "The upload was interrupted."; note.className = "flash error"; }
        if (button) button.disabled = false;
      });
      if (button) button.disabled = true;
      if (bar) bar.hidden = false;
      xhr.send(new FormData(form));
    });
  }
});
