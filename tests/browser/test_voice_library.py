"""The issue's "done when" in Chromium: a DM saves their ElevenLabs key, uploads a sample with the
progress bar moving, hears it back through the presigned URL of the S3 store (moto's server over
HTTP, a second origin the page's CSP allows for media), clones it into a voice, picks that voice
for an NPC in the editor and previews it (synthesised with the cloned voice); a bad file's reason is shown at the field."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_islands import _npc, _owner
from tests.support.fake_elevenlabs import FAKE_MP3, FakeElevenLabs
from tests.test_voice_samples import BUCKET, make_audio, moto_server, s3  # noqa: F401 - fixtures

SHOTS = "/tmp/glyphoxa-shots"


@pytest.fixture
def xi_fake(monkeypatch, app, tmp_path):
    fake = FakeElevenLabs().start()
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "allow_platform_keys", False)
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path / "tts"))
    yield fake
    fake.stop()


def test_upload_play_clone_pick_and_preview(signed_in_page, live_server, page, app, s3, xi_fake, tmp_path):  # noqa: F811
    signed_in_page("Library DM")
    page.goto(live_server + "/settings/providers")
    slot = page.locator("#slot-tts")
    slot.locator("select[name=provider]").select_option("elevenlabs")
    slot.locator("input[name=base_url]").fill(xi_fake.base)
    slot.locator("input[name=api_key]").fill(xi_fake.api_key)
    slot.get_by_role("button", name="Save").click()
    expect(page.locator("#toasts .toast")).to_contain_text("saved")

    page.goto(live_server + "/voice-library")
    page.evaluate("""window.__marker = 'still here'; window.__progress = [];
        document.addEventListener('htmx:xhr:progress', function () {
          var p = document.querySelector('progress[data-progress]');
          window.__progress.push([p.hidden, p.value]);
        });""")
    # A bad file first: the reason at the field, swapped in place.
    bad = tmp_path / "long.wav"
    bad.write_bytes(make_audio(tmp_path, "long.wav", seconds=11))
    page.set_input_files("#sample-file", str(bad))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#file-error")).to_contain_text("at most 10 seconds")

    good = tmp_path / "innkeeper.wav"
    good.write_bytes(make_audio(tmp_path, "innkeeper.wav", seconds=3))
    page.fill("#sample-name", "Gravelly innkeeper")
    page.set_input_files("#sample-file", str(good))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#toasts .toast").last).to_contain_text("added to the voice library")
    card = page.locator(".voice-sample", has_text="Gravelly innkeeper")
    expect(card).to_be_visible()
    progress = page.evaluate("window.__progress")
    assert progress and progress[-1] == [False, 100], progress  # the bar was shown and reached the end

    # Play it back: the <audio> loads from the S3 store's presigned URL and really plays.
    src = card.locator("audio").get_attribute("src")
    assert src.startswith(s3.meta.endpoint_url) and "X-Amz-Signature" in src
    duration = page.evaluate("""() => new Promise((resolve, reject) => {
        const a = document.querySelector('.voice-sample audio');
        a.muted = true;
        a.addEventListener('playing', () => resolve(a.duration), {once: true});
        a.addEventListener('error', () => reject(new Error('audio error ' + (a.error && a.error.code))), {once: true});
        a.play().catch(reject);
    })""")
    assert 2.9 < duration < 3.1

    card.get_by_role("button", name="Clone voice").click()
    card = page.locator(".voice-sample", has_text="Gravelly innkeeper")
    expect(card.locator(".sample-status .badge-ok")).to_have_text("cloned")
    voice_id = xi_fake.clones[-1]["voice_id"]
    expect(card).to_contain_text(voice_id)
    assert page.evaluate("window.__marker") == "still here"
    page.screenshot(path=f"{SHOTS}-voice-library.png", full_page=True)

    # Pick it in the NPC editor's voice browser, then preview it.
    _, npc_id = _npc(app, _owner(app, "Library DM"), provider="elevenlabs", voice_id="21m00Tcm4TlvDq8ikWAM")
    page.goto(f"{live_server}/npcs/{npc_id}")
    page.locator("details.voice-picker summary").click()
    page.fill("#voice-q", "innkeeper")
    option = page.locator(f'#voice-results [data-voice-id="{voice_id}"]')
    expect(option).to_contain_text("Gravelly innkeeper")
    option.click()
    expect(page.locator("#voice_id")).to_have_value(voice_id)
    # The preview synthesises with the cloned voice at ElevenLabs (the double's audio bytes are a
    # stand-in frame, not a decodable recording, so we check the exchange rather than the sound).
    with page.expect_response(lambda r: r.url.endswith("/voice-preview")) as preview:
        page.get_by_role("button", name="▶ Play").click()
    assert preview.value.status == 200 and preview.value.headers["content-type"] == "audio/mpeg"
    assert preview.value.body() == FAKE_MP3
    assert [r["json"]["text"] for r in xi_fake.requests if r["path"] == f"/v1/text-to-speech/{voice_id}"]

    # And the library with a sample fits a 360 px phone without sideways scrolling.
    page.set_viewport_size({"width": 360, "height": 780})
    page.goto(live_server + "/voice-library")
    expect(page.locator(".voice-sample audio")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
