"""The voice library: real audio made here with sox (and encoded to mp3 with ffmpeg), probed by
ffprobe/ffmpeg; stored in a local directory and in S3 served by moto's standalone server over
HTTP; played back through the signed/presigned URL; deleted without orphans when storage fails
mid-way; cloned into a voice against the local ElevenLabs double with the table's own key."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from datetime import timedelta

import boto3
import pytest
import requests
from bs4 import BeautifulSoup
from moto.server import ThreadedMotoServer
from sqlalchemy import select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import VoiceSample
from tests.conftest import soup
from tests.test_business_metrics import scrape
from tests.test_voice import fake_xi  # noqa: F401 - the ElevenLabs double

pytestmark = pytest.mark.skipif(
    not os.environ.get("CI") and not (shutil.which("sox") and shutil.which("ffprobe")),
    reason="sox and ffmpeg are needed (apt-get install sox ffmpeg)",
)

BUCKET = "glyphoxa-voice-test"


def make_audio(tmp_path, name: str, *, seconds: float = 2.0, rate: int = 16000, channels: int = 1) -> bytes:
    """A real recording: sox synthesises a tone (wav); ffmpeg encodes .mp3 from it."""
    wav = tmp_path / f"{name}.src.wav"
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            str(rate),
            "-c",
            str(channels),
            "-b",
            "16",
            str(wav),
            "synth",
            str(seconds),
            "sine",
            "220-440",
        ],
        check=True,
        capture_output=True,
    )
    if name.endswith(".mp3"):
        mp3 = tmp_path / name
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-codec:a", "libmp3lame", "-b:a", "64k", str(mp3)],
            check=True,
            capture_output=True,
        )
        return mp3.read_bytes()
    return wav.read_bytes()


def upload(b, data: bytes, filename: str, name: str = "Innkeeper", htmx: bool = False):
    return b.post(
        "/voice-library",
        {"name": name, "file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
        htmx=htmx,
    )


def rows(app, tenant_id: str | None = None) -> list[VoiceSample]:
    with app.app_context():
        q = select(VoiceSample)
        if tenant_id:
            q = q.where(VoiceSample.tenant_id == tenant_id)
        out = list(db.session.execute(q).scalars())
        for r in out:
            db.session.expunge(r)
        return out


@pytest.fixture
def local_store(monkeypatch, tmp_path):
    root = tmp_path / "samples"
    monkeypatch.delenv("S3_BUCKET", raising=False)
    monkeypatch.setenv("VOICE_SAMPLES_DIR", str(root))
    return root


@pytest.fixture(scope="module")
def moto_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_server, monkeypatch):
    for k, v in {
        "S3_BUCKET": BUCKET,
        "S3_ENDPOINT_URL": moto_server,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": "testing",
        "S3_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(k, v)
    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        client.create_bucket(Bucket=BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return client


def keys(client) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


# ---- local directory -----------------------------------------------------------------------------


def test_upload_wav_and_play_back_through_the_signed_url(app, as_role, local_store, tmp_path):
    b = as_role("dm")
    data = make_audio(tmp_path, "tone.wav", seconds=2.5)
    before = scrape(app, "glyphoxa_web_voice_uploads_total", tenant_id=b.user.tenant_id, status="accepted")
    resp = upload(b, data, "tone.wav", name="Gravelly innkeeper")
    assert resp.status_code == 303
    [row] = rows(app, b.user.tenant_id)
    assert (row.status, row.format, row.file_size, row.deleting_at) == ("uploaded", "wav", len(data), None)
    assert 2400 <= row.duration_ms <= 2600
    assert row.file_key == f"voice-samples/{b.user.tenant_id}/{row.id}.wav"
    assert (local_store / row.file_key).read_bytes() == data
    assert scrape(app, "glyphoxa_web_voice_uploads_total", tenant_id=b.user.tenant_id, status="accepted") == before + 1

    page = soup(b.get("/voice-library"))
    card = page.select_one(f"#sample-{row.id}")
    assert "Gravelly innkeeper" in card.text and "not cloned" in card.text
    url = card.select_one("audio")["src"]
    assert url.startswith(f"/voice-library/{row.id}/audio?") and "sig=" in url and "expires=" in url
    played = b.get(url)
    assert played.status_code == 200 and played.mimetype == "audio/wav" and played.data == data
    # A tampered or expired link is refused; so is the right link without a sign-in.
    assert b.get(url.replace("sig=", "sig=0")).status_code == 403
    from glyphoxa_htmx.adapters import storage

    exp, sig = storage.sign(app.config["SECRET_KEY"], b.user.tenant_id, row.id, ttl=-5)
    assert b.get(f"/voice-library/{row.id}/audio?expires={exp}&sig={sig}").status_code == 403
    assert app.test_client().get(url).status_code in (302, 303, 401)


def test_mp3_upload_is_accepted(app, as_role, local_store, tmp_path):
    b = as_role("dm")
    resp = upload(b, make_audio(tmp_path, "voice.mp3", seconds=3, rate=44100, channels=2), "voice.mp3", name="")
    assert resp.status_code == 303
    [row] = rows(app, b.user.tenant_id)
    assert row.format == "mp3" and row.name == "voice" and 2900 <= row.duration_ms <= 3200


def _rejections(tmp_path):
    mp3 = make_audio(tmp_path, "real.mp3")
    return {
        "mismatched type": (mp3, "sneaky.wav", "is MP3, not the .wav"),
        "corrupt": (os.urandom(40_000), "noise.wav", "could not be read as audio"),
        "truncated header": (make_audio(tmp_path, "cut.wav")[:30], "cut.wav", "could not be read as audio"),
        "too long": (make_audio(tmp_path, "long.wav", seconds=12), "long.wav", "12.0 seconds long; at most 10"),
        "too big": (b"RIFF" + os.urandom(10 * 1024 * 1024 + 10), "huge.wav", "larger than 10 MB"),
        "not wav or mp3": (make_audio(tmp_path, "x.wav"), "voice.ogg", "Upload a .wav or .mp3 file."),
        "empty": (b"", "empty.wav", "The file is empty."),
        "too many channels": (
            make_audio(tmp_path, "six.wav", channels=6),
            "six.wav",
            "6 channels; upload mono or stereo",
        ),
        "odd sample rate": (
            make_audio(tmp_path, "odd.wav", rate=7000),
            "odd.wav",
            "sample rate 7000 Hz is not supported",
        ),
    }


def test_each_rejection_reason_is_shown_at_the_field(app, as_role, local_store, tmp_path):
    b = as_role("dm")
    tenant = b.user.tenant_id
    for label, (data, filename, message) in _rejections(tmp_path).items():
        before = scrape(app, "glyphoxa_web_voice_uploads_total", tenant_id=tenant, status="rejected")
        for htmx in (False, True):
            resp = upload(b, data, filename, htmx=htmx)
            assert resp.status_code == 422, label
            doc = soup(resp)
            err = doc.select_one("#file-error")
            assert err is not None and message in err.text, (
                label,
                err.text if err else resp.get_data(as_text=True)[:500],
            )
            assert doc.select_one("#sample-file")["aria-invalid"] == "true"
            if htmx:
                assert doc.select_one("html") is None  # the block only
        assert scrape(app, "glyphoxa_web_voice_uploads_total", tenant_id=tenant, status="rejected") == before + 2, label
    assert rows(app, tenant) == []
    assert not local_store.exists() or not any(p.is_file() for p in local_store.rglob("*"))


def test_request_larger_than_the_app_reads_is_still_a_field_message(app, as_role, local_store):
    b = as_role("dm")
    resp = upload(b, b"\0" * (13 * 1024 * 1024), "huge.mp3")
    assert resp.status_code == 422
    assert "larger than 10 MB" in soup(resp).select_one("#file-error").text


def test_viewer_cannot_upload_and_sees_no_form(app, as_role, local_store, tmp_path):
    b = as_role("viewer")
    assert upload(b, make_audio(tmp_path, "v.wav"), "v.wav").status_code == 403
    assert soup(b.get("/voice-library")).select_one("#sample-file") is None
    assert rows(app, b.user.tenant_id) == []


def test_other_tenant_cannot_reach_a_sample_or_its_url(app, as_role, local_store, tmp_path):
    owner = as_role("dm")
    assert upload(owner, make_audio(tmp_path, "mine.wav"), "mine.wav").status_code == 303
    [row] = rows(app, owner.user.tenant_id)
    url = soup(owner.get("/voice-library")).select_one(f"#sample-{row.id} audio")["src"]
    stranger = as_role("tenant_owner")
    assert stranger.get(url).status_code == 404  # the owner's valid signed URL
    assert stranger.post(f"/voice-library/{row.id}/delete", htmx=True).status_code == 404
    assert stranger.post(f"/voice-library/{row.id}/clone", htmx=True).status_code == 404
    assert row.id not in stranger.get("/voice-library").get_data(as_text=True)
    assert [r.id for r in rows(app, owner.user.tenant_id)] == [row.id]
    assert (local_store / row.file_key).exists()


def test_delete_needs_confirmation_then_removes_object_and_row(app, as_role, local_store, tmp_path):
    b = as_role("dm")
    upload(b, make_audio(tmp_path, "d.wav"), "d.wav", name="Doomed")
    [row] = rows(app, b.user.tenant_id)
    ask = b.post(f"/voice-library/{row.id}/delete")
    assert ask.status_code == 200 and "Delete the voice sample" in ask.get_data(as_text=True)
    assert len(rows(app, b.user.tenant_id)) == 1
    done = b.post(f"/voice-library/{row.id}/delete", {"confirmed": "1"})
    assert done.status_code == 303
    assert rows(app, b.user.tenant_id) == [] and not (local_store / row.file_key).exists()


# ---- S3 (moto's standalone server over HTTP) -------------------------------------------------------


def test_s3_upload_presigned_playback_and_delete(app, as_role, s3, tmp_path):
    b = as_role("dm")
    data = make_audio(tmp_path, "s3.mp3", seconds=4)
    assert upload(b, data, "s3.mp3", name="Harbour master").status_code == 303
    [row] = rows(app, b.user.tenant_id)
    assert keys(s3) == [f"voice-samples/{b.user.tenant_id}/{row.id}.mp3"] == [row.file_key]
    assert s3.head_object(Bucket=BUCKET, Key=row.file_key)["ContentType"] == "audio/mpeg"
    page = b.get("/voice-library")
    url = soup(page).select_one(f"#sample-{row.id} audio")["src"]
    assert url.startswith(os.environ["S3_ENDPOINT_URL"]) and "X-Amz-Expires=3600" in url and "X-Amz-Signature=" in url
    assert os.environ["S3_ENDPOINT_URL"] in page.headers["Content-Security-Policy"]  # media-src allows the store
    got = requests.get(url, timeout=10)
    assert got.status_code == 200 and got.content == data
    assert b.post(f"/voice-library/{row.id}/delete", htmx=True).status_code == 200
    assert keys(s3) == [] and rows(app, b.user.tenant_id) == []


def test_storage_down_on_upload_saves_nothing(app, as_role, s3, moto_server, tmp_path, monkeypatch):
    b = as_role("dm")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")
    before = scrape(app, "glyphoxa_web_voice_uploads_total", tenant_id=b.user.tenant_id, status="failed")
    resp = upload(b, make_audio(tmp_path, "down.wav"), "down.wav", htmx=True)
    assert resp.status_code == 503
    assert keys(s3) == [] and soup(b.get("/voice-library")).select(".voice-sample") == []
    # The row written before storing stays marked "not finished" (storage may have kept a partial
    # write): cleanup removes it once storage answers again.
    [marked] = rows(app, b.user.tenant_id)
    assert marked.deleting_at is not None
    assert scrape(app, "glyphoxa_web_voice_uploads_total", tenant_id=b.user.tenant_id, status="failed") == before + 1
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_server)
    from glyphoxa_htmx.services import voice_samples

    with app.app_context():
        assert voice_samples.cleanup(grace=timedelta(0)) == (1, 0)
    assert rows(app, b.user.tenant_id) == [] and keys(s3) == []


def test_delete_when_storage_fails_midway_is_finished_by_cleanup(app, as_role, s3, moto_server, tmp_path, monkeypatch):
    b = as_role("dm")
    upload(b, make_audio(tmp_path, "keep.wav"), "keep.wav", name="Stubborn")
    [row] = rows(app, b.user.tenant_id)
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")  # the store goes away
    gone = b.post(f"/voice-library/{row.id}/delete", htmx=True)
    assert gone.status_code == 200, gone.get_data(as_text=True)[:300]
    # Hidden at once, but the row stays (marked) because its object is still there: no orphan.
    assert soup(b.get("/voice-library")).select_one(f"#sample-{row.id}") is None
    [kept] = rows(app, b.user.tenant_id)
    assert kept.deleting_at is not None and keys(s3) == [row.file_key]
    assert b.get(f"/voice-library/{row.id}/audio").status_code == 404
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_server)  # back
    from glyphoxa_htmx.services import voice_samples

    with app.app_context():
        assert voice_samples.cleanup(grace=timedelta(0)) == (1, 0)
    assert keys(s3) == [] and rows(app, b.user.tenant_id) == []


def test_abandoned_upload_row_is_cleaned_with_its_object(app, as_role, s3, tmp_path):
    """A row still marked "not finished" (the process died between storing and committing) is an
    upload that never finished: cleanup removes its object and then the row."""
    b = as_role("dm")
    upload(b, make_audio(tmp_path, "half.wav"), "half.wav")
    [row] = rows(app, b.user.tenant_id)
    from glyphoxa_htmx.services import voice_samples

    with app.app_context():
        db.session.get(VoiceSample, row.id).deleting_at = db.func.now() - timedelta(minutes=5)
        db.session.commit()
        assert voice_samples.cleanup() == (1, 0)
    assert keys(s3) == [] and rows(app) == []


# ---- cloning ---------------------------------------------------------------------------------------


@pytest.fixture
def xi_key(fake_xi, monkeypatch, app):  # noqa: F811
    """The table's own ElevenLabs key (saved on the providers page, base URL = the double); the
    operator's platform key is not allowed."""
    fake_xi.requests.clear()
    fake_xi.clone_fail_next = 0
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "allow_platform_keys", False)
    from glyphoxa_htmx.services import voice

    voice._voice_lists.clear()
    return fake_xi


