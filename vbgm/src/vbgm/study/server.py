"""`vbgm study serve`: the study in a browser, from the standard library's threading HTTP server.

Why not Gradio: a study is a few plain forms, and plain forms need no client-side state and no
websocket: a page reloaded, resubmitted, or submitted to a server that was killed and restarted
in the meantime just works, and every request is one short thread. All state lives in SQLite
(`vbgm.study.store`); the server holds none, so it can be killed and restarted at any moment.

Routes: `/` start or resume (cookie or typed code), `/p/CODE` → the first unanswered page,
`/p/CODE/K` a video's page (GET shows, POST saves), `/media/NAME.mp4` the versions (byte ranges
for seeking; only the manifest's files are ever served), `/healthz`.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import traceback
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from vbgm.errors import VbgmError
from vbgm.study import design, pages
from vbgm.study.manifest import Manifest, load
from vbgm.study.store import FIELDS, Participant, Store, normalize_code

MAX_FORM_BYTES = 64 * 1024
CHUNK = 256 * 1024
COOKIE_DAYS = 60
_PAGE_RE = re.compile(r"^/p/([A-Z0-9]{8})(?:/(\d+|done))?$")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class StudyServer(ThreadingHTTPServer):
    """The HTTP server with the study's manifest, store and media table attached."""

    daemon_threads = True  # a hung browser connection never blocks shutdown
    allow_reuse_address = True  # restart on the same port right after a kill

    def __init__(self, address: tuple[str, int], study: Path) -> None:
        self.study = study
        self.manifest: Manifest = load(study)
        self.store = Store(study, self.manifest)
        # URL name → file: the only files ever served
        self.media = {Path(f).name: study / f for v in self.manifest.videos
                      for f in v.versions.values()}
        self.video_files = {v.name: v.versions for v in self.manifest.videos}
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    """One request; every answer is computed from the database, nothing kept between
    requests."""

    server: StudyServer
    server_version = "vbgm-study"
    timeout = 120  # seconds a silent connection may hold its thread

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        """Quiet: no access log (the answers are in the database)."""

    # --- plumbing ---------------------------------------------------------------------------

    def _send(self, status: int, body: str | bytes, ctype: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _redirect(self, where: str, cookie: str | None = None) -> None:
        headers = {"Location": where}
        if cookie:
            headers["Set-Cookie"] = (f"{self._cookie_name()}={cookie}; Path=/; HttpOnly; "
                                     f"SameSite=Lax; Max-Age={COOKIE_DAYS * 86400}")
        self._send(HTTPStatus.SEE_OTHER, "", headers=headers)

    def _cookie_name(self) -> str:
        return f"vbgm_study_{self.server.manifest.id}"

    def _cookie_code(self) -> str | None:
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except Exception:  # a malformed cookie header: as if none
            return None
        morsel = cookie.get(self._cookie_name())
        return morsel.value if morsel else None

    def _guard(self, handler: Callable[[], None]) -> None:
        """Run a route; a failure answers 500/503 and the server keeps serving."""
        try:
            handler()
        except (BrokenPipeError, ConnectionResetError):
            pass
        except sqlite3.OperationalError as exc:
            print(f"vbgm study: database error: {exc}", file=sys.stderr)
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "The answers could not be saved just "
                       "now; please go back and submit again.", "text/plain; charset=utf-8")
        except Exception:
            traceback.print_exc()
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal error; please reload.",
                       "text/plain; charset=utf-8")

    # --- routes -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        """Pages, media, health check."""
        self._guard(self._get)

    def do_HEAD(self) -> None:
        """As GET, without a body."""
        self._guard(self._get)

    def do_POST(self) -> None:
        """Start a participant, or save a page."""
        self._guard(self._post)

    def _get(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path == "/healthz":
            self._send(HTTPStatus.OK, "ok\n", "text/plain; charset=utf-8")
        elif path == "/":
            code = self._cookie_code()
            who = self.server.store.participant(code) if code else None
            if who is not None:
                self._redirect(f"/p/{who.code}")
            else:
                self._welcome()
        elif path == "/resume":
            typed = parse_qs(url.query).get("code", [""])[0]
            who = self.server.store.participant(typed) if normalize_code(typed) else None
            if who is None:
                self._welcome(f"No participant has the code {typed!r}; check it, or start "
                              f"anew.", HTTPStatus.NOT_FOUND)
            else:
                self._redirect(f"/p/{who.code}", cookie=who.code)
        elif path.startswith("/media/"):
            self._media(path[len("/media/"):])
        elif (m := _PAGE_RE.match(path)) is not None:
            who = self.server.store.participant(m.group(1))
            if who is None:
                self._welcome("Unknown participant code; start anew or type your code.",
                              HTTPStatus.NOT_FOUND)
            elif m.group(2) is None:
                self._redirect(self._next_page(who))
            elif m.group(2) == "done":
                self._send(HTTPStatus.OK, pages.done(who.code, len(who.plan)))
            else:
                self._question(who, int(m.group(2)))
        else:
            self._send(HTTPStatus.NOT_FOUND, "Not found.", "text/plain; charset=utf-8")

    def _post(self) -> None:
        path = urlsplit(self.path).path
        form = self._form()
        if form is None:
            return
        if path == "/start":
            who = self.server.store.new_participant()
            self._redirect(f"/p/{who.code}", cookie=who.code)
            return
        m = _PAGE_RE.match(path)
        who = self.server.store.participant(m.group(1)) if m else None
        if who is None or m is None or not (m.group(2) or "").isdigit():
            self._send(HTTPStatus.NOT_FOUND, "Not found.", "text/plain; charset=utf-8")
            return
        page = int(m.group(2))
        if not 1 <= page <= len(who.plan):
            self._send(HTTPStatus.NOT_FOUND, "No such page.", "text/plain; charset=utf-8")
            return
        values = {k: v[0] for k, v in form.items()}
        answers, error = parse_answers(values, who.plan[page - 1][1])
        if error:
            self._question(who, page, values, error, HTTPStatus.BAD_REQUEST)
            return
        self.server.store.record_page(who, page - 1, answers)
        self._redirect(self._next_page(who), cookie=who.code)

    # --- pieces -----------------------------------------------------------------------------

    def _form(self) -> dict[str, list[str]] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM_BYTES:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Form too large.",
                       "text/plain; charset=utf-8")
            return None
        return parse_qs(self.rfile.read(length).decode("utf-8", "replace"))

    def _welcome(self, error: str = "", status: int = HTTPStatus.OK) -> None:
        m = self.server.manifest
        self._send(status, pages.welcome(len(m.videos), len(m.systems), error))

    def _next_page(self, who: Participant) -> str:
        done = self.server.store.answers(who.number)
        for i, (video, _) in enumerate(who.plan, 1):
            if video not in done:
                return f"/p/{who.code}/{i}"
        return f"/p/{who.code}/done"

    def _question(self, who: Participant, page: int, values: dict[str, str] | None = None,
                  error: str = "", status: int = HTTPStatus.OK) -> None:
        if not 1 <= page <= len(who.plan):
            self._send(HTTPStatus.NOT_FOUND, "No such page.", "text/plain; charset=utf-8")
            return
        video, order = who.plan[page - 1]
        if values is None:  # a revisited page shows what was saved
            saved = self.server.store.answers(who.number).get(video, {})
            values = {f"{pages.LETTERS[i]}_{k}": str(saved[s][k])
                      for i, s in enumerate(order) if s in saved for k in FIELDS}
        files = self.server.video_files[video]
        media = [f"/media/{Path(files[s]).name}" for s in order]
        self._send(status, pages.question_page(who.code, page, len(who.plan), media, values,
                                               error))

    def _media(self, name: str) -> None:
        path = self.server.media.get(name)
        if path is None:
            self._send(HTTPStatus.NOT_FOUND, "Not found.", "text/plain; charset=utf-8")
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        m = _RANGE_RE.match(self.headers.get("Range", "").strip())
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:  # the last N bytes
                start = max(0, size - int(m.group(2)))
            if start > end:
                self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "",
                           headers={"Content-Range": f"bytes */{size}"})
                return
            status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        with path.open("rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


def parse_answers(values: dict[str, str], order: list[str]
                  ) -> tuple[dict[str, dict[str, int]], str]:
    """A submitted form → (system → field → value, error message ('' when complete and
    valid)). Fields are named by the version's letter (`A_richness`, `A_rank`)."""
    answers: dict[str, dict[str, int]] = {}
    missing = []
    for i, system in enumerate(order):
        letter = pages.LETTERS[i]
        row = {}
        for k in FIELDS:
            raw = values.get(f"{letter}_{k}", "")
            top = len(order) if k == "rank" else design.SCALE[-1]
            if raw.isdigit() and 1 <= int(raw) <= top:
                row[k] = int(raw)
            else:
                missing.append(f"{letter} {k.replace('_', ' ')}")
        answers[system] = row
    if missing:
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        return answers, f"Please answer every question: missing {', '.join(missing[:6])}{more}."
    if sorted(a["rank"] for a in answers.values()) != list(range(1, len(order) + 1)):
        return answers, "Please give each version a different rank (1 = best)."
    return answers, ""


def serve(study: Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the study until interrupted (Ctrl-C, SIGTERM, or a kill: answers are already
    saved)."""
    try:
        server = StudyServer((host, port), study)
    except OSError as exc:
        raise VbgmError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    m = server.manifest
    n_people, n_pages = server.store.counts()
    url_host = f"[{host}]" if ":" in host else host
    print(f"study {study}: {len(m.videos)} videos x {len(m.systems)} systems; "
          f"{n_people} participants, {n_pages} pages answered so far ({server.store.path})",
          flush=True)
    print(f"serving at http://{url_host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
