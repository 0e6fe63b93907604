"""The listening study end to end: `vbgm study make` on real clips (a system's MIDI rendered and
muxed, a WAV muxed, an MP4 copied), `vbgm study serve` as a real server process answered by a
real headless Chromium and by concurrent HTTP participants, killed with SIGKILL and restarted in
the middle, and `vbgm study report`, whose counts and statistics are checked against the answers
given and against a hand computation."""

from __future__ import annotations

import csv
import http.client
import json
import math
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import symusic
from vbgm.cli import main
from vbgm.mux import mux
from vbgm.render import write_wav
from vbgm.study import design
from vbgm.study.report import compute, holm

SYSTEMS = ("ours", "baseline", "matched")
SR = 44100
FPS = 25
NAME_RE = re.compile(r"\b(ours|baseline|matched)\b", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Media: two 2 s cuts of a real clip, and per system its music in another form


def cut(src: Path, out: Path, start_s: float, seconds: float = 2.0) -> None:
    """Re-encode `seconds` of `src` from `start_s` as a small H.264 MP4 without sound."""
    with av.open(str(src)) as inp, av.open(str(out), "w") as o:
        st = o.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        st.width, st.height, st.pix_fmt = 320, 240, "yuv420p"
        n = 0
        for frame in inp.decode(inp.streams.video[0]):
            if frame.time < start_s:
                continue
            if n >= seconds * FPS:
                break
            f = frame.reformat(320, 240, "yuv420p")
            f.pts, f.time_base = n, Fraction(1, FPS)
            n += 1
            for p in st.encode(f):
                o.mux(p)
        for p in st.encode():
            o.mux(p)


def tone(freq: float, seconds: float = 2.0) -> np.ndarray:
    """A stereo sine tone with a 4 Hz pulse (something to hear)."""
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.cos(2 * np.pi * 4 * t))
    return np.stack([x, x], axis=1).astype(np.float32)


def song(path: Path, root: int) -> None:
    """A tiny MIDI song: a piano arpeggio on `root` for 2 s at 120 bpm."""
    score = symusic.Score(480)
    piano = symusic.Track("piano", 0, False)
    for eighth in range(8):
        piano.notes.append(symusic.Note(eighth * 240, 240, root + (0, 4, 7, 12)[eighth % 4], 90))
    score.tracks.append(piano)
    score.dump_midi(str(path))


