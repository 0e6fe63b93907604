"""`vbgm serve` end to end: a real server on 127.0.0.1 (a subprocess on a free port), driven by a
real headless Chromium and by gradio_client, with the shortest real clip.

The tests share one server and run in file order: the last one waits for the clean-up time
(`--keep-minutes 0.5`, so 30 s) and checks that the job files are gone.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

CLIP = "carphone_pristine.mp4"  # 4.0 s, 176x144: the cheapest real clip
KEEP_MINUTES = 0.5
MAX_UPLOAD_MB = 1.0  # carphone (0.6 MB) fits, cup.mp4 (1.5 MB) does not
DEMO_8S = "shapes, 8 s (two cuts)"
DEMO_16S = "shapes, 16 s (two cuts)"
NO_DEMO = "(none: use the upload)"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `vbgm serve` subprocess with its own Gradio cache and temp folder."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.cache, self.tmp = base / "gradio", base / "tmp"
        self.cache.mkdir()
        self.tmp.mkdir()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = base / "server.log"
        env = dict(os.environ, GRADIO_TEMP_DIR=str(self.cache), TMPDIR=str(self.tmp),
                   GRADIO_ANALYTICS_ENABLED="False")
        vbgm = Path(sys.executable).with_name("vbgm")
        cmd = [str(vbgm), "serve", "--port", str(self.port), "--max-jobs", "2",
               "--keep-minutes", str(KEEP_MINUTES), "--max-upload-mb", str(MAX_UPLOAD_MB)]
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                     env=env, cwd=base)

    def wait_ready(self, timeout: float = 180) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(f"vbgm serve exited {self.proc.returncode}:\n{self.text()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"vbgm serve did not answer in {timeout} s:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def job_files(self) -> list[Path]:
        """The files jobs left: job folders in the server's temp root, Gradio's copies."""
        jobs = [p for p in self.tmp.glob("vbgm-serve-*/job-*/**/*") if p.is_file()]
        return jobs + [p for p in self.cache.rglob("*") if p.is_file()]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory, video_root):
    srv = Server(tmp_path_factory.mktemp("serve"))
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def _streams(path: Path) -> dict[str, float]:
    """Duration (s) of each stream kind in a media file, by PyAV."""
    import av

    out = {}
    with av.open(str(path)) as c:
        for s in c.streams:
            if s.duration is not None:
                out[s.type] = float(s.duration * s.time_base)
    return out


def _clip_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return float(s.duration * s.time_base)


def _wait(page, predicate, timeout: float, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(page, timeout, poll_frequency=0.5).until(lambda p: predicate(p))
    except Exception:
        body = page.find_element("tag name", "body").text[-2000:]
        pytest.fail(f"timed out after {timeout} s waiting for {what}; page says:\n{body}")


def _open(page, server: Server) -> None:
    page.get(server.url)
    _wait(page, lambda p: p.find_elements("css selector", "#generate"), 120, "the page")


def _upload(page, path: Path) -> None:
    page.find_element("css selector", "#video-in input[type=file]").send_keys(str(path))


def _body(page) -> str:
    return page.find_element("tag name", "body").text


def _download(page, folder: Path, name: str, timeout: float = 60) -> Path:
    """Click the page's download link of `name` and wait for the browser to save it."""
    link = page.find_element("css selector", f"#downloads a[download='{name}']")
    page.execute_script("arguments[0].click();", link)
    target = folder / name
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if target.is_file() and not list(folder.glob("*.crdownload")):
            return target
        time.sleep(0.3)
    pytest.fail(f"{name} was not downloaded to {folder}: {os.listdir(folder)}")


def test_check_video_decodes_instead_of_trusting_the_name(video_root, tmp_path):
    from vbgm.errors import VbgmError
    from vbgm.serve import check_video

    clip = video_root / CLIP
    assert abs(check_video(clip, "c.mp4", 2**20, 10.0) - 4.0) < 0.1
    fake = tmp_path / "x.mp4"
    fake.write_text("plain text\n" * 100)
    with pytest.raises(VbgmError, match=r"^upload.mp4: not a video file we can decode"):
        check_video(fake, "upload.mp4", 2**20, 10.0)  # the message names the client's file
    image = tmp_path / "still.mp4"  # a PNG under a video's name: one frame
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(image.with_suffix(".png"), [[0.0, 1.0], [1.0, 0.0]])
    image.with_suffix(".png").rename(image)
    with pytest.raises(VbgmError, match=r"^still.mp4: not a video \(a single picture\)"):
        check_video(image, "still.mp4", 2**20, 10.0)
    with pytest.raises(VbgmError, match=r"over the upload limit of 0.25 MB"):
        check_video(clip, "c.mp4", 2**18, 10.0)
    with pytest.raises(VbgmError, match=r"4.0 s is longer than the limit of 3 s"):
        check_video(clip, "c.mp4", 2**20, 3.0)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(VbgmError, match="empty.mp4: empty file"):
        check_video(empty, "empty.mp4", 2**20, 10.0)


