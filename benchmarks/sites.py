"""The real sites the benchmarks run on: the CBS corpus as shipped, and the Stirling mirror crawled locally.

The Stirling mirror (../shared/data/sites/stirling-2022.tar.gz, 84 pages of www.stir.ac.uk) is extracted
and crawled with ``sitetune.crawl.crawl_folder`` on 127.0.0.1, its records rebased on
``https://www.stir.ac.uk/`` so the corpus is the same on every run and citations link to the real site.
The corpus is reused while the tarball's sha256, recorded beside it, still matches.

Other benchmarks import it (``from sites import stirling_corpus``); from the command line it prints a
corpus path:

Usage:
    python benchmarks/sites.py stirling [--workdir runs/sites]
    python benchmarks/sites.py cbs
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CBS_CSV = SHARED_DATA / "cbs_graduate_programs.csv"
STIRLING_TARBALL = SHARED_DATA / "sites" / "stirling-2022.tar.gz"
STIRLING_PUBLIC_BASE = "https://www.stir.ac.uk/"
STIRLING_ROOT = "stirling"  # the tarball's top folder is the site root


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cbs_corpus() -> Path:
    """The shared CBS corpus (a CSV of section records).

    Raises:
        FileNotFoundError: ../shared is not beside the repository.
    """
    if not CBS_CSV.is_file():
        raise FileNotFoundError(f"{CBS_CSV}: the CBS corpus is missing (expected ../shared beside the repo)")
    return CBS_CSV


def stirling_corpus(workdir: Path = Path("runs/sites"), *, tarball: Path = STIRLING_TARBALL,
                    progress: bool = False) -> Path:
    """The Stirling corpus, ``workdir/stirling.jsonl``, crawled from the mirror when missing or stale.

    The mirror is extracted to ``workdir/stirling/`` and crawled with no delay (our own local server),
    its page cache kept in ``workdir/stirling.cache``. ``workdir/stirling.jsonl.sha256`` records the
    tarball's hash once the crawl has succeeded; a corpus whose recorded hash matches is returned as is.

    Args:
        workdir: Folder for the extracted site, the corpus, its crawl report and cache.
        tarball: The mirror (a ``.tar.gz`` whose top folder ``stirling/`` is the site root).
        progress: Show the crawl's progress bar on stderr.

    Returns:
        The corpus path.

    Raises:
        FileNotFoundError: The tarball is missing, or has no ``stirling/`` folder.
    """
    from sitetune.crawl import crawl_folder

    tarball = Path(tarball)
    if not tarball.is_file():
        raise FileNotFoundError(f"{tarball}: the Stirling site mirror is missing "
                                "(expected ../shared beside the repo)")
    workdir = Path(workdir)
    corpus = workdir / "stirling.jsonl"
    stamp = workdir / "stirling.jsonl.sha256"
    digest = sha256_of(tarball)
    if corpus.is_file() and stamp.is_file() and stamp.read_text().split()[:1] == [digest]:
        return corpus
    workdir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)  # a crawl that fails half-way must not leave a corpus marked current
    site = workdir / STIRLING_ROOT
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        if not (Path(tmp) / STIRLING_ROOT).is_dir():
            raise FileNotFoundError(f"{tarball}: no '{STIRLING_ROOT}/' folder in the archive")
        shutil.rmtree(site, ignore_errors=True)
        os.replace(Path(tmp) / STIRLING_ROOT, site)
    crawl_folder(site, corpus, public_base=STIRLING_PUBLIC_BASE, progress=progress)
    stamp.write_text(f"{digest}  {tarball.name}\n")
    return corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", choices=["stirling", "cbs"])
    parser.add_argument("--workdir", type=Path, default=Path("runs/sites"),
                        help="Where the Stirling mirror is extracted and crawled (default: runs/sites)")
    args = parser.parse_args(argv)
    try:
        path = cbs_corpus() if args.site == "cbs" else stirling_corpus(args.workdir, progress=sys.stderr.isatty())
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
