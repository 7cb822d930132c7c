"""``asrpro transcribe`` and ``asrpro models``: the services used directly, for people at a terminal.

Transcripts go to stdout (or files); progress and errors go to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec

from .. import errors
from ..transcripts.types import ResponseFormat

_EXTENSIONS: dict[str, str] = {
    "json": ".json",
    "verbose_json": ".json",
    "text": ".txt",
    "srt": ".srt",
    "vtt": ".vtt",
}


@contextmanager
def _progress_bar(total_files: int) -> Iterator[Callable[[str, float], None]]:
    """Yields ``update(label, fraction)``: a rich bar on a terminal, plain lines otherwise."""
    try:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
    except ImportError:
        rich_progress = None
    else:
        from rich.console import Console

        rich_progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
    if rich_progress is None:
        yield lambda label, fraction: None
        return
    with rich_progress:
        overall = rich_progress.add_task("all files", total=total_files) if total_files > 1 else None
        tasks: dict[str, Any] = {}

        def update(label: str, fraction: float) -> None:
            if label not in tasks:
                tasks[label] = rich_progress.add_task(label, total=1.0)
            rich_progress.update(tasks[label], completed=fraction)
            if overall is not None:
                done = sum(rich_progress.tasks[t].completed for t in tasks.values())
                rich_progress.update(overall, completed=done)

        yield update


def _render(result: Any, response_format: ResponseFormat) -> str:
    if result.content is not None:
        return result.content if result.content.endswith("\n") else result.content + "\n"
    return msgspec.json.format(msgspec.json.encode(result), indent=2).decode() + "\n"


def _output_path(
    source: Path, response_format: ResponseFormat, output: str | None, output_dir: str | None
) -> Path | None:
    if output is not None:
        return Path(output)
    if output_dir is not None:
        return Path(output_dir) / (source.stem + _EXTENSIONS[response_format])
    return None


async def _transcribe_files(args: Any) -> int:
    from ..services.container import App
    from ..services.transcription import TranscribeFileParams

    app = App()
    failures = 0
    granularities = ["segment", "word"] if args.word_timestamps else ["segment"]
    try:
        with _progress_bar(len(args.files)) as update:
            for name in args.files:
                source = Path(name)
                label = source.name
                try:
                    params = TranscribeFileParams(
                        path=str(source),
                        model=args.model,
                        language=args.language,
                        task=args.task,
                        response_format=args.format,
                        timestamp_granularities=granularities,  # type: ignore[arg-type]
                    )
                    result = await app.transcription.transcribe_file(
                        params, lambda fraction, label=label, **_: update(label, fraction)
                    )
                except errors.AsrproError as exc:
                    failures += 1
                    sys.stderr.write(f"asrpro: {name}: {exc.message}\n")
                    continue
                text = _render(result, args.format)
                target = _output_path(source, args.format, args.output, args.output_dir)
                if target is None:
                    sys.stdout.write(text)
                    sys.stdout.flush()
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text, encoding="utf-8")
                    sys.stderr.write(f"asrpro: wrote {target}\n")
    finally:
        await app.aclose()
    return 1 if failures else 0


def transcribe_command(args: Any) -> int:
    """``asrpro transcribe FILE…``: exit 0 if every file worked, 1 if any failed."""
    if args.output is not None and len(args.files) > 1:
        sys.stderr.write("asrpro: -o/--output takes one input file; use --output-dir for several\n")
        return 2
    if args.model is not None and (Path(args.model).is_dir() or args.model.endswith(".nemo")):
        args.model = _register_path_model(Path(args.model))
    return anyio.run(_transcribe_files, args)


def _register_path_model(path: Path) -> str:
    """``--model PATH``: register a local model directory or .nemo file under its file name."""
    from ..catalog.store import ModelStore

    model_id = "local-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in path.resolve().name)
    ModelStore.default().register(model_id, path)
    return model_id


def models_command(args: Any) -> int:
    """``asrpro models [list]`` or ``asrpro models import DIR|PACK | --packs``."""
    from ..catalog.packs import PACKS, available_packs
    from ..catalog.store import ModelStore

    store = ModelStore.default()
    if args.models_action == "import":
        try:
            pack = args.pack or (args.directory if args.directory in PACKS else None)
            if args.packs or pack:
                for model_id in [pack] if pack else sorted(available_packs()):
                    target = store.install_pack(model_id)
                    sys.stderr.write(f"asrpro: {model_id} ready in {target}\n")
            elif args.directory:
                spec = store.import_dir(args.directory, args.model)
                sys.stderr.write(f"asrpro: imported {spec.id} into {store.model_dir(spec.id)}\n")
            else:
                sys.stderr.write("asrpro models import: give a model DIRECTORY, a PACK id, or --packs\n")
                return 2
        except errors.AsrproError as exc:
            sys.stderr.write(f"asrpro: {exc.message}\n")
            return 1
        return 0
    _print_models(store)
    return 0


def _print_models(store: Any) -> None:
    rows = [("ID", "ENGINE", "PARAMS", "SIZE", "AVAILABLE", "DESCRIPTION")]
    for spec in store.all_specs():
        size = f"{spec.size_bytes / 1e6:,.0f} MB" if spec.size_bytes else "-"
        available = "yes" if store.is_available(spec) else "no"
        rows.append((spec.id, spec.engine, spec.parameters, size, available, spec.description[:60]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells: Sequence[str] = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        sys.stdout.write("  ".join([*cells, row[-1]]).rstrip() + "\n")
