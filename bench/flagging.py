"""`make bench`: flagging speed on one core, on real posts read in place; prints figures.

- time to compile the lexicons and to load the comment model's word vectors (once per
  process);
- posts/s through ``flagging.stage`` on the St Petersburg appeals as web posts and on the VK
  comments, first pass (word caches cold) and again (warm);
- for comparison, natasha's NER and address extractor on 100 comments (why places are rules).
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.model import Post  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
APPEALS = DATA / "appeals" / "spb_nash_gorod.jsonl.gz"
VK = DATA / "vk" / "vk_comments_spb_central.csv"


def appeal_posts() -> list[Post]:
    with gzip.open(APPEALS, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [Post(platform="web", native_id=str(r["id"]), text=r["text"]) for r in rows]


def vk_posts() -> list[Post]:
    with VK.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        Post(
            platform="vk",
            native_id=r["comment_id"],
            kind="comment",
            text=r["text"],
            author_is_official=r["author_is_official"] == "True",
        )
        for r in rows
    ]


def rate(label: str, flag, posts: list[Post], repeat: int = 1) -> None:  # type: ignore[no-untyped-def]
    """Posts/s in batches of 200 by CPU time of this process, best of ``repeat`` runs."""
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(posts), 200):
            flag(posts[start : start + 200])
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    print(
        f"{label:<48} {len(posts):>7} posts  {len(posts) / best_cpu:>9,.0f} posts/s"
        f"  (wall {len(posts) / best_wall:,.0f})"
    )


def natasha_rate(posts: list[Post]) -> None:
    try:
        from natasha import AddrExtractor, Doc, MorphVocab, NewsEmbedding, NewsNERTagger, Segmenter
    except ImportError:
        print("natasha not installed: comparison skipped")
        return
    began = time.perf_counter()
    segmenter, tagger = Segmenter(), NewsNERTagger(NewsEmbedding())
    extractor = AddrExtractor(MorphVocab())
    print(f"{'natasha models loaded':<48} {time.perf_counter() - began:>7.2f} s")
    sample = posts[:100]
    began = time.perf_counter()
    for post in sample:
        doc = Doc(post.text)
        doc.segment(segmenter)
        doc.tag_ner(tagger)
    print(
        f"{'natasha NER (comparison)':<48} {len(sample):>7} posts  "
        f"{len(sample) / (time.perf_counter() - began):>9,.0f} posts/s"
    )
    began = time.perf_counter()
    for post in sample:
        list(extractor(post.text))
    print(
        f"{'natasha AddrExtractor (comparison)':<48} {len(sample):>7} posts  "
        f"{len(sample) / (time.perf_counter() - began):>9,.0f} posts/s"
    )


def main() -> None:
    began = time.perf_counter()
    import flagging

    flag = flagging.stage()
    label = "lexicons + topic model loaded (import, stage())"
    print(f"{label:<48} {time.perf_counter() - began:>7.2f} s")
    began = time.perf_counter()
    flagging.comment_model.embeddings()  # otherwise loaded by the first comment
    label = "word vectors of the comment model loaded"
    print(f"{label:<48} {time.perf_counter() - began:>7.2f} s")
    appeals, comments = appeal_posts(), vk_posts()
    rate("appeals, first pass (word caches cold)", flag, appeals)
    rate("appeals, again (warm, best of 3)", flag, appeals, repeat=3)
    rate("VK comments, first pass", flag, comments)
    rate("VK comments, again (warm, best of 10)", flag, comments, repeat=10)
    natasha_rate(comments)


if __name__ == "__main__":
    main()
