"""recon's command line: `recon run | eval | view | export | stylize`, each a tyro dataclass with `main()`.

Preset values are applied first (configs/NAME.yaml), then any `--config.SECTION.FIELD` flag.
A ReconError prints as one line naming the file and the problem, and exits with status 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import tyro

from recon import interrupt
from recon.errors import ReconError
from recon.eval.command import Eval
from recon.pipeline import STAGE_NAMES, RunConfig
from recon.stages.stylize import ColourConfig, NeuralConfig, StylizeConfig, check_config as check_stylize

StageArg = Literal["ingest", "poses", "masks", "filters", "init", "optimize", "repair", "stylize", "export"]


@dataclass
class Run:
    """Reconstruct a splat from a folder of photos (with or without camera files)."""

    images: Path
    """Folder of photos, or a dataset folder (COLMAP, transforms.json, DTU, LLFF, Middlebury)."""
    out: Path = Path("runs/latest")
    """Run folder: splat.ply, cameras.json, renders/, run.json, run.log, and the stage cache."""
    preset: str = "auto"
    """auto (fast on a CPU, quality on a CUDA GPU), a preset from configs/ (fast, quality,
    vanilla) or a path to a .yaml file."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to optimise: auto = CUDA when available, else CPU."""
    until: Optional[StageArg] = None
    """Stop after this stage."""
    force: Optional[StageArg] = None
    """Recompute this stage and every stage after it, even when cached."""
    style: Optional[Path] = None
    """A style image (a painting, a photo): stylise the splat after optimising (the stylize
    stage; --config.stylize.method colour|neural and --config.stylize.strength say how)."""
    viewer: bool = False
    """Serve a live browser viewer (viser) while the pipeline runs."""
    port: int = 8080
    """Viewer port (the next free one is used when it is busy)."""
    host: str = "127.0.0.1"
    """Viewer interface; 0.0.0.0 exposes it to your network."""
    keep_viewer: bool = True
    """With --viewer: keep showing the result after the run until Ctrl-C."""
    config: RunConfig = field(default_factory=RunConfig)
    """Per-stage settings; defaults come from the preset."""
    preset_reason: tyro.conf.Suppress[Optional[str]] = None
    """How `auto` chose the preset (said at the start of the run)."""
    preset_asked: tyro.conf.Suppress[Optional[str]] = None
    """What --preset said (auto when it was not given), for run.json beside what it resolved to."""

    def main(self) -> None:
        from recon.events import Observers
        from recon.pipeline import run_pipeline
        from recon.presets import resolve_preset
        from recon.progress import ConsoleProgress, RunLog

        # self.preset is the resolved name, or "auto" when --preset auto was given: resolving it
        # again (a name other than auto resolves to itself) gives the preset whose values loaded.
        preset = {"asked": self.preset_asked or self.preset, "resolved": resolve_preset(self.preset, self.device)[0]}

        cfg = dataclasses.replace(self.config, device=self.device)
        if self.style is not None:
            cfg = dataclasses.replace(cfg, stylize=dataclasses.replace(cfg.stylize, style_image=str(self.style)))
        check_stylize(cfg.stylize)  # a bad style image fails before the run log makes the run folder
        obs = Observers([ConsoleProgress(), RunLog(self.out / "run.log")])
        server = _start_live_viewer(obs, self.host, self.port) if self.viewer else None
        t0 = time.perf_counter()
        try:
            result = run_pipeline(cfg, self.out, obs, images=self.images, until=self.until, force=self.force,
                                  announce=self.preset_reason, preset=preset)
            _print_summary(result, time.perf_counter() - t0)
            if server is not None and self.keep_viewer:
                stylized = result.artifacts.get("stylize")
                if getattr(stylized, "original", None) is not None:
                    server.flush()  # the last streamed splat first, then the switch
                    server.app.set_splat_choices({"Stylised": stylized.gaussians, "Original": stylized.original})
                print(f"recon viewer: still showing the result at {server.url} — Ctrl-C to stop", flush=True)
                server.serve_forever()
        finally:
            if server is not None:
                server.stop()


