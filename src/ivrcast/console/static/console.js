// ivrcast console: small progressive enhancements. Every page works without this file,
// except the live updates, the chart and the CSV splitting of the send form.
"use strict";

(function () {
  const $ = (selector, root) => (root || document).querySelector(selector);
  const csrfToken = () => {
    const field = $('input[name="csrf"]');
    return field ? field.value : "";
  };

  // Forms that change something ask first.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // ---- Live updates (server-sent events) -------------------------------------------

  function listen(url, eventName, onData, onStop) {
    const source = new EventSource(url);
    source.addEventListener(eventName, (event) => {
      const data = JSON.parse(event.data);
      if (onData(data) === false) source.close();
    });
    source.addEventListener("error", () => {
      // CLOSED: the server refused (signed out); otherwise the browser reconnects itself.
      if (source.readyState === EventSource.CLOSED && onStop) onStop();
    });
    return source;
  }

  // ---- Overview: figures, per-country table, chart ---------------------------------

  const SVG = "http://www.w3.org/2000/svg";

  function svgElement(name, attributes) {
    const element = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    return element;
  }

  function drawChart(svg, chart) {
    const width = 900, height = 240, left = 40, bottom = 22, top = 8;
    const groups = Object.keys(chart.series);
    const minutes = chart.series[groups[0]].length;
    const totals = new Array(minutes).fill(0);
    for (const group of groups) chart.series[group].forEach((n, i) => { totals[i] += n; });
    const peak = Math.max(1, ...totals);
    const step = niceStep(peak);
    const yMax = Math.ceil(peak / step) * step;
    const plotHeight = height - bottom - top, plotWidth = width - left;
    const barWidth = plotWidth / minutes;
    const y = (value) => top + plotHeight - (value / yMax) * plotHeight;

    while (svg.firstChild) svg.removeChild(svg.firstChild);
    for (let value = 0; value <= yMax; value += step) {
      svg.appendChild(svgElement("line", { x1: left, x2: width, y1: y(value), y2: y(value), class: "axis" }));
      const label = svgElement("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end", class: "tick" });
      label.textContent = String(value);
      svg.appendChild(label);
    }
    const zone = document.body.dataset.zone || undefined;
    const format = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", timeZone: zone });
    for (let i = 0; i < minutes; i++) {
      const when = new Date((chart.start + i * chart.step) * 1000);
      if (when.getUTCMinutes() % 30 === 0) {
        const x = left + i * barWidth;
        // Labels near the right edge are right-aligned so that they are not cut off.
        const anchor = x > width - 24 ? "end" : "middle";
        const label = svgElement("text", { x, y: height - 6, "text-anchor": anchor, class: "tick" });
        label.textContent = format.format(when);
        svg.appendChild(label);
      }
      let base = 0;
      groups.forEach((group, index) => {
        const count = chart.series[group][i];
        if (!count) return;
        svg.appendChild(svgElement("rect", {
          x: (left + i * barWidth).toFixed(2), width: Math.max(barWidth - 0.6, 0.6).toFixed(2),
          y: y(base + count).toFixed(2), height: (y(base) - y(base + count)).toFixed(2),
          class: "outcome-" + index,
        }));
        base += count;
      });
    }
    const summary = $("#chart-summary");
    if (summary) {
      const sums = groups.map((group) => [group, chart.series[group].reduce((a, b) => a + b, 0)]);
      const total = sums.reduce((a, [, n]) => a + n, 0);
      summary.textContent = total
        ? `${total} calls ended in these hours: ` + sums.map(([g, n]) => `${n} ${g}`).join(", ") + `; busiest minute ${peak}.`
        : "No call ended in these hours.";
    }
  }

  function niceStep(peak) {
    const rough = peak / 4;
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    for (const factor of [1, 2, 5, 10]) if (factor * power >= rough) return Math.max(1, factor * power);
    return Math.max(1, 10 * power);
  }

  function showFigures(root, figures) {
    const text = {
      ended: String(figures.ended),
      answer_rate: figures.answer_rate === null ? "–" : figures.answer_rate + "%",
      avg_billsec: figures.avg_billsec === null ? "–" : figures.avg_billsec + " s",
      active: String(figures.active),
      queued: String(figures.queued),
    };
    for (const [key, value] of Object.entries(text)) {
      const cell = root.querySelector(`[data-figure="${key}"]`);
      if (cell && cell.textContent !== value) cell.textContent = value;
    }
    const body = $("#countries tbody");
    if (body) {
      body.replaceChildren();
      if (!figures.countries.length) {
        const row = body.insertRow();
        const cell = row.insertCell();
        cell.colSpan = 5; cell.className = "muted"; cell.textContent = "No call has ended today.";
      }
      for (const c of figures.countries) {
        const row = body.insertRow();
        const head = document.createElement("th");
        head.scope = "row"; head.textContent = `${c.name} (${c.code})`;
        row.appendChild(head);
        for (const value of [c.ended, c.answered,
          c.answer_rate === null ? "–" : c.answer_rate + "%",
          c.avg_billsec === null ? "–" : c.avg_billsec + " s"]) {
          const cell = row.insertCell();
          cell.className = "num"; cell.textContent = String(value);
        }
      }
    }
  }

  const overview = $("#overview");
  const chartSvg = $("#chart");
  if (chartSvg) drawChart(chartSvg, JSON.parse($("#chart-data").textContent));
  if (overview) {
    const status = $("[data-live-status]");
    listen(overview.dataset.events, "overview", (figures) => {
      showFigures(overview, figures);
      if (chartSvg) drawChart(chartSvg, figures.chart);
      overview.dataset.updated = figures.now;
    }, () => { if (status) status.textContent = "Live updates stopped: reload the page (you may need to sign in again)."; });
  }

  // ---- Task page: live progress ---------------------------------------------------

  const REFRESH_MS = 5000;
  let refreshedAt = Date.now();

  // The calls table and details are re-read from the page itself now and then, so that
  // they follow the progress without a second, per-call stream.
  async function refreshSections(ids) {
    refreshedAt = Date.now();
    const response = await fetch(window.location.pathname, { credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ids) {
      const current = document.getElementById(id), replacement = fresh.getElementById(id);
      if (current && replacement) current.replaceWith(document.importNode(replacement, true));
    }
  }

  const taskProgress = $("#task-progress");
  if (taskProgress && taskProgress.dataset.done !== "true") {
    let shownFinished = Number(taskProgress.querySelector('[data-field="finished"]').textContent);
    listen(taskProgress.dataset.events, "progress", (progress) => {
      if (progress.finished !== shownFinished &&
          (progress.done || Date.now() - refreshedAt >= REFRESH_MS)) {
        refreshSections(["task-details", "task-calls"]);
      }
      shownFinished = progress.finished;
      const bar = $("#task-bar");
      bar.max = progress.total || 1;
      bar.value = progress.total ? progress.finished : 1;
      for (const key of ["percent", "finished", "total", "status"]) {
        const field = taskProgress.querySelector(`[data-field="${key}"]`);
        if (field) field.textContent = String(progress[key]);
      }
      const list = document.createElement("ul");
      list.className = "breakdown";
      list.setAttribute("aria-label", "Calls by state");
      for (const [state, n] of Object.entries(progress.counts)) {
        const item = document.createElement("li");
        item.className = "state state-" + state;
        const dot = document.createElement("span");
        dot.className = "dot"; dot.setAttribute("aria-hidden", "true");
        const count = document.createElement("strong");
        count.textContent = String(n);
        item.append(dot, state.replace("_", " ") + " ", count);
        list.appendChild(item);
      }
      taskProgress.querySelector('[data-field="breakdown"]').replaceChildren(list);
      if (progress.done) {
        taskProgress.dataset.done = "true";
        const cancel = taskProgress.querySelector("form");
        if (cancel) cancel.remove();
        return false;
      }
      return true;
    });
  }

  // ---- Send: split any number of numbers into submissions of the server's limit ---

  const NUMBERISH = /\d[\d\s().-]{4,}\d/;

  function numbersFromText(text) {
    return text.split(/[\s,，;]+/).map((s) => s.trim()).filter(Boolean);
  }

  function numbersFromCsv(text) {
    const found = [];
    for (const line of text.split(/\r?\n/)) {
      for (const raw of line.split(/[,;\t]/)) {
        const cell = raw.trim().replace(/^"|"$/g, "").trim();
        if (NUMBERISH.test(cell) || /^\+?\d{5,}$/.test(cell)) { found.push(cell); break; }
      }
    }
    return found;
  }

  function distinct(numbers) {
    const seen = new Set(), kept = [];
    for (const number of numbers) {
      const key = number.replace(/[^\d+]/g, "");
      if (!seen.has(key)) { seen.add(key); kept.push(number); }
    }
    return { kept, dropped: numbers.length - kept.length };
  }

  const sendForm = $("#send-form");
  if (sendForm) {
    $("#csv-section").hidden = false;
    const chunkSize = Number(sendForm.dataset.chunk) || 5000;
    const panel = $("#send-progress"), bar = $("#send-bar"), status = $("#send-status");
    const errorBox = $("#send-error"), resume = $("#send-resume"), results = $("#send-results");
    let job = null;

    sendForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      errorBox.hidden = true;
      let numbers = numbersFromText($("#destnumber").value);
      const file = $("#numbers-file").files[0];
      if (file) numbers = numbers.concat(numbersFromCsv(await file.text()));
      const { kept, dropped } = distinct(numbers);
      if (!kept.length) {
        panel.hidden = false;
        showError("There are no numbers to send: paste some or choose a CSV file.");
        return;
      }
      const chunks = [];
      for (let i = 0; i < kept.length; i += chunkSize) chunks.push(kept.slice(i, i + chunkSize));
      const batch = Array.from(crypto.getRandomValues(new Uint8Array(9)), (b) => b.toString(16).padStart(2, "0")).join("");
      job = { chunks, next: 0, sent: 0, total: kept.length, dropped, batch, tasks: [] };
      results.replaceChildren();
      panel.hidden = false;
      bar.max = kept.length;
      bar.value = 0;
      await run();
    });

    resume.addEventListener("click", () => { resume.hidden = true; errorBox.hidden = true; run(); });

    function showError(message) {
      errorBox.textContent = message;
      errorBox.hidden = false;
    }

    async function run() {
      const button = $("#send-button");
      button.disabled = true;
      try {
        while (job.next < job.chunks.length) {
          const index = job.next;
          status.textContent = `Sending part ${index + 1} of ${job.chunks.length} (${job.sent} of ${job.total} numbers sent` +
            (job.dropped ? `, ${job.dropped} duplicates dropped` : "") + ")…";
          const answer = await post(job.chunks[index], `console-${job.batch}-${index + 1}`);
          job.tasks.push(answer);
          job.sent += job.chunks[index].length;
          job.next += 1;
          bar.value = job.sent;
          const item = document.createElement("li");
          const link = document.createElement("a");
          link.href = answer.url;
          link.textContent = `Task ${answer.taskid.slice(0, 12)}`;
          item.append(link, `: ${answer.accepted} accepted, ${answer.duplicates} duplicates, ${answer.invalid.length} invalid`);
          results.appendChild(item);
        }
        status.textContent = `Done: ${job.total} numbers sent in ${job.tasks.length} task(s).`;
        if (job.tasks.length === 1) window.location.assign(job.tasks[0].url);
      } catch (error) {
        status.textContent = `Stopped after ${job.sent} of ${job.total} numbers.`;
        showError(error.message);
        resume.hidden = false;
      } finally {
        button.disabled = false;
      }
    }

    async function post(numbers, requestId) {
      const body = new FormData(sendForm);
      body.set("destnumber", numbers.join(","));
      body.set("requestid", requestId);
      // The same request id on a retry: the server answers with the task it created
      // the first time instead of dialing the numbers twice.
      for (let attempt = 0; ; attempt++) {
        let response;
        try {
          response = await fetch(sendForm.action, {
            method: "POST", body, credentials: "same-origin",
            headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
          });
        } catch (networkError) {
          response = null;
        }
        if (response && response.ok) return response.json();
        const transient = !response || response.status >= 500;
        if (!transient || attempt >= 3) {
          let message = response ? `The server refused part of the list (HTTP ${response.status}).` : "The server cannot be reached.";
          if (response) {
            try { message = (await response.json()).error || message; } catch (ignored) { /* not JSON */ }
          }
          throw new Error(message);
        }
        await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** attempt));
      }
    }
  }

  // ---- Voices: drag and drop onto the file field ------------------------------------

  const dropzone = $("#dropzone");
  if (dropzone) {
    const input = $("#voice-file"), name = $("#voice-name");
    const suggestName = () => {
      const file = input.files[0];
      if (file && !name.value) {
        name.value = file.name.replace(/\.[^.]+$/, "").replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[.-]+/, "").slice(0, 64);
      }
    };
    input.addEventListener("change", suggestName);
    for (const type of ["dragenter", "dragover"]) {
      dropzone.addEventListener(type, (event) => { event.preventDefault(); dropzone.classList.add("dragging"); });
    }
    for (const type of ["dragleave", "drop"]) {
      dropzone.addEventListener(type, () => dropzone.classList.remove("dragging"));
    }
    dropzone.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        suggestName();
      }
    });
  }
})();
