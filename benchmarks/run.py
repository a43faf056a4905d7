"""PolicyPal's speed, each figure next to its baseline measured in the same run, in one table.

    python benchmarks/run.py [--shared ../shared] [--sizes 1000,10000,100000] [--out benchmarks/RESULTS.md]

What it measures (the machine is described at the top of the output; it is shared and noisy, so the
embedding figures are medians of interleaved rounds and every ratio compares figures of this run):

1. PDF parse pages/s of the 215-page collective agreement: plain pypdf in-process vs PolicyPal's loader
   in its parse worker process (the same pypdf, plus normalisation and the pipe).
2. Embedding chunks/s on that agreement's chunks: plain sentence-transformers fp32 (batch 32) vs the
   `Embedder` (OpenVINO bf16 where available), and torch bf16 autocast for reference; mean and min
   cosine to fp32.
3. End-to-end ingest of the agreement, whole process (`python -m rag_core ingest`) vs the plain script
   `benchmarks/plain_ingest.py` (pypdf + 800-character chunks + sentence-transformers fp32 + FAISS flat).
4. Retrieval quality on ../shared/eval (hit@5, MRR) of our vectors vs fp32 vectors of the same chunks.
5. Query latency p50/p95 at each size: baseline = sentence-transformers fp32 query embedding + exact
   FAISS search; ours = `Engine.search` (hybrid: embedding + dense + BM25 + fusion + rows) and
   `Engine.answer` with the extractive generator, in a fresh process per size (its peak RSS is the
   RSS figure). Sizes above the real corpus (~2k chunks) are synthetic: real chunk texts repeated,
   vectors moved along the line to a real neighbour plus noise, so neighbourhoods look like real ones.
   Recall@10 of the approximate index against exact search on the eval questions.
6. t-SNE time at 2k and 10k chunks: openTSNE defaults vs ours (cold), the cached map (warm), 10-NN
   preservation of both, and placing a query on the map (embedding included).

Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag_core.config import Settings  # noqa: E402
from rag_core.types import Chunk, Page  # noqa: E402

AGREEMENT = "corpus/hr/bcgeu-19th-main-public-service-agreement-2022-2025.pdf"


# ---------------------------------------------------------------------------- the table


@dataclass
class Row:
    measure: str
    baseline: str
    ours: str
    ratio: str = ""
    target: str = ""
    met: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: str) -> None:
        self.rows.append(Row(*args))
        r = self.rows[-1]
        print(f"  {r.measure}: baseline {r.baseline} | ours {r.ours} | {r.ratio} {r.target} {r.met}", flush=True)

    def table(self) -> str:
        head = ("measure", "baseline", "ours", "ours vs baseline", "target", "met")
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for r in self.rows:
            lines.append(f"| {r.measure} | {r.baseline} | {r.ours} | {r.ratio} | {r.target} | {r.met} |")
        return "\n".join(lines)


def check(ok: bool) -> str:
    return "yes" if ok else "**no**"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# ---------------------------------------------------------------------------- machine


def machine() -> str:
    info = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and "cpu" not in info:
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags") and "flags" not in info:
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
                info["flags"] = " ".join(f for f in wanted if f in flags) or "none of interest"
                if "amx_bf16" not in flags:
                    info["flags"] += " (no AMX)"
    with contextlib.suppress(OSError):
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        info["memory"] = f"{kb / 1024**2:.0f} GiB"
    versions = []
    for mod in ("torch", "sentence_transformers", "openvino", "faiss", "openTSNE", "pypdf"):
        with contextlib.suppress(Exception):
            versions.append(f"{mod} {__import__(mod).__version__}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"- CPU: {info.get('cpu', platform.processor())}, {os.cpu_count()} cores; flags: {info.get('flags', '?')}\n"
        f"- memory: {info.get('memory', '?')}; Python {platform.python_version()}; {', '.join(versions)}\n"
        f"- load average at start: {load} (a shared machine: other jobs run beside this one)"
    )


# ---------------------------------------------------------------------------- 1. parse


def bench_parse(report: Report, pdf: Path, rounds: int) -> None:
    import pypdf

    from rag_core.parsepool import parse_file

    data = pdf.read_bytes()
    settings = Settings()
    sample = ROOT / "rag_core" / "samples" / "sample_policy.pdf"
    parse_file(sample.read_bytes(), "warm.pdf", settings)  # start the worker outside the timing
    plain, ours = [], []
    pages = 0
    for _ in range(rounds):
        t = time.perf_counter()
        reader = pypdf.PdfReader(pdf)
        pages = len([p.extract_text() for p in reader.pages])
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        parse_file(data, pdf.name, settings)
        ours.append(time.perf_counter() - t)
    p, o = statistics.median(plain), statistics.median(ours)
    report.add(
        f"PDF parse, {pages}-page agreement (pages/s)",
        f"{pages / p:.1f} (pypdf in-process)",
        f"{pages / o:.1f} (loader in a worker)",
        f"{p / o:.2f}x",
        "-",
        "-",
    )
    report.notes.append(
        "Parsing is pypdf's pure-Python text extraction in both columns; PolicyPal adds normalisation and a "
        "worker process (safety: time and memory budget). Its cost is hidden by overlap, not reduced: the model "
        "loads while the first file parses, and the next file of a batch parses while this one embeds."
    )


# ---------------------------------------------------------------------------- 2. embedding


def agreement_chunks(pdf: Path) -> list[str]:
    from rag_core.chunking import Chunker
    from rag_core.embedding import shared_embedder
    from rag_core.loaders import load_path

    e = shared_embedder()
    s = Settings()
    return [c.text for c in Chunker(e.tokenizer, s.chunk_tokens, s.chunk_overlap, e.max_seq_length).chunk_pages(
        load_path(pdf).pages
    )]  # fmt: skip


def bench_embedding(report: Report, texts: list[str], rounds: int, n: int) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from rag_core.embedding import Embedder, bundled_model_path, cpu_has_bf16

    step = max(1, len(texts) // n)
    sample = texts[::step][:n]
    plain = SentenceTransformer(str(bundled_model_path()), device="cpu")
    ours = Embedder()
    autocast = Embedder(runtime="torch", precision="bf16" if cpu_has_bf16() else "fp32")

    def plain_encode(xs: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(plain.encode(xs, batch_size=32, convert_to_numpy=True))

    runs: dict[str, Callable[[list[str]], np.ndarray]] = {
        "plain": plain_encode,
        "ours": ours.encode_passage,
        "autocast": autocast.encode_passage,
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    outs: dict[str, np.ndarray] = {}
    for f in runs.values():
        f(sample[:32])  # warm-up
    for _ in range(rounds):
        for name, f in runs.items():
            t = time.perf_counter()
            outs[name] = f(sample)
            times[name].append(time.perf_counter() - t)
    speed = {k: len(sample) / statistics.median(v) for k, v in times.items()}
    ref = outs["plain"] / np.linalg.norm(outs["plain"], axis=1, keepdims=True)
    cos = (outs["ours"] * ref).sum(axis=1)
    cos_ac = (outs["autocast"] * ref).sum(axis=1)
    ratio = speed["ours"] / speed["plain"]
    report.add(
        f"Embedding, {len(sample)} chunks of <= 128 word pieces (chunks/s)",
        f"{speed['plain']:.1f} (sentence-transformers fp32)",
        f"{speed['ours']:.1f} ({ours.runtime} {ours.precision})",
        f"{ratio:.2f}x",
        ">= 3.5x",
        check(ratio >= 3.5),
    )
    report.add(
        "Embedding, same chunks: torch bf16 autocast (reference)",
        f"{speed['plain']:.1f}",
        f"{speed['autocast']:.1f}",
        f"{speed['autocast'] / speed['plain']:.2f}x",
        "-",
        "-",
    )
    report.add(
        "Embedding quality: cosine to fp32, mean / min",
        "1 / 1",
        f"{cos.mean():.5f} / {cos.min():.5f} (autocast {cos_ac.mean():.5f} / {cos_ac.min():.5f})",
        "",
        "mean >= 0.99",
        check(float(cos.mean()) >= 0.99),
    )


# ---------------------------------------------------------------------------- 3. ingest


# Linux counts a process's peak RSS from before its exec, i.e. from the (big) parent that started it: so a
# child is started by this small wrapper, which reports its child's peak RSS on stderr's last line.
_WRAPPER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "sys.stderr.write(f'\\n@@maxrss {usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of a child process."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rss = next(int(x.split()[1]) for x in reversed(proc.stderr.splitlines()) if x.startswith("@@maxrss"))
    return wall, rss / 1024, proc.stdout


def bench_ingest(report: Report, pdf: Path, tmp: Path, rounds: int) -> None:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    plain, ours = [], []
    plain_rss = ours_rss = 0.0
    for i in range(rounds):
        wall, rss, _ = run_child([sys.executable, "benchmarks/plain_ingest.py", str(pdf), str(tmp / f"plain{i}")], env)
        plain.append(wall)
        plain_rss = max(plain_rss, rss)
        kb = tmp / f"ingest{i}"
        cmd = [sys.executable, "-m", "rag_core", "ingest", str(pdf), "--data-dir", str(kb), "--json"]
        wall, rss, out = run_child(cmd, env)
        if json.loads(out.splitlines()[0])["status"] != "added":
            raise RuntimeError(f"ingest failed: {out}")
        ours.append(wall)
        ours_rss = max(ours_rss, rss)
    p, o = statistics.median(plain), statistics.median(ours)
    report.add(
        "Ingest of the 215-page agreement, whole process (s)",
        f"{p:.1f} (plain script, peak RSS {plain_rss:.0f} MB)",
        f"{o:.1f} (`python -m rag_core ingest`, peak RSS {ours_rss:.0f} MB)",
        f"{o / p:.2f}x the time",
        "<= 0.4x",
        check(o / p <= 0.4),
    )


# ---------------------------------------------------------------------------- 4. quality + KBs


def ingest_corpus(shared: Path, kb_dir: Path) -> tuple[Any, float]:
    from rag_core.engine import Engine

    files = sorted((shared / "corpus" / "hr").iterdir()) + sorted((shared / "corpus" / "scale").iterdir())
    engine = Engine(Settings(data_dir=kb_dir, background_map=False))
    t = time.perf_counter()
    results = engine.ingest_paths(files)
    elapsed = time.perf_counter() - t
    failed = [r for r in results if r.status != "added"]
    if failed:
        raise RuntimeError(f"corpus ingest failed: {failed}")
    return engine, elapsed


def bench_quality(report: Report, engine: Any, shared: Path) -> None:
    import faiss
    import torch
    from sentence_transformers import SentenceTransformer

    from rag_core.embedding import bundled_model_path
    from rag_core.evaluation import evaluate, load_qa
    from rag_core.types import Hit

    items = load_qa(shared / "eval" / "qa.jsonl")
    ours = engine.evaluate(items, modes=("dense", "hybrid"))
    rows = engine.store.all_chunks()
    plain = SentenceTransformer(str(bundled_model_path()), device="cpu")
    with torch.inference_mode():
        vecs = plain.encode([r.text for r in rows], batch_size=32, normalize_embeddings=True)
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(np.ascontiguousarray(vecs, dtype=np.float32))

    def search(questions: list[str]) -> list[list[Hit]]:
        with torch.inference_mode():
            q = plain.encode(questions, normalize_embeddings=True)
        scores, ids = index.search(np.ascontiguousarray(q, dtype=np.float32), 5)
        out = []
        for srow, irow in zip(scores, ids, strict=True):
            picked = [(float(s), rows[i]) for s, i in zip(srow, irow, strict=True)]
            out.append(
                [
                    Hit(r + 1, s, c.document, c.document_id, c.page, c.chunk_id, c.text)
                    for r, (s, c) in enumerate(picked)
                ]
            )
        return out

    base = evaluate(items, search, k=5)
    d, h = ours["dense"], ours["hybrid"]
    report.add(
        f"Retrieval on ../shared/eval ({d.n} questions): hit@5 / MRR, dense",
        f"{base.hit_at[5]:.3f} / {base.mrr:.3f} (fp32 vectors, same chunks)",
        f"{d.hit_at[5]:.3f} / {d.mrr:.3f}",
        "",
        "hit@5 not lower",
        check(d.hit_at[5] >= base.hit_at[5]),
    )
    report.add("Retrieval, hybrid (default mode): hit@5 / MRR", "-", f"{h.hit_at[5]:.3f} / {h.mrr:.3f}", "", "-", "-")


def synthetic_documents(real: Any, n: int, seed: int = 0) -> Iterator[Any]:
    """The documents (`NewDocument`, at most 10,000 chunks each) of a KB of n chunks: the real ones first,
    then synthetic ones (real texts, vectors moved toward a real neighbour plus noise)."""
    import faiss

    from rag_core.types import NewDocument, sha256_hex

    rows = real.all_chunks()
    _, base = real.vectors([r.chunk_id for r in rows])
    rng = np.random.default_rng(seed)
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    _, nn = flat.search(base, 11)
    done = 0
    doc = 0
    while done < n:
        m = min(10_000, n - done)
        idx = (np.arange(done, done + m) % len(rows)) if done + m <= len(rows) else rng.integers(0, len(rows), m)
        if done + m <= len(rows):
            vecs = base[idx]
        else:
            j = nn[idx, rng.integers(1, 11, m)]
            beta = rng.random((m, 1)).astype(np.float32) * 0.5
            vecs = base[idx] + beta * (base[j] - base[idx]) + 0.02 * rng.normal(size=(m, base.shape[1]))
            vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
        chunks = [Chunk(rows[i].page, 0, len(rows[i].text), rows[i].text, 1) for i in idx]
        data = f"synthetic {n} {doc}".encode()
        yield NewDocument(
            name=f"synthetic-{doc:03d}.pdf" if done >= len(rows) else rows[idx[0]].document,
            data=data,
            sha256=sha256_hex(data),
            kind="pdf",
            pages=[Page(p, "") for p in sorted({c.page for c in chunks})],
            page_count=max(c.page for c in chunks),
            chunks=chunks,
            vectors=np.ascontiguousarray(vecs, dtype=np.float32),
            norms=np.ones(m, np.float32),
            embedder=real.embedder_name or "",
        )
        done += m
        doc += 1


def synthetic_kb(real: Any, n: int, kb_dir: Path, threshold: int, seed: int = 0) -> Any:
    """A local KB of n chunks (`synthetic_documents`), with its BM25 index built."""
    from rag_core.lexical import LexicalIndex
    from rag_core.store import LocalStore

    kb = LocalStore(kb_dir, ann_threshold=threshold)
    for doc in synthetic_documents(real, n, seed):
        kb.add(doc)
    LexicalIndex(kb).refresh()
    return kb


# ---------------------------------------------------------------------------- 5. queries


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; getrusage would include the parent's size at exec time)."""
    with contextlib.suppress(OSError, StopIteration):
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(kb_dir: Path, questions: list[str], threshold: int) -> dict[str, Any]:
    """Run in a fresh process: open the KB, load the model, time search and ask; report peak RSS."""
    from rag_core.engine import Engine

    engine = Engine(Settings(data_dir=kb_dir, background_map=False, ann_threshold=threshold))
    t = time.perf_counter()
    engine.search(questions[0])
    engine.answer(questions[0])
    first = time.perf_counter() - t
    search, dense, ask = [], [], []
    for _ in range(3):
        for q in questions:
            t = time.perf_counter()
            engine.search(q)
            search.append(time.perf_counter() - t)
            t = time.perf_counter()
            engine.search(q, mode="dense")
            dense.append(time.perf_counter() - t)
            engine.sentence_cache.clear()  # every answer embeds its sentences, as a new question would
            t = time.perf_counter()
            engine.answer(q)
            ask.append(time.perf_counter() - t)
    info = engine.store.index_info()
    return {
        "search": search,
        "dense": dense,
        "ask": ask,
        "first": first,
        "rss_mb": peak_rss_mb(),
        "index": f"{info.kind}" + (f" (nlist {info.nlist}, nprobe {info.nprobe})" if info.kind == "ivf" else ""),
    }


