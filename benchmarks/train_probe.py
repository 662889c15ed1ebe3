"""Dev check for the training recipes: nDCG@10 of a few models on title queries and dev questions.

Not the official evaluation (``sitetune evaluate`` with the question set is): a quick, self-contained
probe used while tuning. Dev questions are judged by rule: a chunk is relevant when it appears on a
page whose name contains ``page`` and under a title containing one of ``titles``.

    python benchmarks/train_probe.py --corpus ../shared/data/cbs_graduate_programs.csv \
        --model base --model runs/model [--pairs runs/pairs-eval]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

# (question, page substring, title substrings): written for tuning only, not the official set.
DEV_QUESTIONS: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "What IELTS score do I need for the Data Science master?",
        "Business Administration and Data Science",
        ("English", "Language"),
    ),
    ("When is the application deadline for master's programmes?", "Deadlines", ("Deadline",)),
    ("How much is the tuition fee for non-EU students?", "Non-EU", ("FEE", "Fee", "PAYMENT")),
    (
        "Can I apply if my bachelor does not fully qualify for Supply Chain Management?",
        "Supply Chain Management",
        ("Potentially", "Supplement"),
    ),
    (
        "What jobs do Finance and Investments graduates get?",
        "Finance and Investments",
        ("Career", "career", "job"),
    ),
    ("Is there a double degree with Bocconi?", "Bocconi", ("Bocconi",)),
    ("How do I apply for a Danish residence permit as a Ukrainian?", "Ukrainian", ("residence permit",)),
    ("What documents must I upload with my application?", "Documentation", ("upload",)),
    ("Do I fulfil English level B with a German Abitur?", "English level B", ("Germany",)),
    (
        "How are applicants selected for Business Administration and Philosophy?",
        "Philosophy",
        ("Selection", "SELECTION"),
    ),
    ("Can I study part-time while working?", "Part-time master", ("part-time", "Part-time")),
    ("When do I get an answer to my application?", "Answer to your application", ("answer", "Answer")),
    (
        "What courses are in the Business Administration and Information Systems programme?",
        "Information Systems",
        ("Course", "course", "Structure"),
    ),
    ("What is the legal claim to a master's programme?", "Legal claim", ("legal claim", "Legal claim")),
    ("How can students with dyslexia get support?", "special support", ("Support", "support")),
    ("What happens during the introduction week at study start?", "Study start", ("Introductory", "week")),
]


def ndcg10(ranked: list[str], relevant: set[str]) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, cid in enumerate(ranked[:10]) if cid in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--pairs", help="pairs folder: title queries from its held-out rows")
    parser.add_argument("--titles", type=int, default=150)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()

    import torch

    from sitetune.corpus import Corpus
    from sitetune.modelinfo import load_model_info
    from sitetune.models import load_sentence_transformer, resolve_model_path, use_bf16

    corpus = Corpus.load(args.corpus)
    chunks = list(corpus.chunks)
    if args.pairs:
        from sitetune.recordio import read_records

        held = read_records(Path(args.pairs) / "heldout.jsonl")
    else:
        held = list(corpus.records)
    rng = random.Random(0)
    sample = rng.sample(held, min(args.titles, len(held)))
    title_q = [(f"{r.page_name}: {r.section_title}", {r.chunk_id}) for r in sample]
    dev_q = []
    for question, page, titles in DEV_QUESTIONS:
        rel = {
            c.chunk_id
            for c in chunks
            for o in c.occurrences
            if page in o.page_name and any(t in o.section_title for t in titles)
        }
        if rel:
            dev_q.append((question, rel))
    results = {}
    for name in args.model:
        t0 = time.time()
        model = load_sentence_transformer(name)
        model.max_seq_length = min(model.max_seq_length, 256)
        info = load_model_info(resolve_model_path(name))
        docs = [info.document(c) for c in chunks]
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16("auto")):
            d = model.encode(docs, batch_size=32, convert_to_tensor=True, normalize_embeddings=True)
            scores = {}
            for label, qs in (("titles", title_q), ("dev_questions", dev_q)):
                q = model.encode(
                    [info.query(x) for x, _ in qs],
                    batch_size=64,
                    convert_to_tensor=True,
                    normalize_embeddings=True,
                )
                sims = (q.float() @ d.float().T).topk(10, dim=1).indices.tolist()
                scores[label] = round(
                    sum(
                        ndcg10([chunks[i].chunk_id for i in row], rel)
                        for row, (_, rel) in zip(sims, qs, strict=True)
                    )
                    / len(qs),
                    4,
                )
        results[name] = {**scores, "seconds": round(time.time() - t0, 1)}
        print(name, results[name], flush=True)
    print(f"{len(title_q)} title queries, {len(dev_q)} dev questions")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
