// The page of `srrun serve` (tools/serve_page.html): sends the photo as a
// job (POST /v1/jobs), follows its event stream, then shows the result
// over the photo with a slider between them. No libraries, no build step;
// the binary serves this file as /app.js. body's data-state tells where it
// is: idle, sending, queued, running, done, error or cancelled.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("job"), fileInput = $("file"), modelSelect = $("model");

let sending = null; // the upload's AbortController
let job = null;     // {id, events} while one runs
let cancelled = false; // Cancel pressed since the last Upscale
let objectUrls = [];

function setState(state) {
  document.body.dataset.state = state;
  const busy = state === "sending" || state === "queued" || state === "running";
  $("start").disabled = busy;
  $("cancel").hidden = !busy;
  $("running").hidden = !busy && state !== "cancelled";
}

function showProgress(fraction, text) {
  $("progress").value = fraction;
  $("status").textContent = text;
}

function showCancelled() {
  setState("cancelled");
  $("status").textContent = "Cancelled.";
}

function showError(message) {
  $("error").textContent = message;
  setState("error");
}

// The server answers its errors as {"error": "..."}.
async function errorOf(response) {
  try {
    const body = await response.json();
    if (body.error) return body.error;
  } catch (e) { /* not JSON: say the status */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

async function loadModels() {
  const response = await fetch("/v1/models");
  if (!response.ok) return showError(await errorOf(response));
  for (const m of await response.json()) {
    const option = new Option(`${m.name} (${m.architecture}, ×${m.scale})`, m.name);
    option.dataset.scale = m.scale;
    modelSelect.add(option);
  }
}

function clearResult() {
  $("result").hidden = true;
  $("error").textContent = "";
  objectUrls.forEach((url) => URL.revokeObjectURL(url));
  objectUrls = [];
}

function endJob() {
  if (job) job.events.close();
  job = null;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = fileInput.files[0];
  if (!file || sending || job) return;
  clearResult();
  cancelled = false;
  setState("sending");
  showProgress(0, "Sending the photo…");
  const option = modelSelect.selectedOptions[0];
  sending = new AbortController();
  let response;
  try {
    response = await fetch(`/v1/jobs?model=${encodeURIComponent(option.value)}`,
                           {method: "POST", body: file, signal: sending.signal});
  } catch (e) {
    if (e.name === "AbortError") return showCancelled();
    return showError(`could not reach the server: ${e.message}`);
  } finally {
    sending = null;
  }
  if (response.status !== 202) return showError(await errorOf(response));
  const created = await response.json();
  if (cancelled) { // pressed between the upload's end and now: the job exists
    await fetch(`/v1/jobs/${created.id}`, {method: "DELETE"});
    return showCancelled();
  }
  follow(created, file, option.dataset.scale);
});

function follow(created, file, scale) {
  const events = new EventSource(created.events);
  job = {id: created.id, events};
  events.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    if (p.state === "queued") {
      setState("queued");
      showProgress(0, "Waiting for the server to have room…");
      return;
    }
    setState("running");
    const left = p.eta_s === null ? "" : `, about ${Math.ceil(p.eta_s)} s left`;
    showProgress(p.fraction, `${Math.round(p.fraction * 100)}%${left}`);
  });
  events.addEventListener("done", () => {
    endJob();
    showResult(created, file, scale)
      .catch((e) => showError(`could not fetch the result: ${e.message}`));
  });
  // The server's `error` event has data; the connection's failure has none.
  events.addEventListener("error", (e) => {
    endJob();
    showError(e.data ? JSON.parse(e.data).error : "lost the connection to the server");
  });
  events.addEventListener("cancelled", () => {
    endJob();
    showCancelled();
  });
}

async function showResult(created, file, scale) {
  showProgress(1, "Fetching the result…");
  const response = await fetch(created.result);
  if (!response.ok) return showError(await errorOf(response));
  const blob = await response.blob();
  // The page holds the image now: the server may forget it.
  fetch(`/v1/jobs/${created.id}`, {method: "DELETE"});
  const before = URL.createObjectURL(file), after = URL.createObjectURL(blob);
  objectUrls.push(before, after);
  $("before").src = before;
  $("after").src = after;
  try {
    await Promise.all([$("before").decode(), $("after").decode()]);
  } catch (e) {
    return showError("the result is not an image this browser can show");
  }
  const link = $("download");
  link.href = after;
  link.download = `${file.name.replace(/\.[^.]*$/, "")}_x${scale}.png`;
  const image = $("after");
  $("size").textContent =
    `${image.naturalWidth}×${image.naturalHeight}, ${Math.ceil(blob.size / 1024)} KiB`;
  $("result").hidden = false;
  setState("done");
}

$("cancel").addEventListener("click", async () => {
  cancelled = true;
  if (sending) sending.abort();
  if (!job) return;
  const id = job.id;
  endJob();
  await fetch(`/v1/jobs/${id}`, {method: "DELETE"});
  showCancelled();
});

// Leaving the page cancels its job: no one would see the result.
window.addEventListener("pagehide", () => {
  if (job) fetch(`/v1/jobs/${job.id}`, {method: "DELETE", keepalive: true});
});

// The slider shows the photo left of it and the result right of it.
function split() {
  const value = Number($("split").value);
  $("after").style.clipPath = `inset(0 0 0 ${value}%)`;
  $("split").setAttribute("aria-valuetext", `${value}% before, ${100 - value}% after`);
}
$("split").addEventListener("input", split);
// Dragging on the images moves it too.
$("compare").addEventListener("pointermove", (e) => {
  if (!e.buttons) return;
  const box = e.currentTarget.getBoundingClientRect();
  $("split").value = Math.round(((e.clientX - box.left) / box.width) * 100);
  split();
});

// A photo dropped anywhere on the page is the one chosen.
document.addEventListener("dragover", (e) => {
  e.preventDefault();
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
document.addEventListener("drop", (e) => {
  e.preventDefault();
  document.body.classList.remove("dragging");
  if (e.dataTransfer.files.length) fileInput.files = e.dataTransfer.files;
});

split();
loadModels().catch((e) => showError(`could not list the models: ${e.message}`));
