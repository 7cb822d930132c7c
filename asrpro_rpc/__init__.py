"""asrpro-rpc: a local speech-to-text sidecar speaking JSON-RPC 2.0 over stdio."""

__version__ = "0.1.0"
PROTOCOL_VERSION = "1.0"
