// The phone's scanner for agencies' requests: the camera reads the agency's QR code (the browser's own
// BarcodeDetector where it has one, else the vendored jsQR on frames drawn to a canvas), or the person
// pastes the request code; either way the phone goes on to /m/sp?sp_ticket=…, which asks the server.
(function () {
  "use strict";

  const { t, showStatus } = window.MoCert;
  const root = document.getElementById("phone-scan");
  if (!root) return;
  const byId = (id) => document.getElementById(id);
  const start = byId("scan-start");
  const stop = byId("scan-stop");
  const video = byId("scan-video");
  const status = byId("scan-status");
  const form = byId("scan-form");
  const input = byId("scan-ticket");
  const inputError = byId("scan-ticket-error");

  // An sp_ticket: base64url of its JSON, ".", base64url of that part's SHA-256 (43 characters). The server
  // checks the rest; this only keeps a scanned web address or a cut copy from going there.
  const TICKET = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/;
  const SCAN_EVERY_MS = 200;
  const FRAME_WIDTH = 640; // frames are scaled down to this for jsQR: enough for a QR code filling the view
  let stream = null;
  let timer = null;

  // The page a scanned or pasted text leads to: a bare ticket, or this server's /m/sp link carrying one
  // (an MWEB2APP link keeps its rtn_url and rtn_val, which the request page has the server check). Else null.
  function requestUrl(text) {
    const cleaned = String(text || "").trim();
    let ticket;
    let params = null;
    if (cleaned.includes("://")) {
      let link;
      try {
        link = new URL(cleaned);
      } catch (err) {
        return null;
      }
      if (link.origin !== window.location.origin || !/\/m\/sp\/?$/.test(link.pathname)) return null;
      params = link.searchParams;
      ticket = params.get("sp_ticket") || "";
    } else {
      ticket = cleaned.replace(/\s+/g, ""); // a code copied across lines
    }
    if (!TICKET.test(ticket)) return null;
    const target = new URL(root.dataset.requestUrl, window.location.href);
    target.searchParams.set("sp_ticket", ticket);
    ["rtn_url", "rtn_val"].forEach((name) => {
      if (params && params.get(name)) target.searchParams.set(name, params.get(name));
    });
    return target.href;
  }

  function go(url) {
    stopCamera();
    showStatus(status, t("opening"), "info");
    window.location.assign(url);
  }

  // -- pasting --------------------------------------------------------------------------------------------

  function showInputError(text) {
    inputError.textContent = text || "";
    inputError.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.value.trim()) {
      showInputError(t("pasteEmpty"));
      input.focus();
      return;
    }
    const url = requestUrl(input.value);
    if (!url) {
      showInputError(t("pasteInvalid"));
      input.focus();
      return;
    }
    showInputError("");
    go(url);
  });

  // -- the camera -----------------------------------------------------------------------------------------

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = reject;
      document.head.append(script);
    });
  }

  // A function from the video to the text of a QR code in its current frame, or null.
  async function qrReader() {
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes("qr_code")) {
          const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
          return async (source) => {
            const codes = await detector.detect(source);
            return codes.length ? codes[0].rawValue : null;
          };
        }
      } catch (err) {
        // No usable detector here after all: jsQR below.
      }
    }
    if (!window.jsQR) await loadScript(root.dataset.decoderUrl);
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    return async (source) => {
      if (!source.videoWidth) return null;
      const scale = Math.min(1, FRAME_WIDTH / source.videoWidth);
      canvas.width = Math.round(source.videoWidth * scale);
      canvas.height = Math.round(source.videoHeight * scale);
      context.drawImage(source, 0, 0, canvas.width, canvas.height);
      const frame = context.getImageData(0, 0, canvas.width, canvas.height);
      const code = window.jsQR(frame.data, frame.width, frame.height, { inversionAttempts: "attemptBoth" });
      return code ? code.data : null;
    };
  }

  function noCamera(reason) {
    stopCamera();
    showStatus(status, reason === "NotAllowedError" ? t("cameraRefused") : t("noCamera"), "error");
    input.focus();
  }

  function stopCamera() {
    clearTimeout(timer);
    timer = null;
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    video.srcObject = null;
    video.hidden = stop.hidden = true;
    start.hidden = false;
    start.disabled = false;
  }

  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      noCamera("unavailable"); // an old browser, or a page not served over HTTPS
      return;
    }
    start.disabled = true;
    showStatus(status, t("startingCamera"), "info");
    let read;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
      video.srcObject = stream;
      await video.play();
      read = await qrReader(); // only now: no decoder is fetched for a phone without a camera
    } catch (err) {
      noCamera(err && err.name);
      return;
    }
    start.hidden = true;
    video.hidden = stop.hidden = false;
    showStatus(status, t("pointCamera"), "info");
    let warned = false;
    const scan = async () => {
      if (!stream) return;
      let text = null;
      try {
        text = await read(video);
      } catch (err) {
        text = null; // a frame not ready yet
      }
      if (!stream) return;
      if (text !== null) {
        const url = requestUrl(text);
        if (url) {
          go(url);
          return;
        }
        if (!warned) showStatus(status, t("notARequest"), "error");
        warned = true;
      }
      timer = setTimeout(scan, SCAN_EVERY_MS);
    };
    scan();
  }

  start.addEventListener("click", startCamera);
  stop.addEventListener("click", () => {
    stopCamera();
    showStatus(status, "");
  });
  window.addEventListener("pagehide", stopCamera);
})();
