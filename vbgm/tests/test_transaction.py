"""All-or-nothing outputs of `vbgm generate` / `compose` with real processes, real file systems
(read-only and full tmpfs mounts when we may mount, as root), real damaged media and checkpoints.

Subprocess tests use the 4 s carphone clip: a run takes a few seconds, mostly imports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import symusic
import torch
from vbgm.atomic import make_temp, remove_stale, temp_owner
from vbgm.cli import main
from vbgm.errors import VbgmError
from vbgm.formats import video_files
from vbgm.model import CMT, CONFIGS, load_checkpoint, save_checkpoint
from vbgm.pipeline import default_checkpoint
from vbgm.transaction import Terminated, Transaction, lock_path, stops_held, stops_raise

CLIP = "carphone_pristine.mp4"  # 4.0 s, no audio
LONG = "bikes.mp4"  # 10.0 s


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vbgm.cli", *args]


def _wait_for(pred: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.01)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _seconds(path: Path) -> float:
    with av.open(str(path)) as c:
        return float(c.duration / 1e6)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """mount(name, options) → a fresh tmpfs at tmp_path/name; skipped where we may not mount."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                           capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=False)


# --- the transaction itself --------------------------------------------------------------------


def test_all_or_nothing(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mid", tmp_path / "sub" / "b.wav"
    with pytest.raises(RuntimeError), Transaction([a, b]) as tx:
        tx.path(a).write_bytes(b"a")
        raise RuntimeError("the second output failed")
    assert _names(tmp_path) == []  # no output, no temporary, no lock, not even the new folder
    with Transaction([a, b]) as tx:
        tx.path(a).write_bytes(b"a")
        tx.path(b).write_bytes(b"b")
        assert not a.exists() and not b.exists()  # nothing visible before the commit
        tx.commit()
    assert a.read_bytes() == b"a" and b.read_bytes() == b"b"
    assert _names(tmp_path) == ["a.mid", "sub"] and _names(tmp_path / "sub") == ["b.wav"]
    with pytest.raises(VbgmError, match="already exists"), Transaction([a]):
        pass
    with Transaction([a], force=True) as tx:
        tx.path(a).write_bytes(b"new")
        tx.commit()
    assert a.read_bytes() == b"new"


def test_a_held_output_is_refused_and_exclusive_at_commit(tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    with Transaction([out]) as first:
        with pytest.raises(VbgmError, match=f"another vbgm run is writing it \\(pid "
                                            f"{os.getpid()}\\)"), Transaction([out]):
            pass
        out.write_bytes(b"someone else")  # appears after our checks (not a vbgm run)
        first.path(out).write_bytes(b"ours")
        with pytest.raises(VbgmError, match="already exists"):
            first.commit()
    assert out.read_bytes() == b"someone else"
    assert _names(tmp_path) == ["o.mp4"]


def test_runs_sharing_a_new_folder_neither_trip_nor_strand_each_other(tmp_path: Path) -> None:
    """Batch workers create the same new output folder at once, and one that fails removes the
    folder it made: the others must go on (CI once saw `FileExistsError` from this race)."""
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def job(i: int) -> None:
        out = tmp_path / f"round{i // 8}" / "out" / f"{i}.mid"
        try:
            start.wait()
            with Transaction([out]) as tx:
                if i % 2:
                    raise RuntimeError("a bad video")
                tx.path(out).write_bytes(b"x")
                tx.commit()
        except RuntimeError:
            pass
        except BaseException as e:  # noqa: BLE001 - collected and reported below
            errors.append(e)

    for r in range(5):
        threads = [threading.Thread(target=job, args=(r * 8 + k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    for r in range(5):
        assert _names(tmp_path / f"round{r}" / "out") == sorted(
            f"{r * 8 + k}.mid" for k in range(0, 8, 2))


def test_stale_temporaries_and_locks_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / f".o.mp4.vbgm-tmp-{dead}-0123abcd.mp4"
    nested = tmp_path / f"..o.mp4.vbgm-tmp-{dead}-0123abcd.mp4.vbgm-tmp-{dead}-beef.mp4"
    stale.write_bytes(b"partial")
    nested.write_bytes(b"partial")
    lock_path(tmp_path / "other.mid").write_text(f"{dead}\n")  # no process holds it
    live = make_temp(tmp_path / "x.wav")  # ours: alive
    mine = tmp_path / "notes.vbgm-tmp-1.txt"  # not a vbgm name (no leading dot, no token)
    mine.write_text("keep")
    assert temp_owner(stale.name) == dead and temp_owner(live.name) == os.getpid()
    assert temp_owner(mine.name) is None
    with Transaction([tmp_path / "o.mp4"]) as tx:
        tx.path(tmp_path / "o.mp4").write_bytes(b"x")
        tx.commit()
    assert _names(tmp_path) == sorted([live.name, "notes.vbgm-tmp-1.txt", "o.mp4"])
    assert remove_stale(tmp_path) == []


# --- real processes -----------------------------------------------------------------------------


def test_two_concurrent_runs_exactly_one_wins(video_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    clips = {CLIP: 4.0, LONG: 10.0}
    procs = {c: subprocess.Popen(_cli("generate", str(video_root / c), "-o", str(out),
                                      "--quiet"), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for c in clips}
    results = {c: (*p.communicate(timeout=120), p.returncode) for c, p in procs.items()}
    results = {c: (rc, out, err) for c, (out, err, rc) in results.items()}
    assert sorted(rc for rc, _, _ in results.values()) == [0, 2]
    winner = next(c for c, (rc, _, _) in results.items() if rc == 0)
    loser_err = next(err for rc, _, err in results.values() if rc == 2).strip().splitlines()
    assert len(loser_err) == 1 and loser_err[0].startswith("vbgm: error: ")
    assert "another vbgm run is writing it" in loser_err[0] or "already exists" in loser_err[0]
    assert _names(tmp_path) == ["o.mid", "o.mp4"]
    # Both files come from the winner's video.
    assert abs(_seconds(out) - clips[winner]) < 0.2
    score = symusic.Score(str(out.with_suffix(".mid")))
    end_s = score.end() / score.ticks_per_quarter * 60.0 / score.tempos[0].qpm
    assert abs(end_s - clips[winner]) < 1.0


def _ctrl_c_reaches_python() -> None:
    """In the child: SIGINT back to its default, so Python raises KeyboardInterrupt on it. A
    process started in the background of a non-interactive shell (as CI may start the tests)
    inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_temporaries(video_root: Path, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(_cli("generate", str(video_root / LONG), "-o", str(out), "--quiet"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_reaches_python)
    # A real output's temporary, not the writability probe (made and removed at once).
    _wait_for(lambda: any(".vbgm-tmp-" in n and "vbgm-probe" not in n
                          for n in os.listdir(out.parent)) or proc.poll() is not None)
    assert proc.poll() is None, proc.communicate()
    return proc


def test_kill_9_then_a_rerun_succeeds_and_cleans(video_root: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "o.mp4"
    proc = _start_and_wait_for_temporaries(video_root, out)
    proc.kill()
    proc.communicate()
    left = _names(tmp_path)
    assert left and all(n.startswith(".") for n in left)  # what kill -9 leaves: hidden only
    assert main(["generate", str(video_root / CLIP), "-o", str(out), "--quiet"]) == 0
    assert _names(tmp_path) == ["o.mid", "o.mp4"]


@pytest.mark.parametrize("sig, rc, word", [(signal.SIGTERM, 143, "terminated"),
                                           (signal.SIGINT, 130, "interrupted")])
def test_sigterm_and_ctrl_c_leave_nothing(video_root: Path, tmp_path: Path, sig: int, rc: int,
                                          word: str) -> None:
    out = tmp_path / "o.mp4"
    proc = _start_and_wait_for_temporaries(video_root, out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == rc, err  # stderr says where the signal landed
    assert err.strip().splitlines()[-1] == f"vbgm: {word}"
    assert _names(tmp_path) == []


# --- destinations ---------------------------------------------------------------------------


def _one_error(capsys: pytest.CaptureFixture, quiet: bool = False) -> str:
    """The one error line on stderr; with quiet, stdout must be empty (refused before work)."""
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vbgm: error: "), captured.err
    assert not quiet or captured.out == "", captured.out
    return err[0]


def test_unwritable_destination_is_refused_before_any_work(video_root: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture,
                                                            mount_tmpfs) -> None:
    # Root passes every permission check (chmod does not stop it), so a folder that cannot be
    # created (its parent is a file) stands for a read-only one here; below, a read-only mount.
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rc = main(["generate", str(video_root / CLIP), "-o", str(blocker / "out" / "o.mp4")])
    assert rc == 2
    assert _one_error(capsys, quiet=True) == (  # refused before the analysis started
        f"vbgm: error: {blocker / 'out'}: cannot create this folder ({blocker} is not a folder)")
    rc = main(["compose", "--seconds", "2", "-o", str(tmp_path / "ok.mid"), "--wav",
               str(blocker / "x.wav")])
    assert rc == 2 and _one_error(capsys, quiet=True) == f"vbgm: error: {blocker}: not a folder"
    assert _names(tmp_path) == ["file"]
    ro = mount_tmpfs("ro", "ro,size=1m")
    for out in (ro / "o.mp4", ro / "new" / "o.mp4"):
        assert main(["generate", str(video_root / CLIP), "-o", str(out)]) == 2
        assert _one_error(capsys, quiet=True) == (
            f"vbgm: error: {out.parent}: cannot write in this folder (read-only file system)")
    assert _names(ro) == []


def test_full_disk_before_and_during_the_run(video_root: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture, mount_tmpfs) -> None:
    small = mount_tmpfs("small", "size=8m")
    assert main(["generate", str(video_root / CLIP), "-o", str(small / "o.mp4")]) == 2
    assert f"{small}: not enough free space" in _one_error(capsys, quiet=True)
    assert _names(small) == []
    # The disk fills up while the video is analysed (after the checks): the mux cannot write.
    disk = mount_tmpfs("disk", "size=60m")
    out = disk / "o.mp4"

    def fill() -> None:
        _wait_for(lambda: lock_path(out).exists(), 60)
        st = os.statvfs(disk)
        with open(disk / "filler", "wb") as f:
            left = st.f_bavail * st.f_frsize - 100_000  # room for the MIDI, not the video
            while left > 0:
                left -= f.write(b"\0" * min(left, 2**22))

    filler = threading.Thread(target=fill)
    filler.start()
    rc = main(["generate", str(video_root / CLIP), "-o", str(out), "--quiet"])
    filler.join()
    assert rc == 2
    assert _one_error(capsys) == f"vbgm: error: cannot write {out}: no space left on device"
    assert _names(disk) == ["filler"]


def test_batch_goes_on_after_a_bad_video(video_root: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a_broken.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + bytes(3000))
    (inputs / "b.mpg").write_bytes((video_root / CLIP).read_bytes())  # .mpg: a video too
    (inputs / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    assert main(["generate", str(inputs), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "a_broken.mp4" in err[0] and err[1] == "vbgm: 1 of 2 videos failed"
    assert _names(out) == ["b.mid", "b.mp4"]


def test_evaluate_video_takes_the_videos_generate_takes(video_root: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "clip.MPG").write_bytes((video_root / CLIP).read_bytes())
    assert video_files(tmp_path) == [tmp_path / "clip.MPG"]
    assert main(["evaluate", "video", str(tmp_path), "--control", "1"]) == 0
    assert "1 videos (clip.MPG)" in capsys.readouterr().out


# --- damaged inputs ----------------------------------------------------------------------------


def _with_damaged_ac3(video: Path, path: Path) -> None:
    """`video` with an AC3 sound track whose packets 10 and 11 are zeroed (as a damaged
    recording: ffmpeg skips them, decoding them raises)."""
    with av.open(str(video)) as src, av.open(str(path), "w") as out:
        vin = src.streams.video[0]
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream("ac3", rate=48000, layout="stereo")
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(48000 * 4) / 48000)).astype(np.float32)
        packets = []
        for i in range(0, len(tone), 1536):
            frame = av.AudioFrame.from_ndarray(np.stack([tone[i:i + 1536]] * 2), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48000, i, Fraction(1, 48000)
            packets += aout.encode(frame)
        packets += aout.encode(None)
        for k, p in enumerate(packets):
            if k in (10, 11):
                q = av.Packet(bytes(p.size))
                q.pts, q.dts, q.time_base, q.stream = p.pts, p.dts, p.time_base, aout
                p = q
            out.mux(p)
        for p in src.demux(vin):
            if p.dts is not None:
                p.stream = vout
                out.mux(p)


def test_keep_audio_with_undecodable_sound_warns_and_goes_on(video_root: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture
                                                             ) -> None:
    src = tmp_path / "damaged.mkv"
    _with_damaged_ac3(video_root / CLIP, src)
    with av.open(str(src)) as c, pytest.raises(av.error.InvalidDataError):
        for _ in c.decode(audio=0):
            pass
    out = tmp_path / "out" / "o.mp4"
    assert main(["generate", str(src), "-o", str(out), "--keep-audio", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vbgm: warning: {src}: its own sound cannot")
    assert "invalid data" in err[0] and "Errno" not in err[0]
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1 and abs(c.duration / 1e6 - 4.0) < 0.2
    assert _names(out.parent) == ["o.mid", "o.mp4"]


def _data_start(path: Path) -> int:
    """Byte offset in a torch zip checkpoint of the largest tensor's data."""
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    raw = path.read_bytes()
    n, e = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + n + e


def _flip(src: Path, dst: Path, change: Callable[[int], int]) -> None:
    raw = bytearray(src.read_bytes())
    start = _data_start(src) + 1000
    raw[start:start + 64] = bytes(change(b) for b in raw[start:start + 64])
    dst.write_bytes(bytes(raw))


def test_damaged_checkpoint_is_refused_at_load(video_root: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.pt"
    _flip(default_checkpoint(), bad, lambda b: 0xFF)  # float16 0xFFFF: NaN weights
    out = tmp_path / "o.mp4"
    rc = main(["generate", str(video_root / CLIP), "-o", str(out), "--checkpoint", str(bad)])
    assert rc == 2
    # The shipped model carries a checksum, which catches the damage first; one without a
    # checksum (saved before checksums existed) is caught by the NaN check (below).
    assert _one_error(capsys).endswith(("has NaN or infinite weights)",
                                        "do not match their checksum)"))
    assert _names(tmp_path) == ["bad.pt"]
    # Checkpoints saved now carry a checksum: flipped bits that stay finite are caught too.
    good = tmp_path / "tiny.pt"
    torch.manual_seed(0)
    save_checkpoint(good, CMT(CONFIGS["tiny"]), CONFIGS["tiny"])
    load_checkpoint(good)
    _flip(good, bad, lambda b: b ^ 0x01)
    with pytest.raises(VbgmError, match="do not match their checksum"):
        load_checkpoint(bad)
    payload = torch.load(good, weights_only=False)
    del payload["sha256"]
    next(v for v in payload["model"].values() if v.is_floating_point()).fill_(float("nan"))
    torch.save(payload, bad)
    with pytest.raises(VbgmError, match="NaN or infinite weights"):
        load_checkpoint(bad)


@pytest.mark.parametrize("command", [["generate", "IN", "-o", "OUT/o.mp4"],
                                     ["compose", "--seconds", "4", "-o", "OUT/o.mid"]])
@pytest.mark.parametrize("value", ["", " , "])
def test_empty_instruments_is_an_error(video_root: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture, command: list[str],
                                       value: str) -> None:
    args = [a.replace("IN", str(video_root / CLIP)).replace("OUT", str(tmp_path))
            for a in command]
    assert main([*args, "--instruments", value]) == 2
    assert "--instruments is empty" in _one_error(capsys)
    assert _names(tmp_path) == []


# --- the first video analysed while the program starts up ---------------------------------------


def test_the_first_video_is_analysed_ahead_with_the_same_result(video_root: Path,
                                                                 tmp_path: Path) -> None:
    # A fresh process (torch not imported yet) forks the analysis; the music is the same as
    # from the in-process path (this test process has torch loaded, so it never forks).
    fresh = subprocess.run(_cli("generate", str(video_root / CLIP), "-o", str(tmp_path / "a.mp4")),
                           capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert "while starting up]" in fresh.stdout  # the analysis came from the child
    assert main(["generate", str(video_root / CLIP), "-o", str(tmp_path / "b.mp4"),
                 "--quiet"]) == 0
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()


def test_an_analysis_ahead_that_fails_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    run = subprocess.run(_cli("generate", str(bad), "-o", str(tmp_path / "o.mp4")),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    err = run.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vbgm: error: {bad}"), run.stderr
    assert _names(tmp_path) == ["broken.mp4"]


def test_no_analysis_ahead_once_torch_is_loaded(video_root: Path) -> None:
    import torch  # noqa: F401  (a fork of this process could hang in OpenMP)
    from vbgm.video import AnalysisAhead

    assert AnalysisAhead.start(video_root / CLIP) is None


def test_kill_9_during_the_analysis_ahead_leaves_no_process(video_root: Path,
                                                            tmp_path: Path) -> None:
    proc = subprocess.Popen(_cli("generate", str(video_root / LONG), "-o", str(tmp_path / "o.mp4"),
                                 "--quiet"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    _wait_for(lambda: children.read_text().split() != [])  # the analysis started
    child = int(children.read_text().split()[0])
    proc.kill()
    proc.wait()
    _wait_for(lambda: not Path(f"/proc/{child}").exists() or
              Path(f"/proc/{child}/stat").read_text().split()[2] == "Z", timeout=10)
    assert _names(tmp_path) == []


def test_no_commit_after_a_stop_whose_exception_was_swallowed(tmp_path: Path) -> None:
    # Seen for real: SIGTERM's handler ran inside an import numpy made lazily from C, its
    # exception vanished there, and the job went on; the transaction must still not commit.
    out = tmp_path / "a.mid"
    with stops_raise():
        with pytest.raises(Terminated), Transaction([out]) as tx:
            tx.path(out).write_bytes(b"a")
            with contextlib.suppress(Terminated):  # what the library code did
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)  # the handler runs here
            tx.commit()
    assert _names(tmp_path) == []
    with stops_raise(), Transaction([out]) as tx:  # a new job forgets the old stop
        tx.path(out).write_bytes(b"b")
        tx.commit()
    assert out.read_bytes() == b"b"


@pytest.mark.parametrize("sig, stop", [(signal.SIGTERM, Terminated),
                                       (signal.SIGINT, KeyboardInterrupt)])
def test_a_stop_while_a_file_is_made_and_recorded_waits_for_both(tmp_path: Path, sig: int,
                                                                 stop: type) -> None:
    """Seen for real: Ctrl-C between the creation and the removal of the destination probe left
    it behind. In a held block the stop is remembered and raised once the block ends."""
    if sig == signal.SIGINT:  # as in a terminal: tests started in the background (nohup ... &)
        # inherit SIGINT ignored, and `stops_raise` leaves an ignored Ctrl-C ignored
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            _stop_while_held(tmp_path, sig, stop)
        finally:
            signal.signal(signal.SIGINT, previous)
    else:
        _stop_while_held(tmp_path, sig, stop)


def _stop_while_held(tmp_path: Path, sig: int, stop: type) -> None:
    made: list[Path] = []
    with stops_raise():
        with pytest.raises(stop):
            with stops_held():
                (tmp_path / "f").write_bytes(b"")
                os.kill(os.getpid(), sig)
                time.sleep(0.2)  # the handler runs here, and must not raise
                made.append(tmp_path / "f")
        assert made  # the block finished before the stop was raised
        with stops_held():  # a later block does not raise the same stop again
            pass
        if sig == signal.SIGTERM:  # a second SIGTERM would kill at once
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    # A stop that interrupted a failing step is what ends the job, not the step's error.
    with stops_raise(), pytest.raises(stop) as raised:
        with stops_held():
            os.kill(os.getpid(), sig)
            time.sleep(0.2)
            raise VbgmError("another vbgm run is writing it")
    assert isinstance(raised.value.__cause__, VbgmError)


def test_an_existing_output_is_refused_before_the_analysis_starts(video_root: Path,
                                                                  tmp_path: Path) -> None:
    # In a fresh process the first video's analysis forks early; a refused destination must
    # come first: one error line, no analysis (no "decode" line), nothing written.
    (tmp_path / "o.mp4").write_bytes(b"keep me")
    run = subprocess.run(_cli("generate", str(video_root / CLIP), "-o", str(tmp_path / "o.mp4")),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"vbgm: error: {tmp_path / 'o.mp4'}: already exists (use --force to overwrite)"]
    assert (tmp_path / "o.mp4").read_bytes() == b"keep me" and _names(tmp_path) == ["o.mp4"]
    # So must a bad request (checked without the model's modules).
    run = subprocess.run(_cli("generate", str(video_root / CLIP), "-o", str(tmp_path / "n.mp4"),
                              "--genre", "jazz"), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "unknown genre 'jazz'" in run.stderr and _names(tmp_path) == ["o.mp4"]
