"""Encoder backends: agreement with torch fp32, verified exports, fallback only when asked, order kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sitetune.config import EncoderConfig, Precision
from sitetune.encode import ExportError, export_model, load_encoder
from sitetune.encode.batching import encode_in_order, sorted_batches
from sitetune.encode.export import export_dir
from sitetune.encode.threads import choose_threads, physical_cores
from sitetune.errors import SitetuneError
from sitetune.models import base_model_path

pytestmark = pytest.mark.slow


def _link_copy(src: Path, dst: Path) -> Path:
    """A copy of a folder made of hard links: cheap; files must be replaced, never edited in place."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _replace_bytes(path: Path, data: bytes) -> None:
    path.unlink()  # break the hard link first, so the original stays intact
    path.write_bytes(data)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base model as a writable folder of its own, so exports land beside it in a temp dir."""
    return _link_copy(base_model_path(), tmp_path_factory.mktemp("model") / "minilm")


@pytest.fixture(scope="session")
def texts(cbs_corpus) -> list[str]:  # type: ignore[no-untyped-def]
    """A few CBS chunks of very different lengths, and a short query."""
    chunks = sorted(cbs_corpus.chunks, key=lambda c: len(c.text))
    picked = [chunks[i].text for i in (0, len(chunks) // 3, len(chunks) // 2, -40, -1)]
    return [*picked, "what are the admission requirements?"]


@pytest.fixture(scope="session")
def reference(model_dir: Path, texts: list[str]) -> np.ndarray:
    """fp32 sentence-transformers vectors: what every backend is compared with."""
    encoder = load_encoder(model_dir, EncoderConfig(backend="sentence-transformers"))
    return encoder.encode(texts)


@pytest.fixture(scope="session")
def calibration(cbs_corpus) -> list[str]:  # type: ignore[no-untyped-def]
    """Site texts for int8 calibration and static token weights (few: export time, not accuracy)."""
    return [c.text for c in cbs_corpus.chunks[::25]]


@pytest.fixture(scope="session")
def exported(model_dir: Path, calibration: list[str], base_encoder) -> Path:  # type: ignore[no-untyped-def]
    """``model_dir`` with all three exports.

    The fp32 OpenVINO export is base's (made when the session's base encoder loaded, from the same weights,
    so it is valid for this copy: exports are checked against the weights' hash); the two calibrated ones
    are made here. test_auto_is_the_default_and_exports_openvino_on_first_use exports fp32 itself.
    """
    shutil.copytree(export_dir(base_encoder.model_path, "openvino"), export_dir(model_dir, "openvino"))
    for backend in ("openvino-int8", "static"):
        export_model(model_dir, backend, texts=calibration)
    return model_dir


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    return np.sum(a * b, axis=1)


@pytest.mark.parametrize(
    ("backend", "precision", "threshold"),
    [
        ("torch", Precision.FP32, 0.99999),
        ("torch", Precision.BF16, 0.999),
        ("openvino", Precision.FP32, 0.99999),
        ("openvino", Precision.BF16, 0.999),
        ("openvino-int8", Precision.BF16, 0.99),
    ],
)
def test_backend_agrees_with_torch_fp32(
    exported: Path,
    texts: list[str],
    reference: np.ndarray,
    backend: str,
    precision: Precision,
    threshold: float,
) -> None:
    encoder = load_encoder(exported, EncoderConfig(backend=backend, precision=precision))
    assert encoder.dim == 384 and encoder.model_path == exported
    assert _cosines(encoder.encode(texts), reference).min() >= threshold


def test_static_ranks_like_the_model(exported: Path, cbs_corpus, reference: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Static vectors live in their own space: check unit rows and that they rank pairs like the model."""
    sample = [c.text for c in cbs_corpus.chunks[3::40]]
    static = load_encoder(exported, EncoderConfig(backend="static")).encode(sample)
    assert static.shape == (len(sample), 256)
    np.testing.assert_allclose(np.linalg.norm(static, axis=1), 1.0, atol=1e-4)
    full = load_encoder(exported, EncoderConfig(backend="torch")).encode(sample)
    upper = np.triu_indices(len(sample), 1)
    a, b = (static @ static.T)[upper], (full @ full.T)[upper]
    ranks = np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1]
    assert ranks > 0.5  # Spearman correlation of pair similarities


def test_auto_is_the_default_and_exports_openvino_on_first_use(tmp_path: Path, model_dir: Path) -> None:
    assert EncoderConfig().backend == "auto"
    fresh = _link_copy(model_dir, tmp_path / "fresh")
    shutil.rmtree(fresh / "sitetune-export", ignore_errors=True)
    encoder = load_encoder(fresh, EncoderConfig())
    assert getattr(encoder, "backend", None) == "openvino"
    assert (export_dir(fresh, "openvino") / "manifest.json").is_file()


def test_auto_prefers_a_calibrated_int8_export(exported: Path) -> None:
    encoder = load_encoder(exported, EncoderConfig())
    assert getattr(encoder, "backend", None) == "openvino-int8"


def test_missing_export_is_a_clear_error_and_falls_back_only_when_asked(
    tmp_path: Path, model_dir: Path
) -> None:
    bare = _link_copy(model_dir, tmp_path / "bare")
    shutil.rmtree(bare / "sitetune-export", ignore_errors=True)
    with pytest.raises(
        ExportError, match=r"no 'openvino-int8' export .*sitetune export .*--fallback-to-torch"
    ):
        load_encoder(bare, EncoderConfig(backend="openvino-int8"))
    encoder = load_encoder(bare, EncoderConfig(backend="openvino-int8", fallback=True))
    assert type(encoder).__name__ == "TorchEncoder"


