"""The cost of LoRA fine-tuning (`python -m rag_core finetune`) per step, against full fine-tuning of the
same model in the same run, on a small real architecture at random weights (no weights can be
downloaded here; the arithmetic of a step does not depend on the weights' values).

    python benchmarks/finetune.py [--shared ../shared] [--layers 12] [--width 768] [--steps 6]

The model is GPT-2 small's architecture (12 layers, 768 wide, 124M parameters) unless told otherwise,
with a byte-level BPE tokenizer trained on the real corpus's chunks; the training text is those chunks
with their heading context, as `finetune` reads them. Each arm runs in a fresh process: LoRA (r 8,
peft's GPT-2 default, the attention projections) through `rag_core.lora.train`, and the baseline, every
weight trained with the same AdamW, batch (4 x 256 tokens) and data. Reported: median seconds per step
(the first step, warm-up, left out), tokens/s, trained parameters, and the process's peak RSS.

On a GPU (`device`), the same script reports the GPU's figures; not run here (this machine has none).
Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import ingest_corpus, machine, peak_rss_mb, run_child  # noqa: E402

BATCH, BLOCK = 4, 256


def build_base(texts: list[str], out: Path, layers: int, width: int) -> Path:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=8000, min_frequency=2, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.save_pretrained(out)
    eos = tok.eos_token_id
    config = GPT2Config(n_layer=layers, n_embd=width, n_head=max(1, width // 64), bos_token_id=eos, eos_token_id=eos)
    GPT2LMHeadModel(config).save_pretrained(out)  # GPT-2's own vocabulary size (50,257): its real cost
    return out


def arm(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process: one arm's steps; per-step seconds and peak RSS."""
    import torch

    from rag_core.lora import FinetuneOptions, token_blocks, train

    base, texts, steps = Path(spec["base"]), spec["texts"], spec["steps"]
    torch.set_num_threads(torch.get_num_threads())
    stamps: list[float] = [time.perf_counter()]
    if spec["arm"] == "lora":
        options = FinetuneOptions(steps=steps, batch_size=BATCH, block_tokens=BLOCK)
        record = train(
            base,
            texts,
            Path(spec["out"]),
            options,
            generation=0,
            documents=[],
            on_step=lambda *_: stamps.append(time.perf_counter()),
        )
        trained, total = record.trainable_parameters, record.total_parameters
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rag_core.lora import _padded

        tok = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        blocks = token_blocks(tok, texts, BLOCK)
        optimiser = torch.optim.AdamW(model.parameters(), lr=2e-5)
        model.train()
        stamps = [time.perf_counter()]
        for step in range(steps):
            ids, labels, mask = _padded([blocks[(step * BATCH + i) % len(blocks)] for i in range(BATCH)], 0)
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
            stamps.append(time.perf_counter())
        trained = total = sum(p.numel() for p in model.parameters())
    per_step = np.diff(stamps)[1:].tolist()  # the first step warms up
    return {"per_step": per_step, "trained": trained, "total": total, "rss_mb": peak_rss_mb()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--arm", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm is not None:
        print(json.dumps(arm(json.loads(args.arm.read_text()))))
        return 0
    desc = machine()
    with tempfile.TemporaryDirectory(prefix="policypal-finetune-") as tmp:
        work = Path(tmp)
        engine, _ = ingest_corpus(args.shared, work / "kb")
        _, _, texts = engine.store.chunk_texts()
        base = build_base(texts, work / "base", args.layers, args.width)
        rows = []
        for name in ("full", "lora"):
            spec = {"arm": name, "base": str(base), "texts": texts, "steps": args.steps + 1, "out": str(work / name)}
            spec_file = work / f"{name}.json"
            spec_file.write_text(json.dumps(spec))
            _, rss, out = run_child([sys.executable, __file__, "--arm", str(spec_file)])
            got = json.loads(out.strip().splitlines()[-1])
            step = float(np.median(got["per_step"]))
            rows.append((name, step, BATCH * BLOCK / step, got["trained"], got["total"], rss))
            shutil.rmtree(work / name, ignore_errors=True)
        mechanics = tiny_comparison(engine, texts, work, args.shared)
    full = rows[0][1]
    print(f"\n`python benchmarks/finetune.py {' '.join(sys.argv[1:])}`, {time.strftime('%Y-%m-%d')}\n\n{desc}\n")
    print(f"GPT-2 architecture, {args.layers} layers x {args.width}, random weights; batch {BATCH} x {BLOCK} tokens\n")
    print("| arm | seconds per step (median) | tokens/s | trained parameters | peak RSS | step time vs full |")
    print("|---|---|---|---|---|---|")
    for name, step, tps, trained, total, rss in rows:
        label = "full fine-tuning (baseline)" if name == "full" else "LoRA r 8 (`finetune`)"
        print(
            f"| {label} | {step:.2f} s | {tps:,.0f} | {trained:,} of {total:,} | {rss:,.0f} MB | {step / full:.2f}x |"
        )
    print(f"\n{mechanics}")
    return 0


def tiny_comparison(engine: Any, texts: list[str], work: Path, shared: Path) -> str:
    """The mechanics end to end on the real corpus: a 2-layer GPT-2 at random weights, LoRA-trained
    for 60 steps, then `compare` on the visible eval set's 30 questions (its models answer noise: the
    point is the plumbing and the extractive baseline's row)."""
    from rag_core.compare import compare, summary_rows
    from rag_core.evaluation import load_qa
    from rag_core.lora import FinetuneOptions, train

    base = build_base(texts, work / "tiny", 2, 64)
    generation, _, _ = engine.store.chunk_texts()
    record = train(
        base,
        texts,
        work / "tiny-adapter",
        FinetuneOptions(steps=60, learning_rate=3e-3, block_tokens=128),
        generation=generation,
        documents=engine.documents(),
    )
    report = compare(engine, load_qa(shared / "eval" / "qa.jsonl"), f"hf:{base}", f"hf:{work / 'tiny-adapter'}")
    lines = [
        f"Tiny model (2 x 64, random weights): LoRA 60 steps in {record.seconds:.1f} s, loss {record.loss[0]:.3f} "
        f"-> {sum(record.loss[-10:]) / 10:.3f} (mean of the last 10); compare on ../shared/eval/qa.jsonl:\n",
        "| arm | answer has the fact | answerable refused | uncovered refused | latency p50 |",
        "|---|---|---|---|---|",
    ]
    for r in summary_rows(report):
        cells = [r["answer has the fact"], r["answerable refused"], r["uncovered refused"]]
        shown = " | ".join("n/a" if c is None else f"{float(c):.3f}" for c in cells)  # type: ignore[arg-type]
        lines.append(f"| {r['arm']} | {shown} | {r['latency p50 (ms)']} ms |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