def _owner_with_key(as_role, fake):
    b = as_role("tenant_owner")
    resp = b.post(
        "/settings/providers",
        {
            "slot": "tts",
            "provider": "elevenlabs",
            "model": "",
            "options": "",
            "base_url": fake.base,
            "api_key": fake.api_key,
        },
    )
    assert resp.status_code == 303
    return b


def test_clone_with_the_tables_key_makes_a_pickable_voice(app, as_role, local_store, xi_key, tmp_path):
    b = _owner_with_key(as_role, xi_key)
    data = make_audio(tmp_path, "clone.mp3", seconds=5)
    upload(b, data, "clone.mp3", name="Old sailor")
    [row] = rows(app, b.user.tenant_id)
    resp = b.post(f"/voice-library/{row.id}/clone", htmx=True)
    assert resp.status_code == 200
    [done] = rows(app, b.user.tenant_id)
    assert done.status == "ready" and done.provider_voice_id and done.error == ""
    [call] = [r for r in xi_key.requests if r["path"] == "/v1/voices/add"]
    assert call["headers"]["Xi-Api-Key"] == xi_key.api_key and call["form"]["name"] == "Old sailor"
    assert call["files"] == [(f"{row.id}.mp3", "audio/mpeg", data)]  # the stored bytes, unchanged
    assert done.provider_voice_id in soup(resp).select_one(f"#sample-{row.id}").text
    # Pickable in the NPC editor's voice list, and it speaks (a preview with that voice).
    listing = b.get("/voices?provider=elevenlabs&q=sailor", htmx=True)
    picked = soup(listing).select_one(f'[data-voice-id="{done.provider_voice_id}"]')
    assert picked is not None and "Old sailor" in picked.text


