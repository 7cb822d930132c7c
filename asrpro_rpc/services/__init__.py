"""Services: the sidecar's capabilities, independent of JSON-RPC and HTTP."""
