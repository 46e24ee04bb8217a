"""Checkpoints: atomic save, keep-last-K, resume, and loading a trained generator safely.

Layout of one checkpoint `run_dir/step_<N>/` (written as `.step_<N>.tmp/`, then renamed):
  model.safetensors, model_1..  the networks in `state.json["models"]` order (G, D, E), unwrapped keys
  optimizer.bin, optimizer_1.bin  Adam states of G (+E) and D;  scaler.pt with fp16
  random_states_<rank>.pkl      python / numpy / torch RNG of every process (Accelerate's `save_state`)
  ema.safetensors               the EMA generator, when training keeps one
  config.gin                    the operative gin config of the run
  state.json                    step, epoch, batch layout; written last
Re-saving a step moves the previous `step_<N>/` to `.step_<N>.old/` for the two renames; a kill between them
leaves that copy, which `recover_checkpoints` (at the next save and at the start of training) deletes once
`step_<N>` is complete, or renames back when `step_<N>` is missing: the only complete copy is never deleted.
`run_dir/latest` names the newest complete checkpoint; it is replaced atomically after the rename. Everything
is read back with safetensors or `torch.load(weights_only=True)`; nothing is unpickled.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from condgen.rundir import (  # noqa: F401  (re-exported: the checkpoint API lives here)
    CONFIG_FILE,
    LATEST_FILE,
    STATE_FILE,
    CheckpointError,
    checkpoint_dir,
    checkpoint_dirs,
    checkpoint_problem,
    is_checkpoint,
    latest_checkpoint,
    old_checkpoint_dir,
    old_checkpoint_dirs,
    read_state,
    resolve_checkpoint,
    resumable_checkpoint,
    temp_checkpoint_dir,
)


class DiskFullError(OSError):
    """A checkpoint could not be written for lack of space; the partial copy was removed, nothing else."""

    def __str__(self) -> str:
        return str(self.strerror)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def install_portable_hooks(accelerator: Any) -> None:
    """Save and load unwrapped (no `module.`) keys, so checkpoints move between 1 and N processes.

    Also saves channels-last weights (`SpeedOptions.channels_last`) in the standard layout."""

    def strip_prefix(models: list, weights: list, output_dir: str) -> None:
        for i, sd in enumerate(weights):  # contiguous: safetensors refuses channels-last tensors
            weights[i] = {k.removeprefix("module."): v.contiguous() for k, v in sd.items()}

    def unwrap(models: list, input_dir: str) -> None:
        for i, m in enumerate(models):
            models[i] = accelerator.unwrap_model(m)

    accelerator.register_save_state_pre_hook(strip_prefix)
    accelerator.register_load_state_pre_hook(unwrap)


def save_checkpoint(
    accelerator: Any,
    run_dir: str | Path,
    state: dict[str, Any],
    *,
    config: str,
    keep_last: int | None = None,
    extra: dict[str, nn.Module] | None = None,
) -> Path:
    """Write `run_dir/step_<state['step']>` atomically; call on every process (each saves its RNG).

    Args:
        state: JSON-able facts about the run (must hold `step`); written last, it marks completeness.
        config: the operative gin config text.
        keep_last: delete all but the newest `keep_last` complete checkpoints (None keeps all).
        extra: modules outside Accelerate's state (the EMA generator), saved as `<name>.safetensors`.
    """
    run_dir = Path(run_dir)
    step = int(state["step"])
    final, tmp = checkpoint_dir(run_dir, step), temp_checkpoint_dir(run_dir, step)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # a crashed earlier attempt at this step
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()  # every process has written its RNG state into tmp
        if accelerator.is_main_process:
            for name, module in (extra or {}).items():
                save_file(_contiguous(module.state_dict()), str(tmp / f"{name}.safetensors"))
            (tmp / CONFIG_FILE).write_text(config)
            # sizes: a resume tells a complete checkpoint from one truncated later (`checkpoint_problem`);
            # not config.gin, which is text a user may edit
            binary = [p for p in sorted(tmp.iterdir()) if p.is_file() and p.name != CONFIG_FILE]
            files = {p.name: p.stat().st_size for p in binary}
            (tmp / STATE_FILE).write_text(json.dumps({**state, "files": files}, indent=1))
    except (OSError, RuntimeError) as e:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        if _is_disk_full(e, run_dir):
            free = shutil.disk_usage(run_dir).free
            last = latest_checkpoint(run_dir)
            kept = f"the previous checkpoint {last} is intact" if last else "no earlier checkpoint exists"
            raise DiskFullError(
                errno.ENOSPC,
                f"the disk is full: checkpoint {final} could not be written ({free / 2**20:.0f} MiB free on "
                f"the file system of {run_dir}); its partial copy was removed and {kept}. Free some space "
                "(or lower train.keep_last) and continue with --resume",
            ) from None
        raise
    if accelerator.is_main_process:
        recover_checkpoints(run_dir)  # leftovers of a save killed between the renames below
        old = old_checkpoint_dir(run_dir, step)
        if final.exists() and not old.exists():  # re-saving a step: the old copy aside, never no copy
            os.replace(final, old)
        elif final.exists():  # an incomplete step_N beside its moved-aside copy: tmp is complete
            shutil.rmtree(final)
        os.replace(tmp, final)  # a kill before this line leaves a .tmp (nothing reads it) and maybe the .old
        shutil.rmtree(old, ignore_errors=True)
        _write_atomic(run_dir / LATEST_FILE, final.name + "\n")
        prune_checkpoints(run_dir, keep_last)
    accelerator.wait_for_everyone()
    return final


def _is_disk_full(e: BaseException, run_dir: Path) -> bool:
    """ENOSPC anywhere in the chain; torch's zip writer reports it only as 'unexpected pos'."""
    while e is not None:
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "unexpected pos" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return shutil.disk_usage(run_dir).free < 2**20