def test_clone_failure_keeps_the_sample_and_shows_why(app, as_role, local_store, xi_key, tmp_path):
    b = _owner_with_key(as_role, xi_key)
    upload(b, make_audio(tmp_path, "noisy.wav"), "noisy.wav", name="Noisy")
    [row] = rows(app, b.user.tenant_id)
    xi_key.clone_fail_next = 1
    resp = b.post(f"/voice-library/{row.id}/clone", htmx=True)
    assert resp.status_code == 200 and "too noisy" in resp.headers["HX-Trigger"]
    [kept] = rows(app, b.user.tenant_id)
    assert kept.status == "failed" and "too noisy" in kept.error and kept.provider_voice_id is None
    card = soup(b.get("/voice-library")).select_one(f"#sample-{row.id}")
    assert "cloning failed" in card.text and "too noisy" in card.text and "Try cloning again" in card.text
    assert (local_store / row.file_key).exists()
    # Trying again works and clears the reason.
    assert b.post(f"/voice-library/{row.id}/clone", htmx=True).status_code == 200
    [again] = rows(app, b.user.tenant_id)
    assert again.status == "ready" and again.error == ""


def test_clone_without_a_key_explains_and_calls_nobody(app, as_role, local_store, xi_key, tmp_path):
    b = as_role("dm")
    upload(b, make_audio(tmp_path, "nokey.wav"), "nokey.wav")
    [row] = rows(app, b.user.tenant_id)
    resp = b.post(f"/voice-library/{row.id}/clone", {"confirmed": "1"})
    assert resp.status_code == 303
    [kept] = rows(app, b.user.tenant_id)
    assert kept.status == "failed" and "No ElevenLabs API key" in kept.error
    assert [r for r in xi_key.requests if r["path"] == "/v1/voices/add"] == []