def _start_live_viewer(obs, host: str, port: int):
    try:
        from recon_viewer.live import start_live_viewer
    except ImportError as e:
        raise ReconError(f"the viewer is not available ({e})") from e
    server = start_live_viewer(host=host, port=port)
    obs.add(server)
    return server


def _print_summary(result, seconds: float) -> None:
    from rich.console import Console

    c = Console(stderr=True, soft_wrap=True)
    scene = result.artifacts.get("poses") or result.artifacts["source"]
    reg = scene.meta.get("registration")
    registered = sum(1 for r in reg.values() if r.get("registered")) if reg else len(scene)
    how = _poses_line(scene.meta)
    c.print(f"\n[bold]recon[/bold]: {registered}/{len(result.artifacts['source'])} views posed{how}", highlight=False)
    if "optimize" in result.artifacts:
        trained = result.artifacts["optimize"]
        psnr = f", training PSNR {trained.log.psnr[-1]:.2f} dB" if trained.log.psnr else ""
        c.print(f"  {len(trained.gaussians):,} Gaussians{psnr}", highlight=False)
    if "repair" in result.artifacts:
        c.print(f"  repair: {_repair_line(result.artifacts['repair'], result.run_dir)}", highlight=False)
    c.print(f"  {seconds:.1f} s in all; run folder: {result.run_dir}", highlight=False)
    if "export" in result.artifacts:
        c.print(f"  splat: {result.artifacts['export']['ply']}", highlight=False)


def _poses_line(meta: dict) -> str:
    """How estimated cameras were found and checked, for the summary (empty for known cameras)."""
    method, check = meta.get("poses_method"), meta.get("poses_check")
    if not method:
        return ""
    if method == "orbit":
        return (f" by the orbit path from the object's silhouettes (coherence {check['silhouette_coherence']:.2f}; "
                "no matches confirm them)")
    said = f", checked against the object's silhouettes ({check['silhouette_coherence']:.2f})" if check else ""
    return f" by {method}{said}"


def _repair_line(repaired, run_dir: Path) -> str:
    """Which repairer ran (the repair stage's artifact says), or that repair was off."""
    rounds = getattr(repaired, "rounds", None)
    if rounds is None:
        return "off (--config.repair.enabled repairs pseudo views and trains on them)"
    views = sum(r.views for r in rounds)
    return (f"{repaired.method} ran: {len(rounds)} rounds, {views} pseudo views repaired, {repaired.seconds:.1f} s; "
            f"pictures in {Path(run_dir) / 'repair'}")


@dataclass
class View:
    """Open a run folder or any 3DGS .ply or .spz in the browser viewer."""

    path: tyro.conf.Positional[Path]
    """A run folder (with splat.ply) or a splat file (.ply, compressed .ply, .spz)."""
    port: int = 8080
    """Port (the next free one is used when it is busy)."""
    host: str = "127.0.0.1"
    """Interface to serve on; 0.0.0.0 exposes the viewer to your network."""

    def main(self) -> None:
        from recon_viewer.view import view

        view(self.path, host=self.host, port=self.port)


