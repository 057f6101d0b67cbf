// The upload page's script: submit a file as a job, poll it, fetch the result, draw the scores.
// Everything the server sends is put on the page with textContent or SVG attributes, never
// parsed as HTML. The API key stays in this script's memory (and in sessionStorage only when
// "remember in this tab" is ticked); it is sent only to this origin, in X-API-Key.
"use strict";

(function () {
  const KEY_STORAGE = "anomalyops.apiKey";
  const POLL_MS = 500;
  const BINS = 40;
  const JOB_ID = /^[0-9a-f]{32}$/;

  const $ = (id) => document.getElementById(id);
  let downloadUrl = null;
  let run = 0; // a new submission makes an older one's callbacks stop

  function setState(state) {
    document.body.dataset.state = state;
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function apiKey() {
    return $("api-key").value.trim();
  }

  function headers() {
    const key = apiKey();
    return key ? { "X-API-Key": key } : {};
  }

  function fmt(n, digits) {
    return Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits }) : "–";
  }

  // An API error body is {"detail": "...", "row"?, "column"?, "columns"?}.
  function describeError(status, body) {
    let text = "HTTP " + status;
    if (body && typeof body.detail === "string") {
      text += ": " + body.detail;
    } else if (body && Array.isArray(body.detail)) {
      text += ": " + body.detail.map((e) => (e && e.msg) || String(e)).join("; ");
    }
    const where = [];
    if (body && body.row != null) where.push("row " + body.row);
    if (body && body.column != null) where.push("column " + body.column);
    if (body && Array.isArray(body.columns)) where.push("columns " + body.columns.join(", "));
    return where.length ? text + " (" + where.join(", ") + ")" : text;
  }

  async function errorOf(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    return new Error(describeError(response.status, body));
  }

  function fail(message) {
    $("error-text").textContent = message;
    show("error", true);
    setState("failed");
    $("submit").disabled = false;
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: headers(), cache: "no-store" });
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  // -- the served model, shown once a key is typed -------------------------------------------

  async function showServedModel() {
    const line = $("served-model");
    try {
      const active = await getJson("v1/models/active");
      line.textContent = "Served model version: " + active.version;
    } catch (e) {
      line.textContent = "Served model: " + e.message;
    }
  }

  // -- submit (XMLHttpRequest for the upload's progress) ---------------------------------------

  function submitJob(file, format, onUploadProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "v1/jobs?format=" + encodeURIComponent(format));
      for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
      xhr.responseType = "json";
      xhr.upload.onprogress = (ev) => {
        if (ev.lengthComputable) onUploadProgress(ev.loaded / ev.total);
      };
      xhr.onload = () => {
        if (xhr.status === 202) resolve(xhr.response);
        else reject(new Error(describeError(xhr.status, xhr.response)));
      };
      xhr.onerror = () => reject(new Error("the upload failed (network error)"));
      const body = new FormData();
      body.append("file", file, file.name);
      xhr.send(body);
    });
  }

  function showJob(job) {
    $("job-id").textContent = job.id;
    $("job-status").textContent = job.status;
    const rows = job.rows_total
      ? fmt(job.rows_done, 0) + " of " + fmt(job.rows_total, 0) + " rows"
      : fmt(job.rows_done, 0) + " rows";
    $("job-rows").textContent = rows;
    const progress = $("job-progress");
    if (typeof job.progress === "number") progress.value = job.progress;
    else progress.removeAttribute("value"); // indeterminate
  }

  async function poll(id, mine) {
    for (;;) {
      const job = await getJson("v1/jobs/" + id);
      if (mine !== run) return null;
      showJob(job);
      if (job.status === "succeeded") return job;
      if (job.status === "failed") {
        throw new Error("the job failed: " + describeError(job.error_status || "?", job.error));
      }
      if (job.status === "expired") throw new Error("the job's result has expired");
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  // -- the result --------------------------------------------------------------------------

  // RFC 4180 CSV (quoted fields may hold commas, quotes and line breaks); returns the wanted
  // columns only, as arrays of strings.
  function csvColumns(text, wanted) {
    const out = {};
    let index = null;
    let row = [];
    let field = "";
    let quoted = false;
    let i = 0;
    const n = text.length;
    const endRow = () => {
      row.push(field);
      field = "";
      if (index === null) {
        index = {};
        for (const name of wanted) {
          index[name] = row.indexOf(name);
          out[name] = [];
        }
      } else if (row.length > 1 || row[0] !== "") {
        for (const name of wanted) out[name].push(index[name] >= 0 ? row[index[name]] : "");
      }
      row = [];
    };
    while (i < n) {
      const c = text[i];
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          quoted = false;
        } else {
          field += c;
        }
        i += 1;
      } else if (c === '"') {
        quoted = true;
        i += 1;
      } else if (c === ",") {
        row.push(field);
        field = "";
        i += 1;
      } else if (c === "\n" || c === "\r") {
        endRow();
        i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      } else {
        field += c;
        i += 1;
      }
    }
    if (field !== "" || row.length) endRow();
    for (const name of wanted) {
      if (index === null || index[name] < 0) throw new Error("the result has no " + name + " column");
    }
    return out;
  }

  function scoresOf(text, format) {
    if (format === "json") {
      const body = JSON.parse(text);
      const results = Array.isArray(body.results) ? body.results : [];
      return {
        scores: results.map((r) => (typeof r.anomaly_score === "number" ? r.anomaly_score : NaN)),
        flags: results.map((r) => r.is_anomaly === true),
      };
    }
    const cols = csvColumns(text, ["anomaly_score", "is_anomaly"]);
    return {
      scores: cols.anomaly_score.map((s) => (s === "" ? NaN : Number(s))),
      flags: cols.is_anomaly.map((s) => s.toLowerCase() === "true"),
    };
  }

  async function thresholdOf(job) {
    if (typeof job.threshold === "number") return job.threshold;
    // Not on the job (should not happen once it succeeded): the version's metadata has it.
    const models = await getJson("v1/models");
    const found = (models.versions || []).find((v) => v.version === job.model_version);
    return found && found.metadata ? found.metadata.threshold : NaN;
  }

  function svg(name, attrs, parent) {
    // The namespace from the page's own (HTML-parsed) <svg>: no namespace URL in this file.
    const el = document.createElementNS($("histogram-svg").namespaceURI, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (parent) parent.appendChild(el);
    return el;
  }

  function svgText(parent, x, y, text, cls) {
    const el = svg("text", { x: x, y: y, class: cls || "" }, parent);
    el.textContent = text;
    return el;
  }

  // A histogram of the scores with the threshold as a vertical line. The x range ends a little
  // past the 99.5th percentile (or the threshold), so a few huge scores do not squash the rest:
  // anything beyond falls in the last bin, and the note says how many.
  function drawHistogram(scores, threshold) {
    const root = $("histogram-svg");
    root.replaceChildren();
    const finite = Float64Array.from(scores.filter(Number.isFinite)).sort();
    const note = $("histogram-note");
    if (finite.length === 0) {
      note.textContent = "no scores to draw";
      return;
    }
    let lo = Math.min(finite[0], 0);
    const p995 = finite[Math.floor(0.995 * (finite.length - 1))];
    let hi = Math.max(p995, Number.isFinite(threshold) ? threshold : -Infinity) * 1.1;
    if (!(hi > lo)) hi = lo + 1;
    const width = (hi - lo) / BINS;
    if (Number.isFinite(threshold) && threshold > lo && threshold < hi) {
      // Shift the bins so the threshold is a bin edge: a bar is all flagged or all not.
      lo = threshold - Math.ceil((threshold - lo) / width) * width;
      hi = lo + BINS * width;
    }
    const counts = new Array(BINS).fill(0);
    let beyond = 0;
    for (const s of finite) {
      let b = Math.floor((s - lo) / width);
      if (b >= BINS) {
        beyond += s > hi ? 1 : 0;
        b = BINS - 1;
      }
      counts[Math.max(b, 0)] += 1;
    }
    const W = 720;
    const H = 280;
    const m = { left: 56, right: 16, top: 24, bottom: 40 };
    const pw = W - m.left - m.right;
    const ph = H - m.top - m.bottom;
    const maxCount = Math.max(...counts);
    const x = (v) => m.left + ((v - lo) / (hi - lo)) * pw;
    const y = (c) => m.top + ph - (c / maxCount) * ph;

    root.setAttribute("viewBox", "0 0 " + W + " " + H);
    root.setAttribute("width", String(W));
    root.setAttribute("height", String(H));
    root.setAttribute("aria-label", "histogram of " + finite.length + " anomaly scores with the threshold");
    for (let b = 0; b < BINS; b += 1) {
      if (counts[b] === 0) continue;
      const start = lo + b * width;
      const flagged = Number.isFinite(threshold) && start >= threshold;
      const bar = svg(
        "rect",
        {
          x: x(start) + 0.5,
          y: y(counts[b]),
          width: Math.max(pw / BINS - 1, 1),
          height: m.top + ph - y(counts[b]),
          class: flagged ? "bar flagged" : "bar",
        },
        root,
      );
      const last = b === BINS - 1 ? " and above" : "–" + fmt(start + width, 3);
      svg("title", {}, bar).textContent = fmt(start, 3) + last + ": " + fmt(counts[b], 0) + " rows";
    }
    svg("line", { x1: m.left, y1: m.top + ph, x2: m.left + pw, y2: m.top + ph, class: "axis" }, root);
    svg("line", { x1: m.left, y1: m.top, x2: m.left, y2: m.top + ph, class: "axis" }, root);
    for (let t = 0; t <= 4; t += 1) {
      const v = lo + ((hi - lo) * t) / 4;
      svgText(root, x(v), m.top + ph + 16, fmt(v, 2), "tick middle");
    }
    svgText(root, m.left - 6, m.top + 4, fmt(maxCount, 0), "tick end");
    svgText(root, m.left - 6, m.top + ph, "0", "tick end");
    svgText(root, m.left + pw / 2, H - 6, "anomaly_score", "label middle");
    if (Number.isFinite(threshold)) {
      const tx = x(threshold);
      svg("line", { x1: tx, y1: m.top - 8, x2: tx, y2: m.top + ph, class: "threshold", id: "threshold-line" }, root);
      svgText(root, tx + 4, m.top - 10, "threshold " + fmt(threshold, 4), "label threshold-label");
    }
    let text = fmt(finite.length, 0) + " scores in " + BINS + " bins";
    if (beyond) text += "; " + fmt(beyond, 0) + " above " + fmt(hi, 3) + " are counted in the last bin";
    if (finite.length < scores.length) text += "; " + fmt(scores.length - finite.length, 0) + " rows unscored";
    note.textContent = text;
  }

  async function showResult(job, format, mine) {
    const response = await fetch("v1/jobs/" + job.id + "/result", { headers: headers(), cache: "no-store" });
    if (!response.ok) throw await errorOf(response);
    const blob = await response.blob();
    const { scores, flags } = scoresOf(await blob.text(), format);
    const threshold = await thresholdOf(job);
    if (mine !== run) return;
    if (downloadUrl) URL.revokeObjectURL(downloadUrl);
    downloadUrl = URL.createObjectURL(blob);
    const link = $("download");
    link.href = downloadUrl;
    link.download = job.id + "." + format;
    link.textContent = "Download the scored file (" + (job.filename || job.id) + ", " + format.toUpperCase() + ")";
    const flagged = flags.filter(Boolean).length;
    $("model-version").textContent = String(job.model_version);
    $("threshold").textContent = fmt(threshold, 6);
    $("rows-scored").textContent = fmt(scores.length, 0);
    $("flagged-rate").textContent = scores.length
      ? "(" + fmt((100 * flagged) / scores.length, 2) + " % of rows)"
      : "";
    drawHistogram(scores, threshold);
    show("result", true);
    // Last, so a reader (or a test) that sees the count sees the whole result.
    $("flagged-count").textContent = String(flagged);
    setState("done");
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    const file = $("file").files[0];
    if (!file) {
      fail("choose a file first");
      return;
    }
    run += 1;
    const mine = run;
    const format = $("format").value === "json" ? "json" : "csv";
    $("submit").disabled = true;
    show("error", false);
    show("result", false);
    $("flagged-count").textContent = "";
    show("job", true);
    $("job-id").textContent = "";
    $("job-status").textContent = "uploading";
    $("job-rows").textContent = file.name;
    $("job-progress").value = 0;
    setState("running");
    try {
      const job = await submitJob(file, format, (f) => {
        $("job-status").textContent = "uploading " + fmt(100 * f, 0) + " %";
        $("job-progress").value = f;
      });
      if (!job || typeof job.id !== "string" || !JOB_ID.test(job.id)) {
        throw new Error("unexpected reply to POST /v1/jobs");
      }
      showJob(job);
      const done = await poll(job.id, mine);
      if (done === null) return;
      await showResult(done, format, mine);
    } catch (e) {
      if (mine === run) fail(e.message);
      return;
    }
    $("submit").disabled = false;
  }

  function init() {
    const remember = $("remember-key");
    const stored = sessionStorage.getItem(KEY_STORAGE);
    if (stored) {
      $("api-key").value = stored;
      remember.checked = true;
    }
    const keep = () => {
      if (remember.checked && apiKey()) sessionStorage.setItem(KEY_STORAGE, apiKey());
      else sessionStorage.removeItem(KEY_STORAGE);
    };
    remember.addEventListener("change", keep);
    $("api-key").addEventListener("change", () => {
      keep();
      showServedModel();
    });
    $("upload-form").addEventListener("submit", onSubmit);
    if (stored) showServedModel();
    setState("ready");
  }

  init();
})();
