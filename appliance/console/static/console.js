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

  // The overview's usage meters and charts refresh themselves. Each chart is an inline SVG
  // polyline over the recent samples the server keeps for the project (0 at the bottom).
  const draw = (svg, values) => {
    const line = svg.querySelector("polyline");
    const top = Math.max(1, ...values);
    const step = values.length > 1 ? 100 / (values.length - 1) : 0;
    line.setAttribute("points", values.map((v, i) => (i * step).toFixed(1) + "," + (23 - (22 * v) / top).toFixed(1)).join(" "));
    svg.dataset.last = values.length ? String(values[values.length - 1]) : "";
    svg.dataset.count = String(values.length);
  };
  for (const root of document.querySelectorAll("[data-usage]")) {
    const tick = async () => {
      if (document.hidden) return;
      try {
        const response = await fetch(root.dataset.usage, { credentials: "same-origin" });
        if (!response.ok) return;
        const answer = await response.json();
        for (const m of answer.meters) {
          const item = root.querySelector(`.meters li[data-label="${CSS.escape(m.label)}"]`);
          if (!item) continue;
          const meter = item.querySelector("meter");
          meter.max = m.limit > 0 ? m.limit : 1;
          meter.value = m.limit >= 0 ? m.used : 0;
          item.querySelector(".nums").textContent = m.text;
        }
        for (const [label, values] of Object.entries(answer.history.series)) {
          for (const svg of root.querySelectorAll(`svg[data-series="${CSS.escape(label)}"]`)) draw(svg, values);
          for (const note of root.querySelectorAll(`[data-last-of="${CSS.escape(label)}"]`)) {
            note.textContent = String(values[values.length - 1]);
          }
        }
      } catch (e) { /* the next tick retries */ }
    };
    tick();
    setInterval(tick, 5000);
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

  // Uploads with a progress bar. A form with data-upload is posted without its file first (the
  // server answers JSON naming where to PUT the bytes), then the file is streamed there with XHR so
  // the bar can follow it. The CSRF token travels in a header for the PUT.
  for (const form of document.querySelectorAll("form[data-upload]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const bar = form.querySelector("progress");
      const note = form.querySelector("[data-upload-status]");
      const button = form.querySelector("button[type=submit]");
      const input = form.querySelector("input[type=file]");
      const file = input && input.files[0];
      const fail = (message) => {
        if (note) { note.textContent = message; note.className = "flash error"; note.setAttribute("role", "alert"); }
        if (button) button.disabled = false;
      };
      if (!file) return fail("Choose a file first.");
      const fields = new FormData(form);
      fields.delete(input.name);
      fields.set("filename", file.name);
      if (button) button.disabled = true;
      if (note) { note.textContent = "Starting…"; note.className = ""; }
      let start;
      try {
        const response = await fetch(form.action, { method: "POST", body: fields, credentials: "same-origin",
                                                   headers: { Accept: "application/json" } });
        start = await response.json();
        if (!response.ok) return fail(start.message || "Refused (" + response.status + ")");
      } catch (e) { return fail("The server could not be reached."); }
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", start.upload);
      xhr.setRequestHeader("X-CSRF-Token", fields.get("csrf"));
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("Accept", "application/json");
      if (file.type) xhr.setRequestHeader("X-Object-Type", file.type);
      if (bar) { bar.hidden = false; bar.max = file.size || 1; bar.value = 0; }
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        if (bar) { bar.max = e.total; bar.value = e.loaded; }
        if (note) note.textContent = Math.round((100 * e.loaded) / e.total) + "% sent";
      });
      xhr.addEventListener("load", () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = { message: xhr.responseText }; }
        if (xhr.status < 300) {
          if (note) note.textContent = "100% sent, done.";
          window.location.assign(body.next || start.next || window.location.href);
          return;
        }
        fail(body.message || "Upload failed (" + xhr.status + ")");
      });
      xhr.addEventListener("error", () => fail("The upload was interrupted."));
      xhr.send(file);
    });
  }
});