def test_library_page_works_without_javascript(app, as_role, local_store, tmp_path):
    b = as_role("dm")
    page = b.get("/voice-library")
    doc = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    form = doc.select_one("form[data-upload-progress]")
    assert form["method"] == "post" and form["enctype"] == "multipart/form-data" and form["action"] == "/voice-library"
    assert doc.select_one("progress[data-progress]") is not None


def test_a_sample_being_cloned_is_not_cloned_twice(app, as_role, local_store, xi_key, tmp_path):
    b = _owner_with_key(as_role, xi_key)
    upload(b, make_audio(tmp_path, "twice.wav"), "twice.wav")
    [row] = rows(app, b.user.tenant_id)
    with app.app_context():  # another request is cloning it right now
        db.session.get(VoiceSample, row.id).status = "processing"
        db.session.commit()
    resp = b.post(f"/voice-library/{row.id}/clone", htmx=True)
    assert resp.status_code == 409 and "being cloned already" in resp.headers["HX-Trigger"]
    assert [r for r in xi_key.requests if r["path"] == "/v1/voices/add"] == []
    assert rows(app, b.user.tenant_id)[0].status == "processing"


def test_cleanup_command_retries_until_storage_answers(
    app, as_role, s3, moto_server, tmp_path, monkeypatch, database_url, simulator
):
    from click.testing import CliRunner

    from glyphoxa_htmx.cli import main
    from tests.conftest import GATEWAY_SECRET

    b = as_role("dm")
    upload(b, make_audio(tmp_path, "cli.wav"), "cli.wav")
    [row] = rows(app, b.user.tenant_id)
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")
    b.post(f"/voice-library/{row.id}/delete", htmx=True)
    with app.app_context():  # the failed delete happened a while ago
        db.session.get(VoiceSample, row.id).deleting_at = db.func.now() - timedelta(minutes=5)
        db.session.commit()
    for key, value in {
        "DATABASE_URL": database_url,
        "LOG_JSON": "0",
        "GATEWAY_GRPC_ADDR": simulator.address,
        "GATEWAY_SECRET": GATEWAY_SECRET,
        "GLYPHOXA_GATEWAY_SIMULATOR": "0",
    }.items():
        monkeypatch.setenv(key, value)
    still = CliRunner().invoke(main, ["voice-samples-cleanup"])
    assert still.exit_code == 1 and "0 sample(s) removed, 1 still failing" in still.output
    assert keys(s3) == [row.file_key] and len(rows(app, b.user.tenant_id)) == 1
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_server)
    done = CliRunner().invoke(main, ["voice-samples-cleanup"])
    assert done.exit_code == 0 and "1 sample(s) removed, 0 still failing" in done.output, done.output
    assert keys(s3) == [] and rows(app, b.user.tenant_id) == []


def test_a_tab_left_open_on_a_deleted_sample_gets_404_not_a_resurrection(app, as_role, local_store, xi_key, tmp_path):
    b = _owner_with_key(as_role, xi_key)
    upload(b, make_audio(tmp_path, "stale.wav"), "stale.wav")
    [row] = rows(app, b.user.tenant_id)
    old_page = soup(b.get("/voice-library"))  # tab one
    clone_url = old_page.select_one(f"#sample-{row.id} form[action$='/clone']")["action"]
    play_url = old_page.select_one(f"#sample-{row.id} audio")["src"]
    assert b.post(f"/voice-library/{row.id}/delete", htmx=True).status_code == 200  # tab two
    assert b.post(clone_url, htmx=True).status_code == 404
    assert b.get(play_url).status_code == 404
    assert rows(app, b.user.tenant_id) == [] and [r for r in xi_key.requests if r["path"] == "/v1/voices/add"] == []
