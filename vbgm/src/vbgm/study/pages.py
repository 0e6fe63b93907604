"""The study's HTML pages: plain forms and inline CSS, no script needed, so any browser works
and nothing is lost with a page that is reloaded or submitted twice. Every dynamic text is
escaped; system names never appear (versions are letters, media files opaque names)."""

from __future__ import annotations

from html import escape

from vbgm.study import design

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#263238;color:#fff;padding:10px 24px;display:flex;justify-content:space-between}
main{padding:12px 24px;max-width:1400px}
.versions{display:flex;gap:16px;flex-wrap:wrap}
.card{background:#fff;border-radius:8px;padding:12px;box-shadow:0 1px 3px #0002;flex:1;
min-width:360px}
.card h2{margin:0 0 8px;font-size:1.2em}
video{width:100%;background:#000;border-radius:4px}
table{border-collapse:collapse;width:100%;margin-top:6px}
td,th{padding:3px 4px;text-align:center;font-size:.9em}
td.q{text-align:left}
th.group{text-align:left;background:#eceff1;font-weight:600}
.hint{color:#666;font-size:.85em}
.error{background:#ffebee;color:#b71c1c;padding:8px 12px;border-radius:6px}
.rank{background:#fff;border-radius:8px;padding:12px;margin-top:16px;box-shadow:0 1px 3px #0002}
button{font-size:1.05em;padding:8px 20px;margin-top:16px}
"""


def _page(title: str, body: str, status_line: str = "") -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><b>Listening study: music for videos</b><span>{status_line}</span></header>"
            f"<main>{body}</main></body></html>")


def welcome(n_videos: int, n_versions: int, error: str = "") -> str:
    """The start page: what the study asks, a Start button and a resume-by-code form."""
    err = f"<p class='error'>{escape(error)}</p>" if error else ""
    body = f"""{err}
<h1>Welcome</h1>
<p>You will see {n_videos} short video{'s' if n_videos != 1 else ''}, each with {n_versions}
versions of background music. Watch each version, rate it on six questions from 1 (bad) to 5
(excellent), and rank the versions. You can stop at any time and come back: your answers are
saved page by page.</p>
<form method='post' action='/start'><button id='start' type='submit'>Start</button></form>
<h2>Continue where you stopped</h2>
<form method='get' action='/resume'>
<label>Participant code <input id='code' name='code' autocomplete='off' placeholder='ABCD-EFGH'
required></label> <button id='resume' type='submit'>Continue</button></form>"""
    return _page("Listening study", body)


def question_page(code: str, page: int, n_pages: int, media: list[str],
                  values: dict[str, str], error: str = "") -> str:
    """One video's page: a card per version (letter, player, six 1-5 questions) and the overall
    rank. `media` are the versions' URLs in the order shown; `values` pre-fills the form (field
    name → value: a resubmitted page or a revisited one)."""
    n = len(media)
    cards = []
    for i, url in enumerate(media):
        letter = LETTERS[i]
        rows, group = [], ""
        for q in design.QUESTIONS:
            if q.group != group:
                group = q.group
                head = "".join(f"<th>{v}</th>" for v in design.SCALE)
                rows.append(f"<tr><th class='group'>{group.capitalize()}</th>{head}</tr>")
            name = f"{letter}_{q.key}"
            cells = "".join(
                f"<td><input type='radio' required name='{name}' id='{name}_{v}' value='{v}'"
                f"{' checked' if values.get(name) == str(v) else ''} "
                f"aria-label='{escape(q.label)} {v}'></td>" for v in design.SCALE)
            rows.append(f"<tr><td class='q' title='{escape(q.text)}'>{escape(q.label)}<br>"
                        f"<span class='hint'>{escape(q.text)}</span></td>{cells}</tr>")
        cards.append(f"<div class='card'><h2>Version {letter}</h2>"
                     f"<video controls preload='metadata' src='{escape(url)}'></video>"
                     f"<table>{''.join(rows)}</table></div>")
    ranks = []
    for i in range(n):
        name = f"{LETTERS[i]}_rank"
        opts = "".join(f"<option value='{r}'{' selected' if values.get(name) == str(r) else ''}>"
                       f"{r}</option>" for r in range(1, n + 1))
        ranks.append(f"<label>Version {LETTERS[i]}: <select name='{name}' id='{name}' required>"
                     f"<option value=''>-</option>{opts}</select></label>")
    err = f"<p class='error' id='error'>{escape(error)}</p>" if error else ""
    body = f"""{err}
<h1 id='title'>Video {page} of {n_pages}</h1>
<p class='hint'>Watch every version to the end, then answer. 1 = bad, 5 = excellent.</p>
<form method='post' action='/p/{escape(code)}/{page}'>
<div class='versions'>{''.join(cards)}</div>
<div class='rank'><b>Overall rank</b> <span class='hint'>(1 = best; each rank once)</span><br>
{' &nbsp; '.join(ranks)}</div>
<button id='submit' type='submit'>Save and continue</button></form>"""
    return _page(f"Video {page} of {n_pages}", body, _code_line(code))


def done(code: str, n_pages: int) -> str:
    """The last page."""
    body = (f"<h1 id='done'>Thank you!</h1><p>All {n_pages} videos are answered and saved. "
            f"You may close this page.</p><p class='hint'>Someone else on this computer?</p>"
            f"<form method='post' action='/start'><button id='start' type='submit'>Start as a "
            f"new participant</button></form>")
    return _page("Thank you", body, _code_line(code))


def _code_line(code: str) -> str:
    from vbgm.study.store import show_code

    return f"Your code: <b id='participant-code'>{escape(show_code(code))}</b> (to resume later)"
