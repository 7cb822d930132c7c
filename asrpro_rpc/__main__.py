"""``python -m asrpro_rpc`` — the same as the ``asrpro`` console script."""

from .cli import main

raise SystemExit(main())
