"""Pack a prepared vbgm dataset small enough to carry to another machine, or unpack it there.

    python benchmarks/pack_dataset.py pack data/midi-ds data/gpu      # ~18 MB instead of 160 MB
    python benchmarks/pack_dataset.py unpack data/gpu /tmp/ds          # a folder `vbgm train` reads

The token rows are stored as compressed int16 (every class fits); index.json and stats.json are
copied as they are. Unpacking checks that the rows match the index.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

FILES = ("index.json", "stats.json")


def pack(src: Path, dst: Path) -> None:
    tokens = np.load(src / "tokens.npy", mmap_mode="r")
    if tokens.max() > np.iinfo(np.int16).max or tokens.min() < 0:
        raise SystemExit(f"{src / 'tokens.npy'}: values outside int16")
    dst.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dst / "tokens.npz", tokens=np.asarray(tokens, dtype=np.int16))
    for name in FILES:
        shutil.copy(src / name, dst / name)


def unpack(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    with np.load(src / "tokens.npz") as z:
        np.save(dst / "tokens.npy", z["tokens"].astype(np.int32))
    for name in FILES:
        shutil.copy(src / name, dst / name)
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vbgm" / "src"))
    from vbgm.dataset import Dataset

    ds = Dataset.load(dst)  # checks shape and dtype against the index
    print(f"unpacked {len(ds)} songs, {ds._tokens.shape[0]} token rows into {dst}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["pack", "unpack"])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    a = p.parse_args()
    (pack if a.action == "pack" else unpack)(a.src, a.dst)


if __name__ == "__main__":
    main()
