"""`vbgm study make`: gather each system's music for each video into one blind study folder.

A system's folder holds, per video, a file named after the video's stem: an MP4 with the music
already on the video (e.g. `vbgm generate`'s output, copied as it is), else a WAV, else a MIDI
file (rendered with the project's synthesiser), muxed onto the video. Everything is checked
before anything is written; the folder is built as a hidden temporary sibling and renamed into
place in one step, so a failed or interrupted run leaves no study (and the temporaries of a
killed run are removed by the next one).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av

from vbgm.atomic import TEMP_TAG, pid_alive, temp_owner
from vbgm.errors import VbgmError, WriteError, reason
from vbgm.formats import is_video, video_files
from vbgm.study.manifest import ANSWERS, MANIFEST, NAME_RE, Manifest, Video
from vbgm.transaction import check_destination, room_for

MP4_SUFFIXES = (".mp4", ".m4v")
WAV_SUFFIXES = (".wav",)
MIDI_SUFFIXES = (".mid", ".midi")
KINDS = (("mp4", MP4_SUFFIXES), ("wav", WAV_SUFFIXES), ("midi", MIDI_SUFFIXES))  # preference


@dataclass(frozen=True)
class Source:
    """One version to put in the study: the video, the system, and its music file and kind."""

    video: Path
    system: str
    path: Path
    kind: str  # "mp4" (copied), "wav" or "midi" (muxed onto the video)


def parse_system(spec: str) -> tuple[str, Path]:
    """`NAME=DIR` → (name, folder); a bad name or a missing folder is a VbgmError."""
    name, sep, folder = spec.partition("=")
    if not sep or not folder:
        raise VbgmError(f"--system {spec!r}: expected NAME=DIR")
    if not NAME_RE.match(name):
        raise VbgmError(f"--system {spec!r}: the name may use letters, digits, '_', '-', '.'")
    path = Path(folder)
    if not path.is_dir():
        raise VbgmError(f"--system {spec}: {path} is not a folder")
    return name, path


def collect_videos(paths: list[Path]) -> list[Path]:
    """The videos named (folders expand to their videos), each stem once."""
    videos: list[Path] = []
    for p in paths:
        if p.is_dir():
            videos.extend(video_files(p))
        elif not p.is_file():
            raise VbgmError(f"{p}: video not found")
        elif not is_video(p):
            raise VbgmError(f"{p}: not a video file name (suffix {p.suffix!r})")
        else:
            videos.append(p)
    seen: dict[str, Path] = {}
    for v in videos:
        if v.stem in seen:
            raise VbgmError(f"{v}: same name as {seen[v.stem]}; each video needs its own stem "
                            f"(the systems' files are matched by it)")
        seen[v.stem] = v
    return videos


def find_music(folder: Path, stem: str) -> tuple[Path, str] | None:
    """The file in `folder` with this stem, by preference MP4 > WAV > MIDI: (path, kind)."""
    entries = {p.suffix.lower(): p for p in folder.glob(f"{glob_escape(stem)}.*")
               if p.stem == stem and p.is_file()}
    for kind, suffixes in KINDS:
        for s in suffixes:
            if s in entries:
                return entries[s], kind
    return None


def glob_escape(text: str) -> str:
    """`text` with glob's special characters made literal."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _probe_video(path: Path, need_audio: bool) -> float:
    """Check that `path` decodes as a video (with an audio stream when `need_audio`); returns its
    duration in seconds (0 when the container does not say)."""
    try:
        with av.open(str(path)) as c:
            has_video, has_audio = bool(c.streams.video), bool(c.streams.audio)
            duration = (c.duration or 0) / 1e6
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VbgmError(f"{path}: cannot read this video ({reason(exc)})") from exc
    if not has_video:
        raise VbgmError(f"{path}: has no video stream")
    if need_audio and not has_audio:
        raise VbgmError(f"{path}: has no audio stream (expected the video with its music)")
    return duration


def _probe_music(src: Source, log: Callable[[str], None]) -> None:
    """Check a system's file before any work: an MP4 with sound (a length other than the
    video's is worth a warning: the wrong clip?), a readable WAV or MIDI."""
    if src.kind == "mp4":
        theirs, ours = _probe_video(src.path, need_audio=True), _probe_video(src.video, False)
        if theirs and ours and abs(theirs - ours) > 0.5:
            log(f"warning: {src.path} lasts {theirs:.1f} s, {src.video} {ours:.1f} s")
    elif src.kind == "wav":
        import wave

        try:
            with wave.open(str(src.path)) as w:
                if w.getnframes() == 0:
                    raise VbgmError(f"{src.path}: the WAV file is empty")
        except (wave.Error, EOFError, OSError) as exc:
            # wave reads PCM only; float WAVs are checked by read_wav when muxed
            if "unknown format" not in str(exc):
                raise VbgmError(f"{src.path}: not a readable WAV file ({exc})") from exc
    else:
        from vbgm.render import load_score, score_seconds

        try:
            seconds = score_seconds(load_score(src.path))
        except VbgmError:
            raise
        except Exception as exc:  # symusic raises plain RuntimeErrors on bad files
            raise VbgmError(f"{src.path}: not a readable MIDI file ({exc})") from exc
        if seconds <= 0.0:
            raise VbgmError(f"{src.path}: the MIDI file has no notes")


