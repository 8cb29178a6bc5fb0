// Loa console: the announce form. It records from the browser's microphone
// (MediaRecorder) into the form's file input, showing the recording's
// length, and chooses the "when" that goes with the field being filled.
// The form works without it: upload a file, choose a recording from the
// library, or type text to speak.
"use strict";
(function () {
  const form = document.getElementById("announce-form");
  if (!form) {
    return;
  }
  const body = document.body;
  const fileInput = document.getElementById("file");
  const send = document.getElementById("send");
  const sendError = document.getElementById("send-error");

  // Filling in the date-time or a rule chooses that "when".
  const choose = (value) => {
    const radio = form.querySelector('input[name=when][value="' + value + '"]');
    if (radio) {
      radio.checked = true;
    }
  };
  const at = document.getElementById("at");
  const preset = document.getElementById("preset");
  const cron = document.getElementById("cron");
  at.addEventListener("input", () => {
    if (at.value) {
      choose("at");
    }
  });
  preset.addEventListener("change", () => {
    cron.value = preset.value;
    if (preset.value) {
      choose("repeat");
    }
  });
  cron.addEventListener("input", () => {
    const spec = cron.value.trim();
    if (spec) {
      choose("repeat");
    }
    const match = Array.from(preset.options).find((o) => o.value !== "" && o.value === spec);
    preset.value = match ? match.value : "";
  });

  const showError = (text) => {
    sendError.textContent = text;
    sendError.hidden = false;
    send.disabled = false;
    sendError.scrollIntoView({ block: "center" });
  };
  // Back from the next page: the button works again.
  window.addEventListener("pageshow", () => { send.disabled = false; });

  // The microphone, where the browser has one and lets the page use it.
  const rec = document.getElementById("recorder");
  let recorder = null; // while recording
  let recorded = null; // the File of the last recording
  let inInput = false; // whether the file input holds it
  let forget = () => {}; // drops the recording, if any
  const words = rec ? rec.dataset : {};
  const status = document.getElementById("record-status");

  if (rec && window.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    rec.hidden = false;
    const button = document.getElementById("record");
    const time = document.getElementById("record-time");
    const preview = document.getElementById("record-preview");
    const types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4", "audio/webm", "audio/ogg"];
    const extension = (type) => (type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm");
    const two = (n) => String(n).padStart(2, "0");
    const clock = (ms) => {
      const s = Math.floor(ms / 1000);
      return Math.floor(s / 60) + ":" + two(s % 60);
    };
    let chunks = [];
    let started = 0;
    let timer = 0;
    let stream = null;
    let starting = false;

    const finish = () => {
      clearInterval(timer);
      const length = Date.now() - started;
      stream.getTracks().forEach((t) => t.stop());
      const type = (recorder.mimeType || (chunks[0] && chunks[0].type) || "audio/webm").split(";")[0];
      const blob = new Blob(chunks, { type: type });
      const d = new Date();
      const name = "ghi-am-" + d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) +
        "-" + two(d.getHours()) + two(d.getMinutes()) + two(d.getSeconds()) + "." + extension(type);
      recorded = new File([blob], name, { type: type });
      inInput = false;
      try {
        const dt = new DataTransfer();
        dt.items.add(recorded);
        fileInput.files = dt.files;
        inInput = fileInput.files.length === 1 && fileInput.files[0].name === name;
      } catch (e) {
        // An older browser: the form is sent with fetch instead (below).
      }
      time.textContent = clock(length);
      if (preview.src) {
        URL.revokeObjectURL(preview.src);
      }
      preview.src = URL.createObjectURL(blob);
      preview.hidden = false;
      button.textContent = words.again;
      button.setAttribute("aria-pressed", "false");
      status.textContent = words.recorded;
      document.getElementById("media").value = "";
      recorder = null;
    };

    const start = async () => {
      starting = true;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch (e) {
        status.textContent = words.noMic;
        return;
      } finally {
        starting = false;
      }
      const type = types.find((t) => MediaRecorder.isTypeSupported(t));
      try {
        recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
      } catch (e) {
        stream.getTracks().forEach((t) => t.stop());
        status.textContent = words.noMic;
        return;
      }
      chunks = [];
      recorder.addEventListener("dataavailable", (e) => {
        if (e.data && e.data.size) {
          chunks.push(e.data);
        }
      });
      recorder.addEventListener("stop", finish);
      recorder.start(1000);
      started = Date.now();
      time.textContent = clock(0);
      timer = setInterval(() => { time.textContent = clock(Date.now() - started); }, 250);
      button.textContent = words.stop;
      button.setAttribute("aria-pressed", "true");
      status.textContent = words.recording;
      preview.hidden = true;
    };

    button.addEventListener("click", () => {
      if (recorder && recorder.state === "recording") {
        recorder.stop();
      } else if (!recorder && !starting) {
        start();
      }
    });

    forget = () => {
      if (recorded) {
        recorded = null;
        inInput = false;
        preview.hidden = true;
        status.textContent = "";
        time.textContent = clock(0);
        button.textContent = words.record;
      }
    };
  }

  // The latest choice of sound wins: a file (or a recording) or one from
  // the library, never both.
  const media = document.getElementById("media");
  fileInput.addEventListener("change", () => {
    forget();
    if (fileInput.files.length) {
      media.value = "";
    }
  });
  media.addEventListener("change", () => {
    if (media.value) {
      forget();
      fileInput.value = "";
    }
  });

  form.addEventListener("submit", (e) => {
    if (recorder && recorder.state === "recording") {
      // Sent while recording: stop, then send with the recording.
      e.preventDefault();
      recorder.addEventListener("stop", () => {
        if (form.requestSubmit) {
          form.requestSubmit(send);
        } else {
          form.submit();
        }
      }, { once: true });
      recorder.stop();
      return;
    }
    sendError.hidden = true;
    if (!recorded || inInput) {
      // The browser sends the form (and the file input) itself.
      setTimeout(() => { send.disabled = true; }, 0);
      return;
    }
    // The recording could not go into the file input: send the form with
    // it, the CSRF token in the header as htmx does, and follow the answer.
    e.preventDefault();
    const data = new FormData(form);
    data.set("file", recorded, recorded.name);
    send.disabled = true;
    status.textContent = words.sending;
    fetch(form.action, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-CSRF-Token": body.dataset.csrf || "" },
    }).then((res) => {
      if (res.redirected) {
        window.location.assign(res.url);
        return null;
      }
      return res.text().then((html) => {
        const page = new DOMParser().parseFromString(html, "text/html");
        const problem = page.getElementById("error");
        status.textContent = words.recorded;
        showError(problem ? problem.textContent : words.failed);
      });
    }).catch(() => {
      status.textContent = words.recorded;
      showError(words.failed);
    });
  });
})();