@pytest.fixture(scope="module")
def inputs(video_root: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[list[Path], dict[str, Path]]:
    """Two videos and a folder per system: ours = MIDI, baseline = WAV, matched = MP4."""
    root = tmp_path_factory.mktemp("study_inputs")
    videos = [root / "clips" / "box_a.mp4", root / "clips" / "box_b.mp4"]
    videos[0].parent.mkdir()
    cut(video_root / "box.mp4", videos[0], 0.0)
    cut(video_root / "box.mp4", videos[1], 6.0)
    dirs = {s: root / s for s in SYSTEMS}
    for d in dirs.values():
        d.mkdir()
    for i, v in enumerate(videos):
        song(dirs["ours"] / f"{v.stem}.mid", 60 + 5 * i)
        write_wav(dirs["baseline"] / f"{v.stem}.wav", tone(220.0 * (i + 1)), SR)
        mux(v, tone(330.0 * (i + 1)), SR, dirs["matched"] / f"{v.stem}.mp4")
        song(dirs["matched"] / f"{v.stem}.mid", 50)  # like `vbgm generate`: the MP4 wins
    return videos, dirs


def make_args(videos: list[Path], dirs: dict[str, Path], out: Path) -> list[str]:
    return ["study", "make", *map(str, videos),
            *(x for s in SYSTEMS for x in ("--system", f"{s}={dirs[s]}")), "-o", str(out)]


def streams(path: Path) -> tuple[float, bool, bool]:
    """(duration, has video, has audio) of a media file."""
    with av.open(str(path)) as c:
        return c.duration / 1e6, bool(c.streams.video), bool(c.streams.audio)


# --------------------------------------------------------------------------------------------
# make


def test_make_checks_everything_and_writes_all_or_nothing(
        inputs: tuple[list[Path], dict[str, Path]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    videos, dirs = inputs
    out = tmp_path / "study"
    # a system lacking a video's music: one line naming the system, its folder and the video
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    (lacking / "box_a.wav").write_bytes((dirs["baseline"] / "box_a.wav").read_bytes())
    args = make_args(videos, {**dirs, "baseline": lacking}, out)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert f"baseline={lacking} has no music for box_b" in err
    assert not out.exists() and not list(tmp_path.glob(".study*"))
    # a damaged music file: named, nothing written
    broken = tmp_path / "broken"
    broken.mkdir()
    for v in videos:
        (broken / f"{v.stem}.mid").write_bytes(b"not a midi file")
    assert main(make_args(videos, {**dirs, "ours": broken}, out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vbgm: error: {broken / 'box_a.mid'}: not a readable MIDI file")
    assert not out.exists()
    # one system only, a bad NAME=DIR
    assert main(["study", "make", str(videos[0]), "--system", f"ours={dirs['ours']}", "-o",
                 str(out)]) == 2
    assert "at least two systems" in capsys.readouterr().err
    assert main(["study", "make", str(videos[0]), "--system", "ours", "--system",
                 f"b={dirs['baseline']}", "-o", str(out)]) == 2
    assert "expected NAME=DIR" in capsys.readouterr().err

    assert main(make_args(videos, dirs, out)) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["systems"] == list(SYSTEMS)
    assert [v["name"] for v in manifest["videos"]] == ["box_a", "box_b"]
    files = [f for v in manifest["videos"] for f in v["versions"].values()]
    assert len(set(files)) == 6 and sorted(os.listdir(out / "media")) == sorted(
        Path(f).name for f in files)
    for f in files:
        assert re.fullmatch(r"media/[0-9a-f]{16}\.mp4", f)  # names hide the systems
        duration, has_video, has_audio = streams(out / f)
        assert has_video and has_audio and abs(duration - 2.0) < 0.1
    # matched's MP4 is copied as it is; the others are new files with music on the video
    matched = manifest["videos"][0]["versions"]["matched"]
    assert (out / matched).read_bytes() == (dirs["matched"] / "box_a.mp4").read_bytes()
    before = (out / "manifest.json").read_bytes()
    assert main(make_args(videos, dirs, out)) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    assert (out / "manifest.json").read_bytes() == before
    assert main([*make_args(videos, dirs, out), "--force"]) == 0
    assert (out / "manifest.json").read_bytes() != before  # a new study id and media names
    assert len(os.listdir(out / "media")) == 6 and not list(tmp_path.glob(".study*"))

    # report and serve refuse, in one line, what is not (yet) a study with answers
    assert main(["study", "report", str(out)]) == 2
    assert "no answers yet" in capsys.readouterr().err
    for action in ("report", "serve"):
        assert main(["study", action, str(tmp_path / "lacking")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "manifest.json: not found" in err
    with socket.socket() as busy:  # a port already taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["study", "serve", str(out), "--port", str(busy.getsockname()[1])]) == 2
        assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# serve: a real server process, a real browser, SIGKILL in the middle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`vbgm study serve` as a child process on a fixed port (so a restart keeps the URL)."""

    def __init__(self, study: Path, log: Path) -> None:
        self.study, self.log, self.port = study, log, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vbgm.cli", "study", "serve", str(self.study), "--port",
                 str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as r:
                    if r.read() == b"ok\n":
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the study server did not come up:\n" + self.log.read_text())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def rating(person: int, video: int, system: int, question: int) -> int:
    """The answer the test gives: varies with everything, so a lost or doubled page shows."""
    return 1 + (3 * person + 2 * video + 4 * system + question) % 5


def page_answers(person: int, video: str, systems: list[str]) -> dict[str, dict[str, int]]:
    """A participant's answers for one page: system → field → value (ranks a permutation)."""
    v = int(video[-1] == "b")
    out = {}
    for s in systems:
        j = SYSTEMS.index(s)
        row = {k: rating(person, v, j, q) for q, k in enumerate(design.QUESTION_KEYS)}
        row["rank"] = (j + person + v) % len(SYSTEMS) + 1
        out[s] = row
    return out


def media_table(study: Path) -> dict[str, tuple[str, str]]:
    """Media URL name → (video, system), from the manifest (what only the test knows)."""
    manifest = json.loads((study / "manifest.json").read_text())
    return {Path(f).name: (v["name"], s) for v in manifest["videos"]
            for s, f in v["versions"].items()}


def shown(html: str, table: dict[str, tuple[str, str]]) -> tuple[str, list[str]]:
    """(video, systems in the order shown) of a question page."""
    names = re.findall(r"/media/([0-9a-f]{16}\.mp4)", html)
    assert len(names) == len(SYSTEMS)
    videos = {table[n][0] for n in names}
    assert len(videos) == 1
    return videos.pop(), [table[n][1] for n in names]


def answer_in_browser(page, table: dict[str, tuple[str, str]], person: int,
                      truth: dict[tuple[str, str], dict], screenshot: Path | None = None) -> None:
    """Fill the current question page by clicking, as a participant does, and submit it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    code = page.find_element(By.ID, "participant-code").text.replace("-", "")
    assert not NAME_RE.search(page.page_source)  # the systems stay hidden
    video, order = shown(page.page_source, table)
    answers = page_answers(person, video, order)
    for i, s in enumerate(order):
        letter = "ABC"[i]
        for k in design.QUESTION_KEYS:
            page.find_element(By.ID, f"{letter}_{k}_{answers[s][k]}").click()
        Select(page.find_element(By.ID, f"{letter}_rank")).select_by_value(
            str(answers[s]["rank"]))
    if screenshot is not None:
        page.save_screenshot(str(screenshot))
    click_and_wait(page, "submit")
    truth[(code, video)] = answers


def click_and_wait(page, element_id: str) -> None:
    """Click a button that submits a form, and wait until the next page has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = page.find_element(By.TAG_NAME, "html")
    page.find_element(By.ID, element_id).click()
    WebDriverWait(page, 60).until(expected_conditions.staleness_of(old))


def title(page) -> str:
    from selenium.webdriver.common.by import By

    return page.find_element(By.TAG_NAME, "h1").text


def retrying(url: str, data: bytes | None = None, limit_s: float = 60.0) -> tuple[str, str]:
    """GET (or POST `data`) like a patient participant: while the server is down, try again.
    Returns (final URL after redirects, page)."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            with urllib.request.urlopen(url, data=data, timeout=30) as r:
                return r.geturl(), r.read().decode()
        except urllib.error.HTTPError:
            raise
        except (OSError, http.client.HTTPException):  # refused, reset, cut off by the kill
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def http_participant(base: str, table: dict[str, tuple[str, str]], person: int,
                     truth: dict[tuple[str, str], dict], lock: threading.Lock,
                     pause_s: float = 0.0) -> None:
    """A participant without a browser: start, answer every page by POST (as the form does),
    retrying the same answers while the server is down."""
    url, html = retrying(base + "/start", b"")
    while not url.endswith("/done"):
        code, page = re.search(r"/p/([A-Z0-9]{8})/(\d+)$", url).groups()
        video, order = shown(html, table)
        answers = page_answers(person, video, order)
        form = {f"{'ABC'[i]}_{k}": str(answers[s][k]) for i, s in enumerate(order)
                for k in answers[s]}
        time.sleep(pause_s)  # watching the videos
        with lock:
            truth[(code, video)] = answers
        url, html = retrying(f"{base}/p/{code}/{page}", urllib.parse.urlencode(form).encode())


def db_pages(study: Path) -> int:
    """Pages answered, after checking the database: intact, and every page whole (a rating
    row per system, no rating without its page)."""
    db = sqlite3.connect(study / "answers.sqlite", isolation_level=None)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # one read transaction: both queries see the same snapshot while the server writes
        db.execute("BEGIN")
        per_page = db.execute("SELECT participant, video, COUNT(*) FROM ratings "
                              "GROUP BY participant, video").fetchall()
        pages = db.execute("SELECT participant, video FROM pages").fetchall()
        db.execute("COMMIT")
    finally:
        db.close()
    assert sorted((p, v) for p, v, _ in per_page) == sorted(pages)
    assert all(n == len(SYSTEMS) for _, _, n in per_page)
    return len(pages)


def test_study_in_the_browser_survives_kill_and_counts_every_answer_once(
        chromium, inputs: tuple[list[Path], dict[str, Path]], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    videos, dirs = inputs
    study = tmp_path / "study"
    assert main(make_args(videos, dirs, study)) == 0
    table = media_table(study)
    server = Server(study, tmp_path / "server.log")
    truth: dict[tuple[str, str], dict] = {}
    page = chromium
    server.start()
    try:
        # participant 1 starts, answers the first video, is interrupted
        page.delete_all_cookies()
        page.get(server.base + "/")
        click_and_wait(page, "start")
        assert title(page) == "Video 1 of 2"
        code1 = page.find_element(By.ID, "participant-code").text
        answer_in_browser(page, table, 0, truth, screenshot=tmp_path / "study.png")
        assert title(page) == "Video 2 of 2"
        page.get(server.base + "/")  # back later, same browser: the cookie resumes
        assert title(page) == "Video 2 of 2"

        server.kill()  # SIGKILL: the saved page must survive
        assert db_pages(study) == 1
        server.start()

        # another browser (no cookie): resume by typing the code, in any case, with the dash
        page.delete_all_cookies()
        page.get(server.base + "/")
        page.find_element(By.ID, "code").send_keys(code1.lower())
        click_and_wait(page, "resume")
        assert title(page) == "Video 2 of 2"
        answer_in_browser(page, table, 0, truth)
        assert page.find_element(By.ID, "done").text == "Thank you!"

        # participant 2 answers everything
        page.delete_all_cookies()
        page.get(server.base + "/")
        click_and_wait(page, "start")
        answer_in_browser(page, table, 1, truth)
        answer_in_browser(page, table, 1, truth)
        assert title(page) == "Thank you!"
        page.get(server.base + "/")  # the cookie remembers a finished participant
        assert title(page) == "Thank you!"
        assert db_pages(study) == 4

        # six more participants at once over HTTP; the server is killed while they answer
        lock = threading.Lock()
        errors: list[BaseException] = []

        def run(person: int) -> None:
            try:
                http_participant(server.base, table, person, truth, lock, pause_s=0.3)
            except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(p,)) for p in range(2, 8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while db_pages(study) < 7 and time.monotonic() < deadline:  # 4 + some of theirs
            time.sleep(0.02)
        server.kill()
        assert 7 <= db_pages(study) < 16  # some pages saved, whole; the rest still to come
        server.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert db_pages(study) == 16

        # an incomplete form is refused in the page and stores nothing
        code = code1.replace("-", "")
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(f"{server.base}/p/{code}/1", data=b"A_richness=5", timeout=30)
        assert bad.value.code == 400 and "Please answer every question" in bad.value.read().decode()
        # a resubmitted page replaces the earlier answers (counted once)
        with urllib.request.urlopen(f"{server.base}/p/{code}/1", timeout=30) as r:
            video, order = shown(r.read().decode(), table)
        answers = page_answers(5, video, order)  # different answers than the first time
        form = {f"{'ABC'[i]}_{k}": str(answers[s][k]) for i, s in enumerate(order)
                for k in answers[s]}
        urllib.request.urlopen(f"{server.base}/p/{code}/1",
                               data=urllib.parse.urlencode(form).encode(), timeout=30).close()
        truth[(code, video)] = answers
        assert db_pages(study) == 16

        # media: byte ranges for seeking; nothing outside the manifest is served
        name = next(iter(table))
        size = (study / "media" / name).stat().st_size
        req = urllib.request.Request(f"{server.base}/media/{name}", headers={"Range": "bytes=0-99"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 206 and len(r.read()) == 100
            assert r.headers["Content-Range"] == f"bytes 0-99/{size}"
        for path in ("/media/../manifest.json", "/media/manifest.json", "/answers.sqlite"):
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(server.base + path, timeout=30)
            assert missing.value.code == 404

        # the report reads the answers while the server still runs
        csv_out, md_out, png = tmp_path / "t2.csv", tmp_path / "t2.md", tmp_path / "t2.png"
        assert main(["study", "report", str(study), "--csv", str(csv_out), "--md", str(md_out),
                     "--plot", str(png)]) == 0
    finally:
        server.kill()
    # a study that holds answers is never replaced
    assert main([*make_args(videos, dirs, study), "--force"]) == 2
    assert db_pages(study) == 16

    # every answer counted exactly once: n and the means per system and question
    rows = list(csv.DictReader(csv_out.open()))
    scores = {(r["measure"], r["system"]): r for r in rows if r["kind"] == "score"}
    assert len(truth) == 16
    for s in SYSTEMS:
        for k in (*design.QUESTION_KEYS, "rank"):
            expected = statistics.mean(a[s][k] for a in truth.values())
            cell = scores[(k, s)]
            assert int(cell["n"]) == 16
            assert float(cell["mean"]) == pytest.approx(expected, abs=1e-5)
    assert "8 participants, 16 pages" in md_out.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # counterbalanced: over the first six participants each system sits in each position of
    # each video exactly twice (a Williams design of three systems has six rows)
    with sqlite3.connect(study / "answers.sqlite") as db:
        plans = [json.loads(p) for (p,) in db.execute(
            "SELECT plan FROM participants WHERE number <= 6 ORDER BY number")]
    assert len(plans) == 6
    for name in ("box_a", "box_b"):
        places = Counter((s, i) for plan in plans for v, order in plan if v == name
                         for i, s in enumerate(order))
        assert places == {(s, i): 2 for s in SYSTEMS for i in range(3)}
    assert (tmp_path / "study.png").stat().st_size > 10_000


def test_williams_design_balances_position_and_carry_over() -> None:
    for n in range(2, 7):
        rows = design.williams_rows(n)
        assert len(rows) == (n if n % 2 == 0 else 2 * n)
        assert all(sorted(r) == list(range(n)) for r in rows)
        per_place = Counter((x, i) for r in rows for i, x in enumerate(r))
        assert set(per_place.values()) == {len(rows) // n}  # each system in each place equally
        follows = Counter((a, b) for r in rows for a, b in zip(r, r[1:], strict=False))
        assert len(follows) == n * (n - 1) and len(set(follows.values())) == 1  # and after each


# --------------------------------------------------------------------------------------------
# report: the statistics against a hand computation


def test_report_matches_a_hand_computation() -> None:
    """Four pages (2 participants x 2 videos) x three systems, every number worked out by
    hand below."""
    systems = ["baseline", "matched", "ours"]
    # per page: (richness, correctness, structure) and rank, per system
    melody = {"baseline": [(4, 4, 4), (4, 4, 4), (3, 3, 3), (3, 3, 3)],  # sums 12 12 9 9
              "matched": [(2, 3, 3), (5, 5, 4), (5, 5, 5), (3, 3, 4)],   # sums 8 14 15 10
              "ours": [(5, 5, 5), (4, 5, 4), (4, 4, 5), (5, 4, 5)]}      # sums 15 13 13 14
    ranks = {"baseline": [3, 2, 3, 3], "matched": [2, 3, 1, 2], "ours": [1, 1, 2, 1]}
    compat = {"baseline": (3, 3, 3), "matched": (4, 4, 4), "ours": (4, 5, 4)}
    rows = []
    for p in range(4):
        for s in systems:
            r, c, st = melody[s][p]
            rows.append({"participant": 1 + p // 2, "video": "ab"[p % 2], "system": s,
                         "position": 0, "richness": r, "correctness": c, "structure": st,
                         "rhythm": compat[s][0], "synchrony": compat[s][1],
                         "video_structure": compat[s][2], "rank": ranks[s][p]})
    report = compute(rows, systems)
    assert (report.participants, report.pages) == (2, 4)

    # mean ranks 11/4, 8/4, 5/4
    assert [report.cells["rank"][s].mean for s in systems] == [2.75, 2.0, 1.25]
    # Friedman: 12 / (n k (k+1)) * sum R^2 - 3 n (k+1) = 12/48 * (121 + 64 + 25) - 48 = 4.5;
    # chi-square with 2 df: p = exp(-4.5 / 2)
    chi2, df, p = report.friedman
    assert chi2 == pytest.approx(4.5) and df == 2
    assert p == pytest.approx(math.exp(-2.25)) and p == pytest.approx(0.1053992, abs=1e-7)

    # ours' richness 5 4 4 5: mean 4.5, s = sqrt(1/3), t(0.975, 3) = 3.182446:
    # CI half-width 3.182446 * 0.577350 / 2 = 0.918693
    cell = report.cells["richness"]["ours"]
    assert (cell.n, cell.mean) == (4, 4.5) and cell.ci95 == pytest.approx(0.918693, abs=1e-6)
    # ours' melodiousness per page 15/3 13/3 13/3 14/3: mean 55/12; s = 0.319142 (by hand:
    # squared deviations 25/144 + 9/144 + 9/144 + 1/144 = 44/144, / 3, sqrt)
    cell = report.cells["melodiousness"]["ours"]
    assert cell.mean == pytest.approx(55 / 12)
    assert cell.ci95 == pytest.approx(3.182446 * math.sqrt(44 / 144 / 3) / 2, abs=1e-6)
    assert report.cells["compatibility"]["ours"].mean == pytest.approx(13 / 3)
    assert report.cells["compatibility"]["ours"].ci95 == 0.0

    # Wilcoxon on melodiousness (n = 4, no ties or zeros: exact; of the 16 equally likely sign
    # patterns P(W <= w) counts 1, 2, 3, 5 for w = 0..3; two-sided p = 2 P(W <= w)):
    #  matched - baseline: -4 2 6 1 → ranks 3 2 4 1, W- = 3 → p = 2 * 5/16 = 0.625
    #  ours - baseline:     3 1 4 5 → all positive, W = 0 → p = 2 * 1/16 = 0.125
    #  ours - matched:      7 -1 -2 4 → W- = 1 + 2 = 3 → p = 0.625
    # Holm over the three: 0.125 * 3 = 0.375; 0.625 * 2 → 1; 0.625 * 1, at least 1 → 1
    tests = {(t.a, t.b): t for t in report.pairwise if t.measure == "melodiousness"}
    expected = {("baseline", "matched"): (3.0, 0.625, 1.0),
                ("baseline", "ours"): (0.0, 0.125, 0.375),
                ("matched", "ours"): (3.0, 0.625, 1.0)}
    for pair, (w, p_raw, p_holm) in expected.items():
        t = tests[pair]
        assert t.n == 4
        assert (t.statistic, t.p, t.p_holm) == pytest.approx((w, p_raw, p_holm))
    assert len(report.pairwise) == 9  # three pairs x (melodiousness, compatibility, rank)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
