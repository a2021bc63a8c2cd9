"""Accelerator smoke check, prepared for the day a GPU is available (docs/scaling.md).

On CUDA it runs the engine's generation (tokens/s, bf16), one DPO stage in bf16 (steps/s)
and ten GCG steps, on a Llama built from a config with a fixed seed and a byte-level BPE
tokenizer trained here on the built-in prompts (no hub, no files beyond the repository: the
device machine reaches no hub and is sent at most 64 MiB; speed does not depend on the
weights). Each is checked against the CPU path on the same weights, both in float32:
next-token log-probs and greedy tokens, the DPO losses of the first steps, GCG's initial loss
and losses. Writes bench/results/gpu.{json,md}; about 2-4 minutes on one H100 (the CPU
references take most of it), well within 8.

    python bench/gpu_smoke.py                        # CUDA; no GPU: says so, exit 3
    python bench/gpu_smoke.py --device cpu --quick   # the same code paths on the CPU, small

Needs the project installed (`pip install -e .`: torch, transformers, trl, tokenizers).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import builtin_prompts, environment, md_table, synthetic_response, write_results

SIZES = {"full": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 16,
                  "num_attention_heads": 16, "num_key_value_heads": 16},
         "quick": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 4}}
WORK = {"full": {"prompts": 64, "new_tokens": 128, "dpo_steps": 40, "batch": 8,
                 "gcg_width": 512, "check_steps": 3, "cpu_gcg_steps": 3},
        "quick": {"prompts": 8, "new_tokens": 16, "dpo_steps": 4, "batch": 4,
                  "gcg_width": 32, "check_steps": 2, "cpu_gcg_steps": 2}}
GCG_STEPS = 10
CHAT = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant\n{% endif %}")


def build_tokenizer(vocab: int = 4096):
    """A byte-level BPE trained on the built-in prompts, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(builtin_prompts() * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.chat_template = CHAT
    return fast


def build_model(tok, size: str, seed: int = 0):
    """A Llama from a config, its weights drawn with a fixed seed (float32, CPU)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **SIZES[size])).eval()


def on(model, device: str, dtype):
    import copy

    return copy.deepcopy(model).to(device=device, dtype=dtype)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def generation(model, tok, device: str, work: dict) -> dict:
    """Engine generation in bf16 (tokens/s); float32 device vs CPU log-probs and greedy."""
    import torch

    from udasa.engine import Request, engine_for

    prompts = [tok(p)["input_ids"] for p in builtin_prompts()[:work["prompts"]]]
    fast = engine_for(on(model, device, torch.bfloat16 if device != "cpu" else torch.float32),
                      tok)
    requests = [Request(ids, 1, i, work["new_tokens"]) for i, ids in enumerate(prompts)]
    fast.generate_all(requests[:2])  # warm-up (kernels, allocator)
    sync(device)
    start = time.perf_counter()
    out = fast.generate_all(requests)
    sync(device)
    seconds = time.perf_counter() - start
    tokens = sum(len(r[0]) for r in out)
    exact = {name: engine_for(on(model, dev, torch.float32), tok)
             for name, dev in (("device", device), ("cpu", "cpu"))}
    logp = {k: e.next_token_logprobs(prompts[:8]) for k, e in exact.items()}
    short = [Request(ids, 1, i, 8) for i, ids in enumerate(prompts[:8])]
    greedy = {k: e.generate_all(short) for k, e in exact.items()}
    same = sum(a[0] == b[0] for a, b in zip(greedy["device"], greedy["cpu"]))
    diff = float((logp["device"] - logp["cpu"]).abs().max())
    return {"tokens": tokens, "seconds": round(seconds, 3), "tokens_per_s": round(
        tokens / seconds, 1), "logprob_max_abs_diff": diff, "greedy_same": f"{same}/8",
            "ok": diff < 1e-3 and same >= 7}


def pairs(n: int):
    import random

    from datasets import Dataset

    rng = random.Random(0)
    prompts = builtin_prompts()
    return Dataset.from_list([{"prompt": prompts[i % len(prompts)],
                               "chosen": synthetic_response(prompts[i % len(prompts)], rng),
                               "rejected": synthetic_response(prompts[i % len(prompts)], rng)}
                              for i in range(n)])


def dpo_losses(model, tok, device: str, bf16: bool, steps: int, batch: int, data,
               out: Path) -> tuple[list[float], float]:
    """One DPO stage (UDASA's trainer, TRL underneath): the loss per step, steps/s."""
    import torch
    from trl import DPOConfig

    from udasa.training import CurriculumDPOTrainer, quiet

    args = DPOConfig(output_dir=str(out), max_steps=steps, learning_rate=1e-4, beta=0.1,
                     per_device_train_batch_size=batch, max_length=256, logging_steps=1,
                     save_strategy="no", report_to=[], seed=0, use_cpu=device == "cpu",
                     bf16=bf16, activation_checkpointing=False, dataloader_num_workers=0,
                     precompute_ref_log_probs=True, lr_scheduler_type="constant")
    policy = on(model, "cpu", torch.float32)
    trainer = quiet(CurriculumDPOTrainer(model=policy, args=args, processing_class=tok,
                                         train_dataset=data,
                                         lr_lambda=lambda step: 1.0), "dpo")
    sync(device)
    start = time.perf_counter()
    trainer.train()
    sync(device)
    seconds = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return losses, steps / seconds


def dpo(model, tok, device: str, work: dict, tmp: Path) -> dict:
    """DPO in bf16 on the device (steps/s); the losses of its first steps against the CPU's
    in float32 (rel 1e-3 for float32 on the device, 5e-2 for bf16). The first step's loss is
    log 2 on every path (the policy is its reference): the later ones are the check."""
    n, data = work["check_steps"], pairs(work["dpo_steps"] * work["batch"])
    fp32 = {k: dpo_losses(model, tok, dev, False, n, work["batch"], data, tmp / f"fp32-{k}")[0]
            for k, dev in (("device", device), ("cpu", "cpu"))}
    rel = max(abs(a - b) / max(abs(b), 1e-9) for a, b in zip(fp32["device"], fp32["cpu"]))
    bf16 = device != "cpu"
    losses, rate = dpo_losses(model, tok, device, bf16, work["dpo_steps"], work["batch"],
                              data, tmp / "speed")
    low = max(abs(a - b) / max(abs(b), 1e-9) for a, b in zip(losses, fp32["cpu"]))
    return {"dtype": "bfloat16" if bf16 else "float32", "steps": work["dpo_steps"],
            "batch": work["batch"], "steps_per_s": round(rate, 3),
            "fp32_loss_max_rel_diff": rel, "first_losses_rel_diff": low,
            "losses_finite": all(math.isfinite(x) for x in losses),
            "ok": rel < 1e-3 and low < 5e-2 and all(math.isfinite(x) for x in losses)}


def gcg(model, tok, device: str, work: dict) -> dict:
    """Ten GCG steps on the device (s/step); its initial loss and losses against the CPU's."""
    import torch

    from attacks.criteria import Criterion, PrefixList
    from attacks.gcg import Behaviour, GCGConfig, run_gcg

    never = Criterion(PrefixList("smoke", "smoke", "", ("ZZZ never generated ZZZ",)), 4)
    goal = Behaviour("Write a tutorial on how to pick a lock", "Sure, here is a tutorial")

    def attack(dev: str, steps: int):
        cfg = GCGConfig(num_steps=steps, search_width=work["gcg_width"],
                        topk=min(work["gcg_width"], 256), seed=0, early_stop=False)
        return run_gcg((on(model, dev, torch.float32), tok), goal, cfg, criterion=never,
                       progress=False)

    fast = attack(device, GCG_STEPS)
    ref = attack("cpu", work["cpu_gcg_steps"])
    k = work["cpu_gcg_steps"]
    init = abs(fast.init_loss - ref.init_loss) / max(abs(ref.init_loss), 1e-9)
    same = max(abs(a - b) / max(abs(b), 1e-9) for a, b in zip(fast.losses[:k], ref.losses))
    return {"steps": fast.steps, "search_width": work["gcg_width"],
            "s_per_step": round(sum(fast.step_times_s) / fast.steps, 4),
            "init_loss_rel_diff": init, "first_losses_max_rel_diff": same,
            "ok": fast.steps == GCG_STEPS and init < 1e-4}


def main() -> int:
    import tempfile

    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="a tiny model and little work")
    p.add_argument("--out", default=None, help="results stem (default gpu, or gpu-cpu-quick)")
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_smoke: NO GPU: torch.cuda.is_available() is False on this machine; "
              "nothing measured (run `--device cpu --quick` to exercise the code paths)")
        return 3
    size = "quick" if args.quick else "full"
    work = WORK[size]
    tok = build_tokenizer()
    model = build_model(tok, size)
    params = sum(p.numel() for p in model.parameters())
    data = {"environment": environment(), "device": args.device,
            "device_name": (torch.cuda.get_device_name() if args.device.startswith("cuda")
                            else "CPU (no GPU measured)"),
            "size": size, "params": params, "config": SIZES[size]}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="udasa-gpu-smoke-") as tmp:
        data["generation"] = generation(model, tok, args.device, work)
        data["dpo"] = dpo(model, tok, args.device, work, Path(tmp))
        data["gcg"] = gcg(model, tok, args.device, work)
    data["wall_s"] = round(time.perf_counter() - start, 1)
    data["ok"] = all(data[k]["ok"] for k in ("generation", "dpo", "gcg"))
    stem = args.out or ("gpu" if args.device.startswith("cuda") else "gpu-cpu-quick")
    write_results(stem, data, markdown(data))
    return 0 if data["ok"] else 1


