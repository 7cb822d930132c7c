"""The stdio wire: messages, transport (framing, fd 1 guard), session (dispatch, concurrency,
cancellation), server (the composition root) and a small host-side client."""
