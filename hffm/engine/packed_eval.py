"""Packed evaluation: many models on their samples in one pass a slice, without padding.

The evaluation counterpart of `hffm.engine.packed`. Each job (one model: its module states, modalities and
tasks, on a dataset) is a "device" of the packed pass: its samples lie one after another in the flat token
array, with its own sequence layout, and every per-model weight applies through `Segments`. The frozen
trunk's linears run once over every job's tokens. Two things only evaluation allows:

- a job that counts only the samples showing one of its modalities (``restrict``) runs on those samples only;
- the last trunk layer computes its queries, MLP and adapter for the task-prompt tokens only (all the MoE
  block and the heads read); every token still serves as a key and value. With the `tiny` model's one layer,
  that is most of the layer's work.

Passes hold about ``PASS_SAMPLES`` samples: slices of the jobs (ordered by modality and task set, so a pass's
sequences share lengths), each job a contiguous range of its samples. LoRA deltas are folded into each
job's trunk weights, as `TrunkLayer` does when it evaluates one model. It computes what
`M3TModel.forward_masked` computes for each job alone, in another summation order (tests/test_packed_eval.py).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from lightning.fabric import Fabric
from torch import Tensor
from torch.func import functional_call

from hffm.engine.packed import PackedLoss, _mlp, mix_experts, route, stacked_key, task_head
from hffm.engine.packed_batch import PackedBatch, WaveLayout, pack
from hffm.engine.workers import pass_workers, run_units
from hffm.modules.bank import ModuleBank
from hffm.modules.objective import task_metrics
from hffm.spec import MISSING_LABEL

PASS_SAMPLES = 1024
"""Samples in one packed pass, all jobs together (activations grow with it; passes cost launches)."""


@dataclass(frozen=True)
class _Slice:
    job: int
    rows: np.ndarray
    """The job's sample indices this pass runs."""


@dataclass
class _QueryBuckets:
    """The last layer's attention: samples of one (length, prompt tokens) in one call, queries = prompts."""

    buckets: list[tuple[Tensor, Tensor | None, int]]
    """(token index [samples, length], key mask [samples, 1, 1, length] or None, prompt tokens a sample)."""
    restore: Tensor
    """Long [prompt tokens]: the rows of cat(buckets' prompt outputs) in `PackedBatch.prompt_rows` order."""