def _contiguous(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def prune_checkpoints(run_dir: str | Path, keep_last: int | None) -> None:
    """Delete all but the newest `keep_last` complete checkpoints, and leftover temporary folders."""
    run_dir = Path(run_dir)
    recover_checkpoints(run_dir)
    latest = latest_checkpoint(run_dir)
    for p in run_dir.glob(".step_*.tmp"):
        shutil.rmtree(p, ignore_errors=True)
    if keep_last is None:
        return
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 (or None to keep all), got {keep_last}")
    for p in checkpoint_dirs(run_dir)[:-keep_last]:
        if p != latest:
            shutil.rmtree(p, ignore_errors=True)


def recover_checkpoints(run_dir: str | Path) -> None:
    """Resolve `.step_<N>.old` copies a killed save left: deleted once `step_<N>` is complete, renamed back
    to `step_<N>` when that is missing; any other combination is kept (never the only complete copy)."""
    for old, final in old_checkpoint_dirs(run_dir):
        if is_checkpoint(final):
            shutil.rmtree(old, ignore_errors=True)
        elif not final.exists() and is_checkpoint(old):
            os.replace(old, final)


def load_checkpoint(
    accelerator: Any, ckpt: str | Path, *, extra: dict[str, nn.Module] | None = None, new_rng: bool = False
) -> dict:
    """Restore models, optimisers, scaler and this process's RNG from `ckpt`; returns its `state.json`.

    Accelerate skips a missing or unreadable RNG file silently; here the restored RNG is checked against
    the file, so a resumed run either continues the exact random stream or stops and says why: a missing
    RNG file is a `CheckpointError` unless `new_rng` (the run then continues with a fresh stream, seeded
    from `train.seed` and the step). A damaged file is a `CheckpointError` naming it.
    """
    from accelerate.utils import load as safe_load  # torch.load(weights_only=True) + numpy RNG globals

    ckpt = Path(ckpt)
    problem = checkpoint_problem(ckpt)
    if problem:
        raise CheckpointError(f"cannot resume from {ckpt}: {problem}")
    rng_file = ckpt / f"random_states_{accelerator.process_index}.pkl"
    if not rng_file.is_file() and not new_rng:
        raise CheckpointError(
            f"{rng_file} is missing: resuming would continue with a different random stream (noise, data "
            "order, augmentation) than the uninterrupted run. Pass --new_rng to resume anyway with a fresh "
            "stream, or restore the file"
        )
    try:
        accelerator.load_state(str(ckpt))
    except Exception as e:  # a file damaged in a way its size does not show
        raise CheckpointError(f"cannot resume from {ckpt}: {type(e).__name__}: {e}") from e
    for name, module in (extra or {}).items():
        path = ckpt / f"{name}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the checkpoint was saved without '{name}'")
        module.load_state_dict(load_file(str(path), device=str(next(module.parameters()).device)))
    state = read_state(ckpt)
    if rng_file.is_file():
        saved = safe_load(rng_file)
        if not torch.equal(saved["torch_manual_seed"], torch.get_rng_state()):
            raise CheckpointError(f"the RNG state in {rng_file} could not be restored; the run would diverge")
    else:
        from accelerate.utils import set_seed

        from condgen.train.data import item_seed

        set_seed(item_seed(int(state.get("seed", 0)), int(state["step"])) % 2**32, device_specific=True)
    return state