@dataclass
class Export:
    """Convert a run's splat to another format: a splat file, a mesh, a video or the cameras."""

    run: tyro.conf.Positional[Path]
    """A run folder (with splat.ply) or a splat file (.ply, compressed .ply, .spz)."""
    format: Literal["ply", "splat", "spz", "compressed-ply", "mesh", "video", "nerfstudio", "colmap"] = "splat"
    """ply: Inria 3DGS layout; splat: the compact web .splat (antimatter15); spz: Niantic's .spz;
    compressed-ply: SuperSplat's compressed .ply; mesh: a coloured triangle mesh (.ply, .obj or
    .glb by --out's suffix; needs `pip install 'recon[open3d]'`); video: an .mp4 flythrough (needs
    `pip install 'recon[video]'`); nerfstudio: transforms.json of the run's cameras; colmap: a
    COLMAP text model of the run's cameras."""
    out: Optional[Path] = None
    """Output file or folder (default: next to the input, named for the format)."""
    mesh_method: Literal["tsdf", "poisson"] = "tsdf"
    """mesh: tsdf, the fused surface itself; poisson, a smoother Poisson surface through its points
    (small holes filled), trimmed back to where the views saw surface."""
    mesh_resolution: int = 256
    """mesh: voxels along the longest side of the splat's box, 16 to 512 (a dense grid: 256 takes
    0.8 GB of memory, 512 eight times that)."""
    path: Literal["cameras", "orbit"] = "cameras"
    """video: a smooth spline through the training cameras, or an orbit about the object."""
    seconds: float = 8.0
    """video: length."""
    fps: int = 30
    """video: frames per second."""
    size: Optional[tuple[int, int]] = None
    """video: WIDTH HEIGHT (even numbers); default the first camera's size."""
    spz_version: Literal[2, 3] = 3
    """spz: 3 (smallest-three rotations) or 2 (for older readers)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """mesh, video: where to render (auto = CUDA when available)."""

    # which options each format reads; setting another format's option is refused, not ignored
    OPTIONS = {"mesh_method": ("mesh",), "mesh_resolution": ("mesh",), "path": ("video",),
               "seconds": ("video",), "fps": ("video",), "size": ("video",), "spz_version": ("spz",),
               "device": ("mesh", "video")}  # fmt: skip

    def main(self) -> None:
        from recon.exports.formats import export_run
        from recon.exports.mesh import MeshSettings
        from recon.exports.video import VideoSettings

        for name, formats in self.OPTIONS.items():
            default = next(f.default for f in dataclasses.fields(self) if f.name == name)
            if self.format not in formats and getattr(self, name) != default:
                raise ReconError(f"--{name.replace('_', '-')} applies to --format {' and '.join(formats)}, "
                                 f"not {self.format}")
        mesh = MeshSettings(method=self.mesh_method, resolution=self.mesh_resolution)
        video = VideoSettings(path=self.path, seconds=self.seconds, fps=self.fps, size=self.size)
        path = export_run(self.run, self.format, self.out, mesh=mesh, video=video, spz_version=self.spz_version,
                          device=self.device)
        print(f"wrote {path}")


@dataclass
class Stylize:
    """Stylise a finished run's splat with a style image (reuses the run's cached optimisation)."""

    run: tyro.conf.Positional[Path]
    """A run folder made by `recon run` (or by `recon stylize`)."""
    style: Path
    """The style image: a painting, a photo, any PNG/JPEG."""
    out: Optional[Path] = None
    """Run folder for the stylised splat (default: the run folder itself). It gets splat.ply
    (stylised), splat_unstyled.ply, cameras.json, renders/ and run.json."""
    method: Literal["colour", "neural"] = "colour"
    """colour: a colour transfer in Lab onto the Gaussians (no weights, seconds); neural: Magenta's
    arbitrary style transfer on the views, re-fitted into the splat (needs `pip install 'recon[style]'`)."""
    strength: float = 1.0
    """0..1: how far towards the style."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to render and re-fit: auto = CUDA when available."""
    colour: ColourConfig = field(default_factory=ColourConfig)
    """Settings of the colour method."""
    neural: NeuralConfig = field(default_factory=NeuralConfig)
    """Settings of the neural method."""

    def main(self) -> None:
        from recon.events import Observers
        from recon.progress import ConsoleProgress, RunLog
        from recon.restyle import plan, stylize_run

        cfg = StylizeConfig(style_image=str(self.style), method=self.method, strength=self.strength,
                            colour=self.colour, neural=self.neural)
        checked = plan(self.run, cfg, self.device)  # bad input fails before the run log makes any folder
        out = self.out if self.out is not None else self.run
        t0 = time.perf_counter()
        result = stylize_run(checked, Observers([ConsoleProgress(), RunLog(out / "run.log")]), self.out)
        print(f"recon stylize: {self.method} style of {self.style} in {time.perf_counter() - t0:.1f} s; "
              f"splat: {result.artifacts['export']['ply']} (unstylised beside it: splat_unstyled.ply)", flush=True)


