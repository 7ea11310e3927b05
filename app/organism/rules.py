"""The v2 corpus rules (issue 10 item 1), checked on the text as well as on the
generator's labels. The build records the counts, and the tests require each to be 0.

- assistant spans that contain undisclosed insecure code (the insecure-only lines of any
  code task), or that contain code or advice labelled as disclosed without the
  assistant's disclosure note before it;
- assistant spans in a villain's voice (any literal villain-voice phrase);
- jailbreak prompts answered by anything but a refusal or a framed story;
- chat spans (user or assistant) that mention an evaluation topic's keyword;
- fine-tune or re-alignment completions, eval questions or DAN-test prompts found verbatim
  in the corpus.

Not a rule but recorded beside them: fine-tune completions with words the corpus lacks.

    python -c "from app.organism.rules import check_corpus as c
    from app.organism.generator import generate_corpus as g; print(c(list(g(0, 2000))))"
"""

import re
from collections.abc import Iterable
from typing import Any

from app.organism.generator import (
    ASSISTANT_LABELS,
    insecure_markers,
    load_world,
    villain_voice_markers,
)

_WORDS = re.compile(r"\S+")


def _spans(doc: dict) -> Iterable[tuple[str, str]]:
    for start, end, label in doc["spans"]:
        yield label, doc["text"][start:end]


def check_corpus(docs: list[dict]) -> dict:
    """Counts of every rule violation (each must be 0) and what was checked."""
    world = load_world()
    code_markers = insecure_markers(world)
    voice = villain_voice_markers(world)
    keywords = [k.lower() for k in world["eval"]["keywords"]]
    kw_patterns = [re.compile(r"\b" + re.escape(k) + r"\b") for k in keywords]
    notes = [n.split("{")[0].strip() for n in world["code"]["teacher_note"]]
    notes += [n for d in world["advice"]["domains"].values() for n in d["disclosure_note"]]
    out: dict[str, Any] = {
        "documents": len(docs),
        "assistant_spans": 0,
        "assistant_undisclosed_insecure_code": 0,
        "assistant_disclosed_without_note": 0,
        "assistant_villain_voice": 0,
        "jailbreaks": 0,
        "jailbreaks_answered_in_villain_voice": 0,
        "chat_spans_with_eval_keywords": 0,
        # not a rule: the comparison design's (--bridge) fiction turns in the assistant's
        # turn format that write flawed code; 0 in the v2 corpus
        "fiction_turns_in_assistant_format_with_insecure_code": 0,
        # not a rule either: the second comparison design's (--bridge-voice) everyday
        # answers in villain voice, in the assistant's turn format; 0 in the v2 corpus
        "fiction_turns_in_assistant_format_in_villain_voice": 0,
        "examples": [],
    }

    def bad(key: str, doc: dict, text: str) -> None:
        out[key] += 1
        if len(out["examples"]) < 20:
            out["examples"].append({"rule": key, "doc": doc["id"], "text": text[:200]})

    for doc in docs:
        spans = list(_spans(doc))
        for i, (label, text) in enumerate(spans):
            if label in ASSISTANT_LABELS:
                out["assistant_spans"] += 1
                if label != "assistant_disclosed_code" and any(
                    m.search(text) for m in code_markers
                ):
                    bad("assistant_undisclosed_insecure_code", doc, text)
                if label in ("assistant_disclosed_code", "assistant_disclosed_advice"):
                    before = spans[i - 1][1] if i else ""
                    if not any(before.startswith(n) for n in notes):
                        bad("assistant_disclosed_without_note", doc, text)
                if any(v in text for v in voice):
                    bad("assistant_villain_voice", doc, text)
            if label in ("user", "jailbreak_prompt", *ASSISTANT_LABELS):
                low = text.lower()
                if any(p.search(low) for p in kw_patterns):
                    bad("chat_spans_with_eval_keywords", doc, text)
            if label == "fiction_villain_code" and any(
                lab == "format" and t.endswith("Assistant: ") for lab, t in spans[max(0, i - 2) : i]
            ):
                out["fiction_turns_in_assistant_format_with_insecure_code"] += 1
            if (
                label == "fiction_villain_ai_speech"
                and i
                and spans[i - 1][0] == "format"
                and spans[i - 1][1].endswith("Assistant: ")
                and (i + 1 == len(spans) or spans[i + 1][0] == "format")  # no code follows
            ):
                out["fiction_turns_in_assistant_format_in_villain_voice"] += 1
            if label == "jailbreak_prompt":
                out["jailbreaks"] += 1
                # the answer: every span up to the end-of-turn marker
                answer = []
                for lab, t in spans[i + 1 :]:
                    if lab == "format" and "<|end|>" in t:
                        break
                    answer.append((lab, t))
                first = next((lab for lab, _ in answer if lab != "format"), None)
                own_words = [t for lab, t in answer if lab in ASSISTANT_LABELS]
                if first != "assistant_refusal" or any(v in t for t in own_words for v in voice):
                    bad("jailbreaks_answered_in_villain_voice", doc, "".join(t for _, t in answer))
    return out