def bench_queries(report: Report, kb: Any, questions: list[str], threshold: int, label: str) -> dict[str, Any]:
    import faiss
    import torch
    from sentence_transformers import SentenceTransformer

    from rag_core.embedding import bundled_model_path, shared_embedder

    # Baseline: fp32 query embedding + exact search, default FAISS threads, over the same vectors.
    plain = SentenceTransformer(str(bundled_model_path()), device="cpu")
    _, vecs = kb.vectors()
    flat = faiss.IndexFlatIP(vecs.shape[1])
    flat.add(vecs)
    times = []
    with torch.inference_mode():
        plain.encode(questions[0])
        for _ in range(3):
            for q in questions:
                t = time.perf_counter()
                v = plain.encode([q], normalize_embeddings=True)
                flat.search(np.ascontiguousarray(v, dtype=np.float32), 5)
                times.append(time.perf_counter() - t)
    qfile = Path(kb.data_dir) / "questions.json"
    qfile.write_text(json.dumps(questions))
    _, _, out = run_child([sys.executable, __file__, "--probe", str(kb.data_dir), "--threshold", str(threshold)])
    got = json.loads(out.strip().splitlines()[-1])
    # Recall of the index serving searches against exact search, on the real questions.
    qv = shared_embedder().encode_query(questions)
    _, approx = kb.search(qv, 10)
    _, exact = kb.search(qv, 10, exact=True)
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx.tolist(), exact.tolist(), strict=True)]))
    alone: dict[bool, list[float]] = {True: [], False: []}  # the vector search by itself, one query at a time
    for _ in range(3):
        for i in range(len(qv)):
            for exact_search in (True, False):
                t = time.perf_counter()
                kb.search(qv[i : i + 1], 10, exact=exact_search)
                alone[exact_search].append(time.perf_counter() - t)
    search_alone = f"vector search alone: exact {ms(pct(alone[True], 50))}"
    if kb.index_info().kind != "flat":
        search_alone += f", {kb.index_info().kind} {ms(pct(alone[False], 50))}"
    n = kb.size
    s50, s95 = pct(got["search"], 50), pct(got["search"], 95)
    d50, d95 = pct(got["dense"], 50), pct(got["dense"], 95)
    report.add(
        f"Query at {label} chunks, p50 / p95: embed + search (+ answer)",
        f"dense {ms(pct(times, 50))} / {ms(pct(times, 95))} (fp32 query + exact search)",
        f"dense {ms(d50)} / {ms(d95)}; hybrid (default) {ms(s50)} / {ms(s95)}; "
        f"ask {ms(pct(got['ask'], 50))} / {ms(pct(got['ask'], 95))}; {got['index']}, recall@10 {recall:.3f}; "
        f"{search_alone}",
        f"dense {pct(times, 50) / d50:.1f}x faster",
        "p50 <= 50 ms, ask <= 150 ms" if n >= 100_000 else "-",
        check(s50 <= 0.05 and pct(got["ask"], 50) <= 0.15) if n >= 100_000 else "-",
    )
    if n >= 100_000:
        report.add(
            f"Peak RSS, {label} chunks (serving process: model, indexes, BM25, queries)",
            "-",
            f"{got['rss_mb']:.0f} MB",
            "",
            "<= 1.5 GB",
            check(got["rss_mb"] <= 1536),
        )
    return got


