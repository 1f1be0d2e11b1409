"""The meta-training (outer) loop, distributed with Accelerate, checkpointed atomically and resumable.

One outer step: the ``meta_batch_size`` tasks of the step are split across processes (task ``i`` goes to process
``i % num_processes``); each process runs its tasks' inner loops locally (no DDP, no gradient sync inside the inner
loop: learnables/learn2learn#170, pytorch/pytorch#47562), sums their meta-gradients, and one all-reduce
(``accelerator.reduce``) adds them up across processes before the optimiser step. Tasks are drawn by
``(seed, task index)`` only, so 1 process and N processes see the same meta-batch and reach the same meta-parameters
(up to float summation order), and a resumed run draws exactly the tasks the interrupted one would have.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from metanlp.algorithms.base import MetaLearner
from metanlp.core.config import MetaConfig, launcher_env
from metanlp.core.metrics import PER_EXAMPLE, mean_ci95
from metanlp.core.protocols import Params, TaskFamily

__all__ = ["MetaState", "MetaTrainResult", "meta_train", "peak_rss_mib"]

log = logging.getLogger(__name__)

#: Meta-parameters inside a checkpoint folder (safetensors, not pickle).
PARAMS_FILE = "meta_params.safetensors"
#: The best meta-val pass's meta-parameters (``meta.keep_best``), beside them.
BEST_FILE = "best_params.safetensors"

#: Draws the episode of a global task index (``step * meta_batch_size + i``).
EpisodeFn = Callable[[int], Any]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss``; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class MetaState:
    """Everything meta-training updates, as one checkpointable object (``state_dict``/``load_state_dict``).

    Attributes:
        params: meta-parameters (adapter weights and learner extras such as Meta-SGD learning rates), by name.
        step: outer steps completed.
        history: one dict per logged event: ``{"step", "query_loss"}``, plus ``"val_accuracy"`` (or ``"val_chrf"``)
            ... on meta-val steps.
        best_step: outer step of the best meta-val pass so far (``meta.keep_best``; 0 = the start, -1 = none yet).
        best_score: its headline meta-val metric (accuracy in [0, 1] or chrF).
        start_score: the start's headline meta-val metric (scored before step 1), for the record.
        best: a detached copy of the meta-parameters at ``best_step``.
    """

    params: dict[str, torch.nn.Parameter]
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = -1
    best_score: float = float("-inf")
    start_score: float = float("nan")
    best: dict[str, torch.Tensor] | None = None

    def state_dict(self) -> dict[str, Any]:
        """Step, history and the best meta-val pass (the tensors go to ``meta_params.safetensors`` and
        ``best_params.safetensors``, see :meth:`save_params`)."""
        return {"step": self.step, "history": list(self.history), "best_step": self.best_step,
                "best_score": self.best_score, "start_score": self.start_score}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore step, history and the best meta-val pass (checkpoints older than ``keep_best`` have none)."""
        self.step, self.history = int(state["step"]), list(state["history"])
        self.best_step = int(state.get("best_step", -1))
        self.best_score = float(state.get("best_score", float("-inf")))
        self.start_score = float(state.get("start_score", float("nan")))

    def consider(self, score: float) -> bool:
        """Keep the current meta-parameters as the best if ``score`` beats every earlier pass (ties keep the
        earlier, shorter-trained one); returns whether it did."""
        if not score > self.best_score:
            return False
        self.best_step, self.best_score = self.step, score
        self.best = {k: v.detach().clone() for k, v in self.params.items()}
        return True

    def save_params(self, folder: Path) -> None:
        """Write the meta-parameters to ``folder/meta_params.safetensors`` (and the best ones, if kept)."""
        save_file({k: v.detach().contiguous().cpu() for k, v in self.params.items()}, str(folder / PARAMS_FILE))
        if self.best is not None:
            save_file({k: v.contiguous().cpu() for k, v in self.best.items()}, str(folder / BEST_FILE))

    def load_params(self, folder: Path) -> None:
        """Restore the meta-parameters in place (they keep their identity, so the optimiser still points at them).

        Raises:
            ValueError: the checkpoint lacks some of these meta-parameters (made by another recipe or adapter).
        """
        saved = load_file(str(folder / PARAMS_FILE))
        missing = set(self.params) - set(saved)
        if missing:
            raise ValueError(f"{folder} lacks meta-parameters {sorted(missing)[:3]}: was it made by another recipe?")
        extra = set(saved) - set(self.params)
        if extra:  # e.g. LoRA on more layers (adapter.layers) than this run has
            raise ValueError(f"{folder} has meta-parameters this run lacks {sorted(extra)[:3]}: other adapter.layers?")
        shapes = [k for k, p in self.params.items() if tuple(saved[k].shape) != tuple(p.shape)]
        if shapes:  # e.g. another adapter.r
            k = shapes[0]
            raise ValueError(f"{folder}: meta-parameter {k} has shape {tuple(saved[k].shape)} there but "
                             f"{tuple(self.params[k].shape)} in this run: "
                             "other adapter.r / target_modules?")  # fmt: skip
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(saved[k].to(p.device))
        if (folder / BEST_FILE).is_file():
            self.best = {k: v.to(self.params[k].device) for k, v in load_file(str(folder / BEST_FILE)).items()}