def test_sweep_spares_running_jobs_and_removes_old_ones(tmp_path, monkeypatch, one_thread):
    from vbgm.serve import Engine, ServeConfig

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # take TMPDIR into account
    engine = Engine(ServeConfig(keep_minutes=1))
    try:
        assert engine.root.parent == tmp_path
        running, done = engine.new_job(), engine.new_job()
        (done / "music.mp4").write_bytes(b"x")
        engine.finished(done)
        later = time.time() + 61
        assert engine.sweep(now=time.time()) == 0  # nothing is a minute old yet
        assert engine.sweep(now=later) == 1  # the finished job goes, the running one stays
        assert running.is_dir() and not done.exists()
        assert engine.job(running.name) == running and engine.job("../../etc") is None
        engine.finished(running)
        assert engine.sweep(now=later) == 1 and not running.exists()
    finally:
        engine.close()
    assert not engine.root.exists()


def test_page_generate_download_screenshot(server, chromium, video_root, tmp_path):
    page = chromium
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    page.execute_cdp_cmd("Browser.setDownloadBehavior",
                         {"behavior": "allow", "downloadPath": str(downloads)})
    _open(page, server)
    assert "vbgm" in page.title
    assert "uploads up to 1 MB" in _body(page)  # the limits are shown
    clip = video_root / CLIP
    _upload(page, clip)
    _wait(page, lambda p: p.find_elements("css selector", "#video-in video"), 60, "the upload")
    page.find_element("css selector", "#generate").click()
    _wait(page, lambda p: p.find_elements("css selector", "#downloads a[download='music.mid']"),
          300, "the result")
    status = page.find_element("css selector", "#status").text
    assert CLIP in status and "s of music" in status, status
    player = page.find_element("css selector", "#video-out video")
    assert player.get_attribute("src").endswith("music.mp4")
    assert page.find_elements("css selector", "#plot img")  # the analysis plot is shown
    shot = tmp_path / "serve.png"
    page.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("VBGM_SCREENSHOTS"):  # e.g. docs/img, to refresh the README's picture
        shutil.copyfile(shot, Path(os.environ["VBGM_SCREENSHOTS"]) / "serve.png")

    mp4 = _download(page, downloads, "music.mp4")
    streams = _streams(mp4)
    want = _clip_seconds(clip)
    assert set(streams) >= {"video", "audio"}, streams
    assert abs(streams["video"] - want) <= 0.1, (streams, want)
    assert abs(streams["audio"] - want) <= 0.1, (streams, want)
    mid = _download(page, downloads, "music.mid")
    import symusic

    score = symusic.Score(str(mid))
    assert sum(len(t.notes) for t in score.tracks) > 0

    # "Another seed" reuses the analysis: seed 1, new music for the same video.
    page.find_element("css selector", "#reseed").click()
    _wait(page, lambda p: "seed 1" in p.find_element("css selector", "#status").text, 300,
          "the reseeded result")
    assert "the same video" in page.find_element("css selector", "#status").text


def test_bad_uploads_show_a_message_and_the_server_keeps_serving(server, chromium, video_root,
                                                                 tmp_path):
    page = chromium
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n" * 50)
    _open(page, server)
    _upload(page, fake)
    time.sleep(1.0)  # the upload itself is fine: only decoding tells what it is
    page.find_element("css selector", "#generate").click()
    _wait(page, lambda p: "notes.mp4: not a video file we can decode" in _body(p), 60,
          "the not-a-video message")
    assert "Traceback" not in _body(page)
    page.save_screenshot(str(tmp_path / "not_a_video.png"))

    _open(page, server)  # an upload over --max-upload-mb is refused with a message
    _upload(page, video_root / "cup.mp4")
    toast = _wait(page, lambda p: [e.text for e in p.find_elements(
        "css selector", "[data-testid='toast-body']") if e.text.strip()], 60, "the size message")
    print("oversized upload:", toast)
    assert re.search(r"(?i)size|large|exceed|limit", " ".join(toast)), toast
    assert server.proc.poll() is None

    _open(page, server)  # the next valid job succeeds
    _upload(page, video_root / CLIP)
    _wait(page, lambda p: p.find_elements("css selector", "#video-in video"), 60, "the upload")
    page.find_element("css selector", "#generate").click()
    _wait(page, lambda p: CLIP in p.find_element("css selector", "#status").text, 300,
          "the valid job after the bad ones")


