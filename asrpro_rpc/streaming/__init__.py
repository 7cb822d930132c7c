"""Real-time streaming pieces that know nothing about RPC: local agreement, voice activity, utterances."""
