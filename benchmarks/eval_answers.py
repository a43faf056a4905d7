"""Answer quality of the extractive generator on the shared eval set, and the refusal threshold sweep.

For each answerable question: does the answer contain one of its `answer_contains` phrases? For each
unanswerable one: is the answer refused (`grounded: false`)? The sweep shows both rates for a range
of `min_score` thresholds, so the default can be chosen (and re-checked) from data.

    python benchmarks/eval_answers.py [--data-dir KB] [--shared ../shared]

Without --data-dir it ingests corpus/hr and corpus/scale into a temp KB first (about a minute).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag_core.config import Settings  # noqa: E402
from rag_core.engine import Engine  # noqa: E402
from rag_core.evaluation import load_qa  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--data-dir", type=Path, default=None, help="an existing KB holding corpus/hr and scale")
    args = ap.parse_args()
    items = load_qa(args.shared / "eval" / "qa.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        engine = Engine(Settings.from_env(data_dir=data_dir))
        if args.data_dir is None:
            files = sorted((args.shared / "corpus" / "hr").iterdir()) + sorted(
                (args.shared / "corpus" / "scale").iterdir()
            )
            engine.ingest_paths(files)
        default = engine.settings.min_score
        rows = []
        latencies = []
        for q in items:
            t = time.perf_counter()
            # Answer with the threshold off, then apply each threshold to the same retrieval below.
            stream = engine.answer_stream(q.question)
            stream.min_score = -1.0
            answer = stream.result()
            latencies.append(time.perf_counter() - t)
            top = max((h.score for h in answer.hits), default=-1.0)  # as AnswerStream decides `grounded`
            contains = any(a.lower() in answer.text.lower() for a in q.answer_contains)
            rows.append((q, top, contains, answer.text))
    answerable = [r for r in rows if r[0].answerable]
    unanswerable = [r for r in rows if not r[0].answerable]
    print(f"\nExtractive answers on {len(rows)} questions ({len(answerable)} answerable, {len(unanswerable)} not)")
    print("\n| min_score       | answer-contains (answerable) | answerable refused | unanswerable refused |")
    print("|-----------------|------------------------------|--------------------|----------------------|")
    for threshold in (0.30, 0.35, 0.38, 0.40, 0.41, 0.42, 0.45, 0.50):
        ok = sum(1 for q, top, c, _ in answerable if c and top >= threshold)
        refused_a = sum(1 for q, top, c, _ in answerable if top < threshold)
        refused_u = sum(1 for q, top, c, _ in unanswerable if top < threshold)
        mark = " (default)" if abs(threshold - default) < 1e-9 else ""
        contains = f"{ok}/{len(answerable)} = {ok / len(answerable):.3f}"
        print(
            f"| {f'{threshold:.2f}{mark}':<15} | {contains:<28} | {f'{refused_a}/{len(answerable)}':<18} "
            f"| {f'{refused_u}/{len(unanswerable)}':<20} |"
        )
    latencies.sort()
    print(f"\nask latency (retrieve + extractive answer): p50 {latencies[len(latencies) // 2] * 1000:.0f} ms")
    misses = [(q.id, q.question, text[:120]) for q, top, c, text in answerable if not c]
    if misses:
        print("\nanswerable questions whose answer lacks the expected phrase:")
        for qid, question, text in misses:
            print(f"  {qid}: {question}\n      -> {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
