// Voice library: an upload progress bar. htmx sends the multipart form over XHR and fires
// htmx:xhr:progress on the form; the <progress data-progress> inside it shows how much went up.
// Without JavaScript the form posts normally (no bar).
(function () {
  "use strict";

  function bar(evt) {
    var form = evt.target && evt.target.closest ? evt.target.closest("form[data-upload-progress]") : null;
    return form ? form.querySelector("progress[data-progress]") : null;
  }

  document.addEventListener("htmx:xhr:progress", function (evt) {
    var progress = bar(evt);
    if (!progress || !evt.detail || !evt.detail.lengthComputable) return;
    progress.hidden = false;
    progress.value = Math.round((evt.detail.loaded / evt.detail.total) * 100);
  });

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var progress = bar(evt);
    if (progress) {
      progress.value = 0;
      progress.hidden = false;
    }
  });
})();