def nonfinite_tensors(modules: dict[str, nn.Module | None]) -> list[str]:
    """Names of the parameters and buffers (BatchNorm statistics, spectral-norm vectors) that hold NaN/inf."""
    bad = []
    for prefix, module in modules.items():
        if module is None:
            continue
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad.append(f"{prefix}.{name}")
    return bad


def load_weights(ckpt: str | Path, name: str = "G") -> dict[str, torch.Tensor]:
    """One network's state dict from a checkpoint: name 'G', 'D', 'E' or 'ema' (the EMA generator)."""
    return _read_weights(resolve_checkpoint(ckpt), name)


def _read_weights(ckpt: Path, name: str) -> dict[str, torch.Tensor]:
    if name == "ema":
        path = ckpt / "ema.safetensors"
    else:
        files = read_state(ckpt)["models"]
        if name not in files:
            raise KeyError(f"{ckpt} holds networks {', '.join(files)}; there is no {name!r}")
        path = ckpt / files[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (was the run trained with ema_decay set?)")
    return load_file(str(path))


def load_run(path: str | Path, *, ema: bool = False, device: str = "cpu") -> tuple[Any, Any, dict]:
    """(GAN, DataSpec, provenance) from a run directory, a checkpoint folder or a converted official dir.

    Rebuilds the networks from the checkpoint's config.gin and state.json spec and loads the weights
    (`ema=True`: the EMA generator's into `gan.G`); replaces gin's global configuration with the run's.
    `python -m condgen.convert` writes a run directory too (one checkpoint and `convert.json` naming the
    official files), so all three load the same way. Networks come back in eval mode on `device`.
    """
    for _ in range(RACE_RETRIES):
        ckpt = resolve_checkpoint(path)
        try:
            return _load_checkpoint_networks(ckpt, path, ema=ema, device=device)
        except Exception:
            if (ckpt / STATE_FILE).is_file():
                raise  # the checkpoint is still there: a real problem with it
            # A trainer saving often with keep_last pruned it between our reading `latest` and opening its
            # files; the run's new latest is complete (renamed into place only when written), so take it.
    raise CheckpointError(
        f"{path}: its checkpoints were replaced {RACE_RETRIES} times while loading (a trainer saving every "
        "few steps with a small keep_last?); load a step_<N> folder it keeps, or try again"
    )


RACE_RETRIES = 8


def _load_checkpoint_networks(
    ckpt: Path, path: str | Path, *, ema: bool, device: str
) -> tuple[Any, Any, dict]:
    import gin

    from condgen.config import install_reader, saved_config
    from condgen.data.spec import DataSpec
    from condgen.rundir import CONVERT_FILE
    from condgen.train.build import build_gan

    problem = checkpoint_problem(ckpt)
    if problem:
        older, _ = resumable_checkpoint(ckpt.parent)
        hint = f"; the newest complete checkpoint of that run is {older}" if older and older != ckpt else ""
        raise CheckpointError(f"cannot load {ckpt}: {problem}{hint}")
    state = read_state(ckpt)
    if "spec" not in state:
        raise KeyError(f"{ckpt / STATE_FILE} has no 'spec' (an older condgen saved it); use build_gan")
    install_reader()  # saved configs of older versions: legacy bindings translated
    gin.clear_config()
    # dataset bindings may name classes of modules not imported here; nothing else is skipped in practice
    gin.parse_config_file(saved_config(ckpt / CONFIG_FILE), skip_unknown=True)  # its imports are not run
    spec = DataSpec(**state["spec"])
    gan = build_gan(spec)
    for name, net in gan.named().items():
        net.load_state_dict(_read_weights(ckpt, "ema" if (name == "G" and ema) else name))
        net.to(device).eval()
    info = {"source": str(path), "kind": "condgen run", "checkpoint": str(ckpt), "step": state.get("step"),
            "ema": ema}
    official = ckpt.parent / CONVERT_FILE
    if official.is_file():
        info.update(kind="converted official", official=json.loads(official.read_text()))
    return gan, spec, info


def load_networks(ckpt: str | Path, *, ema: bool = False, device: str = "cpu") -> tuple[Any, Any]:
    """`load_run` without the provenance: `gan, spec = load_networks("runs/quickstart")`."""
    gan, spec, _ = load_run(ckpt, ema=ema, device=device)
    return gan, spec