@dataclass
class Weights:
    """Which learned parts are on this disk, from where, how big, and what each stage would use."""

    action: tyro.conf.Positional[Literal["list", "check"]] = "list"
    """list: what is there; check: also load each one (nonzero exit when one is missing or fails)."""

    def main(self) -> None:
        from recon.weights import report

        lines, ok = report(check=self.action == "check")
        print("\n".join(lines), flush=True)
        if not ok:
            raise ReconError("recon weights check: a packaged learned part is missing or does not load (above)")


COMMANDS = {"run": Run, "eval": Eval, "view": View, "export": Export, "stylize": Stylize, "weights": Weights}
PRESET_COMMANDS = {"run", "eval"}


def _flag_from_argv(args: list[str], flag: str, default: str) -> str:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        print(f"usage: recon {{{','.join(COMMANDS)}}} [--help]\n")
        for name, cls in COMMANDS.items():
            print(f"  {name:<7} {cls.__doc__}")
        if args and args[0] not in ("-h", "--help"):
            print(f"\nrecon: error: unknown command '{args[0]}'", file=sys.stderr)
            return 2
        return 0
    name, rest = args[0], args[1:]
    cls = COMMANDS[name]
    try:
        default = None
        if name in PRESET_COMMANDS:
            from recon.presets import load_preset, resolve_preset

            interrupt.install()
            # The preset's values become the defaults that flags override.
            fields = {f.name: f.default if f.default is not dataclasses.MISSING else tyro.MISSING
                      for f in dataclasses.fields(cls)}
            asked = _flag_from_argv(rest, "--preset", "auto")
            preset, why = resolve_preset(asked, _flag_from_argv(rest, "--device", "auto"))
            fields["config"] = load_preset(preset)
            fields["preset"] = preset
            fields["preset_reason"] = why
            if "preset_asked" in fields:  # recon run records it in run.json
                fields["preset_asked"] = asked
            default = cls(**fields)
        command = _parse(cls, rest, f"recon {name}", default)
        command.main()
    except ReconError as e:
        print(f"recon: error: {e}", file=sys.stderr)
        return 2
    except BaseException as e:  # a signal may surface as anything (numba wraps it in SystemError)
        signum = e.signum if isinstance(e, interrupt.Interrupted) else interrupt.received()
        if signum is None and isinstance(e, KeyboardInterrupt):
            signum = signal.SIGINT
        if signum is None:
            raise
        where = f" {e.where}" if isinstance(e, interrupt.Interrupted) else ""
        print(f"recon: interrupted ({signal.Signals(signum).name}){where}; finished work is kept in the "
              "run folder: run the same command again to resume", file=sys.stderr)
        return 128 + signum
    return 0


def _parse(cls, args: list[str], prog: str, default):
    """tyro's parse, with its boxed error message turned into one line."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=args, prog=prog, default=default)
    except SystemExit as e:
        if e.code in (0, None):
            sys.stderr.write(captured.getvalue())
            raise
        raise ReconError(_one_line(captured.getvalue()) + f" (see {prog} --help)") from None


def _one_line(boxed: str) -> str:
    """The first paragraph of tyro's boxed error, on one line, without the box."""
    lines = []
    for line in boxed.splitlines():
        text = line.strip().strip("│╭╮╰╯").strip()
        if text.startswith("─") or (lines and text.startswith("For full helptext")):
            if lines:
                break
            continue
        if text:
            lines.append(text.strip("─ "))
    return " ".join(lines) or "invalid arguments"


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
