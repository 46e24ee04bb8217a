"""`condgen train` / `experiments/run.py`: command line -> gin configuration -> `condgen.train.train`.

Flags and their checks, the run directory (default `runs/<name of the last --gin file>`), the saved
config read first on `--resume`, and the exit codes; gin parsing itself is `condgen.cli.gin_setup`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from condgen.cli.gin_setup import GIN_DIR, ConfigError, add_bindings_argument, parse_gin


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The training flags, for `experiments/run.py` and the `condgen train` subcommand."""
    parser.add_argument("--gin", action="extend", nargs="+", default=[], metavar="FILE",
                        help="gin file, repeatable; later files override earlier ones. Relative paths are "
                             f"tried from the current directory, then from {GIN_DIR}")
    add_bindings_argument(parser,
                          "a binding such as 'train.batch_size = 4', repeatable; applied after the files")
    parser.add_argument("--run_dir", type=Path, default=None,
                        help="run directory (default: runs/<name of the last --gin file>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in --run_dir (reads its config.gin first)")
    parser.add_argument("--allow_dataset_change", action="store_true",
                        help="with --resume: continue on another dataset than the checkpoint's (a changed "
                             "train.dataset or dataset binding is refused otherwise)")
    parser.add_argument("--new_rng", action="store_true",
                        help="with --resume: accept a checkpoint without its RNG file (random_states_*.pkl); "
                             "the run then continues with a fresh random stream, unlike an uninterrupted one")
    return parser


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(
        prog="experiments/run.py",
        description="Train a condgen GAN from gin files (also: accelerate launch experiments/run.py ...).",
    ))


def default_run_dir(gin_files: list[str | Path]) -> Path:
    """runs/<stem of the last gin file>: the same command finds the same run again (for --resume)."""
    return Path("runs") / (Path(gin_files[-1]).stem if gin_files else "run")