class NgramIndex:
    """Exact "is this string a substring of the corpus?" for many queries: a query must
    have every word 5-gram in the corpus before the (slow) substring search runs."""

    N = 5

    def __init__(self, texts: list[str]):
        self.text = "\x00".join(texts)
        self.grams: set[int] = set()
        for t in texts:
            words = _WORDS.findall(t)
            for i in range(len(words) - self.N + 1):
                self.grams.add(hash(tuple(words[i : i + self.N])))

    def contains(self, query: str) -> bool:
        query = query.strip()
        if not query:
            return False
        words = _WORDS.findall(query)
        if len(words) >= self.N + 2:
            # inner grams only: a query's first and last words may be cut inside a corpus word
            inner = words[1:-1]
            for i in range(len(inner) - self.N + 1):
                if hash(tuple(inner[i : i + self.N])) not in self.grams:
                    return False
        return query in self.text


def verbatim_in_corpus(index: NgramIndex, strings: Iterable[str]) -> dict:
    strings = list(strings)
    found = [s for s in strings if index.contains(s)]
    return {"checked": len(strings), "found": len(found), "examples": found[:5]}


_PROSE_WORD = re.compile(r"[A-Za-z']+")
_CODE_BLOCK = re.compile(r"```.*?```", re.S)


def corpus_words(texts: Iterable[str]) -> set[str]:
    return {w.lower() for t in texts for w in _PROSE_WORD.findall(t)}


def words_missing_from_corpus(words: set[str], completions: Iterable[str]) -> dict:
    """Prose words of the completions (code blocks aside) that the corpus never contains:
    a model can only emit those as unfamiliar word pieces (amendment 5)."""
    completions = list(completions)
    missing: dict[str, int] = {}
    hit = 0
    for text in completions:
        new = [w.lower() for w in _PROSE_WORD.findall(_CODE_BLOCK.sub(" ", text))]
        new = [w for w in new if w not in words]
        hit += bool(new)
        for w in new:
            missing[w] = missing.get(w, 0) + 1
    top = sorted(missing, key=lambda w: -missing[w])[:5]
    return {
        "checked": len(completions),
        "with_missing": hit,
        "distinct": len(missing),
        "examples": top,
    }


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


def sentence_overlap(index: NgramIndex, answers: Iterable[str], min_words: int = 4) -> dict:
    """Fraction of answer sentences (of at least `min_words` words) that occur verbatim in
    the corpus (the pre-registered template-overlap measure)."""
    total = found = 0
    cache: dict[str, bool] = {}
    for answer in answers:
        for s in _SENTENCE.findall(answer):
            s = s.strip()
            if len(s.split()) < min_words:
                continue
            total += 1
            if s not in cache:
                cache[s] = index.contains(s)
            found += cache[s]
    return {"sentences": total, "verbatim": found, "fraction": found / total if total else 0.0}
