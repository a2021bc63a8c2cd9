"""Helpers shared by the hand-run benchmarks in bench/ (not tests; never collected by pytest)."""

from __future__ import annotations

import json
import os
import platform
import random
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
BUILTIN = ROOT / "udasa" / "resources" / "prompts" / "builtin.jsonl"


def builtin_prompts() -> list[str]:
    """The built-in prompts, read straight from the packaged JSONL (no loader dependencies)."""
    with open(BUILTIN, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def environment() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                               "GOMP_SPINCOUNT", "MKL_NUM_THREADS")
                    if k in os.environ},
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def busy_processes(interval: float = 0.5, threshold: float = 0.2) -> list[dict]:
    """Other processes using >= `threshold` of a CPU over `interval` s (read from /proc; the
    machine is shared, and anything busy here skews every timing)."""
    def sample() -> dict[int, tuple[str, int]]:
        out = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(d.name)] = (comm, int(fields[11]) + int(fields[12]))
        return out

    tick = os.sysconf("SC_CLK_TCK")
    a = sample()
    time.sleep(interval)
    b = sample()
    busy = []
    for pid, (comm, t) in b.items():
        if pid in a:
            share = (t - a[pid][1]) / tick / interval
            if share >= threshold:
                busy.append({"pid": pid, "comm": comm, "cpu": round(share, 2)})
    return busy


def parallel_op_latency_us(n: int = 65536, runs: int = 50) -> float:
    """Median time of one element-wise add large enough for torch to run it on all its
    threads: ~10 us on idle cores; ~8000 us when the OpenMP workers have to wait for a
    CPU held by another process."""
    import torch

    x = torch.randn(n)
    for _ in range(3):
        x + x
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        x + x
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2] * 1e6


def machine_state() -> dict:
    """What else is running, load average, and the intra-op parallel latency right now."""
    busy = busy_processes()
    state = {"loadavg": Path("/proc/loadavg").read_text().split()[:3], "busy_others": busy,
             "parallel_op_us": round(parallel_op_latency_us(), 1)}
    state["quiet"] = not busy and state["parallel_op_us"] < 1000
    return state


def warn_if_busy(state: dict, label: str) -> None:
    if not state["quiet"]:
        names = ", ".join(f"{b['comm']}({b['cpu']:.0%})" for b in state["busy_others"]) or "none"
        print(f"WARNING [{label}]: machine not quiet: other busy processes: {names}; "
              f"parallel op {state['parallel_op_us']:.0f} us. Timings will be slow and noisy "
              "(see bench/README.md).", flush=True)


def write_results(stem: str, data: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(data, indent=2) + "\n"), (".md", markdown)):
        path = RESULTS / f"{stem}{suffix}"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    print(markdown)
    print(f"wrote {RESULTS / (stem + '.json')} and {RESULTS / (stem + '.md')}")


def md_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- deterministic synthetic responses ----------------------------------------------------

_STOP_WORDS = """a an the of to in on for with and or but is are be do does how what why
when where which who me my your you i it its this that these those about write give explain
tell make short one two three some can should would could please"""
_STOP = frozenset(_STOP_WORDS.split())

_OPENERS = [
    "Sure, here is a short answer.", "That is a good question.", "Here is what I would suggest.",
    "Good question, and the answer depends a little on the details.",
    "Let me explain this step by step.", "In short, it is simpler than it looks.",
    "There are a few things worth knowing here.", "Happy to help with that.",
]
_BODY = [
    "The most important part of {t} is to {v} the {n} before anything else.",
    "Many people find that {t} goes better when they {v} the {n} slowly and carefully.",
    "A common mistake with {t} is to forget the {n}, which makes everything harder later.",
    "If you {v} the {n} early, the rest of {t} usually takes care of itself.",
    "Experts often recommend that you {v} the {n} at least once a week.",
    "It helps to think of {t} as a series of small steps rather than one big task.",
    "You should also check the {n} and {v} it again if something looks wrong.",
    "In my experience, the {n} matters more than most guides admit.",
    "Another option is to {v} the {n} together with a friend or a colleague.",
    "Keep in mind that {t} can look very different depending on where you live.",
    "For most beginners, the simplest approach is to {v} the {n} and see what happens.",
    "Research suggests that people who {v} the {n} regularly get noticeably better results.",
    "The {n} was first described in detail more than a hundred years ago.",
    "Be patient, because {t} rarely works perfectly on the first attempt.",
    "Finally, remember to {v} the {n} once you are done, so it is ready for next time.",
    "Some people disagree, but the evidence on {t} is fairly clear.",
]
_CLOSERS = [
    "I hope this helps!", "Let me know if you would like more detail.", "Good luck!",
    "Feel free to ask a follow-up question.", "That should be enough to get you started.",
]
_VERBS = ["prepare", "check", "measure", "organise", "review", "clean", "plan", "test",
          "adjust", "write down", "compare", "protect", "practise", "explain", "warm up"]
_NOUNS = ["schedule", "ingredients", "budget", "notes", "water", "materials", "timeline",
          "surface", "examples", "evidence", "settings", "team", "equipment", "draft",
          "temperature", "instructions", "pattern", "foundation", "summary", "routine"]


def _topic(prompt: str) -> str:
    words = [w for w in re.findall(r"[a-zA-Z']+", prompt.lower()) if w not in _STOP]
    return " ".join(words[:2]) if words else "this"


def synthetic_response(prompt: str, rng: random.Random) -> str:
    """One plausible reply to `prompt`: whole sentences, 20-60 words, varied per draw."""
    target = rng.randint(20, 60)
    topic = _topic(prompt)
    sentences: list[str] = [rng.choice(_OPENERS)] if rng.random() < 0.6 else []
    words = sum(len(s.split()) for s in sentences)
    while words < target:
        s = rng.choice(_BODY).format(t=topic, v=rng.choice(_VERBS), n=rng.choice(_NOUNS))
        if words + len(s.split()) > 60:
            if words >= 20:
                break
            s = " ".join(s.split()[:60 - words]).rstrip(",") + "."
        sentences.append(s)
        words += len(s.split())
    closer = rng.choice(_CLOSERS)
    if words + len(closer.split()) <= 60 and rng.random() < 0.4:
        sentences.append(closer)
    text = " ".join(sentences)
    return text[0].upper() + text[1:]


def synthetic_groups(n_groups: int, per_group: int, seed: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    prompts = builtin_prompts()
    return [(prompts[g % len(prompts)],
             [synthetic_response(prompts[g % len(prompts)], rng) for _ in range(per_group)])
            for g in range(n_groups)]