class PackedOutputs(PackedLoss):
    """Every task head's output for each sample of a packed batch (no loss, no balance statistics)."""

    def __call__(self, tensors: Mapping[str, Tensor], batch: PackedBatch,  # type: ignore[override]
                 encoded: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per task: outputs [samples of the devices holding it, *out], device by device (regression values
        in the target's units, as `RegressionHead.forward`); ``encoded``: each modality's encoder output
        [samples of the devices holding it, tokens, width], device by device."""
        def get(name: str, key: str) -> Tensor:
            return tensors[stacked_key(name) + key]

        n_dev = len(batch.rows)
        prompts = [get(f"prompt/{t.name}", "tokens").reshape(n_dev * self.cfg.prompt_len, -1)
                   for t in self.layout.tasks]
        tokens = [encoded[spec.name].flatten(0, 1) for spec in self.layout.modalities]
        h = torch.cat(prompts + tokens).index_select(0, batch.source)
        last = len(self.trunk.layers) - 1
        for i, layer in enumerate(self.trunk.layers):
            h = self._eval_layer(i, layer, h, batch, get, prompts_only=i == last)
        x = self.trunk.norm(h)  # prompt tokens only (the last layer kept them)
        kept = self._experts(x, batch, get)
        return {task.name: self._head(task.name, task.kind, kept, batch, get) for task in self.layout.tasks}

    def _eval_layer(self, i: int, layer, h: Tensor, batch: PackedBatch, get, prompts_only: bool) -> Tensor:
        seg = batch.tokens
        qkv = self._folded(layer.ln1(h), seg, layer.qkv, get, i, "qkv")
        if prompts_only:
            att = _prompt_attention(qkv, _query_buckets(batch), layer.heads)
            h, seg = h.index_select(0, batch.prompt_rows), batch.prompts
        else:
            att = self._attention(qkv, batch, layer.heads)
        h = h + self._folded(att, seg, layer.out, get, i, "out")
        mid = F.gelu(self._folded(layer.ln2(h), seg, layer.fc1, get, i, "fc1"))
        h = h + self._folded(mid, seg, layer.fc2, get, i, "fc2")
        key = f"adapter/{i}"
        dw, db, uw, ub = (get(key, k) for k in ("down.weight", "down.bias", "up.weight", "up.bias"))
        return h + seg.apply(h, _mlp, dw, db, uw, ub)

    def _experts(self, x: Tensor, batch: PackedBatch, get) -> Tensor:
        """The MoE block on the prompt tokens (`PackedLoss._moe` without the balance loss)."""
        n = self.num_experts
        _, gate, chosen = route(x, batch.prompts, get, n, min(self.cfg.top_k, n))
        return mix_experts(x, batch.prompts, gate, chosen, get, n)

    def _head(self, task: str, kind: str, kept: Tensor, batch: PackedBatch, get) -> Tensor:
        seg, key = batch.task_samples[task], f"head/{task}"
        out = task_head(task, kept, batch, get)
        if kind == "classification":
            return out
        dev = seg.device_of
        return out.squeeze(-1) * get(key, "target_scale")[dev] + get(key, "target_mean")[dev]


def _starts(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _query_buckets(batch: PackedBatch) -> _QueryBuckets:
    """Group the samples of a packed batch by (sequence length, prompt tokens)."""
    lengths = batch.tokens.counts // np.maximum(batch.rows, 1)
    prompt = batch.prompts.counts // np.maximum(batch.rows, 1)
    starts = np.concatenate([[0], np.cumsum(batch.tokens.counts)[:-1]])
    sample_start = np.concatenate([starts[d] + np.arange(batch.rows[d]) * lengths[d] for d in range(len(batch.rows))])
    sample_length, sample_prompt = np.repeat(lengths, batch.rows), np.repeat(prompt, batch.rows)
    device = batch.source.device
    counted = batch.counted.cpu()
    buckets, placed = [], []
    for s, p in sorted(set(zip(sample_length.tolist(), sample_prompt.tolist()))):
        pick = (sample_length == s) & (sample_prompt == p)
        index = torch.as_tensor(sample_start[pick][:, None] + np.arange(s)[None, :])
        attend = counted[index]
        mask = None if bool(attend.all()) else attend[:, None, None, :].to(device)
        buckets.append((index.to(device), mask, p))
        placed.append(index[:, :p].reshape(-1).numpy())
    restore = torch.as_tensor(np.argsort(np.concatenate(placed), kind="stable"), device=device)
    return _QueryBuckets(buckets, restore)


def _prompt_attention(qkv: Tensor, qb: _QueryBuckets, heads: int) -> Tensor:
    """Attention outputs [prompt tokens, width] of the prompt tokens (queries), every token a key."""
    width = qkv.shape[1] // 3
    parts = []
    for index, mask, p in qb.buckets:
        n, s = index.shape
        rows = qkv.index_select(0, index.flatten()).view(n, s, 3, heads, width // heads)
        q = rows[:, :p, 0].transpose(1, 2)
        k, v = rows[:, :, 1].transpose(1, 2), rows[:, :, 2].transpose(1, 2)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [n, heads, p, d]
        parts.append(att.transpose(1, 2).reshape(n * p, width))
    return torch.cat(parts).index_select(0, qb.restore)


def plan_passes(sizes: Sequence[int], order: Sequence[int], pass_samples: int = PASS_SAMPLES,
                max_jobs: int = 64) -> list[list[tuple[int, int, int]]]:
    """Passes of at most ``pass_samples`` samples and ``max_jobs`` jobs: (job, first, end) ranges, jobs in
    ``order``, each job's samples contiguous and in order, a pass full before the next starts."""
    passes: list[list[tuple[int, int, int]]] = [[]]
    room = pass_samples
    for job in order:
        first = 0
        while first < sizes[job]:
            if room == 0 or len(passes[-1]) == max_jobs:
                passes.append([])
                room = pass_samples
            end = min(sizes[job], first + room)
            passes[-1].append((job, first, end))
            room -= end - first
            first = end
    return [p for p in passes if p]


def evaluate_packed(fabric: Fabric, bank: ModuleBank, jobs: Sequence, max_jobs: int = 64,
                    pass_samples: int | None = None) -> list[dict[str, float]]:
    """Per-task metrics of each `EvalJob`, in job order: passes of at most ``max_jobs`` jobs and ``pass_samples``
    samples (default `PASS_SAMPLES`)."""
    return [_metrics(bank, pairs) for pairs in packed_outputs(fabric, bank, jobs, max_jobs, pass_samples)]


@torch.no_grad()
def packed_outputs(fabric: Fabric, bank: ModuleBank, jobs: Sequence, max_jobs: int = 64,
                   pass_samples: int | None = None) -> list[dict[str, list[tuple[Tensor, Tensor]]]]:
    """Each `EvalJob`'s raw outputs, in job order: task -> chunks of (outputs, targets) over the samples it counts,
    in sample order (classification samples without a label left out), on ``fabric.device``. What
    `evaluate_packed` scores, for callers that need more than the metrics (the defense's validation scores)."""
    device = fabric.device
    pass_samples = pass_samples or PASS_SAMPLES
    tokens = {m: cast(int, bank.module(f"encoder/{m}").num_tokens) for m in bank.modalities}
    rows = [_counted_rows(j) for j in jobs]
    # jobs of one model and data next to each other (their shared encoder outputs are kept while they run),
    # then by modality and task set (a pass's sequences share lengths)
    # (families numbered by first appearance, not by id: ordered by address, the passes, and so the outputs' last
    # bits, changed from run to run of one seed)
    first: dict[tuple, int] = {}
    family = [first.setdefault((id(j.data), tuple(id(j.states.get(f"encoder/{m}")) for m in bank.modalities)),
                               len(first)) for j in jobs]
    order = sorted(range(len(jobs)), key=lambda i: (family[i], jobs[i].modalities, jobs[i].tasks))
    passes = plan_passes([len(r) for r in rows], order, pass_samples, max_jobs)

    def block(todo: range) -> list[list[tuple[int, str, Tensor, Tensor]]]:
        encoders = _Encoders(bank, jobs, rows, passes, device, pass_samples, todo)
        return [_run_pass(bank, jobs, rows, passes[p], p, encoders, tokens, device) for p in todo]

    collected: list[dict[str, list[tuple[Tensor, Tensor]]]] = [{t: [] for t in j.tasks} for j in jobs]
    workers = pass_workers(device)
    for outputs in run_units(block, _blocks(len(passes), workers), workers):
        for pass_outputs in outputs:  # in pass order: metrics see the samples in one order however they ran
            for job, task, out, y in pass_outputs:
                collected[job][task].append((out, y))
    return collected


def _blocks(passes: int, workers: int) -> list[range]:
    """Consecutive passes a unit of work: all of them on one worker; else twice as many blocks as workers, so a
    worker that the machine slows down leaves its share to the others (each block computes the encoder outputs
    its passes share once more: a few per cent of the work)."""
    if workers <= 1 or passes <= 1:
        return [range(passes)]
    cuts = np.linspace(0, passes, min(passes, 2 * workers) + 1).round().astype(int)
    return [range(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _run_pass(bank: ModuleBank, jobs: Sequence, rows: Sequence[np.ndarray], ranges: Sequence[tuple[int, int, int]],
              p: int, encoders: _Encoders, tokens: Mapping[str, int], device: torch.device
              ) -> list[tuple[int, str, Tensor, Tensor]]:
    """Pass ``p``: (job, task, outputs, targets) of each job's labelled samples in it."""
    live = [job for job, _, _ in ranges]
    signatures = [(jobs[i].modalities, jobs[i].tasks) for i in live]
    layout = WaveLayout.of([bank.modalities[m] for m in bank.modalities if any(m in s[0] for s in signatures)],
                           [bank.tasks[t] for t in bank.tasks if any(t in s[1] for s in signatures)],
                           tokens, bank.cfg.prompt_len, signatures)
    batches = [_batch(jobs[job], rows[job][first:end]) for job, first, end in ranges]
    batch = pack(layout, batches, device)
    encoded = {spec.name: _cat([encoders(p, job, spec.name, rows[job][first:end], b["inputs"][spec.name])
                                for (job, first, end), b in zip(ranges, batches) if spec.name in b["inputs"]])
               for spec in layout.modalities}
    outputs = PackedOutputs(bank, layout)(_stacked(bank, [jobs[i] for i in live], layout, device), batch, encoded)
    encoders.done(p)
    out = []
    for task in layout.tasks:
        counts = batch.task_samples[task.name].counts
        held = [job for job, c in zip(live, counts) if c]
        for job, o, y in zip(held, outputs[task.name].split(counts[counts > 0].tolist()),
                             batch.targets[task.name].split(counts[counts > 0].tolist())):
            keep = y != MISSING_LABEL if task.kind == "classification" else torch.ones_like(y, dtype=torch.bool)
            out.append((job, task.name, o[keep], y[keep]))
    return out


def _cat(parts: list[Tensor]) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _stacked(bank: ModuleBank, jobs: Sequence, layout: WaveLayout, device: torch.device) -> dict[str, Tensor]:
    """The tensors `PackedOutputs` reads (all but the encoders'), stacked over ``jobs`` (a job lacking a module:
    the bank's)."""
    names = [f"prompt/{t.name}" for t in layout.tasks] + [f"head/{t.name}" for t in layout.tasks]
    names += [n for n in bank.names() if n.startswith(("adapter/", "expert/"))]
    out = {}
    for name in names:
        default = bank.module(name).state_dict()
        own = [j.states.get(name, default) for j in jobs]
        for key, value in default.items():
            out[stacked_key(name) + key] = torch.stack([s[key].to(device=device, dtype=value.dtype) for s in own])
    return out


class _Encoders:
    """Each job's encoder outputs. Jobs that share an encoder's tensors and data (the devices of one edge on
    the global sample; an edge's all-modality and one-modality jobs) compute them once: over the rows they
    all need, at the first pass that needs them, kept until the last."""

    def __init__(self, bank: ModuleBank, jobs: Sequence, rows: Sequence[np.ndarray],
                 passes: Sequence[Sequence[tuple[int, int, int]]], device: torch.device, pass_samples: int,
                 todo: range | None = None) -> None:
        """``todo``: the passes this instance serves (all by default); shared outputs cover every job's rows
        whichever passes run, so a block of passes computes what all of them would."""
        self.bank, self.jobs, self.device, self.pass_samples = bank, jobs, device, pass_samples
        users: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            for m in job.modalities:
                users.setdefault(self.key(i, m), []).append(i)
        self.rows = {k: np.unique(np.concatenate([rows[i] for i in u])) for k, u in users.items() if len(u) > 1}
        self.last: dict[tuple, int] = {}
        for p in todo if todo is not None else range(len(passes)):
            for job, _, _ in passes[p]:
                self.last |= {self.key(job, m): p for m in jobs[job].modalities if self.key(job, m) in self.rows}
        self.kept: dict[tuple, tuple[Tensor, np.ndarray]] = {}
        self.private = todo is not None and len(todo) < len(passes)
        """Blocks of passes run side by side: each runs its own copies of the encoders (functional_call swaps a
        module's tensors while it runs, so two threads must not share one)."""
        self.modules: dict[str, torch.nn.Module] = {}

    def key(self, job: int, modality: str) -> tuple:
        states = self.jobs[job].states.get(f"encoder/{modality}", {})
        return modality, tuple(id(t) for t in states.values()), id(self.jobs[job].data)

    def __call__(self, p: int, job: int, modality: str, rows: np.ndarray, x: Tensor) -> Tensor:
        """Tokens [len(rows), n, width] of the job's ``modality`` encoder on its data's ``rows`` (inputs ``x``)."""
        key = self.key(job, modality)
        if key not in self.rows:
            return self._encode(job, modality, x)
        if key not in self.kept:
            needed = self.rows[key]
            data = self.jobs[job].data.inputs[modality]
            parts = [self._encode(job, modality, data.index_select(0, torch.as_tensor(needed[i:i + self.pass_samples])))
                     for i in range(0, len(needed), self.pass_samples)]
            where = np.full(len(self.jobs[job].data), -1, dtype=np.int64)
            where[needed] = np.arange(len(needed))
            self.kept[key] = (_cat(parts), where)
        tokens, where = self.kept[key]
        return tokens.index_select(0, torch.as_tensor(where[rows], device=tokens.device))

    def _encode(self, job: int, modality: str, x: Tensor) -> Tensor:
        name = f"encoder/{modality}"
        module = self.bank.module(name)
        if self.private:
            if name not in self.modules:
                self.modules[name] = copy.deepcopy(module)
            module = self.modules[name]
        states = self.jobs[job].states.get(name) or module.state_dict()
        tensors = {k: v.to(self.device) for k, v in states.items()}
        return functional_call(module, tensors, (x.to(self.device),))[0]

    def done(self, p: int) -> None:
        """Drop what no later pass needs."""
        for key in [k for k in self.kept if self.last[k] <= p]:
            del self.kept[key]


def _counted_rows(job) -> np.ndarray:
    """The samples a job counts: all, or with ``restrict`` those showing one of its modalities."""
    n = len(job.data)
    if not job.restrict:
        return np.arange(n)
    keep = torch.zeros(n, dtype=torch.bool)
    for m in job.modalities:
        keep |= job.data.present[m].bool()
    return torch.nonzero(keep).flatten().numpy()


def _batch(job, rows: np.ndarray) -> dict[str, dict[str, Tensor]]:
    """A batch of the job's samples ``rows`` with the job's modalities and tasks only."""
    idx = torch.as_tensor(rows, dtype=torch.long)
    data = job.data
    return {"inputs": {m: data.inputs[m].index_select(0, idx) for m in job.modalities},
            "present": {m: data.present[m].index_select(0, idx) for m in job.modalities},
            "targets": {t: data.targets[t].index_select(0, idx) for t in job.tasks}}


def _metrics(bank: ModuleBank, pairs: dict[str, list[tuple[Tensor, Tensor]]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for task, chunks in pairs.items():
        if not chunks:
            continue
        scores = task_metrics(bank.tasks[task], torch.cat([p for p, _ in chunks]), torch.cat([y for _, y in chunks]))
        out |= {f"{task}/{key}": value for key, value in scores.items()}
    return dict(sorted(out.items()))
