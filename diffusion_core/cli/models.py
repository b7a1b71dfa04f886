"""`mdiff-models`: list, add, show and remove named models (a VQ-GAN run plus a DDPM run, or a
GAN baseline run)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from diffusion_core.cli.common import (
    EXIT_OK,
    Failure,
    add_json_option,
    print_result,
    run_command,
)
from diffusion_core.presets import CPU_TIMING_NOTE, preset_rows, preset_table
from diffusion_core.registry import Registry, RegistryError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdiff-models",
        description="Named models for mdiff-sample and mdiff-study create --model, kept in "
                    "$MDIFF_HOME/models.json (default: your data directory, e.g. "
                    "~/.local/share/mdiff). Run folders are referenced, never copied.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="every registered and bundled model (a bundled "
                             "model's name is reserved: it cannot be added)")
    add_json_option(listing, "the table")
    add = sub.add_parser("add", help="register a DDPM run and the VQ-GAN run it was trained on, "
                         "or a GAN baseline run (--wgan)")
    add.add_argument("name", help="the model's name, e.g. the preset (duke)")
    add.add_argument("--vqgan", metavar="RUN", help="the VQ-GAN run folder (with --ddpm)")
    add.add_argument("--ddpm", metavar="RUN", help="the DDPM run folder (with --vqgan)")
    add.add_argument("--wgan", metavar="RUN", help="instead of --vqgan and --ddpm: a GAN "
                     "baseline run folder written by mdiff-train wgan")
    add.add_argument("--replace", action="store_true", help="replace a model of that name")
    add_json_option(add, "the confirmation")
    show = sub.add_parser("show", help="one model's preset and run folders")
    show.add_argument("name")
    add_json_option(show, "the text")
    remove = sub.add_parser("remove", help="forget a model (its run folders are kept)")
    remove.add_argument("name")
    add_json_option(remove, "the confirmation")
    presets = sub.add_parser("presets", help="what each preset trains: shapes (the paper's "
                             "H x W x D and our (D, H, W)), spacing, default steps, prediction "
                             "and measured CPU seconds per step")
    add_json_option(presets, "the table")
    return parser


def _describe(entry) -> str:
    origin = "bundled" if entry.bundled else f"added {entry.added}"
    if entry.kind == "wgan":
        return f"{entry.name}: GAN baseline, preset {entry.preset}, {origin}\n  wgan  {entry.gan}"
    return (f"{entry.name}: preset {entry.preset}, {origin}\n  vqgan {entry.vqgan}\n"
            f"  ddpm  {entry.ddpm}")


def _add(registry: Registry, args: argparse.Namespace):
    """Register what `add` names: --wgan alone, or --vqgan with --ddpm."""
    if args.wgan is not None:
        if args.vqgan is not None or args.ddpm is not None:
            raise RegistryError("--wgan registers a GAN run on its own; leave out --vqgan and "
                                "--ddpm (they make a diffusion model)")
        return registry.add_gan(args.name, args.wgan, replace=args.replace)
    if args.vqgan is None or args.ddpm is None:
        raise RegistryError("give --vqgan RUN and --ddpm RUN for a diffusion model, or --wgan "
                            "RUN for a GAN baseline")
    return registry.add(args.name, args.vqgan, args.ddpm, replace=args.replace)


def _warn(sentences) -> None:
    """Each note about an entry of models.json that cannot be used, on stderr."""
    for sentence in sentences:
        print(f"mdiff-models: warning: {sentence}.", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    if args.command == "presets":
        print_result(args.json, {"presets": preset_rows(), "note": CPU_TIMING_NOTE},
                     preset_table())
        return EXIT_OK
    registry = Registry()
    if args.command == "list":
        entries = registry.entries()
        _warn(registry.ignored().values())
        _warn(registry.damaged().values())
        text = "\n".join(_describe(e) for e in entries.values()) or (
            f"no models yet in {registry.path}; add one with mdiff-models add NAME --vqgan RUN "
            f"--ddpm RUN")
        print_result(args.json, {"models": [asdict(e) for e in entries.values()]}, text)
    elif args.command == "add":
        entry = _add(registry, args)
        print_result(args.json, asdict(entry), f"added {_describe(entry)}")
    elif args.command == "show":
        entry = registry.get(args.name)
        if entry.bundled:
            try:
                _warn(v for k, v in registry.ignored().items() if k == args.name)
            except RegistryError:
                pass  # a damaged models.json does not touch a bundled model
        print_result(args.json, asdict(entry), _describe(entry))
    else:
        registry.remove(args.name)
        print_result(args.json, {"removed": args.name},
                     f"removed {args.name} (its run folders are untouched)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of mdiff-models."""
    args = _parser().parse_args(argv)
    return run_command("mdiff-models", lambda: _run(args), [Failure(RegistryError)])


if __name__ == "__main__":
    sys.exit(main())