def test_concurrent_api_jobs_complete_or_are_refused(server, tmp_path):
    """20 simultaneous /generate calls with --max-jobs 2: 2 run, 2 wait, the rest are refused
    with the queue-full message; every accepted job's video has music of the clip's length.
    Then /compose answers, and the server's memory is within 200 MB of its idle level."""
    from gradio_client import Client

    idle_mb = server.rss_mb()
    n = 20
    results: list[object] = [None] * n
    start = threading.Barrier(n)

    def one(i: int) -> None:
        client = Client(server.url, verbose=False, download_files=str(tmp_path / f"c{i}"))
        start.wait()
        try:
            results[i] = client.predict(None, DEMO_8S, "unknown", ["drums", "piano", "bass"],
                                        0.7, 0, "free", 1, i, False, i % 2 == 0,
                                        api_name="/generate")
        except Exception as exc:  # the refusal arrives as an exception with its message
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    done = [(i, r) for i, r in enumerate(results) if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(done) + len(refused) == n, results
    for exc in refused:
        assert "Queue is full" in str(exc), repr(exc)
    print(f"{len(done)} of {n} concurrent jobs done, {len(refused)} refused")
    assert len(done) >= 2 and len(refused) >= 1, results
    for i, (video, plot, files, summary) in done:
        streams = _streams(Path(video))
        assert Path(plot).stat().st_size > 10_000 and "s of music" in summary, summary
        assert abs(streams["video"] - 8.0) <= 0.1 and abs(streams["audio"] - 8.0) <= 0.1
        names = {Path(f).name for f in files}
        main = {"music.mp4", "music.mid", "music.wav", "analysis.json"}
        stems = {f"{s}.{e}" for s in ("drums", "piano", "bass") for e in ("wav", "mid")}
        assert main <= names and names - main <= stems, names
        played = {n.split(".")[0] for n in names - main}
        assert (len(played) > 0) == (i % 2 == 0), names  # stems asked for by even jobs
        assert names - main == {f"{s}.{e}" for s in played for e in ("wav", "mid")}, names
    client = Client(server.url, verbose=False, download_files=str(tmp_path / "compose"))
    wav, files, summary = client.predict(3, 120, "pop", ["piano", "bass"], "D minor", 1,
                                         api_name="/compose")
    assert "3.0 s of music" in summary and Path(wav).stat().st_size > 100_000
    grew = server.rss_mb() - idle_mb
    print(f"server RSS: {idle_mb:.0f} MB before, {grew:+.0f} MB after {n} concurrent jobs")
    assert grew < 200


def test_a_path_named_by_the_client_is_never_read(server):
    """The raw HTTP API (curl's way): a file argument naming a server path that was not uploaded
    is refused before the job starts; no job folder is made."""
    import json

    before = set(server.tmp.glob("vbgm-serve-*/job-*"))
    body = {"data": [{"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}}, None,
                     "rock", ["drums"], 0.7, 0, "free", 1, 0, False, False]}
    req = urllib.request.Request(server.url + "gradio_api/call/generate",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        event = json.load(r)["event_id"]
    with urllib.request.urlopen(f"{server.url}gradio_api/call/generate/{event}",
                                timeout=60) as r:
        stream = r.read().decode()
    assert "event: error" in stream and "event: complete" not in stream, stream
    assert set(server.tmp.glob("vbgm-serve-*/job-*")) == before


def test_cancel_stops_the_running_job_and_keeps_nothing(server):
    """/cancel (the page's Cancel button) stops the session's job at its next stage boundary;
    its job folder is removed, nothing is returned, and the server goes on."""
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    before = set(server.tmp.glob("vbgm-serve-*/job-*"))
    job = client.submit(None, DEMO_16S, "unknown", ["drums", "piano", "bass"], 0.7, 0, "free",
                        1, 0, False, False, api_name="/generate")
    end = time.monotonic() + 120
    while time.monotonic() < end and not set(server.tmp.glob("vbgm-serve-*/job-*")) - before:
        time.sleep(0.1)  # the job has its folder: it is running
    started = set(server.tmp.glob("vbgm-serve-*/job-*")) - before
    assert started, "the job never started"
    client.predict(api_name="/cancel")
    try:
        outcome = job.result(timeout=300)
    except Exception as exc:  # the cancelled job ends in an error ("Cancelled ...")
        outcome = exc
    assert not isinstance(outcome, tuple), outcome
    end = time.monotonic() + 120
    while time.monotonic() < end and any(d.exists() for d in started):
        time.sleep(0.5)
    assert not any(d.exists() for d in started), "the cancelled job's folder was kept"
    assert server.proc.poll() is None


def test_job_files_are_removed_after_the_keep_time(server):
    assert server.job_files(), "the earlier tests left no job files to clean up"
    end = time.monotonic() + KEEP_MINUTES * 60 + 60
    while time.monotonic() < end and server.job_files():
        time.sleep(2)
    assert not server.job_files(), server.job_files()[:5]
    assert server.proc.poll() is None
