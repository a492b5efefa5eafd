// Voice preview island (Web Audio). The "Play" button is a real submit button with formaction,
// so without JavaScript the browser opens the audio in a new tab. With JavaScript we POST the
// editor's voice fields, decode the audio and play it, applying the NPC's pitch shift (detune,
// in semitones) and speed factor (playbackRate) live from the form. Errors (including the
// 5-per-minute rate limit) are shown in the island and as a toast.
(function () {
  "use strict";

  var ctx = null;
  var playing = null; // {source, island}
  var busy = false;
  var FIELDS = ["csrf_token", "voice_provider", "voice_id", "pitch_shift", "speed_factor", "preview_text"];

  function audioContext() {
    if (!ctx) {
      var AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return null;
      ctx = new AC();
    }
    return ctx;
  }

  function part(island, name) { return island.querySelector("[data-preview-" + name + "]"); }

  function status(island, message, isError) {
    var out = part(island, "status");
    out.textContent = message;
    out.classList.toggle("error", !!isError);
  }

  function setBusy(island, on) {
    busy = on;
    island.setAttribute("aria-busy", on ? "true" : "false");
    part(island, "play").disabled = on;
    part(island, "spinner").hidden = !on;
  }

  function num(id, fallback) {
    var input = document.getElementById(id);
    var v = input ? parseFloat(String(input.value).replace(",", ".")) : NaN;
    return isFinite(v) ? v : fallback;
  }

  // pitch: semitones in [-10, 10]; speed: 0 means "engine default" (1.0), else [0.5, 2.0].
  function applySettings(source, pitch, speed) {
    pitch = Math.max(-10, Math.min(10, pitch));
    speed = speed === 0 ? 1 : Math.max(0.5, Math.min(2, speed));
    if (source.detune) {
      source.detune.value = pitch * 100;
      source.playbackRate.value = speed;
    } else { // no detune (older Safari): fold the pitch into the rate
      source.playbackRate.value = speed * Math.pow(2, pitch / 12);
    }
  }

  function stop() {
    if (!playing) return;
    var island = playing.island;
    try { playing.source.stop(); } catch (e) { /* already stopped */ }
    playing = null;
    part(island, "stop").hidden = true;
  }

  function errorMessage(resp) {
    var fallback = resp.status === 429
      ? "That's 5 previews this minute. Wait a moment, then try again."
      : "The preview didn't work (error " + resp.status + "). Try again in a moment.";
    var header = resp.headers.get("HX-Trigger");
    if (header) {
      try {
        var toast = JSON.parse(header).toast;
        if (toast && toast.message) return toast.message;
      } catch (e) { /* not JSON */ }
    }
    return fallback;
  }

  function play(island, buttonEl) {
    if (busy) return;
    var ac = audioContext();
    if (!ac) { status(island, "This browser can't play previews (no Web Audio).", true); return; }
    if (ac.state === "suspended") ac.resume(); // inside the click: allowed to start audio
    stop();
    var form = buttonEl.form;
    var all = new FormData(form);
    var body = new FormData();
    FIELDS.forEach(function (k) { body.append(k, all.get(k) || ""); });
    setBusy(island, true);
    status(island, "Synthesizing the preview…");
    var pitch = 0, speed = 0, cached = false;
    fetch(buttonEl.getAttribute("formaction"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "HX-Request": "true" } // errors come back as a toast message, not a page
    }).then(function (resp) {
      if (!resp.ok) { throw new Error(errorMessage(resp)); }
      pitch = parseFloat(resp.headers.get("X-Voice-Pitch") || "0") || 0;
      speed = parseFloat(resp.headers.get("X-Voice-Speed") || "0") || 0;
      cached = resp.headers.get("X-Preview-Cache") === "hit";
      return resp.arrayBuffer();
    }).then(function (data) {
      return new Promise(function (resolve, reject) { ac.decodeAudioData(data, resolve, reject); });
    }).then(function (buffer) {
      var source = ac.createBufferSource();
      source.buffer = buffer;
      applySettings(source, pitch, speed);
      source.connect(ac.destination);
      source.onended = function () {
        if (playing && playing.source === source) { playing = null; part(island, "stop").hidden = true; status(island, "Done. Change the voice, pitch or speed and play again."); }
      };
      playing = { source: source, island: island };
      source.start();
      part(island, "stop").hidden = false;
      status(island, "Playing" + (cached ? " (from cache)" : "") + "…");
    }).catch(function (err) {
      var msg = err && err.message && !/decode|EncodingError/i.test(err.name || "") ? err.message : "The audio could not be played.";
      status(island, msg, true);
      if (window.glyphoxaToast) window.glyphoxaToast(msg, "error");
    }).then(function () { setBusy(island, false); });
  }

  document.addEventListener("click", function (evt) {
    var playBtn = evt.target.closest && evt.target.closest("[data-preview-play]");
    if (playBtn) {
      evt.preventDefault();
      play(playBtn.closest("[data-voice-preview]"), playBtn);
      return;
    }
    if (evt.target.closest && evt.target.closest("[data-preview-stop]")) {
      evt.preventDefault();
      var island = evt.target.closest("[data-voice-preview]");
      stop();
      status(island, "Stopped.");
    }
  });

  // Pitch and speed apply live while a preview plays.
  document.addEventListener("input", function (evt) {
    if (!playing || (evt.target.id !== "pitch_shift" && evt.target.id !== "speed_factor")) return;
    applySettings(playing.source, num("pitch_shift", 0), num("speed_factor", 0));
  });

  // Enter in the preview line plays it instead of saving the whole form.
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Enter" || evt.target.id !== "preview_text") return;
    var island = evt.target.closest("[data-voice-preview]");
    if (!island) return;
    evt.preventDefault();
    play(island, part(island, "play"));
  });

  // A swap of the editor (after saving) replaces the island: stop what it was playing.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (playing && evt.detail.target && evt.detail.target.contains(playing.island)) stop();
  });
})();