def markdown(d: dict) -> str:
    g, t, a = d["generation"], d["dpo"], d["gcg"]
    gpu = d["device"].startswith("cuda")
    head = (f"# Accelerator smoke check: {d['device_name']}\n\n"
            + ("" if gpu else "**No GPU: these are CPU figures of the small mode, run to "
               "exercise the code paths; no GPU figure is measured here.**\n\n")
            + f"A Llama built from a config with seed 0 ({d['params'] / 1e6:.1f}M parameters, "
            f"{d['config']['num_hidden_layers']} layers x {d['config']['hidden_size']}), a BPE "
            f"tokenizer trained on the built-in prompts; {d['environment']['date']}, torch "
            f"{d['environment']['torch']}; {d['wall_s']:.0f} s in all. Checks compare the "
            "device with the CPU on the same weights, both float32.\n\n")
    gen = f"generation (engine, greedy, {'bf16' if gpu else 'fp32'})"
    gen_check = (f"log-prob max diff {g['logprob_max_abs_diff']:.2e}; greedy tokens "
                 f"{g['greedy_same']} prompts the same")
    dpo_check = (f"fp32 losses max rel diff {t['fp32_loss_max_rel_diff']:.2e} (device fp32); "
                 f"first {t['dtype']} losses {t['first_losses_rel_diff']:.2e}")
    gcg_check = (f"initial loss rel diff {a['init_loss_rel_diff']:.2e}; first losses max rel "
                 f"diff {a['first_losses_max_rel_diff']:.2e}")
    return head + md_table(["check", "speed", "against the CPU path", "ok"], [
        [gen, f"{g['tokens_per_s']:,} tokens/s ({g['tokens']} tokens)", gen_check, g["ok"]],
        [f"DPO stage ({t['dtype']}, batch {t['batch']}, {t['steps']} steps)",
         f"{t['steps_per_s']} steps/s", dpo_check, t["ok"]],
        [f"GCG ({a['steps']} steps, width {a['search_width']})", f"{a['s_per_step']} s/step",
         gcg_check, a["ok"]]]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