@pytest.mark.parametrize("name", ["model.xml", "model.bin", "tokenizer/tokenizer.json"])
def test_corrupted_or_missing_file_is_named(tmp_path: Path, exported: Path, name: str) -> None:
    copy = _link_copy(exported, tmp_path / "copy")
    target = export_dir(copy, "openvino") / name
    data = target.read_bytes()
    _replace_bytes(target, data[:-10] + b"corrupted!")
    with pytest.raises(ExportError, match=rf"{name} is corrupted .*sitetune export"):
        load_encoder(copy, EncoderConfig(backend="openvino"))
    target.unlink()
    with pytest.raises(ExportError, match=rf"{name} is missing"):
        load_encoder(copy, EncoderConfig(backend="openvino"))
    assert (
        type(load_encoder(copy, EncoderConfig(backend="openvino", fallback=True))).__name__ == "TorchEncoder"
    )


def test_export_of_other_weights_is_stale(tmp_path: Path, exported: Path) -> None:
    copy = _link_copy(exported, tmp_path / "retrained")
    weights = copy / "model.safetensors"
    _replace_bytes(weights, weights.read_bytes() + b"\0")
    with pytest.raises(ExportError, match="made from other weights"):
        load_encoder(copy, EncoderConfig(backend="static"))


def test_export_cli_check_reports_corruption(tmp_path: Path, exported: Path) -> None:
    from typer.testing import CliRunner

    from sitetune.cli.main import app

    copy = _link_copy(exported, tmp_path / "cli")
    ok = CliRunner().invoke(app, ["export", str(copy), "--backend", "static", "--check"])
    assert ok.exit_code == 0, ok.output
    _replace_bytes(export_dir(copy, "static") / "embeddings.npy", b"not a table")
    bad = CliRunner().invoke(app, ["export", str(copy), "--backend", "static", "--check"])
    assert bad.exit_code == 2 and "embeddings.npy is corrupted" in bad.output


def test_calibrated_exports_need_texts(model_dir: Path) -> None:
    with pytest.raises(SitetuneError, match="--corpus"):
        export_model(model_dir, "openvino-int8")
    with pytest.raises(SitetuneError, match="nothing to export"):
        export_model(model_dir, "torch")


def test_unknown_backend() -> None:
    with pytest.raises(SitetuneError, match="unknown encoder backend 'onnx'"):
        load_encoder("base", EncoderConfig(backend="onnx"))


def test_sorted_batches_pad_per_batch_and_restore_order() -> None:
    ids = [[1] * n for n in (3, 9, 1, 7, 5, 2)]
    batches = list(sorted_batches(ids, batch_size=2, pad_id=0))
    assert [b.input_ids.shape[1] for b in batches] == [9, 5, 2]  # each padded to its own longest
    out = encode_in_order(ids, 2, 0, 1, lambda b: b.attention_mask.sum(1, keepdims=True).astype(np.float32))
    assert out[:, 0].tolist() == [3, 9, 1, 7, 5, 2]


def test_encoder_output_follows_input_order(exported: Path, texts: list[str]) -> None:
    encoder = load_encoder(exported, EncoderConfig(backend="openvino", batch_size=2))
    forward = encoder.encode(texts)
    backward = encoder.encode(texts[::-1])[::-1]
    assert _cosines(forward, backward).min() > 0.9999
    assert encoder.encode([]).shape == (0, 384)


def _cpuinfo(cpus: list[tuple[int, int, int]], topology: bool = True) -> str:
    """/proc/cpuinfo text for (processor, physical id, core id) triples, as Linux writes it."""
    blocks = []
    for processor, package, core in cpus:
        lines = [f"processor\t: {processor}", "model name\t: Test CPU @ 2.00GHz"]
        if topology:
            lines += [f"physical id\t: {package}", "siblings\t: 4", f"core id\t\t: {core}", "cpu cores\t: 2"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\n"


# Two packages of two cores with two hyper-threads each: processors 0-3 are the first thread of each
# core, 4-7 the second (the usual Linux numbering).
TWO_BY_TWO_BY_TWO = [(p, (p % 4) // 2, p % 2) for p in range(8)]


@pytest.mark.parametrize(
    ("cpuinfo", "allowed", "expected"),
    [
        (_cpuinfo(TWO_BY_TWO_BY_TWO), set(range(8)), 4),  # hyper-threads are not cores
        (_cpuinfo(TWO_BY_TWO_BY_TWO), {0, 4}, 1),  # both threads of one core
        (_cpuinfo(TWO_BY_TWO_BY_TWO), {0, 1, 5}, 2),  # 5 is the second thread of 1's core
        (_cpuinfo(TWO_BY_TWO_BY_TWO), {0, 2}, 2),  # same core id, different packages
        (_cpuinfo(TWO_BY_TWO_BY_TWO, topology=False), {0, 1, 2}, 3),  # no topology: one core per CPU
        (None, {0, 1, 2}, 3),  # no /proc/cpuinfo: the usable CPUs
    ],
    ids=["all", "one-core-two-threads", "mask", "two-packages", "no-topology", "no-cpuinfo"],
)
def test_physical_cores_reads_the_topology_within_the_affinity_mask(
    monkeypatch: pytest.MonkeyPatch, cpuinfo: str | None, allowed: set[int], expected: int
) -> None:
    from sitetune.encode import threads

    class KnownCpuinfo:
        def __init__(self, path: str) -> None:
            assert path == "/proc/cpuinfo"

        def read_text(self) -> str:
            if cpuinfo is None:
                raise FileNotFoundError("/proc/cpuinfo")
            return cpuinfo

    monkeypatch.setattr(threads, "Path", KnownCpuinfo)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: allowed)
    physical_cores.cache_clear()
    try:
        assert physical_cores() == expected
        assert choose_threads(0) == expected and choose_threads(3) == 3
    finally:
        physical_cores.cache_clear()