# ---------------------------------------------------------------------------- 6. t-SNE


def bench_tsne(report: Report, kb: Any, questions: list[str], sizes: tuple[int, ...]) -> None:
    from rag_core.embedding import shared_embedder
    from rag_core.maps import embedding_map, knn_preservation, place_query, project

    _, all_vecs = kb.vectors()
    for n in sizes:
        if n > len(all_vecs):
            continue
        vecs = all_vecs[:n]
        t = time.perf_counter()
        default = project(vecs, tsne_defaults=True)
        td = time.perf_counter() - t
        qd = knn_preservation(vecs, default)
        if n == len(all_vecs):  # through the KB: cold (computed, cached), then warm (read back)
            shutil.rmtree(Path(kb.data_dir) / "analysis", ignore_errors=True)
            t = time.perf_counter()
            emap = embedding_map(kb)
            to = time.perf_counter() - t
            t = time.perf_counter()
            embedding_map(kb)
            warm = time.perf_counter() - t
            coords = emap.coords
        else:
            t = time.perf_counter()
            coords = project(vecs)
            to = time.perf_counter() - t
            warm = float("nan")
        qo = knn_preservation(vecs, coords)
        label = f"{n // 1000}k"
        report.add(
            f"t-SNE map of {label} chunks, cold (s); 10-NN preservation",
            f"{td:.1f} s; {qd:.3f} (openTSNE defaults after PCA-50)",
            f"{to:.1f} s; {qo:.3f}" + (f"; warm {warm:.2f} s" if warm == warm else ""),
            f"{td / to:.1f}x faster; quality {qo - qd:+.3f}",
            "<= 25 s cold, <= 1 s warm, quality >= defaults - 0.02" if n >= 10_000 else "-",
            check(to <= 25 and warm <= 1 and qo >= qd - 0.02) if n >= 10_000 else "-",
        )
        if n == len(all_vecs):
            e = shared_embedder()
            times = []
            for q in questions:
                t = time.perf_counter()
                place_query(emap, e.encode_query(q))
                times.append(time.perf_counter() - t)
            report.add(
                f"Query placed on the {label} map (embedding included), p50 / max",
                "-",
                f"{ms(pct(times, 50))} / {ms(max(times))}",
                "",
                "<= 0.3 s",
                check(max(times) <= 0.3),
            )


