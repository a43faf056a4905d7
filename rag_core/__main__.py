"""`python -m rag_core`: the command line contract of DESIGN.md.

Exit codes: 0 success, 1 some input failed (the rest still done), 2 usage or configuration error.
With `--json`, stdout carries only JSON; messages and progress bars go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag_core import cli_lm
from rag_core.config import Settings
from rag_core.display import counted, ocr_note, snippet, text_table
from rag_core.loaders import SUPPORTED_SUFFIXES
from rag_core.types import METRICS, MODES, DocumentInfo, IngestResult, JobFile, Stage

if TYPE_CHECKING:  # the engine pulls in torch: imported when a command needs it, not for --help
    from rag_core.engine import Engine
    from rag_core.tune import Mined as TuneMined
    from rag_core.tune import TuneOptions, TuneRecord

EMPTY_KB_MESSAGE = (
    "The knowledge base is empty: add documents first with `python -m rag_core ingest FILE...` "
    "or on the app's Documents page."
)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None, help="knowledge base directory (env RAG_DATA_DIR)")
    common.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="keep the knowledge base in PostgreSQL: postgresql://user:password@host/db (env RAG_DATABASE_URL)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    p = argparse.ArgumentParser(prog="python -m rag_core", description="PolicyPal engine: ingest, list, search.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    kinds = ", ".join(SUPPORTED_SUFFIXES)
    ing = sub.add_parser("ingest", parents=[common], help=f"add files ({kinds}) to the knowledge base")
    ing.add_argument("paths", nargs="+", metavar="PATH")
    ing.add_argument("--embedder", default=None, help="embedder for a new KB (sentence-transformers id or dir)")

    docs = sub.add_parser("docs", parents=[common], help="list the documents")
    docs.add_argument("--all", action="store_true", help="also the replaced versions (kept, never searched)")

    rest = sub.add_parser("restore", parents=[common], help="make an older version of a document current again")
    rest.add_argument("ref", metavar="DOCUMENT_ID")

    dele = sub.add_parser("delete", parents=[common], help="delete a document by id or name")
    dele.add_argument("ref", metavar="DOCUMENT_ID_OR_NAME")

    for name, helptext in (("search", "retrieve passages for a query"), ("ask", "answer a question with citations")):
        s = sub.add_parser(name, parents=[common], help=helptext)
        s.add_argument("query", nargs="?", metavar="QUESTION" if name == "ask" else "QUERY")
        s.add_argument("--batch", type=Path, metavar="FILE", help="one query per line instead of QUERY")
        s.add_argument("--k", type=int, default=None, help="passages to return (default 5)")
        s.add_argument("--metric", choices=METRICS, default=None, help="similarity metric (default cosine)")
        s.add_argument("--mode", choices=MODES, default=None, help="retrieval: dense, bm25 or hybrid (default)")
        if name == "ask":
            s.add_argument(
                "--generator",
                default=None,
                metavar="SPEC",
                help="extractive (default), hf:<model id or dir>, openai:<base url>#<model>",
            )
            s.add_argument("--no-context", action="store_true", help="answer without retrieved passages")

    ev = sub.add_parser("eval", parents=[common], help="score retrieval on a QA JSONL file")
    ev.add_argument("qa", type=Path, metavar="QA.jsonl")
    ev.add_argument("--k", type=int, default=None)
    ev.add_argument("--metric", choices=METRICS, default=None)
    ev.add_argument("--mode", choices=MODES, default=None, help="retrieval: dense, bm25 or hybrid (default)")

    tu = sub.add_parser(
        "tune", parents=[common], help="fine-tune the embedder on a QA JSONL file into a new model directory"
    )
    tu.add_argument("qa", type=Path, metavar="QA.jsonl")
    tu.add_argument("--out", type=Path, required=True, metavar="DIR", help="new or empty directory for the model")
    tu.add_argument("--epochs", type=int, default=None, help="passes over the pairs (default 3)")
    tu.add_argument("--batch-size", type=int, default=None, help="pairs per step (default 16)")
    tu.add_argument("--hard-negatives", type=int, default=None, help="mined negatives per pair (default 1)")
    tu.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (default 2e-5)")

    jo = sub.add_parser("jobs", parents=[common], help="list ingestion jobs (uploads) with per-file results")
    jo.add_argument("--limit", type=int, default=20, help="newest jobs to list (default 20)")
    wo = sub.add_parser("worker", parents=[common], help="run ingestion jobs as they are queued, until Ctrl-C")
    wo.add_argument("--once", action="store_true", help="run the jobs waiting now, then exit")
    ins = sub.add_parser(
        "insights", parents=[common], help="what employees asked, what the documents miss, thumbs-down answers"
    )
    ins.add_argument("--days", type=int, default=30, help="the last N days of the question log (default 30)")
    mi = sub.add_parser(
        "migrate", parents=[common], help="copy the embedded knowledge base (--data-dir) into PostgreSQL as it is"
    )
    mi.add_argument("--to", required=True, metavar="URL", help="postgresql://user:password@host:port/database")
    cli_lm.add_parsers(sub, common)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # One command per process: a map computed in the background would die with it, half done.
        settings = Settings.from_env(data_dir=args.data_dir, database_url=args.database_url, background_map=False)
        if getattr(args, "k", None) is not None and args.k < 1:
            raise ValueError(f"--k must be >= 1; got {args.k}")
        return _COMMANDS[args.command](args, settings)
    except _UsageError as e:
        _err(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Exception as e:  # configuration problems: mismatched embedder, missing model, bad setting
        from rag_core.embedding import ModelNotAvailable
        from rag_core.store import StoreError

        if isinstance(e, ModelNotAvailable | StoreError | ValueError):
            _err(f"error: {e}")
            return 2
        raise


class _UsageError(Exception):
    pass


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _engine(args: argparse.Namespace, settings: Settings) -> Engine:
    from rag_core.engine import Engine

    return Engine(settings, embedder_spec=getattr(args, "embedder", None))


# ---------------------------------------------------------------------------- commands


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    engine = _engine(args, settings)
    failed = 0
    bar = tqdm(total=len(args.paths), unit="file", file=sys.stderr, disable=None, desc="ingest")

    def file_progress(stage: Stage, done: int, total: int) -> None:
        bar.set_postfix_str(f"{stage} {done}/{total}", refresh=True)

    def on_file(done: int, total: int, result: IngestResult) -> None:
        nonlocal failed
        bar.update(1)
        if result.status == "failed":
            failed += 1
        if args.json:
            print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
            if result.warning:
                tqdm.write(f"warning: {result.file}: {result.warning}", file=sys.stderr)
        else:
            detail = (
                f"{counted(result.pages, 'page')}, {counted(result.chunks, 'chunk')}, id {result.document_id}"
                f"{ocr_note(result)}"
                if result.status != "failed"
                else result.error
            )
            if result.status == "updated":
                detail = f"{detail}, now version {result.version} (replaces {result.replaces})"
            if result.warning:
                detail = f"{detail}; warning: {result.warning}"
            tqdm.write(f"{result.status:<9} {result.file}: {detail}", file=sys.stdout)

    results = engine.ingest_paths(args.paths, progress=on_file, file_progress=file_progress)
    bar.close()
    if not args.json:
        counts = {s: sum(r.status == s for r in results) for s in ("added", "updated", "duplicate", "failed")}
        print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if failed else 0


def cmd_docs(args: argparse.Namespace, settings: Settings) -> int:
    docs = _engine(args, settings).documents(all_versions=args.all)
    if args.json:
        print(json.dumps([d.to_json() for d in docs], ensure_ascii=False))
        return 0
    if not docs:
        print(EMPTY_KB_MESSAGE)
        return 0
    rows = [
        [d.document_id, d.name, d.kind, str(d.version), str(d.pages), str(d.chunks), d.added_at]
        + ([("current" if d.current else "replaced")] if args.all else [])
        for d in docs
    ]
    headers = ["document_id", "name", "kind", "version", "pages", "chunks", "added_at"]
    print(text_table(headers + (["state"] if args.all else []), rows))
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    return _on_document(
        args,
        "restored",
        lambda ref: _engine(args, settings).restore(ref),
        lambda d: f"restored {d.name} version {d.version} ({d.document_id}): it is the current version again",
    )


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    return _on_document(
        args,
        "deleted",
        lambda ref: _engine(args, settings).delete(ref),
        lambda d: f"deleted {d.name} ({d.document_id}, {d.chunks} chunks)",
    )


def _on_document(
    args: argparse.Namespace,
    verb: str,
    act: Callable[[str], DocumentInfo],
    said: Callable[[DocumentInfo], str],
) -> int:
    """Do `act` to the document `args.ref` names; a name that matches nothing (or several) exits 1."""
    from rag_core.store import AmbiguousDocument, DocumentNotFound

    try:
        doc = act(args.ref)
    except (DocumentNotFound, AmbiguousDocument) as e:
        if args.json:
            print(json.dumps({verb: None, "error": str(e)}))
        _err(f"error: {e}")
        return 1
    if args.json:
        print(json.dumps({verb: doc.to_json(), "error": None}, ensure_ascii=False))
    else:
        print(said(doc))
    return 0


def _queries(args: argparse.Namespace) -> list[str]:
    if args.batch is not None and args.query is not None:
        raise _UsageError("give either QUERY or --batch FILE, not both")
    if args.batch is not None:
        try:
            lines = args.batch.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise _UsageError(f"cannot read --batch file {args.batch}: {e.strerror or e}") from e
        return [line.strip() for line in lines if line.strip()]
    if args.query is None or not args.query.strip():
        raise _UsageError("give a QUERY (or --batch FILE with one query per line)")
    return [args.query]


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    queries = _queries(args)
    engine = _engine(args, settings)
    k = args.k or settings.top_k
    results = engine.search(queries, k=k, metric=args.metric, mode=args.mode)
    if engine.is_empty():
        _err(EMPTY_KB_MESSAGE)
    for query, hits in zip(queries, results, strict=True):
        if args.json:
            print(
                json.dumps({"query": query, "hits": [h.to_json() for h in hits]}, ensure_ascii=False),
                flush=True,
            )
            continue
        print(f"query: {query}")
        if not hits:
            print("  no hits")
        rows = [
            [str(h.rank), f"{h.score:.3f}", h.document, h.page_cited.removeprefix("page "), snippet(h.text)]
            for h in hits
        ]
        if rows:
            print(text_table(["rank", "similarity", "document", "page", "text"], rows))
        print()
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.answer import GeneratorError, parse_spec

    questions = _queries(args)
    spec = args.generator or settings.generator
    try:
        parse_spec(spec)
    except ValueError as e:
        raise _UsageError(str(e)) from e
    engine = _engine(args, settings)
    if engine.is_empty() and not args.no_context:
        _err(EMPTY_KB_MESSAGE)
    k = args.k or settings.top_k
    failed = 0
    warned = False
    for question in questions:
        stream = engine.answer_stream(
            question, k=k, metric=args.metric, generator=spec, no_context=args.no_context, mode=args.mode
        )
        error: str | None = None
        try:
            answer = stream.result()
        except GeneratorError as e:
            failed += 1
            error = str(e)
            answer = stream.result()  # what came before the failure
            _err(f"error: {e}")
        if answer.warning and not warned:
            _err(f"warning: {answer.warning}")
            warned = True
        if args.json:
            out = answer.to_json()
            if error:
                out["error"] = error
            print(json.dumps(out, ensure_ascii=False), flush=True)
            continue
        print(f"Q: {question}\nA: {answer.text}")
        cited_hits = {h.chunk_id: h for h in answer.hits}
        for c in answer.citations:
            page = cited_hits[c.chunk_id].page_cited if c.chunk_id in cited_hits else f"page {c.page}"
            print(f"   [{c.number}] {c.document}, {page}")
        if not answer.grounded and not args.no_context:
            print("   (not grounded: nothing retrieved was relevant enough)")
        print()
    return 1 if failed else 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.evaluation import QAFormatError, load_qa, missing_documents

    try:
        items = load_qa(args.qa)
    except (OSError, QAFormatError) as e:
        raise _UsageError(str(e)) from e
    engine = _engine(args, settings)
    k = args.k or settings.top_k
    if engine.is_empty():
        raise _UsageError(EMPTY_KB_MESSAGE)
    mode = args.mode or settings.mode
    if missing := missing_documents(items, [d.name for d in engine.documents()]):
        _err(
            f"warning: {len(missing)} document(s) the questions expect are not in the knowledge base, so their "
            f"questions can only miss: {', '.join(missing)} (ingest them first)"
        )
    report = engine.evaluate(items, [mode], k=k, metric=args.metric, answers=True)[mode]
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
        return 0
    rates = (report.answer_contains, report.refused_answerable, report.refused_unanswerable)
    print(
        text_table(
            ["n", "hit@1", "hit@3", "hit@5", "mrr", "answer_contains", "refused_answerable", "refused_unanswerable"],
            [
                [str(report.n)]
                + [f"{report.hit_at[c]:.3f}" for c in (1, 3, 5)]
                + [f"{report.mrr:.3f}"]
                + ["n/a" if r is None else f"{r:.3f}" for r in rates]
            ],
        )
    )
    if report.misses:
        print("\nmisses (top hit instead):")
        for q in report.misses:
            print(f"  {q.id}: {q.question}  -> {q.top_document} p{q.top_page}")
    wrong = [q for q in report.questions if q.answerable and q.answer_ok is False]
    if wrong:
        print("\nanswers without the expected fact:")
        for q in wrong:
            print(f"  {q.id}: {q.question}  -> {snippet(q.answer or '')}")
    guessed = [q for q in report.questions if not q.answerable and q.grounded]
    if guessed:
        print("\nnot covered by the documents, but answered:")
        for q in guessed:
            print(f"  {q.id}: {q.question}")
    return 0


def cmd_tune(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.evaluation import QAFormatError, load_qa
    from rag_core.tune import TuneError, TuneOptions, check_output, mine_pairs

    given = {k: getattr(args, k) for k in ("epochs", "batch_size", "hard_negatives", "learning_rate")}
    try:
        options = TuneOptions(**{k: v for k, v in given.items() if v is not None})
        check_output(args.out)
        items = load_qa(args.qa)
    except (OSError, QAFormatError, TuneError) as e:
        raise _UsageError(str(e)) from e
    engine = _engine(args, settings)
    if engine.is_empty():
        raise _UsageError(EMPTY_KB_MESSAGE)
    try:
        mined = mine_pairs(engine.store, engine.embedder, items, options.hard_negatives)
    except TuneError as e:
        raise _UsageError(str(e)) from e
    for s in mined.skipped:
        _err(f"skipped {s.id}: {s.reason}")
    _err(f"{len(mined.pairs)} question-passage pairs from {mined.questions} answerable questions; training")
    record = _train_with_bar(mined, args.out, options, settings)
    if args.json:
        print(json.dumps(record.to_json(), ensure_ascii=False))
    else:
        first, last = record.epoch_loss[0], record.epoch_loss[-1]
        print(
            f"tuned {record.base_embedder} on {record.pairs} pairs ({record.hard_negatives} hard negative(s) each), "
            f"{record.epochs} epoch(s), {record.steps} steps in {record.seconds:.0f} s; "
            f"loss {first:.3f} in the first epoch, {last:.3f} in the last"
        )
        print(f"saved to {args.out}")
        print(
            f"use it for a new knowledge base: python -m rag_core ingest FILE... --embedder {args.out} "
            "--data-dir NEW_DIR, then compare both with `eval` on questions it was not tuned on"
        )
    return 1 if mined.page_misses else 0


def _train_with_bar(mined: TuneMined, out: Path, options: TuneOptions, settings: Settings) -> TuneRecord:
    from tqdm import tqdm

    from rag_core.tune import TuneError, train

    total = options.epochs * -(-len(mined.pairs) // options.batch_size)
    with tqdm(total=total, unit="step", file=sys.stderr, disable=None, desc="tune") as bar:

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(step - bar.n)
            bar.set_postfix_str(f"loss {loss:.3f}", refresh=True)

        try:
            return train(mined, out, options, allow_downloads=settings.allow_downloads, on_step=on_step)
        except TuneError as e:
            raise _UsageError(str(e)) from e


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.jobs import open_job_queue

    jobs = open_job_queue(settings).jobs(args.limit)
    if args.json:
        print(json.dumps([j.to_json() for j in jobs], ensure_ascii=False))
        return 0
    if not jobs:
        print("no ingestion jobs yet: uploads on the Documents page become jobs")
        return 0
    rows = [
        [j.job_id, j.status, j.created_at, f"{j.finished_files}/{len(j.files)}", _job_summary(j.files, j.error)]
        for j in jobs
    ]
    print(text_table(["job_id", "status", "created_at", "files done", "results"], rows))
    return 0


def _job_summary(files: Sequence[JobFile], error: str | None) -> str:
    if error:
        return f"failed: {error}"
    return ", ".join(f"{f.name}: {f.result.status if f.result else f.status}" for f in files)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.jobs import JobWorker, open_job_queue

    queue = open_job_queue(settings)
    worker = JobWorker(_engine(args, settings), queue)
    _err(f"worker {worker.name} running jobs from {queue.location}" + ("" if args.once else " (Ctrl-C stops)"))
    while True:
        job = worker.run_once()
        if job is not None:
            line = json.dumps(job.to_json(), ensure_ascii=False) if args.json else f"{job.job_id} {job.status}: "
            print(line if args.json else line + _job_summary(job.files, job.error), flush=True)
        elif args.once:
            return 0
        else:
            time.sleep(worker.poll_s)


def cmd_insights(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.insights import report_text

    if args.days < 1:
        raise _UsageError(f"--days must be >= 1; got {args.days}")
    report = _engine(args, settings).questions.report(args.days)
    print(json.dumps(report.to_json(), ensure_ascii=False) if args.json else report_text(report))
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict

    from tqdm import tqdm

    from rag_core.store import DB_NAME, LocalStore, is_database_url
    from rag_core.store.local import export
    from rag_core.store.pgschema import redact
    from rag_core.store.postgres import PostgresStore

    if not is_database_url(args.to):
        raise _UsageError(f"--to takes a postgresql://user:password@host:port/database URL; got {args.to!r}")
    if settings.database_url is not None:
        raise _UsageError(
            "migrate copies the embedded knowledge base of the data dir (--data-dir or RAG_DATA_DIR) into the "
            "database named by --to; drop --database-url and unset RAG_DATABASE_URL for this command"
        )
    if not (settings.data_dir / DB_NAME).exists():
        raise _UsageError(f"no knowledge base in {settings.data_dir} to migrate: name its folder with --data-dir")
    started = time.monotonic()
    target = PostgresStore(args.to, cache_root=settings.data_dir, index=settings.pg_index)
    try:
        with (
            export(LocalStore(settings.data_dir)) as source,
            tqdm(total=len(source.documents), unit="version", file=sys.stderr, disable=None, desc="migrate") as bar,
        ):
            report = target.import_from(source, lambda done, total: bar.update(done - bar.n))
    finally:
        target.close()
    if report.missing_originals:
        _err(f"warning: the original files of {report.missing_originals} document(s) were missing and not copied")
    summary = {"source": str(settings.data_dir), "target": redact(args.to), **asdict(report)}
    summary["seconds"] = round(time.monotonic() - started, 3)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    elif report.already:
        print(f"{redact(args.to)} already holds these {report.documents} document versions: nothing copied")
    else:
        print(
            f"copied {report.documents} document versions ({report.current} current; {report.chunks} chunks, "
            f"{report.archived_chunks} of replaced versions) from {settings.data_dir} to {redact(args.to)} "
            f"in {summary['seconds']:.1f} s; use it with RAG_DATABASE_URL (or --database-url)"
        )
    return 0


_COMMANDS = {
    "ingest": cmd_ingest,
    "docs": cmd_docs,
    "delete": cmd_delete,
    "restore": cmd_restore,
    "search": cmd_search,
    "ask": cmd_ask,
    "eval": cmd_eval,
    "tune": cmd_tune,
    "jobs": cmd_jobs,
    "worker": cmd_worker,
    "insights": cmd_insights,
    "migrate": cmd_migrate,
    **cli_lm.COMMANDS,
}


if __name__ == "__main__":
    sys.exit(main())
