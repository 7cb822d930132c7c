"""``asrpro models download ID [--update]``: the download service at a terminal, with a progress bar."""

from __future__ import annotations

import sys
from typing import Any

import anyio

from .. import errors


async def _download(model_id: str, update: bool) -> int:
    from ..services.container import App
    from .commands import _progress_bar

    app = App()
    try:
        spec = app.models.resolve(model_id)
        with _progress_bar(1) as bar:
            await app.downloads.download(spec, lambda fraction, **_: bar(spec.id, fraction), update=update)
        sys.stderr.write(f"asrpro: {spec.id} ready in {app.store.model_dir(spec.id)}\n")
        return 0
    except errors.AsrproError as exc:
        sys.stderr.write(f"asrpro: {exc.message}\n")
        return 1
    finally:
        await app.aclose()


def download_command(args: Any) -> int:
    """Exit 0 once the model is in the cache (already there counts), 1 on failure."""
    return anyio.run(_download, args.model, args.update)