@dataclass
class MetaTrainResult:
    """Summary of a meta-training run.

    Attributes:
        steps: outer steps completed (including those before a resume).
        episodes_per_s: tasks (episodes) processed per second by all processes together, this session.
        seconds: wall-clock seconds of this session's outer loop.
        peak_rss_mib: peak resident memory of the main process, MiB.
        final_query_loss: mean query loss of the last 10 logged steps.
        kept_step: the outer step whose meta-parameters were kept: ``steps``, or with ``meta.keep_best`` the best
            meta-val pass (0 = the start: meta-training did not beat it on meta-val).
        kept_val: the kept step's headline meta-val metric (nan without ``keep_best``).
        start_val: the start's headline meta-val metric (nan without ``keep_best``).
    """

    steps: int
    episodes_per_s: float
    seconds: float
    peak_rss_mib: float
    final_query_loss: float
    kept_step: int = -1
    kept_val: float = float("nan")
    start_val: float = float("nan")


def _save_checkpoint(accelerator: Accelerator, state: MetaState, ckpt_dir: Path) -> None:
    """``accelerator.save_state`` into a temporary folder, then an atomic rename to ``ckpt_dir``."""
    tmp = ckpt_dir.with_name(ckpt_dir.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state.save_params(tmp)
        old = ckpt_dir.with_name(ckpt_dir.name + ".old")
        if ckpt_dir.exists():
            shutil.rmtree(old, ignore_errors=True)  # left by a kill after the last save's second rename
            os.replace(ckpt_dir, old)
        os.replace(tmp, ckpt_dir)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _warn_single_cpu_process(accelerator: Accelerator) -> None:
    """Warn when ``accelerate launch --cpu --num_processes N`` started one process (huggingface/accelerate#2741).

    On one machine, Accelerate's simple launcher sets ``MASTER_ADDR`` for N > 1 but starts a single process unless
    ``--mpirun_hostfile`` is given; the run then silently trains on one process.
    """
    env = launcher_env()
    if accelerator.num_processes == 1 and "MASTER_ADDR" in env and "WORLD_SIZE" not in env:
        if env.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
            log.warning(
                "accelerate launch --cpu started 1 process (huggingface/accelerate#2741); for N CPU processes run "
                "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N -m metanlp meta-train RECIPE"
            )


def validate(task: TaskFamily, learner: MetaLearner, params: Params, episodes: list[Any]) -> dict[str, float]:
    """Adapt to each meta-val episode and score its query set with ``task.score``.

    Returns:
        ``{"val_<metric>": mean over episodes, ...}`` for every metric the family reports (``accuracy`` and
        ``macro_f1``; or ``chrf`` and ``bleu``), plus ``"val_ci95"``: the 95% CI of the first (headline) metric.
    """
    scores = []
    for ep in episodes:
        support, query = task.batches(ep)
        scores.append(task.score(learner.adapt(task, params, support), query))
    out: dict[str, float] = {}
    for i, name in enumerate(k for k in scores[0] if k != PER_EXAMPLE):
        summary = mean_ci95([s[name] for s in scores])
        out[f"val_{name}"] = summary["mean"]
        if i == 0:
            out["val_ci95"] = summary["ci95"]
    return out


def meta_train(
    task: TaskFamily,
    learner: MetaLearner,
    meta_params: dict[str, torch.nn.Parameter],
    train_episode: EpisodeFn,
    cfg: MetaConfig,
    out_dir: str | Path,
    accelerator: Accelerator | None = None,
    val_episodes: list[Any] | None = None,
    progress: bool = True,
) -> MetaTrainResult:
    """Run the outer loop of meta-training; resume from ``out_dir/checkpoints/last`` when it exists.

    Args:
        task: the task family (gives batches, losses, scores).
        learner: FOMAML or another :class:`~metanlp.algorithms.MetaLearner`.
        meta_params: the adapter parameters to meta-learn (updated in place).
        train_episode: global task index -> episode; must depend only on the index (and the run seed).
        cfg: ``meta`` section (outer_lr, meta_batch_size, outer_steps, eval_every, save_every).
        out_dir: run folder; gets ``checkpoints/last`` and ``log.jsonl``.
        accelerator: an ``Accelerator``; a CPU-or-GPU default one when None.
        val_episodes: fixed meta-val episodes scored every ``cfg.eval_every`` steps (and, with ``cfg.keep_best``,
            once before the first step: the meta-parameters of the best pass are copied back into ``meta_params``
            at the end, so the start wins when meta-training never beat it; Prechelt 1998, "Early Stopping - But
            When?").
        progress: show a progress bar (main process only).

    Returns:
        A :class:`MetaTrainResult`.

    Raises:
        ValueError: a checkpoint in ``out_dir`` does not match these meta-parameters.
    """
    accelerator = accelerator or Accelerator()
    out = Path(out_dir)
    ckpt = out / "checkpoints" / "last"
    extras = learner.extra_parameters()
    params = {**meta_params, **extras}
    state = MetaState(params)
    groups = [{"params": list(meta_params.values())}]
    if extras:  # e.g. Meta-SGD's rates, at their own learning rate when the learner has one
        groups.append({"params": list(extras.values()), "lr": learner.extra_outer_lr() or cfg.outer_lr})
    optimizer = torch.optim.Adam(groups, lr=cfg.outer_lr)
    accelerator.register_for_checkpointing(state, optimizer)
    _warn_single_cpu_process(accelerator)
    old_ckpt = ckpt.with_name(ckpt.name + ".old")
    if accelerator.is_main_process and not ckpt.is_dir() and old_ckpt.is_dir():  # killed between the two renames
        os.replace(old_ckpt, ckpt)
    accelerator.wait_for_everyone()
    if ckpt.is_dir():
        state.load_params(ckpt)  # first: names a checkpoint of other meta-parameters (adapter.layers) clearly
        accelerator.load_state(str(ckpt))
        log.info("resumed from %s at outer step %d", ckpt, state.step)
    rank, world = accelerator.process_index, accelerator.num_processes
    keep = bool(cfg.keep_best and val_episodes and cfg.eval_every)
    if keep and state.best_step < 0:  # score where this run starts (the pretrained start on a fresh run)
        start_score = _headline(validate(task, learner, meta_params, val_episodes))
        state.start_score = start_score if state.step == 0 else float("nan")
        state.consider(start_score)
        log.info("meta.keep_best: meta-val %.4f at outer step %d (the start)", start_score, state.step)
    out.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:  # drop log lines of steps after the checkpoint (all of them on a fresh start)
        tmp = out / "log.jsonl.tmp"
        tmp.write_text("".join(json.dumps(e) + "\n" for e in state.history), encoding="utf-8")
        os.replace(tmp, out / "log.jsonl")
    log_file = out / "log.jsonl"
    bar = tqdm(
        total=cfg.outer_steps,
        initial=state.step,
        desc="meta-train",
        unit="step",
        disable=not (progress and accelerator.is_main_process),
    )
    start, done_tasks = time.perf_counter(), 0
    while state.step < cfg.outer_steps:
        sums = {k: torch.zeros_like(p) for k, p in params.items()}
        loss_sum = torch.zeros((), device=accelerator.device)
        for i in range(rank, cfg.meta_batch_size, world):  # this process's share of the meta-batch
            grads, stats = learner.meta_gradient(
                task, meta_params, train_episode(state.step * cfg.meta_batch_size + i)
            )
            for k, g in grads.items():
                sums[k] += g
            loss_sum += stats["query_loss"]
        # the one all-reduce of the outer step: meta-gradients and query losses summed over processes
        flat = torch.cat([s.flatten() for s in sums.values()] + [loss_sum.reshape(1)])
        if world > 1:
            flat = accelerator.reduce(flat, reduction="sum")
        offset = 0
        for p in params.values():
            n = p.numel()
            p.grad = (flat[offset : offset + n] / cfg.meta_batch_size).view_as(p).to(p.dtype)
            offset += n
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        done_tasks += cfg.meta_batch_size
        query_loss = float(flat[-1]) / cfg.meta_batch_size
        event: dict[str, float] = {"step": state.step, "query_loss": query_loss}
        if val_episodes and cfg.eval_every and (state.step % cfg.eval_every == 0 or state.step == cfg.outer_steps):
            scores = validate(task, learner, meta_params, val_episodes)
            event.update(scores)
            if keep:
                state.consider(_headline(scores))
        state.history.append(event)
        if accelerator.is_main_process:
            with log_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
            accelerator.log(event, step=state.step)
        elapsed = time.perf_counter() - start
        bar.set_postfix(query_loss=f"{query_loss:.3f}", eps=f"{done_tasks / elapsed:.2f}", refresh=False)
        bar.update(1)
        if cfg.save_every and (state.step % cfg.save_every == 0 or state.step == cfg.outer_steps):
            _save_checkpoint(accelerator, state, ckpt)
    bar.close()
    seconds = time.perf_counter() - start
    losses = [e["query_loss"] for e in state.history[-10:]]
    kept = state.step
    if keep and state.best is not None:
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(state.best[k].to(p.device))
        kept = state.best_step
        log.info("meta.keep_best: kept outer step %d of %d (meta-val %.4f; the start scored %.4f)", kept, state.step,
                 state.best_score, state.start_score)  # fmt: skip
    return MetaTrainResult(
        steps=state.step,
        episodes_per_s=done_tasks / seconds if seconds > 0 else 0.0,
        seconds=seconds,
        peak_rss_mib=peak_rss_mib(),
        final_query_loss=sum(losses) / len(losses) if losses else float("nan"),
        kept_step=kept,
        kept_val=state.best_score if keep else float("nan"),
        start_val=state.start_score if keep else float("nan"),
    )


def _headline(scores: dict[str, float]) -> float:
    """The first metric :func:`validate` reports (``val_accuracy`` or ``val_chrf``)."""
    return next(v for k, v in scores.items() if k != "val_ci95")