# ---------------------------------------------------------------------------- main


@contextlib.contextmanager
def workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="policypal-bench-") as tmp:
        yield Path(tmp)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--sizes", default="1000,10000,100000", help="KB sizes for the query latency rows")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds for parse and embedding")
    ap.add_argument("--ingest-rounds", type=int, default=1)
    ap.add_argument("--embed-chunks", type=int, default=512)
    ap.add_argument("--threshold", type=int, default=Settings().ann_threshold, help="exact search up to this size")
    ap.add_argument("--skip", default="", help="comma list of: parse,embed,ingest,quality,query,tsne")
    ap.add_argument("--keep", type=Path, default=None, help="work dir to keep (KBs), instead of a temp dir")
    ap.add_argument("--out", type=Path, default=None, help="also write the report (markdown) here")
    ap.add_argument("--probe", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe is not None:
        questions = json.loads((args.probe / "questions.json").read_text())
        print(json.dumps(probe(args.probe, questions, args.threshold)))
        return 0
    pdf = args.shared / AGREEMENT
    if not pdf.exists():
        print(f"no corpus at {args.shared}: pass --shared DIR", file=sys.stderr)
        return 2
    skip = set(filter(None, args.skip.split(",")))
    desc = machine()
    print(desc, flush=True)
    report = Report()
    started = time.perf_counter()
    with workdir(args.keep) as tmp:
        if "parse" not in skip:
            bench_parse(report, pdf, args.rounds)
        if "embed" not in skip:
            bench_embedding(report, agreement_chunks(pdf), args.rounds, args.embed_chunks)
        if "ingest" not in skip:
            bench_ingest(report, pdf, tmp, args.ingest_rounds)
        need_kbs = not {"quality", "query", "tsne"} <= skip
        if need_kbs:
            real_dir = tmp / "real"
            shutil.rmtree(real_dir, ignore_errors=True)
            engine, corpus_s = ingest_corpus(args.shared, real_dir)
            report.notes.append(f"Ingest of corpus/hr + corpus/scale in one batch (one process): {corpus_s:.1f} s.")
            questions = [
                json.loads(line)["question"]
                for line in (args.shared / "eval" / "qa.jsonl").read_text().splitlines()
                if line.strip()
            ]
            if "quality" not in skip:
                bench_quality(report, engine, args.shared)
            sizes = [int(x) for x in args.sizes.split(",") if x]
            kbs = {}
            for n in sorted(set(sizes) | ({10_000} if "tsne" not in skip else set())):
                t = time.perf_counter()
                kbs[n] = synthetic_kb(engine.store, n, tmp / f"kb{n}", args.threshold)
                report.notes.append(f"Built the {n:,}-chunk KB (rows, exact index, IVF if any, BM25) in "
                                    f"{time.perf_counter() - t:.1f} s.")  # fmt: skip
            if "query" not in skip:
                for n in sizes:
                    bench_queries(report, kbs[n], questions, args.threshold, f"{n:,}")
            if "tsne" not in skip:
                bench_tsne(report, kbs[10_000], questions, (2000, 10_000))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = (
        f"# PolicyPal benchmark results\n\n`{' '.join(['python benchmarks/run.py', *sys.argv[1:]])}`, "
        f"{time.strftime('%Y-%m-%d')}. "
        "Every figure sits next to its baseline measured in the same run; the machine is shared, so "
        "absolute figures move between runs (the ratios less so).\n\n"
        f"## Machine\n\n{desc}\n- load average at the end: {load}; run took {time.perf_counter() - started:.0f} s\n\n"
        f"## Results\n\n{report.table()}\n\n" + "".join(f"- {n}\n" for n in report.notes)
    )
    print("\n" + text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
