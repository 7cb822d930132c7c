"""The model catalogue: specs (the registry), local inspection, the verified cache store, offline
weight packs and hub downloads."""