def plan_sources(videos: list[Path], systems: list[tuple[str, Path]]) -> list[Source]:
    """Every (video, system) version; all missing files are reported in one error line."""
    sources, missing = [], []
    for name, folder in systems:
        lacking = []
        for v in videos:
            found = find_music(folder, v.stem)
            if found is None:
                lacking.append(v.stem)
            else:
                sources.append(Source(v, name, found[0], found[1]))
        if lacking:
            missing.append(f"{name}={folder} has no music for {', '.join(lacking)}")
    if missing:
        raise VbgmError("; ".join(missing) + " (expected STEM.mp4, STEM.wav or STEM.mid per "
                        "video)")
    return sources


def _write_version(src: Source, out: Path) -> None:
    """Put one version into the study: copy an MP4, or mux a WAV / rendered MIDI onto the
    video."""
    if src.kind == "mp4":
        shutil.copyfile(src.path, out)
        return
    from vbgm.mux import AAC_RATES, mux
    from vbgm.render import read_wav, render_midi

    if src.kind == "wav":
        audio, rate = read_wav(src.path)
        if rate not in AAC_RATES:
            raise VbgmError(f"{src.path}: {rate} Hz cannot be stored as AAC; use 44100 or "
                            f"48000 Hz")
    else:
        audio, rate = render_midi(src.path), 44100
    try:
        mux(src.video, audio, rate, out)
    except WriteError:
        raise
    except VbgmError as exc:
        raise VbgmError(f"{src.path} on {src.video}: {exc}") from exc


def _remove_stale_builds(parent: Path) -> None:
    """Remove the temporary study folders of killed runs (their PID is gone)."""
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            pid = temp_owner(entry.name)
            if pid is not None and entry.is_dir() and not pid_alive(pid):
                shutil.rmtree(entry, ignore_errors=True)


def make_study(videos: list[Path], systems: list[tuple[str, Path]], out: Path,
               force: bool = False, log: Callable[[str], None] = print) -> Manifest:
    """Build the study folder `out` (all-or-nothing) and return its manifest."""
    if len(systems) < 2:
        raise VbgmError("a study compares at least two systems (give --system NAME=DIR twice "
                        "or more)")
    names = [n for n, _ in systems]
    if len(set(names)) != len(names):
        raise VbgmError(f"--system names must differ: {', '.join(names)}")
    videos = collect_videos(videos)
    if out.exists():
        if not force:
            raise VbgmError(f"{out}: already exists (use --force to replace it)")
        if not (out / MANIFEST).is_file():
            raise VbgmError(f"{out}: exists and is not a study folder; not replacing it")
        if (out / ANSWERS).exists():
            raise VbgmError(f"{out}: holds answers ({ANSWERS}); move it away before replacing "
                            f"the study")
    for v in videos:
        _probe_video(v, need_audio=False)
    sources = plan_sources(videos, systems)
    for s in sources:
        _probe_music(s, log)

    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    check_destination(parent, room_for([s.path for s in sources] + videos))
    _remove_stale_builds(parent)
    tmp = parent / f".{out.name}{TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}"
    old = parent / f".{out.name}{TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        (tmp / "media").mkdir(parents=True)
        versions: dict[Path, dict[str, str]] = {v: {} for v in videos}
        for i, s in enumerate(sources, 1):
            rel = f"media/{secrets.token_hex(8)}.mp4"  # opaque: the name hides the system
            log(f"[{i}/{len(sources)}] {s.video.stem}: {s.system} from {s.path}")
            try:
                _write_version(s, tmp / rel)
            except WriteError as exc:  # name the study, not its temporary folder
                raise VbgmError(f"cannot write {out}: {exc.why}") from exc
            versions[s.video][s.system] = rel
        manifest = Manifest(secrets.token_hex(6), secrets.randbelow(2**31), names,
                            [Video(v.stem, versions[v]) for v in videos])
        (tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        for f in [*(tmp / "media").iterdir(), tmp / MANIFEST]:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        swapped = out.exists()
        if swapped:  # --force: swap the old study out, the new one in
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except OSError:
            if swapped:
                os.rename(old, out)
            raise
    except OSError as exc:
        raise VbgmError(f"cannot write {out}: {reason(exc)}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return manifest
