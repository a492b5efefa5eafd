// Voice island of the NPC editor (Alpine component `voicePreview` on the Voice fieldset, Web
// Audio). Without JavaScript "Play" is a real submit button with formaction: the browser opens
// the audio in a new tab, and pitch/speed are number inputs. With JavaScript we POST the editor's
// voice fields, decode the audio and play it; the pitch and speed sliders (and the number inputs)
// retune the playing sound at once (detune in semitones, playbackRate), without a new request.
// Errors (including the 5-per-minute rate limit) are shown in the island and as a toast.
(function () {
  "use strict";

  var FIELDS = ["csrf_token", "voice_provider", "voice_id", "pitch_shift", "speed_factor", "preview_text"];
  var ctx = null;

  function audioContext() {
    if (!ctx) {
      var AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return null;
      ctx = new AC();
    }
    return ctx;
  }

  function num(value, fallback) {
    var v = parseFloat(String(value == null ? "" : value).replace(",", "."));
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

  function errorMessage(resp) {
    var t = window.glyphoxa.t;
    var fallback = resp.status === 429
      ? t("That's 5 previews this minute. Wait a moment, then try again.")
      : t("The preview didn't work (error %(status)s). Try again in a moment.", { status: resp.status });
    var header = resp.headers.get("HX-Trigger");
    if (header) {
      try {
        var toast = JSON.parse(header).toast;
        if (toast && toast.message) return toast.message;
      } catch (e) { /* not JSON */ }
    }
    return fallback;
  }

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("voicePreview", function () {
      var source = null; // the playing AudioBufferSourceNode: kept out of Alpine's reactive state

      return {
        pitch: "0",
        speed: "0",
        busy: false,
        playing: false,
        statusText: "",
        statusError: false,
        sliders: true,

        init: function () {
          if (this.$refs.pitch) this.pitch = this.$refs.pitch.value;
          if (this.$refs.speed) this.speed = this.$refs.speed.value;
          if (this.$refs.status) this.statusText = this.$refs.status.textContent.trim();
        },
        destroy: function () { this.stop(); }, // the editor was swapped (saved): silence it

        // ---- pitch and speed: number inputs (the form fields) and sliders, kept in step ----------
        typePitch: function (evt) { this.pitch = evt.target.value; this.retune(); },
        typeSpeed: function (evt) { this.speed = evt.target.value; this.retune(); },
        slidePitch: function (evt) { this.pitch = evt.target.value; this.$refs.pitch.value = evt.target.value; this.retune(); },
        slideSpeed: function (evt) { this.speed = evt.target.value; this.$refs.speed.value = evt.target.value; this.retune(); },
        get pitchSlider() { return String(Math.max(-10, Math.min(10, num(this.pitch, 0)))); },
        get speedSlider() { return String(Math.max(0, Math.min(2, num(this.speed, 0)))); },
        get slidersHidden() { return !this.sliders; },
        retune: function () {
          if (source) applySettings(source, num(this.pitch, 0), num(this.speed, 0));
        },
        // What the playing sound is set to right now (null when silent).
        playbackParams: function () {
          return source ? { detune: source.detune ? source.detune.value : 0, rate: source.playbackRate.value } : null;
        },

        // ---- playing ----------------------------------------------------------------------------
        get stopHidden() { return !this.playing; },
        get spinnerHidden() { return !this.busy; },
        get busyText() { return this.busy ? "true" : "false"; },
        get statusClass() { return this.statusError ? "error" : ""; },
        say: function (message, isError) { this.statusText = message; this.statusError = !!isError; },

        stop: function () {
          if (!source) return;
          var s = source;
          source = null;
          try { s.stop(); } catch (e) { /* already stopped */ }
          this.playing = false;
        },
        stopClicked: function () { this.stop(); this.say(window.glyphoxa.t("Stopped.")); },

        play: function () {
          if (this.busy) return;
          var self = this;
          var ac = audioContext();
          if (!ac) { this.say(window.glyphoxa.t("This browser can't play previews (no Web Audio)."), true); return; }
          if (ac.state === "suspended") ac.resume(); // inside the click: allowed to start audio
          this.stop();
          var button = this.$refs.play;
          var all = new FormData(button.form);
          var body = new FormData();
          FIELDS.forEach(function (k) { body.append(k, all.get(k) || ""); });
          this.busy = true;
          this.say(window.glyphoxa.t("Synthesizing the preview…"));
          var cached = false;
          fetch(button.getAttribute("formaction"), {
            method: "POST", body: body, credentials: "same-origin",
            headers: { "HX-Request": "true" } // errors come back as a toast message, not a page
          }).then(function (resp) {
            if (!resp.ok) { throw new Error(errorMessage(resp)); }
            cached = resp.headers.get("X-Preview-Cache") === "hit";
            return resp.arrayBuffer();
          }).then(function (data) {
            return new Promise(function (resolve, reject) { ac.decodeAudioData(data, resolve, reject); });
          }).then(function (buffer) {
            var node = ac.createBufferSource();
            node.buffer = buffer;
            applySettings(node, num(self.pitch, 0), num(self.speed, 0));
            node.connect(ac.destination);
            node.onended = function () {
              if (source === node) {
                source = null;
                self.playing = false;
                self.say(window.glyphoxa.t("Done. Change the voice, pitch or speed and play again."));
              }
            };
            source = node;
            node.start();
            self.playing = true;
            self.say(cached
              ? window.glyphoxa.t("Playing (from cache)… Move the sliders to hear the change.")
              : window.glyphoxa.t("Playing… Move the sliders to hear the change."));
          }).catch(function (err) {
            var msg = err && err.message && !/decode|EncodingError/i.test(err.name || "") ? err.message : window.glyphoxa.t("The audio could not be played.");
            self.say(msg, true);
            window.glyphoxa.toast(msg, "error", "voice-preview");
          }).then(function () { self.busy = false; });
        }
      };
    });
  });
})();
