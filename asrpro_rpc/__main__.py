"""``python -m asrpro_rpc`` — the same as the ``asrpro`` console script."""

from .cli.main import main

raise SystemExit(main())