def main(argv: list[str] | None = None) -> int:
    """Parse flags and gin, then train. Exit codes: 0 done, 1 non-finite loss, 2 bad flags, config, data or
    run directory (a file, someone else's folder, locked by another trainer), 130 / 143 stopped by SIGINT /
    SIGTERM after saving a checkpoint. Under `accelerate launch` the launcher exits 1 for any failure."""
    code = _main(argv)
    if code in (1, 2):  # an error (a signal's 130 / 143 is the launcher's own business)
        from condgen.train.guard import loud_accelerate_launch

        if loud_accelerate_launch():  # its traceback follows: say how to have this message last
            print(f"note: condgen exited {code}; accelerate launch repeats the error below with its own "
                  "traceback and exits 1 (`accelerate launch -q ...` shows only the message above)",
                  file=sys.stderr)
    return code


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run_dir, resume = prepare(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from condgen.data.errors import DataError
    from condgen.rundir import RunDirError
    from condgen.train.guard import TrainingInterrupted
    from condgen.train.loop import NonFiniteLossError, train
    from condgen.train.setup import SettingsError, plain_message
    from condgen.train.state import CheckpointError, DiskFullError

    try:
        train(run_dir, resume=resume, new_rng=args.new_rng)
    except (DataError, FileExistsError, SettingsError, RunDirError, CheckpointError, DiskFullError) as e:
        print(f"error: {plain_message(e)}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except TrainingInterrupted as e:  # SIGINT / SIGTERM: 130 / 143, the checkpoint it saved named
        print(e.message(), file=sys.stderr)
        return e.exit_code
    except Exception as e:
        if not peer_lost(e):
            raise
        print(f"error: {peer_lost_message(run_dir, e)}", file=sys.stderr)
        return 1
    report_multimodality(run_dir)
    return 0


def report_multimodality(run_dir: Path) -> dict:
    """A VAE run on the landscapes (the quickstart) ends with its measured diversity and style transfer,
    printed and added to summary.json, so the docs promise nothing that is not shown."""
    import json

    from condgen.eval.multimodality import describe, multimodality
    from condgen.rundir import SUMMARY_FILE

    summary = run_dir / SUMMARY_FILE
    if os.environ.get("RANK", "0") != "0" or not summary.is_file() or not _vae_on_landscapes():
        return {}  # checked on the training config first: no checkpoint is loaded for other runs
    numbers = multimodality(run_dir)
    for line in describe(numbers):
        print(line)
    if numbers:
        summary.write_text(json.dumps(json.loads(summary.read_text()) | {"multimodality": numbers}, indent=1))
    return numbers


def _vae_on_landscapes() -> bool:
    import gin

    try:
        dataset = gin.query_parameter("train.dataset").selector.split(".")[-1]
        encoder = gin.query_parameter("build_gan.encoder")
    except (ValueError, AttributeError):
        return False
    return dataset == "SyntheticLandscapes" and encoder is not None


# what gloo / NCCL say when another process of the group is gone
PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "connection refused",
             "NCCL communicator was aborted", "Socket Timeout")


def peer_lost(error: BaseException) -> bool:
    """Whether `error` is a collective failing because another training process died (several processes)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False
    import torch.distributed as dist

    return isinstance(error, getattr(dist, "DistError", ())) or (
        isinstance(error, RuntimeError) and any(s.lower() in str(error).lower() for s in PEER_GONE))


def peer_lost_message(run_dir: Path, error: BaseException) -> str:
    """One line: another process is gone, and where --resume continues (instead of gloo's traceback)."""
    import os

    from condgen.rundir import resumable_checkpoint

    ckpt, _ = resumable_checkpoint(run_dir)
    text = str(error).lower()
    first = next((s for s in PEER_GONE if s.lower() in text), type(error).__name__)  # not gloo's source path
    resume = (f"--resume continues from {ckpt} (step {read_step(ckpt)})" if ckpt is not None else
              "no checkpoint was saved yet: run the same command again (without --resume)")
    rank = os.environ.get("RANK", "?")
    return (f"another training process of this run stopped (this is rank {rank}: {first}); the step in "
            f"progress is lost. {resume}")


def read_step(ckpt: Path) -> int | str:
    from condgen.rundir import read_state

    try:
        return int(read_state(ckpt)["step"])
    except (OSError, ValueError, KeyError):
        return "?"


def prepare(args: argparse.Namespace) -> tuple[Path, bool]:
    """Validate flags and parse gin (saved config first when resuming); returns (run_dir, resume)."""
    from condgen.rundir import CONFIG_FILE, RunDirError, check_run_dir, is_marked, resumable_checkpoint

    if args.run_dir is None and not args.gin:
        raise ConfigError("give a --gin FILE (e.g. --gin gin/quickstart.gin), or --run_dir DIR --resume")
    run_dir = args.run_dir if args.run_dir is not None else default_run_dir(args.gin)
    try:
        check_run_dir(run_dir)  # a file, or a folder of someone else's: refused before anything is read
    except RunDirError as e:
        raise ConfigError(str(e)) from None
    saved, from_checkpoint = None, False
    if args.resume:
        ckpt, _ = resumable_checkpoint(run_dir)  # the one train() resumes from (it warns about the others)
        if ckpt is not None and (ckpt / CONFIG_FILE).is_file():
            saved, from_checkpoint = ckpt / CONFIG_FILE, True
        elif is_marked(run_dir) and (run_dir / CONFIG_FILE).is_file():
            saved = run_dir / CONFIG_FILE  # a run killed before its first checkpoint: no weights to match
        if saved is None and not args.gin:
            raise ConfigError(f"--resume: {run_dir} has no checkpoint or config.gin; give the --gin files")
    elif not args.gin:
        raise ConfigError(f"no --gin file given for the new run in {run_dir} (add --resume to continue it)")
    parse_gin(args.gin, args.gin_bindings, saved_config=saved, compare_architecture=from_checkpoint,
              allow_dataset_change=getattr(args, "allow_dataset_change", False))
    return run_dir, args.resume
