"""The optional OpenAI-compatible HTTP shim (the ``http`` extra): FastAPI routes over the app's services,
served by uvicorn inside the sidecar's own event loop.

Only ``controller`` is imported at start-up, and it imports FastAPI and uvicorn when the shim starts.
"""
